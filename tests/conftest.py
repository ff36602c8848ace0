"""Shared fixtures: an isolated expagent home, small real git repositories, scripted models, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own expagent home and no EXPAGENT_* settings from the developer's shell."""
    home = tmp_path_factory.mktemp("expagent-home")
    for key in list(os.environ):
        if key.startswith("EXPAGENT_") and key != "EXPAGENT_PYTHONS":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EXPAGENT_HOME", str(home))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return home


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def make_repo(path: Path, files: dict[str, str], message: str = "initial") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)
    return path


BUGGY_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "test_calc.py": "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                    "def test_mul():\n    assert mul(2, 3) == 6\n",
}


@pytest.fixture
def buggy_repo(tmp_path) -> Path:
    """A real git repository whose test_add fails until calc.add is fixed."""
    return make_repo(tmp_path / "proj", BUGGY_FILES)


def write_script(path: Path, replies, tools: str | None = None) -> Path:
    data = {"replies": replies}
    if tools:
        data["tools"] = tools
    path.write_text(json.dumps(data, indent=1))
    return path


def fixing_replies() -> list:
    """A scripted agent that inspects, reproduces, edits, re-tests and submits (native tool calls)."""
    return [
        {"content": "Look at the code.", "tool_calls": [{"name": "view", "arguments": {"path": "calc.py"}}],
         "usage": {"prompt_tokens": 100, "completion_tokens": 10}},
        {"content": "Reproduce.", "tool_calls": [{"name": "bash", "arguments": {"command": "python -m pytest -q test_calc.py 2>&1 | tail -3"}}],
         "usage": {"prompt_tokens": 150, "completion_tokens": 12}},
        {"content": "Fix the operator.", "tool_calls": [{"name": "edit", "arguments": {
            "path": "calc.py", "old": "return a - b", "new": "return a + b"}}],
         "usage": {"prompt_tokens": 200, "completion_tokens": 20}},
        {"content": "Check.", "tool_calls": [{"name": "bash", "arguments": {"command": "python -m pytest -q test_calc.py 2>&1 | tail -1"}}],
         "usage": {"prompt_tokens": 250, "completion_tokens": 12}},
        {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}],
         "usage": {"prompt_tokens": 300, "completion_tokens": 5}},
    ]


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run an ``expagent`` command in this process, through the console script's own ``main`` (its error
    formatting and exit codes), with stdin, stdout, stderr, the working directory and ``env`` swapped in for the
    call. Use :func:`run_cli_process` when a real process matters (signals, the installed console script,
    start-up time, environment read before ``main``). ``timeout`` is accepted for the same signature."""
    import contextlib
    import io

    from expagent.cli import main

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    code = 0
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = io.StringIO(input or "")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    err.write(exc.code + "\n")
    finally:
        sys.stdin = old_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["expagent", *args], code, out.getvalue(), err.getvalue())


def run_cli_process(*args: str, cwd: Path | None = None, input: str | None = None, env: dict | None = None,
                    timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``expagent`` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "expagent", *args], cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def interruptible() -> None:
    """``preexec_fn`` for a child a test will Ctrl-C: a test run started as a shell's background job inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all; restore the default."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def docker_daemon_available() -> bool:
    try:
        from expagent.sandbox.docker import docker_available
    except ImportError:
        return False
    return docker_available()


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox_kind(request) -> str:
    """Runs a test on each sandbox backend. Without a daemon the docker case skips, except in CI where it fails."""
    if request.param == "docker" and not docker_daemon_available():
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Docker daemon answers: the Docker tests must run in CI")
        pytest.skip("no Docker daemon on this machine")
    return request.param
