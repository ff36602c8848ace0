"""Symbol index: definitions and references on real code, bad input, and the incremental cache."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path

import pytest

from expagent.codeintel.index import SymbolIndex

MODELS = textwrap.dedent('''\
    """A small module with the shapes that matter: nesting, decorators, async, properties."""
    import functools


    def register(cls):
        return cls


    @register
    class Model:
        """A model."""

        class Meta:
            ordering = ["id"]

            class Options:
                def describe(self):
                    return "options"

        def __init__(self, name):
            self.name = name

        @property
        def label(self):
            return self.name.upper()

        @functools.lru_cache(maxsize=None)
        def save(self, force=False):
            def _validate():
                return bool(self.name)
            return _validate()

        async def refresh(self):
            return self


    async def fetch_all(session):
        return [Model("a")]
    ''')

SERVICE = textwrap.dedent('''\
    from pkg.models import Model, fetch_all


    class ModelService:
        def create(self, name):
            model = Model(name)
            model.save()
            model.save(force=True)
            return model

        async def load(self, session):
            return await fetch_all(session)
    ''')


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("from pkg.models import Model\n")
    (root / "pkg" / "models.py").write_text(MODELS)
    (root / "pkg" / "service.py").write_text(SERVICE)
    return root


def _defs(index: SymbolIndex, path: str) -> dict[str, object]:
    return {d.qualname: d for d in index.definitions(path)}


def test_python_definitions_nested_classes_decorators_async(package: Path):
    index = SymbolIndex.build(package)
    defs = _defs(index, "pkg/models.py")
    assert {"register", "Model", "Model.Meta", "Model.Meta.Options", "Model.Meta.Options.describe",
            "Model.__init__", "Model.label", "Model.save", "Model.refresh", "fetch_all"} <= set(defs)
    assert defs["Model"].kind == "class"
    assert defs["Model.save"].kind == "method"
    assert defs["Model.refresh"].kind == "method"  # async def inside a class
    assert defs["fetch_all"].kind == "function"
    assert defs["Model.Meta.Options.describe"].kind == "method"
    # decorators belong to the definition: its range starts at the first decorator line
    lines = MODELS.splitlines()
    assert lines[defs["Model"].start_line - 1].strip() == "@register"
    assert lines[defs["Model.save"].start_line - 1].strip().startswith("@functools.lru_cache")
    assert lines[defs["Model.save"].end_line - 1].strip() == "return _validate()"
    assert defs["Model.save"].signature == "def save(self, force=False):"
    assert defs["Model.refresh"].signature.startswith("async def refresh")
    # a helper nested in a method is marked local and is not found by name lookups
    local = [d for d in index.definitions("pkg/models.py") if d.name == "_validate"]
    assert local and local[0].local and local[0].qualname == "Model.save._validate"
    assert index.lookup("_validate") == []


def test_references_and_lookup_across_files(package: Path):
    index = SymbolIndex.build(package)
    refs = index.files["pkg/service.py"].symbols.references
    assert refs["Model"] == 2  # the import and the call
    assert refs["save"] == 2
    assert refs["fetch_all"] == 2
    assert [p for p, _d in index.lookup("Model")] == ["pkg/models.py"]
    assert [d.qualname for _p, d in index.lookup("Model.save")] == ["Model.save"]
    assert index.enclosing("pkg/models.py", defs_line(MODELS, "return _validate()")).qualname == "Model.save"
    assert index.enclosing("pkg/models.py", 1) is None


def defs_line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_bad_files_are_skipped_and_counted(package: Path):
    (package / "pkg" / "broken.py").write_text("def ok():\n    return 1\n\ndef broken(:\n    pass\n")
    (package / "pkg" / "blob.py").write_bytes(b"\x00\x01\x02 binary pretending to be python")
    (package / "pkg" / "latin.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (package / "pkg" / "big.py").write_text("x = 1\n" * 50_000)
    (package / "lib.rb").write_text("def hello; end\n")
    index = SymbolIndex.build(package, max_file_bytes=100_000)
    stats = index.stats
    assert stats.syntax_errors == 1
    assert "ok" in {d.name for d in index.definitions("pkg/broken.py")}  # partial symbols kept
    assert stats.skipped_binary == 1 and index.definitions("pkg/blob.py") is None
    assert stats.skipped_unreadable == 1 and index.definitions("pkg/latin.py") is None
    assert stats.skipped_huge == 1 and index.definitions("pkg/big.py") is None
    assert stats.no_grammar == {".rb": 1}
    text = "\n".join(stats.warnings())
    for fragment in ("1 file(s) had syntax errors", "1 binary", "over the size limit", ".rb (1)"):
        assert fragment in text
    # the good files are all there
    assert {"pkg/__init__.py", "pkg/models.py", "pkg/service.py"} <= set(index.files)


def test_cache_is_incremental(package: Path):
    cold = SymbolIndex.build(package)
    assert cold.stats.parsed == 3
    warm = SymbolIndex.build(package)
    assert warm.stats.parsed == 0 and warm.stats.reused == 3
    assert _defs(warm, "pkg/models.py").keys() == _defs(cold, "pkg/models.py").keys()

    # a touched but unchanged file is recognised by its hash, not parsed again
    models = package / "pkg" / "models.py"
    stat = models.stat()
    os.utime(models, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert SymbolIndex.build(package).stats.parsed == 0

    # an edited file is parsed again, and only that one
    (package / "pkg" / "service.py").write_text(SERVICE + "\n\ndef extra():\n    return 1\n")
    edited = SymbolIndex.build(package)
    assert edited.stats.parsed == 1
    assert "extra" in _defs(edited, "pkg/service.py")

    # a deleted file disappears
    (package / "pkg" / "__init__.py").unlink()
    assert "pkg/__init__.py" not in SymbolIndex.build(package).files


def test_cache_lives_outside_the_repository(package: Path, isolated_home: Path):
    SymbolIndex.build(package)
    assert sorted(p.name for p in package.rglob("*")) == sorted(["pkg", "__init__.py", "models.py", "service.py"])
    assert list((isolated_home / "cache" / "index").glob("*/index.json"))


def test_git_work_tree_respects_gitignore(package: Path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(package)], check=True)
    (package / ".gitignore").write_text("generated/\n")
    (package / "generated").mkdir()
    (package / "generated" / "junk.py").write_text("def junk():\n    pass\n")
    index = SymbolIndex.build(package)
    assert "pkg/models.py" in index.files  # untracked but not ignored
    assert "generated/junk.py" not in index.files


def test_not_a_directory_is_a_clear_error(tmp_path: Path):
    from expagent.errors import ExpagentError

    with pytest.raises(ExpagentError, match="not a directory"):
        SymbolIndex.build(tmp_path / "missing")


OTHER_LANGUAGES = {
    "tree_sitter_javascript": ("web/app.js", "export class Cart {\n  add(item) { return item; }\n}\n"
                               "function total(cart) { return cart.add(1); }\n",
                               {"Cart": "class", "Cart.add": "method", "total": "function"}),
    "tree_sitter_typescript": ("web/types.ts", "interface Item { id: number }\nexport class Store {\n"
                               "  get(id: number): Item { return {id}; }\n}\n",
                               {"Item": "class", "Store": "class", "Store.get": "method"}),
    "tree_sitter_go": ("svc/main.go", "package main\n\ntype Server struct{}\n\n"
                       "func (s *Server) Start() error { return nil }\n\nfunc main() {}\n",
                       {"Server": "class", "Server.Start": "method", "main": "function"}),
    "tree_sitter_rust": ("src/lib.rs", "pub struct Counter { n: u32 }\n\nimpl Counter {\n"
                         "    pub fn bump(&mut self) { self.n += 1; }\n}\n\nfn helper() {}\n",
                         {"Counter": "class", "Counter.bump": "method", "helper": "function"}),
    "tree_sitter_java": ("src/Main.java", "public class Main {\n  public static void run() {}\n"
                         "  class Inner { void go() {} }\n}\n",
                         {"Main": "class", "Main.run": "method", "Main.Inner.go": "method"}),
}


@pytest.mark.parametrize("module", sorted(OTHER_LANGUAGES))
def test_other_languages(tmp_path: Path, module: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} grammar not installed")
    rel, source, expected = OTHER_LANGUAGES[module]
    target = tmp_path / rel
    target.parent.mkdir(parents=True)
    target.write_text(source)
    index = SymbolIndex.build(tmp_path)
    kinds = {d.qualname: d.kind for d in index.definitions(rel)}
    for qualname, kind in expected.items():
        assert kinds.get(qualname) == kind, (qualname, kinds)
