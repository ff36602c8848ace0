"""The package's layout rules, checked on its source: imports run one way (no cycle, function-level imports
included), no module rewrites the process environment, and the shared helpers answer as documented."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import git, make_repo

PACKAGE = Path(__file__).resolve().parents[1] / "expagent"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the expagent modules it imports anywhere in its body (top level or inside functions)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:  # ``from expagent import paths`` imports the module expagent.paths
                    deps.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "expagent.codeintel.repomap" in graph["expagent.cli.codeintel"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_function_level_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # the real parser sees imports inside functions (issuekeys used to import repomap inside score_keys)
    graph = import_graph()
    assert "expagent.codeintel.issuekeys" in graph["expagent.codeintel.repomap"]
    assert "expagent.memory.store" in graph["expagent.memory.opening"]  # imported inside open_store only


def _environ_writes(tree: ast.AST) -> list[int]:
    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ" and \
            isinstance(node.value, ast.Name) and node.value.id == "os"

    lines = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else \
            node.targets if isinstance(node, ast.Delete) else []
        if any(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if is_environ(func.value) and func.attr in ("update", "pop", "setdefault", "clear", "popitem"):
                lines.append(node.lineno)
            if isinstance(func.value, ast.Name) and func.value.id == "os" and func.attr in ("putenv", "unsetenv"):
                lines.append(node.lineno)
    return lines


def test_no_module_rewrites_the_process_environment():
    """Settings travel as values (``paths.using_home``, ``Settings``), never through os.environ. The exceptions are
    libraries that read a switch only when they are imported: litellm's LITELLM_LOCAL_MODEL_COST_MAP
    (``import_litellm`` defaults it) and the datasets/hub offline switches (``suite._import_datasets``)."""
    assert _environ_writes(ast.parse("import os\nos.environ['X'] = '1'\nos.environ.pop('Y')\n")) == [2, 3]
    offenders = {str(p.relative_to(PACKAGE.parent)): lines for p in PACKAGE.rglob("*.py")
                 if (lines := _environ_writes(ast.parse(p.read_text(encoding="utf-8"))))}
    allowed = PACKAGE / "models" / "litellm_model.py"
    assert sorted(offenders) == ["expagent/models/litellm_model.py", "expagent/tasks/suite.py"]
    assert len(offenders["expagent/models/litellm_model.py"]) == 1 and len(offenders["expagent/tasks/suite.py"]) == 2
    assert 'os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP"' in allowed.read_text()
    assert 'os.environ.setdefault("HF_DATASETS_OFFLINE", "1")' in (PACKAGE / "tasks" / "suite.py").read_text()


def test_every_store_opening_goes_through_open_store():
    """``MemoryStore.open`` is called in one place; every command and run opens memory with ``open_store``."""
    callers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "MemoryStore":
                callers.append(_module_name(path))
    assert callers == ["expagent.memory.opening"]


# -- the shared helpers ---------------------------------------------------------------------------------------

PATCH = """\
diff --git a/x.py b/x.py
index 1..2 100644
--- a/x.py
+++ b/x.py
@@ -1 +1 @@
-a
+b
diff --git a/old name.py b/new b/name.py
similarity index 90%
rename from old name.py
rename to new b/name.py
diff --git a/gone.py b/gone.py
deleted file mode 100644
--- a/gone.py
+++ /dev/null
@@ -1 +0,0 @@
-x
diff --git a/tests/test_new.py b/tests/test_new.py
new file mode 100644
--- /dev/null
+++ b/tests/test_new.py
@@ -0,0 +1 @@
+y
"""


def test_patch_files_and_split():
    from expagent.patchutil import patch_files, split_patch_files

    files = split_patch_files("commit message\n\n" + PATCH)
    assert [(f.path, f.old_path, f.new_path) for f in files] == [
        ("x.py", "x.py", "x.py"), ("new b/name.py", "old name.py", "new b/name.py"),
        ("gone.py", "gone.py", None), ("tests/test_new.py", None, "tests/test_new.py")]
    assert "".join(f.text for f in files) == PATCH  # the pieces are the patch, nothing lost or repeated
    assert patch_files(PATCH) == ["x.py", "new b/name.py", "gone.py", "tests/test_new.py"]
    assert patch_files(PATCH, include_old=True)[:3] == ["x.py", "new b/name.py", "old name.py"]
    plain = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-1\n+2\n"  # no diff --git header (diff -u, some tools)
    assert patch_files(plain) == ["m.py"] and patch_files("") == []
    quoted = 'diff --git "a/sp ace.py" "b/sp ace.py"\n--- "a/sp ace.py"\n+++ "b/sp ace.py"\n@@ -1 +1 @@\n-1\n+2\n'
    assert patch_files(quoted) == ["sp ace.py"]


def test_patch_files_agrees_with_git_on_a_real_patch(tmp_path):
    from expagent.patchutil import patch_files

    repo = make_repo(tmp_path / "r", {"a.py": "1\n", "b.py": "2\n", "pkg/c.py": "3\n"})
    (repo / "a.py").write_text("10\n")
    (repo / "b.py").unlink()
    (repo / "pkg" / "new file.py").write_text("4\n")
    git(repo, "mv", "pkg/c.py", "pkg/d.py")
    git(repo, "add", "-A")
    patch = git(repo, "diff", "--cached", "-M")
    names = git(repo, "diff", "--cached", "-M", "--name-only").split("\n")
    assert sorted(patch_files(patch)) == sorted(n for n in names if n)


@pytest.mark.parametrize("path, test", [
    ("tests/unit/x.py", True), ("pkg/test_x.py", True), ("pkg/x_test.py", True), ("conftest.py", True),
    ("web/app.spec.ts", True), ("cmd/x_test.go", True), ("pkg/x.py", False), ("pkg/testing_utils.py", False),
    ("docs/conf.py", False),
])
def test_is_test_path(path, test):
    from expagent.codeintel.filekinds import is_peripheral, is_pytest_file, is_test_path

    assert is_test_path(path) is test
    assert is_peripheral(path) is (test or path.startswith("docs/"))
    assert is_pytest_file(path) is (path.endswith(".py") and path.rsplit("/", 1)[-1].startswith("test_")
                                    or path.endswith("_test.py"))


def test_git_wrappers(tmp_path):
    from expagent.errors import SandboxError, UsageError
    from expagent.gitutil import GitError, dirty_paths, git as run, head_commit, origin_name, toplevel

    repo = make_repo(tmp_path / "r", {"a.py": "1\n"})
    (repo / "sub").mkdir()
    assert toplevel(repo / "sub") == repo.resolve()
    assert head_commit(repo) == git(repo, "rev-parse", "HEAD").strip()
    assert origin_name(repo) is None
    git(repo, "remote", "add", "origin", "git@github.com:acme/shop.git")
    assert origin_name(repo) == "acme/shop"
    assert dirty_paths(repo) == []
    (repo / "a.py").write_text("2\n")
    assert dirty_paths(repo) == ["a.py"] and dirty_paths(repo, ["sub"]) == []
    with pytest.raises(GitError, match=r"^git rev-parse --verify failed in .*: fatal: "):
        run(repo, "rev-parse", "--verify", "nope^{commit}")
    with pytest.raises(SandboxError, match="git cat-file"):
        run(repo, "cat-file", "-e", "0" * 40, error=SandboxError)
    assert GitError.exit_code == 1 and UsageError.exit_code == 2
    with pytest.raises(UsageError, match="not a git repository"):
        toplevel(tmp_path)
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", str(empty))
    with pytest.raises(UsageError, match="no commits yet"):
        toplevel(empty)
