"""The Docker sandbox backend: one labelled container per task, removed on every exit path.

The repository is *copied* into the container (a shallow clone of ``base_commit``, never a
bind mount of the user's tree), the network is off unless asked for, memory / CPU / pids are
limited, and every command runs through ``exec`` under ``timeout -s KILL`` with a watchdog on
this side that kills the command's process group (and, as a last resort, restarts the
container) so that a timed-out command never survives.

Any endpoint the docker SDK accepts works (``DOCKER_HOST=unix://…``, ``tcp://…``, ``ssh://…``).
The ``docker`` package is imported lazily.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import posixpath
import shlex
import signal
import sys
import tarfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Callable

from expagent.config import Settings
from expagent.errors import SandboxError, SandboxUnavailable
from expagent.sandbox import images
from expagent.sandbox.output import OutputBuffer
from expagent.redact import redactor
from expagent.sandbox.base import CommandResult, Sandbox
from expagent.sandbox.docker_client import (  # noqa: F401  (docker_available, connect: the public entry points)
    connect,
    container_limits,
    docker_available,
    endpoint,
    remove_container,
    sandbox_labels,
    short_reason,
)
from expagent.sandbox.repo_copy import BackgroundExport, resolve_commit, single_file_tar

WORK_ROOT = "/work"
WORKDIR = f"{WORK_ROOT}/repo"
#: prefix of the pid files the command wrappers keep inside the container (/tmp always exists)
PIDFILE_PREFIX = "/tmp/.expagent-cmd-"
#: environment variable marking every process of one command (for killing it from outside)
TOKEN_VAR = "EXPAGENT_COMMAND_ID"
#: grace given to ``timeout`` inside the container before this side kills the process group
KILL_GRACE = 2.0
#: and before the container is restarted because something still holds the output open
RESTART_GRACE = 6.0

# sandboxes not closed yet; closed at interpreter exit as a safety net (the context manager
# is the normal path)
_LIVE: "weakref.WeakSet[DockerSandbox]" = weakref.WeakSet()


@contextlib.contextmanager
def _deferred_sigint():
    """A second Ctrl-C while the container is being removed waits until removal is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    except ValueError:  # not in the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


class DockerSandbox(Sandbox):
    """A repository copy in a fresh container. Use as a context manager."""

    kind = "docker"

    def __init__(
        self,
        repo_path: str | Path,
        settings: Settings,
        base_commit: str | None = None,
        image: str | None = None,
        setup: list[str] | None = None,
        network: bool | None = None,
        command_prefix: str = "",
        notice: Callable[[str], None] | None = None,
    ):
        self.notice = notice or (lambda message: print(message, file=sys.stderr))
        self.repo_path = Path(repo_path).expanduser().resolve()
        # shell text run before every command (e.g. activating a task's environment); "{workdir}" is filled in
        self.command_prefix = command_prefix
        self.settings = settings
        self.base_commit = resolve_commit(self.repo_path, base_commit)
        self.requested_image = image or settings.docker_image
        self.setup = list(setup or [])
        self.network = settings.docker_network if network is None else network
        self.workdir = WORKDIR
        self.image: str | None = None  # the image the container runs, known after start()
        self.name = f"expagent-{uuid.uuid4().hex[:12]}"
        self.container: Any = None
        self._client: Any = None
        self._oom_kills_seen = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.container is not None:
            return
        if self._closed:
            raise SandboxError("sandbox already closed")
        _LIVE.add(self)
        # the repository copy is prepared on this side while the daemon creates the container
        export = None if self.setup else BackgroundExport(self.repo_path, self.base_commit, WORKDIR.rsplit("/", 1)[1])
        try:
            self._client = connect()
            parent = self._resolve_image()
            built_at = self.base_commit
            if self.setup:
                self.image, built_at = ensure_setup_image(self._client, parent, self.repo_path, self.base_commit,
                                                          self.setup, self.notice)
            else:
                self.image = parent
            self.container = self._create_container(self.image)
            self.container.start()
            if export is not None:
                if not self.container.put_archive(WORK_ROOT, export.result()):
                    raise SandboxError("copying the repository into the container failed")
            elif built_at != self.base_commit:
                self._move_checkout(self.base_commit)
        except BaseException:
            # a half-started sandbox (Ctrl-C included) must not leave its container behind
            self.close()
            raise
        finally:
            if export is not None:
                export.discard()

    def _move_checkout(self, commit: str) -> None:
        """Bring the set-up checkout (built at another commit with the same dependency files) to ``commit``:
        tracked files follow git, the set-up's own artefacts (untracked, excluded) stay."""
        incoming = f"{WORK_ROOT}/.incoming"
        export = BackgroundExport(self.repo_path, commit, incoming.rsplit("/", 1)[1])
        try:
            if not self.container.put_archive(WORK_ROOT, export.result()):
                raise SandboxError("copying the repository into the container failed")
        finally:
            export.discard()
        result = self.run(f"git -c protocol.version=2 fetch --quiet --depth 1 file://{incoming} {commit} && "
                          f"git checkout --quiet --force --detach {commit} && rm -rf {incoming}", timeout=300)
        if result.exit_code != 0:
            raise SandboxError(f"cannot move the set-up checkout to {commit[:12]}: {result.output.strip()[-300:]}")

    def _resolve_image(self) -> str:
        if self.requested_image:
            if not images.image_exists(self._client, self.requested_image):
                raise SandboxUnavailable(
                    f"Docker image {self.requested_image} not found at {endpoint()}; build or pull it "
                    f"(the default image: '{images.BUILD_COMMAND}')"
                )
            return self.requested_image
        found = images.find_default_image(self._client)
        if not found:
            raise SandboxUnavailable(
                f"the expagent sandbox image is not built at {endpoint()}; run '{images.BUILD_COMMAND}' "
                "(or 'expagent sandbox build' where Docker Hub is reachable)"
            )
        return found

    def _create_container(self, image: str) -> Any:
        import docker.errors

        limits = container_limits(self.settings, self._client)
        try:
            return self._client.containers.create(
                image,
                command=["sleep", "infinity"],
                name=self.name,
                labels=sandbox_labels(self.repo_path),
                working_dir=WORK_ROOT,
                network_mode="bridge" if self.network else "none",
                init=True,  # reaps orphans, so killed commands do not pile up as zombies
                hostname="sandbox",
                security_opt=["no-new-privileges"],
                detach=True,
                **limits,
            )
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot create sandbox container from {image}: {exc.explanation or exc}") from None

    def close(self) -> None:
        self._closed = True
        _LIVE.discard(self)
        client, self._client = self._client, None
        if client is None:
            return
        try:
            with _deferred_sigint():
                remove_container(client, self.name)
        finally:
            self.container = None
            client.close()

    # ------------------------------------------------------------------ commands

    def _require_running(self) -> None:
        if self.container is None:
            raise SandboxError("sandbox not started (use it as a context manager)")

    def run(self, command: str, timeout: float | None = None, cwd: str | None = None,
            redact: bool = True) -> CommandResult:
        self._require_running()
        if self.command_prefix:
            command = self.command_prefix.replace("{workdir}", self.workdir) + command
        result = self._run_once(command, timeout, cwd, redact)
        if _out_of_pids(result):
            # something left running (a background fork bomb) holds every pid: nothing can start.
            # Restarting kills all processes and keeps the files; then the command gets its turn.
            self.restart_container()
            retry = self._run_once(command, timeout, cwd, redact)
            retry.output = (
                f"[the sandbox had reached its process limit ({self.settings.docker_pids}); "
                f"all background processes were killed]\n{retry.output}"
            )
            return retry
        return result

    def _run_once(self, command: str, timeout: float | None, cwd: str | None, redact: bool = True) -> CommandResult:
        timeout = float(timeout if timeout is not None else self.settings.command_timeout)
        seconds = max(1, int(timeout + 0.999))
        token = uuid.uuid4().hex[:12]
        pidfile = f"{PIDFILE_PREFIX}{token}.pid"
        # `timeout` makes itself a process-group leader and kills the whole group on expiry;
        # its pid (= the group id) goes to a pid file so that this side can kill the group too.
        script = (
            f"echo $$ > {pidfile} && exec 2>&1 && "
            f"exec timeout -s KILL {seconds} bash -c {shlex.quote(command)}"
        )
        workdir = self._abspath(cwd) if cwd else self.workdir
        api = self._client.api
        started = time.monotonic()
        try:
            exec_id = api.exec_create(
                self.container.id, ["bash", "-c", script], workdir=workdir, stdin=False, environment={TOKEN_VAR: token}
            )["Id"]
        except Exception as exc:
            return self._dead_container_result(exc, started)
        watchdog = _Watchdog(self, pidfile, token, seconds)
        output = OutputBuffer()
        watchdog.arm()
        try:
            for chunk in api.exec_start(exec_id, stream=True):
                output.add(chunk)
        except Exception as exc:
            if not watchdog.fired:
                return self._dead_container_result(exc, started, output.text())
        finally:
            watchdog.cancel()
        duration = time.monotonic() - started
        try:
            code = api.exec_inspect(exec_id).get("ExitCode")
        except Exception:  # the exec is gone with a restarted container
            code = None
        code = -1 if code is None else int(code)
        timed_out = watchdog.fired or (code in (124, 137) and duration >= seconds - 0.05)
        if timed_out:
            # whatever of the command outlived `timeout` (a setsid'ed child, say) dies now
            self.kill_command(pidfile, token)
        oom = False
        if code in (137, -1) and not timed_out:
            oom = self._oom_happened()
        if timed_out or oom:
            code = -1
        text, redacted = redactor().scrub(output.text()) if redact else (output.text(), [])
        if timed_out:
            text += f"\n[command timed out after {seconds}s and was killed]"
        elif oom:
            text += f"\n[command killed: out of memory (limit {self.settings.docker_memory})]"
        return CommandResult(output=text, exit_code=code, duration=duration, timed_out=timed_out, oom_killed=oom,
                             redacted=redacted)

    def _dead_container_result(self, exc: Exception, started: float, output: str = "") -> CommandResult:
        """The exec failed: if the container died of OOM say so, otherwise it is a sandbox error."""
        state = self._state()
        if state.get("OOMKilled"):
            text, redacted = redactor().scrub(output)
            return CommandResult(
                output=text + f"\n[sandbox container killed: out of memory (limit {self.settings.docker_memory})]",
                exit_code=-1,
                duration=time.monotonic() - started,
                oom_killed=True,
                redacted=redacted,
            )
        if state and not state.get("Running"):
            raise SandboxError(f"sandbox container {self.name} stopped (exit {state.get('ExitCode')})") from None
        raise SandboxError(f"command could not run in sandbox {self.name}: {str(exc).splitlines()[0][:200]}") from None

    def _state(self) -> dict:
        try:
            return self._client.api.inspect_container(self.name).get("State", {})
        except Exception:
            return {}

    def _oom_happened(self) -> bool:
        """Did the memory cgroup kill something since the last check?

        The cgroup's ``oom_kill`` counter says so precisely (v1 and v2); the container's
        OOMKilled flag is the fallback when the counter cannot be read.
        """
        probe = (
            "cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null | "
            "awk '$1==\"oom_kill\"{print $2; exit}'"
        )
        try:
            exec_id = self._client.api.exec_create(self.container.id, ["sh", "-c", probe])["Id"]
            text = self._client.api.exec_start(exec_id).decode(errors="replace").strip()
            kills = int(text)
        except Exception:
            return bool(self._state().get("OOMKilled"))
        happened = kills > self._oom_kills_seen
        self._oom_kills_seen = kills
        return happened

    def kill_command(self, pidfile: str, token: str) -> None:
        """Kill a command from outside: its process group, then every process carrying its token.

        The token is an environment variable every process of the command inherits, so this
        also finds processes that left the group (``setsid``) or were orphaned. Repeated a few
        times because a fork bomb keeps making new ones until the pids limit stops it.
        """
        # bash builtins only (read, kill, test): under a fork bomb there is no pid to spare for grep
        script = (
            f"read -r p < {pidfile} 2>/dev/null && kill -KILL -- -$p $p 2>/dev/null; "
            "for round in 1 2 3 4 5 6 7 8; do found=; "
            "for d in /proc/[0-9]*; do "
            f"while IFS= read -r -d '' e; do if [ \"$e\" = '{TOKEN_VAR}={token}' ]; then "
            "kill -KILL ${d#/proc/} 2>/dev/null && found=1; break; fi; done < $d/environ 2>/dev/null; "
            "done; [ -z \"$found\" ] && break; done; true"
        )
        try:
            exec_id = self._client.api.exec_create(self.container.id, ["bash", "-c", script])["Id"]
            self._client.api.exec_start(exec_id)
        except Exception:
            # no process could even be started (pids limit reached): kill everything instead
            self.restart_container()

    def restart_container(self) -> None:
        """Last resort for a command that escaped its group: kill every process (files stay)."""
        try:
            self._client.api.restart(self.name, timeout=0)
            self._oom_kills_seen = 0  # a restarted container counts from zero
        except Exception:
            pass

    # ------------------------------------------------------------------ files

    def _abspath(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.workdir}/{path}"

    def read_file(self, path: str) -> str:
        import docker.errors

        self._require_running()
        target = self._abspath(path)
        for _ in range(8):  # symbolic links are followed, a few levels deep
            try:
                stream, _stat = self._client.api.get_archive(self.container.id, target)
                data = b"".join(stream)
            except docker.errors.NotFound:
                raise FileNotFoundError(f"no such file in sandbox: {path}") from None
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                if member is not None and member.issym():
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(target), member.linkname))
                    continue
                if member is None or not member.isfile():
                    raise IsADirectoryError(f"not a regular file in sandbox: {path}")
                extracted = tar.extractfile(member)
                assert extracted is not None
                return extracted.read().decode("utf-8", errors="replace")
        raise SandboxError(f"too many levels of symbolic links: {path}")

    def write_file(self, path: str, content: str) -> None:
        self._require_running()
        target = self._abspath(path)
        staged = f"w-{uuid.uuid4().hex[:12]}"
        self._client.api.put_archive(self.container.id, "/tmp", single_file_tar(staged, content.encode("utf-8")))
        # `cat >` keeps the mode of an existing file (an executable stays executable in the diff)
        script = (
            f'mkdir -p "$(dirname {shlex.quote(target)})" && cat /tmp/{staged} > {shlex.quote(target)}; '
            f"rc=$?; rm -f /tmp/{staged}; exit $rc"
        )
        exec_id = self._client.api.exec_create(self.container.id, ["sh", "-c", script])["Id"]
        message = self._client.api.exec_start(exec_id).decode(errors="replace").strip()
        if self._client.api.exec_inspect(exec_id).get("ExitCode") != 0:
            raise SandboxError(f"cannot write {path} in sandbox: {message[-200:]}")

    def diff(self) -> str:
        self._require_running()
        if not self._state().get("Running"):
            # killed (e.g. out of memory): the files are still there, start it again to read them
            try:
                self._client.api.start(self.name)
            except Exception as exc:
                raise SandboxError(f"sandbox container {self.name} is gone; no patch can be extracted: {exc}") from None
        return super().diff()


def _out_of_pids(result: CommandResult) -> bool:
    """The command could not even start: the container has no pid left (fork or runc exec failed)."""
    head = result.output[:500]
    return (
        result.exit_code in (125, 126)
        and not result.timed_out
        and ("Resource temporarily unavailable" in head or ("OCI runtime exec failed" in head and "init-p" in head))
    )


class _Watchdog:
    """Kills a command from outside when ``timeout`` inside the container did not."""

    def __init__(self, sandbox: DockerSandbox, pidfile: str, token: str, seconds: int):
        self.sandbox, self.pidfile, self.token, self.seconds = sandbox, pidfile, token, seconds
        self.fired = False
        self._timers: list[threading.Timer] = []

    def arm(self) -> None:
        for delay, action in ((self.seconds + KILL_GRACE, self._kill), (self.seconds + RESTART_GRACE, self._restart)):
            timer = threading.Timer(delay, action)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _kill(self) -> None:
        self.fired = True
        self.sandbox.kill_command(self.pidfile, self.token)

    def _restart(self) -> None:
        self.fired = True
        self.sandbox.restart_container()

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


SETUP_TAIL_LINES = 15


def setup_log_path(tag: str) -> Path:
    from expagent import paths

    return paths.cache_dir() / "setup-logs" / f"{tag.replace(':', '-').replace('/', '_')}.log"


def ensure_setup_image(client: Any, parent: str, repo: Path, base_commit: str, setup: list[str],
                       notice: Callable[[str], None]) -> tuple[str, str]:
    """(tag, commit it was built at) of the parent image with the repo copied in and ``setup`` run (network
    on). Cached by the set-up commands and the dependency files, so a new commit that changes no dependency
    file reuses the image (its checkout is then moved to the new commit)."""
    from expagent import config
    from expagent.fsutil import atomic_write_text

    parent_id = client.images.get(parent).id
    tag = images.setup_image_tag(parent_id, setup, images.dependency_blobs(repo, base_commit))
    if images.image_exists(client, tag):
        labels = client.images.get(tag).labels or {}
        return tag, labels.get("expagent.base_commit") or base_commit
    notice(f"building the set-up image for {repo.name} ({len(setup)} command(s), once: cached by the set-up "
           f"commands and dependency files as {tag})")
    settings = config.replace(config.Settings(), docker_memory="", docker_cpus=0.0, docker_pids=4096)
    builder = DockerSandbox(repo, settings, base_commit=base_commit, image=parent, network=True, notice=notice)
    log: list[str] = []
    started = time.monotonic()
    with builder:
        for index, command in enumerate(setup, 1):
            notice(f"  set-up [{index}/{len(setup)}]: {command}")
            result = builder.run(command, timeout=3600)
            log.append(f"$ {command}\n{result.output}\n[exit {result.exit_code}]\n")
            if result.exit_code != 0:
                log_path = setup_log_path(tag)
                log_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(log_path, "".join(log))
                tail = result.output.rstrip().splitlines()[-SETUP_TAIL_LINES:]
                notice(f"  set-up command failed (exit {result.exit_code}); its last {len(tail)} line(s):")
                for line in tail:
                    notice(f"    {line}")
                raise SandboxError(f"setup command failed (exit {result.exit_code}): {command!r} (last lines above; "
                                   f"full log: {log_path})")
        # files the set-up produced (build artefacts, egg-info) are not part of any repair
        builder.run(
            f"git ls-files --others --exclude-standard --directory >> .git/info/exclude; rm -f {PIDFILE_PREFIX}*",
            timeout=120,
        )
        repository, _, version = tag.partition(":")
        builder.container.commit(
            repository=repository,
            tag=version,
            conf={"Labels": {images.LABEL: "setup", "expagent.base_commit": base_commit}},
        )
    notice(f"  set-up image ready in {time.monotonic() - started:.0f} s")
    return tag, base_commit


@atexit.register
def _close_leftovers() -> None:
    for sandbox in list(_LIVE):
        try:
            sandbox.close()
        except Exception:
            pass
