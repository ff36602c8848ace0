"""The local sandbox: a private clone of the repository, run under bubblewrap with a minimal view of the host.

With bubblewrap (``bwrap``) a command sees only

* the repository copy (read-write) and the sandbox's own ``HOME`` and ``/tmp`` (read-write; the
  ``/tmp`` is private to the sandbox, persists across its commands and is removed with it);
* the task environment paths it was given and the interpreters on ``PATH`` (virtualenvs and the
  Python installations they point to, e.g. a pyenv version), read-only;
* ``/usr``, ``/bin``, ``/lib*``, ``/sbin`` and a short list of files of ``/etc`` (no ``shadow``,
  no ``pip.conf`` / ``npmrc`` / ``gitconfig`` that may hold credentials), read-only;
* a new ``/proc`` (its own pid namespace), a minimal ``/dev``;

and nothing else: no home directory, no ``/run`` or ``/var/run`` (so no Docker or other host socket),
no host ``/tmp``, no network (a new network namespace) unless asked. The environment is built from an
allowlist (``PATH``, ``LANG``/``LC_*``, ``TZ``, ``TERM``, the sandbox's ``HOME``/``TMPDIR``, the task's
own variables), never by filtering the caller's. Every command runs under limits (processes,
address space, file size, CPU time: rlimits set inside the namespaces; a cgroup v2 memory/pids group
where the machine delegates one) and output is redacted (``expagent.redact``) before anyone stores it.

Without bubblewrap commands run as plain subprocesses of this user: the environment allowlist, the
private ``HOME``/``TMPDIR`` and the memory / file-size / CPU rlimits still apply, but the host's files,
sockets, network and processes are NOT protected (a one-line warning says so).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from expagent.errors import SandboxError
from expagent.redact import redactor
from expagent.sandbox.base import CommandResult, Sandbox
from expagent.sandbox.output import OutputBuffer

_warned_gaps = False

#: environment variables passed through from the caller (exact names), plus every LC_* variable
ENV_ALLOWLIST = ("PATH", "LANG", "LANGUAGE", "TZ")
#: files and directories of /etc a build needs; nothing that holds credentials (shadow, pip.conf, npmrc, gitconfig)
ETC_ALLOWLIST = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "gai.conf", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "alternatives", "localtime", "timezone", "os-release", "debian_version", "mime.types",
    "magic", "magic.mime", "protocols", "services", "ssl", "ca-certificates", "ca-certificates.conf", "pki",
    "locale.alias", "inputrc", "bash.bashrc", "profile", "shells", "terminfo", "resolv.conf",
)
#: system directories bound read-only (symbolic links such as /bin -> usr/bin are recreated as links)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: file size limit per command (RLIMIT_FSIZE) unless given
DEFAULT_FILE_SIZE = 4 * 1024 ** 3
#: what a memory limit failure looks like in the output when only rlimits (no cgroup) are there
_OOM_MESSAGE = re.compile(r"\bMemoryError\b|Cannot allocate memory|std::bad_alloc|out of memory", re.I)
#: environment variable marking every process of one command (to kill escapees without bubblewrap)
TOKEN_VAR = "EXPAGENT_COMMAND_ID"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def source_repo(repo: Path, commit: str = "") -> tuple[str, list[Path]]:
    """The HEAD commit of ``repo`` (or ``commit``, verified) and its object directories (with those its alternates
    name), in one git call. A repository without a HEAD (a bare mirror) serves when ``commit`` is given."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--git-path", "objects", "--verify", f"{commit or 'HEAD'}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        what = f"no commit {commit[:12]}" if commit else "no commit to copy"
        raise SandboxError(f"{repo} has {what} (git: {proc.stderr.strip() or 'no HEAD'})")
    objects, head = proc.stdout.split()
    pending, dirs = [repo / objects], []
    while pending:
        directory = pending.pop().resolve()
        if directory in dirs or not directory.is_dir():
            continue
        dirs.append(directory)
        try:
            lines = (directory / "info" / "alternates").read_text().splitlines()
        except OSError:
            continue
        pending += [directory / line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return head, dirs


def parse_size(text: str | int | None) -> int | None:
    """Docker-style sizes ("4g", "512m", "100k", bytes) in bytes; empty or 0 means no limit."""
    if text in (None, "", 0, "0"):
        return None
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", str(text).lower())
    if not match:
        raise SandboxError(f"not a size: {text!r} (use e.g. 512m or 4g)")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " "))


@dataclass(frozen=True)
class Limits:
    """Per-command limits of the local sandbox (None: no limit)."""

    memory: int | None = 4 * 1024 ** 3  # bytes (address space per process with rlimits; the group with cgroups)
    pids: int | None = 512  # processes of the sandbox (needs bubblewrap's user namespace)
    file_size: int | None = DEFAULT_FILE_SIZE  # bytes, largest file a command may write
    cpu_per_timeout_second: float = 2.0  # CPU seconds per second of the command's timeout (per process)

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        """The Docker backend's limits (docker_memory, docker_pids, docker_cpus) applied to the local one."""
        return cls(memory=parse_size(settings.docker_memory), pids=int(settings.docker_pids) or None,
                   cpu_per_timeout_second=max(1.0, float(settings.docker_cpus or 1.0)))

    def ulimit_script(self, timeout: float | None, with_pids: bool, with_memory: bool = True) -> str:
        """bash ``ulimit`` commands (soft and hard) for these limits, run inside the sandbox before the command."""
        parts = []
        if self.memory and with_memory:
            parts.append(f"-v {self.memory // 1024}")
        if self.file_size:
            parts.append(f"-f {self.file_size // 1024}")
        if timeout:
            parts.append(f"-t {math.ceil(timeout * self.cpu_per_timeout_second) + 1}")
        if with_pids and self.pids:
            parts.append(f"-u {self.pids}")
        return "".join(f"ulimit {p} || exit 125\n" for p in parts)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup paths: {"": path} for the unified (v2) hierarchy, {controller: path} for v1."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _id, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    return paths


@dataclass(frozen=True)
class CgroupSupport:
    """Where a sandbox's group can be made: the unified hierarchy (v2) with memory and pids delegated to this
    process's group, or (v1, e.g. as root) writable memory and pids hierarchies. ``dirs``: controller -> parent."""

    version: str  # "v2" | "v1"
    dirs: dict

    @classmethod
    def detect(cls) -> "CgroupSupport | None":
        own = _own_cgroups()
        if (CGROUP_ROOT / "cgroup.controllers").is_file() and "" in own:
            parent = CGROUP_ROOT / own[""]
            try:
                enabled = set((parent / "cgroup.subtree_control").read_text().split())
            except OSError:
                return None
            if {"memory", "pids"} <= enabled and os.access(parent, os.W_OK):
                return cls("v2", {"memory": parent, "pids": parent})
            return None
        dirs = {c: CGROUP_ROOT / c / own[c] for c in ("memory", "pids") if c in own}
        if len(dirs) == 2 and all(d.is_dir() and os.access(d, os.W_OK) for d in dirs.values()):
            return cls("v1", dirs)
        return None


class SandboxCgroup:
    """The cgroup(s) of one sandbox: memory without swap and a pids limit for all its processes together, and
    a count of out-of-memory kills. ``create`` returns None where the machine offers none (rlimits still apply)."""

    def __init__(self, support: CgroupSupport, paths: list[Path]):
        self.support, self.paths = support, paths
        self.memory_dir = paths[0]
        self._oom_seen = self.oom_kills()

    @classmethod
    def create(cls, limits: Limits) -> "SandboxCgroup | None":
        support = CgroupSupport.detect()
        if support is None:
            return None
        name = f"expagent-{uuid.uuid4().hex[:12]}"
        made: list[Path] = []
        try:
            for controller in ("memory", "pids"):
                path = support.dirs[controller] / name
                if path not in made:
                    path.mkdir()
                    made.append(path)
            memory, pids = support.dirs["memory"] / name, support.dirs["pids"] / name
            if support.version == "v2":
                values = {"memory.max": limits.memory, "memory.swap.max": 0 if limits.memory else None,
                          "pids.max": limits.pids}
                targets = {k: memory for k in values}
            else:
                values = {"memory.limit_in_bytes": limits.memory, "memory.memsw.limit_in_bytes": limits.memory,
                          "pids.max": limits.pids}
                targets = {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory, "pids.max": pids}
            for key, value in values.items():
                if value is not None and (targets[key] / key).exists():
                    (targets[key] / key).write_text(str(value))
            return cls(support, made)
        except OSError:
            for path in made:
                try:
                    path.rmdir()
                except OSError:
                    pass
            return None

    def join_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.paths]

    def oom_kills(self) -> int:
        name = "memory.events" if self.support.version == "v2" else "memory.oom_control"
        try:
            for line in (self.memory_dir / name).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def oom_since_last(self) -> bool:
        kills = self.oom_kills()
        happened, self._oom_seen = kills > self._oom_seen, kills
        return happened

    def close(self) -> None:
        for path in self.paths:
            for _ in range(50):
                try:
                    for pid in (path / "cgroup.procs").read_text().split():
                        os.kill(int(pid), signal.SIGKILL)
                    path.rmdir()
                    break
                except (OSError, ValueError):
                    time.sleep(0.02)


def etc_view() -> Path:
    """The allowed part of /etc, copied into a cache directory: one mount instead of dozens (~1 ms each, every
    command). Keyed by the entries' sizes, modes and times (a directory's time changes when an entry is added or
    removed), so a changed /etc gets a new copy; built once per machine and expagent home."""
    from expagent import paths

    present, stamp = [], hashlib.sha256()
    for name in ETC_ALLOWLIST:
        try:
            info = (Path("/etc") / name).lstat()
        except OSError:
            continue
        present.append(name)
        stamp.update(f"{name}:{info.st_size}:{info.st_mtime_ns}:{info.st_mode};".encode())
    target = paths.cache_dir() / "sandbox-etc" / stamp.hexdigest()[:16]
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
        for name in present:
            source = Path("/etc") / name
            try:
                if source.is_dir() and not source.is_symlink():
                    # never a private key (/etc/ssl/private holds the host's TLS keys)
                    shutil.copytree(source, staging / name, symlinks=True,
                                    ignore=shutil.ignore_patterns("private", "*.key", "*.pem.key"))
                else:
                    shutil.copy2(source, staging / name, follow_symlinks=False)
            except (OSError, shutil.Error):  # unreadable: the sandbox goes without it
                continue
        try:
            staging.rename(target)
        except OSError:  # another process made it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _venv_roots(directory: Path) -> list[Path]:
    """A virtualenv holding ``directory`` (its bin/ or itself) and the Python installation it points to."""
    for candidate in (directory, directory.parent):
        cfg = candidate / "pyvenv.cfg"
        if cfg.is_file():
            roots = [candidate]
            for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    home = Path(value.strip()).resolve()
                    roots.append(home.parent if home.name == "bin" else home)
            return roots
    return []


def interpreter_paths(path_var: str, extra: list[Path]) -> list[Path]:
    """Host directories outside the system dirs that commands need read-only: the given paths, and the
    virtualenvs on ``PATH`` or among them with the Python installations they were made from."""
    found: list[Path] = []
    for entry in [*extra, *(Path(p) for p in path_var.split(os.pathsep) if p)]:
        entry = Path(entry)
        if not entry.is_dir():
            continue
        for root in ([entry] if entry in extra else []) + _venv_roots(entry.resolve()):
            root = root.resolve()
            if root.is_dir() and not str(root).startswith(("/usr/", "/bin", "/lib")) and root not in found:
                found.append(root)
    return found


class LocalSandbox(Sandbox):
    kind = "local"

    def __init__(
        self,
        repo_path: str | os.PathLike,
        base_commit: str | None = None,
        *,
        isolate: bool | None = None,
        network: bool = False,
        setup: list[str] | None = None,
        env: dict[str, str] | None = None,
        ro_paths: list[str | os.PathLike] | None = None,
        command_prefix: str = "",
        limits: Limits | None = None,
        settings=None,
        warn=None,
        root_dir: str | os.PathLike | None = None,
    ):
        self.repo_path = Path(repo_path).resolve()
        # where the sandbox's directory (checkout, home, /tmp) is made; None: the system's temporary directory
        self.root_dir = str(root_dir) if root_dir else None
        self.base_commit = base_commit or ""
        self.network = bool(settings.docker_network) if settings is not None and not network else network
        self.setup = list(setup or [])
        self.extra_env = dict(env or {})
        # host paths commands may read (e.g. a task's virtualenv), read-only
        self.ro_paths = [Path(p).resolve() for p in (ro_paths or [])]
        # shell text run before every command (e.g. activating a task's virtualenv); "{workdir}" is filled in
        self.command_prefix = command_prefix
        self.limits = limits or (Limits.from_settings(settings) if settings is not None else Limits())
        # isolate=None: use bubblewrap when available; True: require it; False: plain subprocesses
        self._bwrap = bwrap_path() if isolate is not False else None
        if isolate is True and not self._bwrap:
            raise SandboxError("bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap)")
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self.root: Path | None = None
        self.workdir = ""
        self.cgroup: SandboxCgroup | None = None
        self._view: list[str] = []  # the bwrap arguments of the host view, computed once per sandbox
        self._objects: list[Path] = []  # the user's object directories the clone borrows (read-only)
        self._redactor = redactor()

    # -- life cycle -------------------------------------------------------
    def start(self) -> None:
        if self.root is not None:
            return
        requested = self.base_commit
        self.base_commit, self._objects = source_repo(self.repo_path, requested)
        self.root = Path(tempfile.mkdtemp(prefix="expagent-sb-", dir=self.root_dir))
        repo = self.root / "repo"
        for name in ("home", "tmp"):
            (self.root / name).mkdir()
        try:
            # a clone holds the committed state only: the user's uncommitted changes never reach the agent, and
            # nothing the agent does can reach the user's working tree. It borrows the user's objects (--shared:
            # nothing copied, read-only inside the sandbox) instead of hard-linking them (writable through a link)
            head = not requested  # the copy is of HEAD (the usual case for `fix`): one process less
            self._git("clone", "--quiet", *([] if head else ["--no-checkout"]), "--shared",
                      "--config", "user.name=expagent", "--config", "user.email=expagent@localhost",
                      str(self.repo_path), str(repo))
            if not head:
                self._git("-C", str(repo), "checkout", "--quiet", "--detach", self.base_commit)
        except BaseException:
            self.close()
            raise
        self.workdir = str(repo)
        if self._bwrap:
            self._view = self._host_view()
        self.cgroup = SandboxCgroup.create(self.limits) if self.limits.memory or self.limits.pids else None
        self._say_missing_protections()
        # set-up commands may install dependencies: like Docker's set-up images, they run with the network on
        network, self.network = self.network, True
        try:
            for command in self.setup:
                result = self.run(command, timeout=1800)
                if result.exit_code != 0:
                    self.close()
                    raise SandboxError(f"sandbox set-up command failed ({command!r}): {result.output.strip()[-300:]}")
        finally:
            self.network = network

    def _say_missing_protections(self) -> None:
        """Once per process, one line: what this machine cannot give the local sandbox."""
        global _warned_gaps
        if _warned_gaps:
            return
        _warned_gaps = True
        gaps = []
        if not self._bwrap:
            gaps.append("no bubblewrap: commands can read your files, reach host sockets and the network, and are "
                        "not limited in processes")
        if self.cgroup is None and (self.limits.memory or self.limits.pids):
            gaps.append("no cgroup to delegate (see doctor): memory is limited per process (RLIMIT_AS), not per sandbox, "
                        "and processes only by RLIMIT_NPROC (which does not bind root)")
        if gaps:
            level = "warning" if not self._bwrap else "notice"
            self._warn(f"{level}: local sandbox: {'; '.join(gaps)} (see 'expagent sandbox doctor')")

    def close(self) -> None:
        root, self.root = self.root, None
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is not None:
            cgroup.close()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _git(*args: str) -> None:
        proc = subprocess.run(["git", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()[-300:]}")

    @property
    def host_workdir(self) -> Path | None:
        return Path(self.workdir) if self.workdir else None

    # -- the view of the host ---------------------------------------------
    def _host_view(self) -> list[str]:
        """bwrap arguments: system dirs and interpreters read-only, the sandbox's own dirs read-write."""
        assert self.root is not None
        args: list[str] = []
        for directory in SYSTEM_DIRS:
            if os.path.islink(directory):
                args += ["--symlink", os.readlink(directory), directory]
            elif os.path.isdir(directory):
                args += ["--ro-bind", directory, directory]
        args += ["--ro-bind", str(etc_view()), "/etc", "--dev", "/dev", "--proc", "/proc",
                 "--bind", str(self.root / "tmp"), "/tmp"]
        for path in [*interpreter_paths(os.environ.get("PATH", ""), self.ro_paths), *self._objects]:
            args += ["--ro-bind", str(path), str(path)]
        # the sandbox's directory (the copy and its HOME; its tmp is also seen there, as the same directory)
        args += ["--bind", str(self.root), str(self.root)]
        return args

    def _argv(self, command: str, cwd: str, timeout: float | None) -> list[str]:
        # with a cgroup, memory is limited for the whole sandbox (a real out-of-memory kill), not per process
        script = self.limits.ulimit_script(timeout, with_pids=bool(self._bwrap), with_memory=self.cgroup is None)
        script += command
        if not self._bwrap:
            return ["bash", "-c", script]
        argv = [
            self._bwrap,
            *self._view,
            "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            *([] if self.network else ["--unshare-net"]),
            "--hostname", "sandbox",
            "--cap-drop", "ALL",
            "--die-with-parent",
            "--new-session",
            "--chdir", cwd,
            "bash", "-c", script,
        ]
        if self.cgroup is not None:
            # enter the sandbox's cgroup, then become bwrap (one small shell, only where cgroups are delegated)
            join = " && ".join(f"echo $$ > {shlex.quote(str(f))}" for f in self.cgroup.join_files())
            return ["sh", "-c", f'{join} && exec "$@"', "sh", *argv]
        return argv

    def _env(self, token: str) -> dict[str, str]:
        """The command's environment: an allowlist of the caller's variables, never a filtered copy."""
        assert self.root is not None
        env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWLIST or k.startswith("LC_")}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            HOME=str(self.root / "home"),
            TMPDIR="/tmp" if self._bwrap else str(self.root / "tmp"),
            GIT_TERMINAL_PROMPT="0",
            GIT_CONFIG_NOSYSTEM="1",
            PAGER="cat",
            GIT_PAGER="cat",
            PYTHONDONTWRITEBYTECODE="1",
            TERM="dumb",
        )
        env[TOKEN_VAR] = token
        env.update(self.extra_env)
        return env

    def run(self, command: str, timeout: float | None = None, cwd: str | None = None,
            redact: bool = True) -> CommandResult:
        if self.root is None:
            raise SandboxError("sandbox is not started")
        cwd = str(self._resolve(cwd)) if cwd else self.workdir
        if self.command_prefix:
            command = self.command_prefix.replace("{workdir}", self.workdir) + command
        token = uuid.uuid4().hex[:12]
        started = time.monotonic()
        proc = subprocess.Popen(
            self._argv(command, cwd, timeout),
            cwd=cwd,
            env=self._env(token),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout can kill every descendant
        )
        output = OutputBuffer()
        try:
            timed_out = not _collect(proc, output, timeout)
            if timed_out:
                self._kill(proc, token)
                _collect(proc, output, 10.0)
        except BaseException:
            self._kill(proc, token)
            proc.wait()
            proc.stdout.close()
            raise
        text, redacted = self._redactor.scrub(output.text()) if redact else (output.text(), [])
        code = -1 if timed_out else proc.returncode
        oom = not timed_out and self._out_of_memory(code, text)
        if timed_out:
            text += f"\n[command timed out after {timeout:g}s and was killed]"
        elif oom:
            code = -1
            text += f"\n[command killed: out of memory (limit {(self.limits.memory or 0) // 1024 ** 2} MB)]"
        return CommandResult(output=text, exit_code=code, duration=time.monotonic() - started,
                             timed_out=timed_out, oom_killed=oom, redacted=redacted)

    def _out_of_memory(self, code: int, output: str) -> bool:
        if self.cgroup is not None:
            return self.cgroup.oom_since_last()
        # rlimits only: an allocation refused by RLIMIT_AS shows up as one of these messages
        return bool(self.limits.memory) and code != 0 and bool(_OOM_MESSAGE.search(output[-4000:]))

    def _kill(self, proc: subprocess.Popen, token: str) -> None:
        """Kill the command's process group. Under bubblewrap this kills the pid namespace's init and with it
        every process of the command (``setsid`` included); without it, processes carrying the command's token."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not self._bwrap:
            _kill_by_token(token)

    # -- files ------------------------------------------------------------
    def _resolve(self, path: str) -> Path:
        if self.root is None:
            raise SandboxError("sandbox is not started")
        full = Path(path) if os.path.isabs(path) else Path(self.workdir) / path
        full = Path(os.path.normpath(full))
        # the host file system is outside the sandbox: refuse to read or write it through the sandbox,
        # also by way of a symbolic link (a tool reports this to the model as an error message)
        root = self.root.resolve()
        if not (full.resolve() == root or root in full.resolve().parents):
            raise PermissionError(f"path {path!r} is outside the sandbox")
        return full

    def read_file(self, path: str) -> str:
        full = self._resolve(path)
        try:
            return full.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {path}") from None

    def write_file(self, path: str, content: str) -> None:
        full = self._resolve(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content, encoding="utf-8")

    def to_sandbox_path(self, path: str) -> str:
        return str(self._resolve(path))


def _collect(proc: subprocess.Popen, output: OutputBuffer, timeout: float | None) -> bool:
    """Read ``proc``'s output into ``output`` (bounded) until it ends and exits; False when ``timeout`` passed
    first. Reading as it comes, not all at once, is what keeps a command that prints without end from growing
    this process's memory."""
    import selectors

    deadline = None if timeout is None else time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if not selector.select(left):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            output.add(chunk)
    try:
        proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    proc.stdout.close()
    return True


def _kill_by_token(token: str) -> None:
    """Kill every process whose environment carries this command's token (escapees from its group)."""
    marker = f"{TOKEN_VAR}={token}".encode()
    for _ in range(4):
        found = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
                    found = True
            except (OSError, ValueError):
                continue
        if not found:
            return
