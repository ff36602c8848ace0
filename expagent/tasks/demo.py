"""A tiny but real task suite, made on the spot: a git repository with a few commits and three
tasks whose gold and test patches are real diffs. Used by the tests, and handy to try the
grader and the replay loop without network::

    python -m expagent.tasks.demo /tmp/demo-suite && expagent eval /tmp/demo-suite --validate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from expagent.gitutil import git, git_env, identity_env

REPO = "demo/calc"

_BASE_FILES = {
    "calc/__init__.py": '"""A small calculator library."""\n',
    "calc/arith.py": (
        "def add(a, b):\n    return a + b\n\n\n"
        "def sub(a, b):\n    return a - b\n\n\n"
        "def div(a, b):\n    return a / b\n"
    ),
    "tests/test_arith.py": (
        "from calc.arith import add, sub, div\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_sub():\n    assert sub(2, 3) == -1\n\n\n"
        "def test_div():\n    assert div(6, 3) == 2\n"
    ),
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0.1.0"\n',
}

# (instance id, problem statement, files before the fix, gold fix, test files added/changed by the test patch)
_TASKS = [
    (
        "demo__calc-1",
        "div(1, 0) raises ZeroDivisionError; it should raise ValueError('division by zero').",
        {},
        {"calc/arith.py": (
            "def add(a, b):\n    return a + b\n\n\n"
            "def sub(a, b):\n    return a - b\n\n\n"
            "def div(a, b):\n    if b == 0:\n        raise ValueError('division by zero')\n    return a / b\n"
        )},
        {"tests/test_arith.py": _BASE_FILES["tests/test_arith.py"] + (
            "\n\ndef test_div_by_zero():\n    import pytest\n\n"
            "    with pytest.raises(ValueError, match='division by zero'):\n        div(1, 0)\n"
        )},
    ),
    (
        "demo__calc-2",
        "mean([]) returns 0, which hides bugs; it should raise ValueError for an empty list.",
        {"calc/stats.py": "def mean(values):\n    if not values:\n        return 0\n    return sum(values) / len(values)\n",
         "tests/test_stats.py": "from calc.stats import mean\n\n\ndef test_mean_simple():\n    assert mean([1, 2, 3]) == 2\n"},
        {"calc/stats.py": (
            "def mean(values):\n    if not values:\n        raise ValueError('mean of an empty list')\n"
            "    return sum(values) / len(values)\n"
        )},
        {"tests/test_stats.py": (
            "import pytest\n\nfrom calc.stats import mean\n\n\ndef test_mean_simple():\n    assert mean([1, 2, 3]) == 2\n\n\n"
            "@pytest.mark.parametrize('values', [pytest.param([], id='empty list'), pytest.param((), id='empty tuple [x::y]')])\n"
            "def test_mean_empty(values):\n    with pytest.raises(ValueError):\n        mean(values)\n\n\n"
            "@pytest.mark.parametrize('values,expected', [([2], 2), ([1, 2], 1.5)])\n"
            "def test_mean_values(values, expected):\n    assert mean(values) == expected\n"
        )},
    ),
    (
        "demo__calc-3",
        "slugify('Hello  World') gives 'hello--world'; runs of spaces should become one dash.",
        {"calc/text.py": "def slugify(text):\n    return text.strip().lower().replace(' ', '-')\n",
         "tests/test_text.py": "from calc.text import slugify\n\n\ndef test_slugify_word():\n    assert slugify('Hello') == 'hello'\n"},
        {"calc/text.py": "def slugify(text):\n    return '-'.join(text.strip().lower().split())\n"},
        {"tests/test_text.py": (
            "from calc.text import slugify\n\n\ndef test_slugify_word():\n    assert slugify('Hello') == 'hello'\n\n\n"
            "def test_slugify_spaces():\n    assert slugify('Hello  World') == 'hello-world'\n"
        )},
    ),
]

_F2P_P2P = {
    "demo__calc-1": (["tests/test_arith.py::test_div_by_zero"],
                     ["tests/test_arith.py::test_add", "tests/test_arith.py::test_sub", "tests/test_arith.py::test_div"]),
    "demo__calc-2": (["tests/test_stats.py::test_mean_empty[empty list]", "tests/test_stats.py::test_mean_empty[empty tuple [x::y]]"],
                     ["tests/test_stats.py::test_mean_simple", "tests/test_stats.py::test_mean_values[values0-2]",
                      "tests/test_stats.py::test_mean_values[values1-1.5]"]),
    "demo__calc-3": (["tests/test_text.py::test_slugify_spaces"], ["tests/test_text.py::test_slugify_word"]),
}


def _git(repo: Path, *args: str, stamp: int = 0) -> str:
    env = git_env(identity_env("demo", "demo@example.com", f"2024-01-0{1 + stamp}T12:00:00Z"))
    return git(repo, *args, env=env)


def _write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def make_demo_suite(dest: str | Path, python: str | None = None) -> Path:
    """Create the demo suite in ``dest`` (a new directory): ``suite.toml``, ``tasks.jsonl``, ``repos/calc``.

    The environment uses the host interpreter's packages (``system_site_packages``), so building it
    needs no network; ``python`` picks the interpreter version (default: the running one).
    """
    dest = Path(dest)
    repo = dest / "repos" / "calc"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, _BASE_FILES)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "calc: add, sub, div")
    records = []
    for stamp, (instance_id, problem, before, fix, tests) in enumerate(_TASKS, 1):
        if before:
            _write(repo, before)
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "-m", f"add {', '.join(before)}", stamp=stamp)
        base = _git(repo, "rev-parse", "HEAD").strip()
        _write(repo, fix)
        gold = _git(repo, "diff", "--no-color", "--", *fix)
        _write(repo, tests)
        _git(repo, "add", "-N", "--", *tests)
        test_patch = _git(repo, "diff", "--no-color", "--", *tests)
        _git(repo, "add", "-A")
        f2p, p2p = _F2P_P2P[instance_id]
        records.append({
            "instance_id": instance_id, "repo": REPO, "base_commit": base, "problem_statement": problem,
            "patch": gold, "test_patch": test_patch, "FAIL_TO_PASS": f2p,
            # JSON-encoded, as in the SWE-bench dataset files: both forms load
            "PASS_TO_PASS": json.dumps(p2p) if stamp % 2 else p2p,
            "version": "0.1", "created_at": f"2024-01-0{stamp}T12:00:00Z", "hints_text": "",
        })
        # the history goes on with the fix merged, as in a real project
        _git(repo, "commit", "-q", "-m", f"fix {instance_id}", stamp=stamp)
    py = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    (dest / "suite.toml").write_text(
        'name = "demo"\n'
        'description = "Three small fixes in a calculator library, in history order."\n\n'
        f'[repos."{REPO}"]\npath = "repos/calc"\n\n'
        f'[env]\npython = "{py}"\nsystem_site_packages = true\ninstall = []\n'
        # host plugins are not the suite's business (and cost seconds to load)
        'test_cmd = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider"\ntimeout = 120\n',
        encoding="utf-8",
    )
    with open(dest / "tasks.jsonl", "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m expagent.tasks.demo DEST")
    print(make_demo_suite(sys.argv[1]))
