"""Which languages the symbol index understands, and how to find definitions and references in each.

Each grammar is its own PyPI wheel (``tree-sitter-python``, ``tree-sitter-javascript``, ...) with the parser
compiled in, so nothing is downloaded at run time. A grammar that is not installed simply makes its files count
as "no grammar" in the index statistics.

Definitions and references are found with tree-sitter queries over node *types* (run in C, fast); the name of
each definition and its enclosing classes are then read from the few definition nodes in Python.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str  # the grammar wheel's import name
    extensions: tuple[str, ...]
    # node type -> "class" or "function": the nodes that define a named symbol
    definitions: dict[str, str]
    # node types whose text is a referenced name
    references: tuple[str, ...]
    # attribute on the grammar module that returns the language pointer
    loader: str = "language"
    # node types that wrap a definition and whose first line should count as the definition's start
    wrappers: tuple[str, ...] = ()
    # node types that are not definitions themselves but name a scope for the definitions inside (Rust impl)
    containers: dict[str, str] = field(default_factory=dict)


LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        module="tree_sitter_python",
        extensions=(".py", ".pyi"),
        definitions={"class_definition": "class", "function_definition": "function"},
        references=("identifier",),
        wrappers=("decorated_definition",),
    ),
    LanguageSpec(
        name="javascript",
        module="tree_sitter_javascript",
        extensions=(".js", ".jsx", ".mjs", ".cjs"),
        definitions={
            "class_declaration": "class",
            "function_declaration": "function",
            "generator_function_declaration": "function",
            "method_definition": "function",
        },
        references=("identifier", "property_identifier"),
        wrappers=("export_statement",),
    ),
    LanguageSpec(
        name="typescript",
        module="tree_sitter_typescript",
        loader="language_typescript",
        extensions=(".ts", ".mts", ".cts"),
        definitions={
            "class_declaration": "class",
            "abstract_class_declaration": "class",
            "interface_declaration": "class",
            "enum_declaration": "class",
            "type_alias_declaration": "class",
            "function_declaration": "function",
            "generator_function_declaration": "function",
            "method_definition": "function",
            "method_signature": "function",
            "abstract_method_signature": "function",
        },
        references=("identifier", "property_identifier", "type_identifier"),
        wrappers=("export_statement",),
    ),
    LanguageSpec(
        name="tsx",
        module="tree_sitter_typescript",
        loader="language_tsx",
        extensions=(".tsx",),
        definitions={
            "class_declaration": "class",
            "abstract_class_declaration": "class",
            "interface_declaration": "class",
            "enum_declaration": "class",
            "type_alias_declaration": "class",
            "function_declaration": "function",
            "method_definition": "function",
        },
        references=("identifier", "property_identifier", "type_identifier"),
        wrappers=("export_statement",),
    ),
    LanguageSpec(
        name="go",
        module="tree_sitter_go",
        extensions=(".go",),
        definitions={"type_spec": "class", "function_declaration": "function", "method_declaration": "function"},
        references=("identifier", "field_identifier", "type_identifier"),
    ),
    LanguageSpec(
        name="rust",
        module="tree_sitter_rust",
        extensions=(".rs",),
        definitions={
            "struct_item": "class",
            "enum_item": "class",
            "trait_item": "class",
            "mod_item": "class",
            "function_item": "function",
            "function_signature_item": "function",
        },
        references=("identifier", "field_identifier", "type_identifier"),
        containers={"impl_item": "type"},
    ),
    LanguageSpec(
        name="java",
        module="tree_sitter_java",
        extensions=(".java",),
        definitions={
            "class_declaration": "class",
            "interface_declaration": "class",
            "enum_declaration": "class",
            "record_declaration": "class",
            "method_declaration": "function",
            "constructor_declaration": "function",
        },
        references=("identifier", "type_identifier"),
    ),
)

# Source files of languages we have no grammar for: counted, so the user knows why they are missing from the map.
CODE_EXTENSIONS_WITHOUT_GRAMMAR = frozenset(
    ".c .h .cc .cpp .cxx .hpp .hh .cs .rb .php .kt .kts .swift .scala .m .mm .pl .pm .lua .r .jl .ex .exs .erl "
    ".hs .ml .clj .dart .zig .nim .vue .svelte".split()
)


def spec_for_path(path: str) -> LanguageSpec | None:
    dot = path.rfind(".")
    if dot < 0:
        return None
    return _BY_EXTENSION.get(path[dot:].lower())


_BY_EXTENSION = {ext: spec for spec in LANGUAGES for ext in spec.extensions}


@dataclass
class LoadedLanguage:
    spec: LanguageSpec
    parser: Any
    definition_query: Any
    reference_query: Any


@lru_cache(maxsize=None)
def load(name: str) -> LoadedLanguage | None:
    """The parser and queries for one language, or None when its grammar wheel is not installed."""
    spec = next((s for s in LANGUAGES if s.name == name), None)
    if spec is None:
        return None
    try:
        import tree_sitter as ts

        module = importlib.import_module(spec.module)
        language = ts.Language(getattr(module, spec.loader)())
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    # only node types this grammar version knows: a query naming an unknown type would not compile
    def_types = [t for t in list(spec.definitions) + list(spec.containers) if language.id_for_node_kind(t, True)]
    ref_types = [t for t in spec.references if language.id_for_node_kind(t, True)]
    definition_query = ts.Query(language, " ".join(f"({t}) @def" for t in def_types)) if def_types else None
    reference_query = ts.Query(language, " ".join(f"({t}) @ref" for t in ref_types)) if ref_types else None
    return LoadedLanguage(spec, ts.Parser(language), definition_query, reference_query)


@lru_cache(maxsize=1)
def _grammar_versions() -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    out = []
    for dist in sorted({"tree-sitter"} | {s.module.replace("_", "-") for s in LANGUAGES}):
        try:
            out.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            out.append((dist, "missing"))
    return tuple(out)


def grammar_versions() -> dict[str, str]:
    """Installed grammar versions; part of the cache key, so upgrading a grammar re-indexes."""
    return dict(_grammar_versions())
