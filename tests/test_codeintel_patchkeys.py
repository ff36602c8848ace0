"""Patch -> files and symbols, on diffs git itself produces and on a real SWE-bench patch."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from expagent.codeintel.index import SymbolIndex
from expagent.codeintel.patchkeys import files_and_symbols_from_patch, symbols_by_file_from_patch

BASE = textwrap.dedent('''\
    import os


    class Config:
        def __init__(self, path):
            self.path = path

            def normalise(p):
                return os.path.abspath(p)

            self.full = normalise(path)
            self.loaded = False

        def load(self):
            with open(self.full) as fh:
                return fh.read()


    def helper(x):
        return x + 1
    ''')


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "config.py").write_text(BASE)
    (root / "pkg" / "old.py").write_text("def obsolete():\n    return None\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "base")
    return root


def _diff(repo: Path) -> str:
    _git(repo, "add", "-A")
    return _git(repo, "diff", "--cached")


def test_method_change_is_qualified_from_the_diff(repo: Path):
    path = repo / "pkg" / "config.py"
    path.write_text(BASE.replace("return fh.read()", "return fh.read().strip()"))
    files, symbols = files_and_symbols_from_patch(_diff(repo))
    assert files == ["pkg/config.py"]
    assert symbols == ["Config.load"]


def test_added_deleted_and_renamed_files(repo: Path):
    (repo / "pkg" / "old.py").unlink()
    (repo / "pkg" / "new.py").write_text("class Fresh:\n    @staticmethod\n    def make():\n        return Fresh()\n")
    _git(repo, "mv", "pkg/config.py", "pkg/settings.py")
    (repo / "pkg" / "settings.py").write_text(BASE.replace("return x + 1", "return x + 2"))
    files, symbols = files_and_symbols_from_patch(_diff(repo))
    assert set(files) == {"pkg/old.py", "pkg/new.py", "pkg/settings.py"}
    assert "obsolete" in symbols  # deleted function
    assert {"Fresh", "Fresh.make"} <= set(symbols)  # added class and its decorated method
    assert "helper" in symbols  # change inside the renamed file


def _base_index(repo: Path) -> SymbolIndex:
    """An index of the base commit (HEAD), built from a separate work tree: the real one is edited."""
    pristine = repo.parent / "pristine"
    _git(repo, "worktree", "add", "-q", str(pristine), "HEAD")
    return SymbolIndex.build(pristine)


def test_index_resolves_what_the_hunk_header_gets_wrong(repo: Path):
    # the change sits in __init__'s body *after* a nested helper; git's hunk header names the nearest def
    # line above the hunk (the helper), so the diff alone cannot tell which method changed
    path = repo / "pkg" / "config.py"
    path.write_text(BASE.replace("self.loaded = False", "self.loaded = None"))
    patch = _git(repo, "diff", "-U1")
    _files, heuristic = files_and_symbols_from_patch(patch)
    _files, precise = files_and_symbols_from_patch(patch, index=_base_index(repo))
    assert precise == ["Config.__init__"]
    assert heuristic != precise  # the point of passing an index


def test_index_places_added_definitions(repo: Path):
    path = repo / "pkg" / "config.py"
    path.write_text(BASE.replace(
        "    def load(self):",
        "    def reload(self):\n        self.loaded = False\n        return self.load()\n\n    def load(self):",
    ).replace(
        "        self.full = normalise(path)",
        "        def check(p):\n            return p\n\n        self.full = normalise(check(path))",
    ))
    patch = _git(repo, "diff")
    _files, symbols = files_and_symbols_from_patch(patch, index=_base_index(repo))
    assert symbols == ["Config.__init__", "Config.reload"]  # a nested helper is keyed by its method


SWEBENCH_PATCH = '''diff --git a/astropy/timeseries/core.py b/astropy/timeseries/core.py
--- a/astropy/timeseries/core.py
+++ b/astropy/timeseries/core.py
@@ -55,6 +55,13 @@ class BaseTimeSeries(QTable):
     _required_columns_relax = False
 
     def _check_required_columns(self):
+        def as_scalar_or_list_str(obj):
+            if not hasattr(obj, "__len__"):
+                return f"'{obj}'"
+            elif len(obj) == 1:
+                return f"'{obj[0]}'"
+            else:
+                return str(obj)
 
         if not self._required_columns_enabled:
             return
@@ -76,9 +83,10 @@ def _check_required_columns(self):
 
             elif self.colnames[:len(required_columns)] != required_columns:
 
-                raise ValueError("{} object is invalid - expected '{}' "
-                                 "as the first column{} but found '{}'"
-                                 .format(self.__class__.__name__, required_columns[0], plural, self.colnames[0]))
+                raise ValueError("{} object is invalid - expected {} "
+                                 "as the first column{} but found {}"
+                                 .format(self.__class__.__name__, as_scalar_or_list_str(required_columns),
+                                            plural, as_scalar_or_list_str(self.colnames[:len(required_columns)])))
 
             if (self._required_columns_relax
                     and self._required_columns == self.colnames[:len(self._required_columns)]):
'''


def test_real_swebench_patch():
    # astropy__astropy-13033 from SWE-bench Verified: two hunks, the second only names the method in its
    # header; the first shows its class, so both collapse to one qualified key
    files, symbols = files_and_symbols_from_patch(SWEBENCH_PATCH)
    assert files == ["astropy/timeseries/core.py"]
    assert symbols == ["BaseTimeSeries._check_required_columns"]
    assert symbols_by_file_from_patch(SWEBENCH_PATCH) == {files[0]: symbols}


def test_truncated_patch_is_read_leniently():
    # unidiff rejects a hunk whose line counts do not match; the lenient parser still finds the keys
    broken = SWEBENCH_PATCH.split("@@ -76,9")[0].rsplit("\n", 3)[0] + "\n"
    files, symbols = files_and_symbols_from_patch(broken)
    assert files == ["astropy/timeseries/core.py"]
    assert "BaseTimeSeries._check_required_columns" in symbols


@pytest.mark.parametrize("junk", ["", "   \n", "not a patch at all", "@@ -1 +1 @@\n-x\n+y\n"])
def test_junk_never_raises(junk: str):
    files, symbols = files_and_symbols_from_patch(junk)
    assert files == [] and symbols == []
