"""SWE-bench's per-version environment recipes, carried as data.

``specs/swebench_specs.json`` is generated from the ``swebench`` package by ``specs/generate.py``
(the package itself is heavy: datasets, modal, ...); ``specs/overrides.json`` holds our fixes for
pins that no longer resolve today. Both are translated here into ``EnvRecipe`` values for a
Python virtualenv instead of SWE-bench's conda environments.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError

_SPECS_DIR = Path(__file__).with_name("specs")


@functools.cache
def _data() -> dict[str, Any]:
    return json.loads((_SPECS_DIR / "swebench_specs.json").read_text(encoding="utf-8"))


@functools.cache
def _overrides() -> list[dict[str, Any]]:
    return json.loads((_SPECS_DIR / "overrides.json").read_text(encoding="utf-8"))["rules"]


def known_repos() -> list[str]:
    return sorted(_data()["specs"])


class UnknownSpecVersion(ExpagentError):
    pass


def require_spec(suite, repo: str, version: str) -> None:
    """Raise ``UnknownSpecVersion`` when ``repo`` is a SWE-bench repository the suite takes recipes for, but
    SWE-bench has no spec for ``version`` and the suite does not define that version itself."""
    if not suite.use_swebench_recipes or repo not in _data()["specs"]:
        return
    if str(version) in _data()["specs"][repo]:
        return
    if str(version) in (suite.source(repo).env.get("versions") or {}):
        return
    known = sorted(_data()["specs"][repo], key=lambda v: [int(p) if p.isdigit() else 0 for p in v.split(".")])
    raise UnknownSpecVersion(
        f"no SWE-bench spec for {repo} version {version!r} (known: {', '.join(known)}); define it in the suite "
        f"manifest as [repos.\"{repo}\".env.versions.\"{version}\"]"
    )


def parser_for(repo: str) -> str | None:
    return _data()["parsers"].get(repo)


_APT_INSTALL = re.compile(r"apt-get\s+install\s+(?:-\S+\s+)*(.+)$")


def recipe_values(repo: str, version: str) -> dict[str, Any] | None:
    """``EnvRecipe`` field values for ``repo`` at ``version``, or ``None`` when SWE-bench has no recipe."""
    spec = _data()["specs"].get(repo, {}).get(str(version))
    if spec is None:
        return None
    values: dict[str, Any] = {"python": spec["python"]}
    packages = spec.get("packages")
    if packages == "requirements.txt":
        values["requirements"] = list(_data()["requirements_paths"].get(repo, ["requirements.txt"]))
        values["packages"] = []
    elif packages == "environment.yml":
        # translated to pip requirements when the environment is built (see conda_requirements)
        values["packages"] = []
        values["requirements"] = []
        values["conda_env"] = env_yml_paths(repo)
    else:
        values["packages"] = shlex.split(packages or "")
    values["pip_packages"] = list(spec.get("pip_packages") or [])
    pre_install, system_packages = [], []
    for command in spec.get("pre_install") or []:
        if command.startswith("apt-get"):
            match = _APT_INSTALL.search(command)
            if match:
                system_packages.extend(match.group(1).split())
            continue
        pre_install.append(command)
    values["pre_install"] = pre_install
    # file edits (sed) also shape the checkout the tests run in, as in SWE-bench's instance images
    values["checkout_setup"] = [c for c in pre_install if c.startswith(("sed ", "grep -q "))]
    values["system_packages"] = system_packages
    values["install"] = [spec["install"]] if spec.get("install") else []
    values["eval_commands"] = list(spec.get("eval_commands") or [])
    if spec.get("test_cmd"):
        test_cmd = spec["test_cmd"]
        values["test_cmd"] = " ".join(test_cmd) if isinstance(test_cmd, list) else test_cmd
    parser = parser_for(repo)
    if parser:
        values["parser"] = parser
    for rule in _overrides():
        if rule["repo"] == repo and (rule["versions"] == "*" or str(version) in rule["versions"]):
            values.update(rule.get("set", {}))
            for key, items in rule.get("extend", {}).items():
                values[key] = [*values.get(key, []), *items]
    return values


# -- environment.yml (conda) specs, as pip requirements ---------------------------------------------------------

class CondaOnly(ExpagentError):
    """An environment.yml names a package pip cannot provide."""


@functools.cache
def _conda_table() -> dict[str, Any]:
    return json.loads((_SPECS_DIR / "conda_to_pip.json").read_text(encoding="utf-8"))


_CONDA_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def _pip_requirement(spec: str) -> tuple[str, str]:
    """``(conda name, pip requirement)`` for a conda match spec such as ``numpy=1.17``, ``pandas>=1,<2``."""
    match = _CONDA_SPEC.match(spec.split("#", 1)[0])
    if not match:
        raise CondaOnly(f"environment.yml: cannot read the dependency {spec!r}")
    name, version = match.group(1), match.group(2).replace(" ", "")
    if version.startswith("=") and not version.startswith("=="):
        # conda's "=1.17" is the fuzzy 1.17.*; a build string after a second "=" has no pip equivalent
        pinned = version[1:].split("=", 1)[0]
        version = f"=={pinned}" if pinned.endswith("*") else f"=={pinned}.*"
    elif version.startswith("==") and version.count("=") > 2:
        version = "==" + version[2:].split("=", 1)[0]
    pip_name = _conda_table()["rename"].get(name.lower(), name)
    return name.lower(), pip_name + version


def conda_requirements(text: str, origin: str) -> tuple[list[str], list[str]]:
    """The pip requirements for an environment.yml, and notes about what was dropped.

    Raises ``CondaOnly`` naming a package that only conda provides and that the tests cannot do without.
    """
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CondaOnly(f"{origin}: malformed YAML ({str(exc).splitlines()[0]})") from None
    table = _conda_table()
    requirements: list[str] = []
    notes: list[str] = []
    for item in data.get("dependencies") or []:
        if isinstance(item, dict):
            requirements += [str(r) for r in item.get("pip") or []]
            continue
        name, requirement = _pip_requirement(str(item))
        if name in table["bundled"]:
            continue
        if name in table["conda_only"]:
            entry = table["conda_only"][name]
            if not entry["optional"]:
                raise CondaOnly(f"{origin} needs {name}, which only conda provides ({entry['why']}); "
                                "use the Docker backend with SWE-bench's own image for this instance")
            notes.append(f"dropped conda-only {name}: {entry['why']}")
            continue
        requirements.append(requirement)
    return requirements, notes


def env_yml_paths(repo: str) -> list[str]:
    return list(_data()["env_yml_paths"].get(repo, ["environment.yml"]))
