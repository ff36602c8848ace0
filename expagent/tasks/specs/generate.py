"""Regenerate ``swebench_specs.json`` from the ``swebench`` package (not a dependency of expagent).

The ``swebench`` package pulls in ``datasets``, ``modal`` and more, so expagent carries the few
constants it needs as data instead. Usage (the wheel only needs unpacking, not installing)::

    pip download swebench==4.0.4 --no-deps -d /tmp/sb && cd /tmp/sb && unzip -q swebench-4.0.4-*.whl
    python expagent/tasks/specs/generate.py /tmp/sb

swebench 5.x moved the per-version specs out of the package, so 4.0.4 is the last source.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

# which of expagent's log parsers reproduces each SWE-bench parser (see expagent/tasks/logparse.py)
PARSER_NAMES = {
    "parse_log_pytest": "pytest",
    "parse_log_pytest_options": "pytest_options",
    "parse_log_pytest_v2": "pytest_v2",
}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(root: str) -> None:
    base = Path(root) / "swebench" / "harness"
    constants = _load(base / "constants" / "python.py", "sb_constants_python")
    parsers_src = (base / "log_parsers" / "python.py").read_text()
    # the parser table is a dict of names: read it as text to avoid importing the package
    parser_of: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for line in parsers_src.splitlines():
        line = line.strip()
        if line.startswith("parse_log_") and " = parse_log_" in line:
            alias, target = (part.strip() for part in line.split("="))
            aliases[alias] = target
    table = parsers_src.split("MAP_REPO_TO_PARSER_PY = {", 1)[1].split("}", 1)[0]
    for line in table.splitlines():
        line = line.strip().rstrip(",")
        if ":" in line:
            repo, func = (part.strip().strip('"') for part in line.split(":", 1))
            func = aliases.get(func, func)
            parser_of[repo] = PARSER_NAMES.get(func, func.replace("parse_log_", ""))
    data = {
        "source": "swebench 4.0.4 (swebench/harness/constants/python.py, log_parsers/python.py)",
        "specs": constants.MAP_REPO_VERSION_TO_SPECS_PY,
        "requirements_paths": constants.MAP_REPO_TO_REQS_PATHS,
        "env_yml_paths": constants.MAP_REPO_TO_ENV_YML_PATHS,
        "parsers": parser_of,
    }
    out = Path(__file__).with_name("swebench_specs.json")
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({sum(len(v) for v in data['specs'].values())} repo versions)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
