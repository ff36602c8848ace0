"""Task environments as Docker images (the Docker backend of the grader).

One image per (repository, version) recipe, tagged ``expagent-env:<hash>``, made from the
sandbox image (``settings.docker_image`` or the default expagent image): a container holding
the environment checkout at ``env_commit`` runs the recipe's build steps with the network on,
exactly as the local backend does on the host, into ``/opt/expagent-env/venv``; the container is
then committed. The hash covers the parent image id, the repository, ``env_commit`` and the
recipe's build settings, so a second use is one image lookup.

The interpreter is the image's ``python3``: a recipe asking for another Python version is a
clear error (use the local backend, or an image with that Python as ``docker_image``).
Grading then runs each task in a fresh container of a set-up image made from it once per base commit
(the recipe's ``pre_install`` and ``install`` run in the checkout, as in SWE-bench's instance images),
with an explicit environment and ``/work/repo`` first on ``PYTHONPATH``.

When SWE-bench's own image for the instance (``swebench/sweb.eval.x86_64.<id>``, ``__`` written
``_1776_``; or ``$EXPAGENT_SWEBENCH_IMAGE``) is present locally or can be pulled, grading runs in it
instead, the way the harness does: the repository at ``/testbed``, already installed, and the conda
environment ``testbed`` activated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from expagent import paths
from expagent.errors import SandboxUnavailable
from expagent.tasks.envs import OLD_PIP_CHECK, EnvBuildError, pip_upgrade_args
from expagent.tasks.runtime import install_steps
from expagent.tasks.suite import EnvRecipe

ENV_ROOT = "/opt/expagent-env"
IMAGE_REPOSITORY = "expagent-env"

#: run by the venv's python right after it is made: the venv also becomes a real prefix, so that a link to its
#: interpreter (``tox --current-env`` links ``.tox/<env>/bin/python`` to ``sys.executable`` and runs the link)
#: lands in it. A linked launch finds no ``pyvenv.cfg`` beside the link, so Python looks for its prefix from the
#: link's target: the interpreter is made a real file in the venv, the standard library's entries are linked into
#: the venv's ``lib/pythonX.Y`` (its landmark), and Debian's ``site`` (which reads ``lib/python3/dist-packages``
#: outside a venv) is pointed at the venv's site-packages. A direct launch is a venv as before. The same end as
#: the local backend's interpreter roots (``runtime.make_root``).
VENV_AS_PREFIX = """\
import os, shutil, sys, sysconfig
mm = '%d.%d' % sys.version_info[:2]
exe = os.path.join(sys.prefix, 'bin', 'python' + mm)
real = os.path.realpath(exe)
if real != exe:
    os.unlink(exe)
    shutil.copy2(real, exe)
std = sysconfig.get_path('stdlib')
lib = os.path.join(sys.prefix, 'lib', 'python' + mm)
for entry in os.listdir(std):
    if entry != 'site-packages' and not os.path.lexists(os.path.join(lib, entry)):
        os.symlink(os.path.join(std, entry), os.path.join(lib, entry))
debian = os.path.join(sys.prefix, 'lib', 'python3', 'dist-packages')
if not os.path.lexists(debian):
    os.makedirs(os.path.dirname(debian), exist_ok=True)
    os.symlink(os.path.join(lib, 'site-packages'), debian)
"""


#: SWE-bench's per-instance image names (``__`` in the instance id becomes ``_1776_``, as the harness writes it);
#: ``$EXPAGENT_SWEBENCH_IMAGE`` replaces the template (``{instance}`` is filled in)
OFFICIAL_TEMPLATE = "swebench/sweb.eval.x86_64.{instance}:latest"
#: how the harness activates the instance image's environment (its eval scripts begin so)
OFFICIAL_ACTIVATE = "source /opt/miniconda3/bin/activate && conda activate testbed && "
OFFICIAL_WORKDIR = "/testbed"


@dataclass
class DockerEnv:
    image: str
    key: str
    recipe: EnvRecipe
    python_version: str
    build_seconds: float
    cached: bool
    #: an official SWE-bench instance image: repository at /testbed, installed, conda env ``testbed``
    official: bool = False

    @property
    def venv(self) -> str:
        return f"{ENV_ROOT}/venv"

    @property
    def workdir(self) -> str:
        return OFFICIAL_WORKDIR

    def _activate(self) -> str:
        from expagent.tasks.overlays import clean_shell_prefix

        return clean_shell_prefix([f"{self.venv}/bin"], {"VIRTUAL_ENV": self.venv, "PYTHONNOUSERSITE": "1"})

    def setup_commands(self) -> list[str]:
        """The install at base_commit in the task checkout (cached as a set-up image), as in SWE-bench's
        instance images; none for an official image, which already holds it."""
        if self.official:
            return []
        return [self._activate() + command for command in install_steps(self.recipe)]

    def shell_prefix(self, checkout: str) -> str:
        if self.official:
            return OFFICIAL_ACTIVATE
        return self._activate() + f"export PYTHONPATH={shlex.quote(f'{checkout}/src:{checkout}')}; "


_PULL_FAILED: set[str] = set()


def official_image_name(instance_id: str) -> str:
    template = os.environ.get("EXPAGENT_SWEBENCH_IMAGE") or OFFICIAL_TEMPLATE
    return template.format(instance=instance_id.replace("__", "_1776_").lower())


def find_official_image(client, instance_id: str, echo: Callable[[str], None]) -> str | None:
    """The instance's SWE-bench image when it is present locally or can be pulled, else ``None``."""
    from expagent.sandbox import images

    name = official_image_name(instance_id)
    if images.image_exists(client, name):
        return name
    if name in _PULL_FAILED:
        return None
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    try:
        client.images.pull(repository, tag=tag or "latest")
    except Exception as exc:  # no registry here, no such image, ...: build the environment instead
        _PULL_FAILED.add(name)  # asked once per process: a failed pull costs seconds
        echo(f"notice: SWE-bench image {name} is not available ({str(exc).splitlines()[0][:120]}); "
             "building the environment image")
        return None
    return name


def _key(parent_id: str, repo: str, env_commit: str, recipe: EnvRecipe) -> str:
    payload = {
        "parent": parent_id,
        "repo": repo,
        "env_commit": env_commit,
        # the venv's layout: an image built before the venv was also a real prefix is not reused
        "layout": hashlib.sha256(VENV_AS_PREFIX.encode()).hexdigest()[:12],
        "recipe": {name: getattr(recipe, name) for name in EnvRecipe.BUILD_FIELDS
                   if getattr(recipe, name) not in ([], False, None, "")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _build_commands(recipe: EnvRecipe, conda_requirements: list[str] | None = None) -> list[str]:
    """The recipe's build steps as shell commands run inside the builder container.

    ``conda_requirements``: the recipe's environment.yml already translated to pip requirements."""
    src = f"{ENV_ROOT}/src"
    venv = f"{ENV_ROOT}/venv"
    commands = [f"mkdir -p {ENV_ROOT} && cp -a /work/repo {src}"]
    if recipe.system_packages:
        # the spec's apt-get step, as the harness runs it in its images (an image without apt-get says so)
        listed = " ".join(shlex.quote(p) for p in recipe.system_packages)
        commands.append(f"if command -v apt-get >/dev/null; then export DEBIAN_FRONTEND=noninteractive; "
                        f"apt-get update -qq && apt-get install -y -qq {listed}; "
                        f"else echo 'note: the image has no apt-get; not installed: {listed}'; fi")
    if recipe.system_site_packages:
        # the image's own python environment (its first python3 on PATH) is made visible to the venv
        commands.append(
            f"python3 -m venv {venv} && "
            f"python3 -c 'import site; print(\"\\n\".join(site.getsitepackages()))' > "
            f"$({venv}/bin/python -c 'import site; print(site.getsitepackages()[0])')/expagent-image-site.pth"
        )
    else:
        commands.append(f"python3 -m venv {venv}")
    commands.append(f"{venv}/bin/python -c {shlex.quote(VENV_AS_PREFIX)}")
    # the same pip rule as the local backend (envs.MODERN_PIP): an old bundled pip is upgraded first
    commands.append(f"if {venv}/bin/python -c {shlex.quote(OLD_PIP_CHECK)}; then "
                    f"PIP_DISABLE_PIP_VERSION_CHECK=1 {venv}/bin/python {shlex.join(pip_upgrade_args(recipe.python))}; fi")
    activate = f"cd {src} && export VIRTUAL_ENV={venv} PATH={venv}/bin:\"$PATH\" PIP_DISABLE_PIP_VERSION_CHECK=1; "
    if recipe.constraints:
        lines = "\n".join(recipe.constraints)
        commands.append(f"cat > {ENV_ROOT}/constraints.txt <<'EOF'\n{lines}\nEOF")
        activate += f"export PIP_CONSTRAINT={ENV_ROOT}/constraints.txt; "
    pip = "python -m pip install"
    if recipe.bootstrap:
        commands.append(activate + f"{pip} {' '.join(shlex.quote(p) for p in recipe.bootstrap)}")
    if recipe.requirements:
        excluded = " ".join(shlex.quote(e) for e in recipe.requirements_exclude)
        # the first requirements file that exists, minus the excluded packages (same rule as the local backend)
        pick = " ".join(shlex.quote(r) for r in recipe.requirements)
        commands.append(
            activate + f"for f in {pick}; do if [ -f \"$f\" ]; then "
            f"python - \"$f\" {excluded} <<'EOF'\n"
            "import re, sys\n"
            "name, drop = sys.argv[1], {re.sub(r'[-_.]+', '-', e).lower() for e in sys.argv[2:]}\n"
            "def key(line):\n"
            "    return re.sub(r'[-_.]+', '-', re.split(r'[\\s<>=!~;\\[@]', line.strip(), maxsplit=1)[0]).lower()\n"
            "lines = [l for l in open(name).read().splitlines()\n"
            "         if not (l.strip() and not l.lstrip().startswith(('#', '-')) and key(l) in drop)]\n"
            # next to the original, so that its relative includes (-r docs.txt) still resolve
            "import os\n"
            "open(os.path.join(os.path.dirname(name), '.expagent-requirements.txt'), 'w').write('\\n'.join(lines) + '\\n')\n"
            "EOF\n"
            f"{pip} -r \"$(dirname \"$f\")/.expagent-requirements.txt\"; exit $?; fi; done; true"
        )
    if conda_requirements:
        listed = "\n".join(conda_requirements)
        commands.append(f"cat > {ENV_ROOT}/environment.txt <<'EOF'\n{listed}\nEOF")
        commands.append(activate + f"{pip} -r {ENV_ROOT}/environment.txt "
                        f"{' '.join(shlex.quote(p) for p in recipe.pip_packages)}")
    if recipe.packages:
        commands.append(activate + f"{pip} {' '.join(shlex.quote(p) for p in recipe.packages)}")
    if recipe.pip_packages:
        commands.append(activate + f"{pip} {' '.join(shlex.quote(p) for p in recipe.pip_packages)}")
    for command in install_steps(recipe):
        commands.append(activate + command)
    # the task checkout goes to /work/repo in each grading container: leave none behind in the image
    commands.append("rm -rf /work/repo")
    return commands


def _conda_requirements(source: Path, commit: str, recipe: EnvRecipe) -> list[str] | None:
    """The recipe's environment.yml at ``commit`` as pip requirements (``None`` when it has none)."""
    import subprocess

    from expagent.tasks.swebench_specs import conda_requirements

    for name in recipe.conda_env:
        shown = subprocess.run(["git", "-C", str(source), "show", f"{commit}:{name}"], capture_output=True, text=True)
        if shown.returncode == 0:
            return conda_requirements(shown.stdout, name)[0]
    if recipe.conda_env:
        raise EnvBuildError(f"none of the environment files {', '.join(recipe.conda_env)} exists at {commit[:12]}")
    return None


def ensure_docker_env(task, source: Path, settings, echo: Callable[[str], None] | None = None) -> DockerEnv:
    """The environment image for ``task`` (built now unless cached)."""
    from expagent.config import Settings, replace
    from expagent.sandbox import images
    from expagent.sandbox.docker import DockerSandbox, connect

    echo = echo or (lambda _msg: None)
    settings = settings or Settings()
    recipe = task.suite.recipe(task.repo, task.version)
    client = connect()
    official = find_official_image(client, task.instance_id, echo)
    if official:
        return DockerEnv(official, official, recipe, "", 0.0, cached=True, official=True)
    parent = settings.docker_image or images.find_default_image(client)
    if not parent:
        raise SandboxUnavailable(f"no sandbox image to build task environments on; run '{images.BUILD_COMMAND}'")
    parent_id = client.images.get(parent).id
    env_commit = task.env_commit or task.base_commit
    key = _key(parent_id, task.repo, env_commit, recipe)
    tag = f"{IMAGE_REPOSITORY}:{key}"
    if images.image_exists(client, tag):
        labels = client.images.get(tag).labels or {}
        return DockerEnv(tag, key, recipe, labels.get("expagent.python", ""),
                         float(labels.get("expagent.build_seconds", 0.0)), cached=True)
    started = time.monotonic()
    echo(f"building Docker environment for {task.repo} {task.version} on {parent}")
    unlimited = replace(settings, docker_memory="", docker_cpus=0.0, docker_pids=4096)
    log_lines: list[str] = []
    with DockerSandbox(source, unlimited, base_commit=env_commit, image=parent, network=True) as builder:
        probe = builder.run("python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'", timeout=60)
        found = probe.output.strip().splitlines()[-1] if probe.output.strip() else ""
        if probe.exit_code != 0 or not (found == recipe.python or found.startswith(recipe.python + ".")):
            raise SandboxUnavailable(
                f"Docker grading of {task.repo} {task.version} needs Python {recipe.python}, but image {parent} "
                f"has {found or 'no python3'}; use --sandbox local, or set docker_image to an image with that Python"
            )
        for command in _build_commands(recipe, _conda_requirements(source, env_commit, recipe)):
            echo(f"  $ {command.splitlines()[0][:160]}")
            result = builder.run(command, timeout=3600)
            log_lines += [f"$ {command}", result.output, f"[exit {result.exit_code}]"]
            if result.exit_code != 0:
                log = paths.cache_dir() / "envs" / "failed" / f"docker-{task.repo.replace('/', '__')}-{key}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text("\n".join(log_lines) + "\n", encoding="utf-8")
                body = [line.strip() for line in result.output.splitlines() if line.strip()]
                tail = " | ".join(body[-3:])[-400:] or "no output"
                raise EnvBuildError(
                    f"Docker environment build failed for {task.repo}: `{command.splitlines()[0][:120]}` exited "
                    f"{result.exit_code}: {tail} (log: {log})"
                )
        seconds = time.monotonic() - started
        builder.container.commit(
            repository=IMAGE_REPOSITORY,
            tag=key,
            conf={"Labels": {images.LABEL: "task-env", "expagent.python": found,
                             "expagent.build_seconds": f"{seconds:.2f}", "expagent.repo": task.repo}},
        )
    return DockerEnv(tag, key, recipe, found, seconds, cached=False)
