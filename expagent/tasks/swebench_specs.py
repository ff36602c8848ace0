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

_SPECS_DIR = Path(__file__).with_name("specs")


@functools.cache
def _data() -> dict[str, Any]:
    return json.loads((_SPECS_DIR / "swebench_specs.json").read_text(encoding="utf-8"))


@functools.cache
def _overrides() -> list[dict[str, Any]]:
    return json.loads((_SPECS_DIR / "overrides.json").read_text(encoding="utf-8"))["rules"]


def known_repos() -> list[str]:
    return sorted(_data()["specs"])


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
        # conda environment files have no pip equivalent; their pip section is not read either
        values["packages"] = []
        values["requirements"] = []
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
