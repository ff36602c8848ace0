"""Definitions and references of one source file, read from its tree-sitter syntax tree."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from expagent.codeintel.languages import LoadedLanguage


@dataclass(slots=True)
class Definition:
    name: str
    qualname: str  # ``Outer.Inner.method``; a function nested in a function is ``outer.inner`` with local=True
    kind: str  # "class", "function" or "method"
    start_line: int  # 1-based, decorators included
    end_line: int  # 1-based, inclusive
    signature: str  # the definition's first line, stripped and shortened, for the repo map
    local: bool = False  # defined inside a function body: not addressable from outside

    def to_row(self) -> list:
        return [self.name, self.qualname, self.kind, self.start_line, self.end_line, self.signature, int(self.local)]

    @classmethod
    def from_row(cls, row: list) -> "Definition":
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))


@dataclass
class FileSymbols:
    definitions: list[Definition] = field(default_factory=list)
    references: dict[str, int] = field(default_factory=dict)  # referenced name -> occurrences
    syntax_errors: bool = False


_GO_RECEIVER = re.compile(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*\)\s*$")
_RUST_IMPL_TYPE = re.compile(r"([A-Za-z_]\w*)\s*(?:<.*)?$")
_SIGNATURE_CHARS = 120


def _text(source: bytes, node) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _name_of(node, source: bytes, spec) -> str | None:
    name = node.child_by_field_name("name")
    if name is None and node.type in spec.containers:
        name = node.child_by_field_name(spec.containers[node.type])
        if name is not None:
            m = _RUST_IMPL_TYPE.search(_text(source, name).split("::")[-1])
            return m.group(1) if m else None
    return _text(source, name) if name is not None else None


def _signature(node, source: bytes) -> str:
    line_end = source.find(b"\n", node.start_byte)
    first = source[node.start_byte:line_end if line_end >= 0 else node.end_byte].decode("utf-8", "replace").strip()
    return first if len(first) <= _SIGNATURE_CHARS else first[: _SIGNATURE_CHARS - 3] + "..."


def extract(source: bytes, lang: LoadedLanguage) -> FileSymbols:
    """Parse ``source`` and list its definitions (with enclosing classes) and referenced names."""
    spec = lang.spec
    tree = lang.parser.parse(source)
    root = tree.root_node
    out = FileSymbols(syntax_errors=root.has_error)

    if lang.definition_query is not None:
        import tree_sitter as ts

        nodes = ts.QueryCursor(lang.definition_query).captures(root).get("def", [])
        scope_types = set(spec.definitions) | set(spec.containers)
        for node in nodes:
            if node.type in spec.containers:
                continue  # a container (Rust ``impl``) only names the scope of what it holds
            name = _name_of(node, source, spec)
            if not name:
                continue
            # enclosing scopes, innermost first
            scopes: list[tuple[str, str]] = []  # (name, kind)
            parent = node.parent
            while parent is not None:
                if parent.type in scope_types:
                    pname = _name_of(parent, source, spec)
                    if pname:
                        kind = "class" if parent.type in spec.containers else spec.definitions[parent.type]
                        scopes.append((pname, kind))
                parent = parent.parent
            scopes.reverse()
            kind = spec.definitions[node.type]
            if node.type == "method_declaration" and spec.name == "go":
                receiver = node.child_by_field_name("receiver")
                m = _GO_RECEIVER.search(_text(source, receiver)) if receiver is not None else None
                if m:
                    scopes = [(m.group(1), "class")]
            local = any(k == "function" for _n, k in scopes)
            if kind == "function" and scopes and scopes[-1][1] == "class":
                kind = "method"
            start = node
            while start.parent is not None and start.parent.type in spec.wrappers:
                start = start.parent
            out.definitions.append(
                Definition(
                    name=name,
                    qualname=".".join([n for n, _k in scopes] + [name]),
                    kind=kind,
                    start_line=start.start_point[0] + 1,
                    end_line=node.end_point[0] + 1,
                    signature=_signature(node, source),
                    local=local,
                )
            )
        out.definitions.sort(key=lambda d: (d.start_line, -d.end_line))

    if lang.reference_query is not None:
        import tree_sitter as ts

        counts: dict[str, int] = {}
        for node in ts.QueryCursor(lang.reference_query).captures(root).get("ref", []):
            name = source[node.start_byte:node.end_byte]
            if len(name) > 1:
                key = name.decode("utf-8", "replace")
                counts[key] = counts.get(key, 0) + 1
        # names the file itself defines are kept: the reference graph ignores edges from a file to itself
        out.references = counts
    return out
