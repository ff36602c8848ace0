"""Running a repository's tests many times while synthesizing tasks.

Synthesis tries dozens of mutations; each try rewrites one file in a scratch checkout and runs the
relevant test files with the suite's own test command, inside the environment the grader builds for
that suite (``expagent.tasks.envs``), and parses the output with the grader's parser
(``expagent.tasks.logparse``), so recorded test ids are exactly the ones grading will look up.

A mutation can make code loop forever, so every run has a timeout and is killed with its whole
process group. Bytecode caching is off: a mutation that keeps a file's size and lands in the same
second would otherwise be shadowed by a stale ``.pyc``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from expagent.tasks.logparse import get_parser


@dataclass
class TestRun:
    statuses: dict[str, str]  # test id -> PASSED/FAILED/ERROR/SKIPPED/XFAIL/XPASS
    output: str
    exit_code: int
    duration: float
    timed_out: bool = False


class TestRunner:
    """Runs ``test_cmd`` on chosen test files in ``checkout`` with ``env_prefix`` (shell lines) in front."""

    def __init__(self, checkout: Path, test_cmd: str, parser: str, env_prefix: str = ""):
        self.checkout = Path(checkout)
        self.test_cmd = test_cmd
        self.parse = get_parser(parser)
        self.env_prefix = env_prefix

    def command(self, files: list[str]) -> str:
        quoted = " ".join(shlex.quote(f) for f in files)
        if "{tests}" in self.test_cmd:
            command = self.test_cmd.replace("{tests}", quoted)
        else:
            command = f"{self.test_cmd} {quoted}".strip()
        # long tracebacks show the test's own source, from which the problem statement is written
        return f"{command} --tb=long"

    def run(self, files: list[str], timeout: float) -> TestRun:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0", NO_COLOR="1")
        started = time.monotonic()
        proc = subprocess.Popen(
            ["bash", "-c", self.env_prefix + self.command(files)],
            cwd=self.checkout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            timed_out = True
        text = out.decode("utf-8", errors="replace")
        return TestRun(
            statuses=self.parse(text),
            output=text,
            exit_code=-1 if timed_out else proc.returncode,
            duration=time.monotonic() - started,
            timed_out=timed_out,
        )
