"""Small, realistic bugs planted in real functions: the mutation engine of ``expagent tasks synth``.

Each mutation is one edit a developer could plausibly make by mistake:

* ``off_by_one``        -- a boundary comparison loses or gains ``=`` (``<`` <-> ``<=``), or an integer
                           used in arithmetic, an index, a slice or ``range()`` moves by one;
* ``flipped_comparison``-- ``==``/``!=``, ``<``/``>``, ``in``/``not in``, ``is``/``is not`` swap;
* ``dropped_condition`` -- one operand of an ``and``/``or`` disappears;
* ``wrong_default``     -- a parameter's default changes (``True``/``False``, a number, a string);
* ``swapped_arguments`` -- the first two positional arguments of a call trade places;
* ``missing_edge_case`` -- a guard clause (``if ...: return/raise``) is deleted.

The edit is made on the source text at the node's exact position, so the rest of the file keeps
its formatting and the gold patch (which reverts it) is a one- or few-line diff. Positions from
``ast`` are UTF-8 byte offsets, so all slicing happens on bytes.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from dataclasses import dataclass
from typing import Iterator

KINDS = (
    "off_by_one",
    "flipped_comparison",
    "dropped_condition",
    "wrong_default",
    "swapped_arguments",
    "missing_edge_case",
)

_FLIP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_OP_TEXT = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}
# how to find an operator token in the text between two operands
_OP_PATTERN = {
    ast.Eq: r"==", ast.NotEq: r"!=", ast.Lt: r"<(?![<=])", ast.LtE: r"<=", ast.Gt: r"(?<![>-])>(?![>=])",
    ast.GtE: r">=", ast.In: r"(?<![\w])in(?![\w])", ast.NotIn: r"not\s+in(?![\w])",
    ast.Is: r"(?<![\w])is(?![\w])", ast.IsNot: r"is\s+not(?![\w])",
}
_SIMPLE_ARG = (ast.Name, ast.Attribute, ast.Constant, ast.Subscript)
# calls whose argument order no one gets wrong (the swap would be an obvious type error, not a bug)
_NO_SWAP = {"isinstance", "issubclass", "getattr", "setattr", "hasattr", "delattr", "super", "print", "format"}


@dataclass(frozen=True)
class Mutation:
    """One planted bug: where, what kind, and the source before and after."""

    file: str  # path relative to the repository root
    line: int  # 1-based line of the edit in the original file
    kind: str
    function: str  # qualified name of the function the edit is in
    description: str  # what changed, for people ("`<` became `<=`")
    original: str
    mutated: str

    @property
    def key(self) -> str:
        """A stable identity for this mutation (same file, place and edit -> same key)."""
        digest = hashlib.sha1(f"{self.file}\0{self.kind}\0{self.mutated}".encode()).hexdigest()
        return digest[:12]

    def record(self) -> dict:
        return {"file": self.file, "line": self.line, "kind": self.kind, "function": self.function,
                "description": self.description}


class _Source:
    """The file's bytes plus the line table that turns (lineno, col) into byte offsets."""

    def __init__(self, text: str):
        self.text = text
        self.data = text.encode("utf-8")
        self.starts = [0]
        for i, byte in enumerate(self.data):
            if byte == 0x0A:
                self.starts.append(i + 1)

    def offset(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")

    def edit(self, edits: list[tuple[int, int, str]]) -> str:
        data = self.data
        for start, end, new in sorted(edits, reverse=True):
            data = data[:start] + new.encode("utf-8") + data[end:]
        return data.decode("utf-8")


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Every function and method with its qualified name."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from visit(child, name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def _own_nodes(func: ast.AST) -> Iterator[ast.AST]:
    """Nodes of ``func``'s body, not descending into nested functions, classes or lambdas."""
    stack = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


def _is_docstring(node: ast.AST, func: ast.AST) -> bool:
    return bool(func.body) and isinstance(func.body[0], ast.Expr) and func.body[0].value is node


class _Finder:
    """Enumerates the candidate mutations of one file."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.src = _Source(text)
        self.tree = ast.parse(text)
        self.parents: dict[int, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node

    def candidates(self) -> Iterator[Mutation]:
        for qualname, func in _functions(self.tree):
            yield from self._defaults(qualname, func)
            for node in _own_nodes(func):
                if isinstance(node, ast.Compare):
                    yield from self._compare(qualname, node)
                elif isinstance(node, ast.BoolOp):
                    yield from self._boolop(qualname, node)
                elif isinstance(node, ast.Constant) and type(node.value) is int:
                    yield from self._int_constant(qualname, node)
                elif isinstance(node, ast.Call):
                    yield from self._swap_args(qualname, node)
            for block in self._blocks(func):
                yield from self._guards(qualname, block)

    # -- building a mutation from edits --------------------------------------------------------------

    def _make(self, qualname: str, line: int, kind: str, description: str, edits: list[tuple[int, int, str]]):
        mutated = self.src.edit(edits)
        if mutated == self.src.text:
            return None
        try:
            new_tree = ast.parse(mutated)
            compile(new_tree, self.path, "exec")
        except (SyntaxError, ValueError):
            return None
        if ast.dump(new_tree) == ast.dump(self.tree):
            return None
        return Mutation(self.path, line, kind, qualname, description, self.src.text, mutated)

    def _op_edit(self, node: ast.Compare, index: int, new_op: type) -> tuple[int, int, str] | None:
        """The edit replacing the ``index``-th operator of ``node`` by ``new_op``."""
        left = node.left if index == 0 else node.comparators[index - 1]
        right = node.comparators[index]
        gap_start = self.src.span(left)[1]
        gap_end = self.src.span(right)[0]
        gap = self.src.segment(gap_start, gap_end)
        old_op = type(node.ops[index])
        matches = list(re.finditer(_OP_PATTERN[old_op], gap))
        if len(matches) != 1 or "#" in gap:
            return None
        m = matches[0]
        start = gap_start + len(gap[: m.start()].encode("utf-8"))
        end = gap_start + len(gap[: m.end()].encode("utf-8"))
        return start, end, _OP_TEXT[new_op]

    # -- kinds ---------------------------------------------------------------------------------------

    def _compare(self, qualname: str, node: ast.Compare) -> Iterator[Mutation]:
        for index, op in enumerate(node.ops):
            old = type(op)
            for kind, table in (("flipped_comparison", _FLIP), ("off_by_one", _BOUNDARY)):
                new = table.get(old)
                if new is None:
                    continue
                edit = self._op_edit(node, index, new)
                if edit is None:
                    continue
                desc = f"`{_OP_TEXT[old]}` became `{_OP_TEXT[new]}`"
                mutation = self._make(qualname, node.lineno, kind, desc, [edit])
                if mutation:
                    yield mutation

    def _boolop(self, qualname: str, node: ast.BoolOp) -> Iterator[Mutation]:
        start, end = self.src.span(node)
        op = "and" if isinstance(node.op, ast.And) else "or"
        values = node.values
        # drop the last operand, or the first one
        keep_head = self.src.segment(self.src.span(values[0])[0], self.src.span(values[-2])[1])
        keep_tail = self.src.segment(self.src.span(values[1])[0], self.src.span(values[-1])[1])
        for kept, dropped in ((keep_head, values[-1]), (keep_tail, values[0])):
            if "\n" in kept:
                kept = f"({kept})"
            dropped_text = ast.unparse(dropped)
            if len(dropped_text) > 60:
                dropped_text = dropped_text[:57] + "..."
            desc = f"the `{op} {dropped_text}` part of a condition was dropped"
            mutation = self._make(qualname, node.lineno, "dropped_condition", desc, [(start, end, kept)])
            if mutation:
                yield mutation

    def _int_constant(self, qualname: str, node: ast.Constant) -> Iterator[Mutation]:
        parent = self.parents.get(id(node))
        # only integers that count or index: arithmetic, subscripts, slices, range() bounds
        in_range = (
            isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "range"
            and node in parent.args
        )
        counted = isinstance(parent, (ast.BinOp, ast.Slice)) or in_range or (
            isinstance(parent, ast.Subscript) and parent.slice is node
        ) or (isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub))
        if not counted or node.value > 1000:
            return
        start, end = self.src.span(node)
        text = self.src.segment(start, end)
        if not text.isdigit():
            return
        for new in (node.value + 1, node.value - 1):
            if new < 0:
                continue
            desc = f"the constant `{node.value}` became `{new}`"
            mutation = self._make(qualname, node.lineno, "off_by_one", desc, [(start, end, str(new))])
            if mutation:
                yield mutation

    def _defaults(self, qualname: str, func: ast.AST) -> Iterator[Mutation]:
        args = func.args
        positional = [*args.posonlyargs, *args.args]
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        for arg, default in pairs:
            if not isinstance(default, ast.Constant):
                continue
            value = default.value
            if isinstance(value, bool):
                new = repr(not value)
            elif isinstance(value, int) and 0 <= value <= 1000:
                new = repr(value + 1)
            elif isinstance(value, str) and len(value) <= 10:
                new = repr(" " if value == "" else "")
            else:
                continue
            start, end = self.src.span(default)
            desc = f"the default of `{arg.arg}` became `{new}`"
            mutation = self._make(qualname, default.lineno, "wrong_default", desc, [(start, end, new)])
            if mutation:
                yield mutation

    def _swap_args(self, qualname: str, node: ast.Call) -> Iterator[Mutation]:
        if len(node.args) < 2 or any(isinstance(a, ast.Starred) for a in node.args[:2]):
            return
        if isinstance(node.func, ast.Name) and node.func.id in _NO_SWAP:
            return
        first, second = node.args[0], node.args[1]
        if not (isinstance(first, _SIMPLE_ARG) and isinstance(second, _SIMPLE_ARG)):
            return
        a, b = self.src.span(first), self.src.span(second)
        text_a, text_b = self.src.segment(*a), self.src.segment(*b)
        if text_a == text_b or "\n" in text_a or "\n" in text_b:
            return
        callee = ast.unparse(node.func)
        desc = f"the arguments `{text_a}` and `{text_b}` of `{callee}(...)` were swapped"
        mutation = self._make(qualname, node.lineno, "swapped_arguments", desc, [(a[0], a[1], text_b), (b[0], b[1], text_a)])
        if mutation:
            yield mutation

    def _blocks(self, func: ast.AST) -> Iterator[list[ast.stmt]]:
        yield func.body
        for node in _own_nodes(func):
            for name in ("body", "orelse", "finalbody"):
                block = getattr(node, name, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt) and node is not func:
                    yield block

    def _guards(self, qualname: str, block: list[ast.stmt]) -> Iterator[Mutation]:
        """Delete a guard clause: an ``if`` without ``else`` that returns/raises, followed by more code."""
        for i, stmt in enumerate(block[:-1]):
            if not isinstance(stmt, ast.If) or stmt.orelse:
                continue
            if not isinstance(stmt.body[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break)):
                continue
            line_start = self.src.starts[stmt.lineno - 1]
            before = self.src.data[line_start: self.src.offset(stmt.lineno, stmt.col_offset)]
            end = self.src.offset(stmt.end_lineno, stmt.end_col_offset)
            next_line = self.src.starts[stmt.end_lineno] if stmt.end_lineno < len(self.src.starts) else len(self.src.data)
            after = self.src.data[end:next_line]
            if before.strip() or (after.strip() and not after.strip().startswith(b"#")):
                continue
            condition = ast.unparse(stmt.test)
            if len(condition) > 60:
                condition = condition[:57] + "..."
            desc = f"the `if {condition}:` guard was removed"
            mutation = self._make(qualname, stmt.lineno, "missing_edge_case", desc, [(line_start, next_line, "")])
            if mutation:
                yield mutation


def find_mutations(path: str, text: str) -> list[Mutation]:
    """All candidate mutations of one Python file (``path`` is only recorded), in source order."""
    try:
        finder = _Finder(path, text)
    except SyntaxError:
        return []
    seen: set[str] = set()
    found = []
    for mutation in finder.candidates():
        if mutation.mutated in seen:
            continue
        seen.add(mutation.mutated)
        found.append(mutation)
    found.sort(key=lambda m: (m.line, m.kind, m.description))
    return found


def ordered_for_trial(mutations: list[Mutation], seed: int) -> list[Mutation]:
    """A deterministic order in which to try mutations: shuffled, one per function first, kinds interleaved.

    Spreading trials over functions and kinds makes the tasks of one module varied instead of five
    variations of the same line.
    """
    shuffled = list(mutations)
    random.Random(seed).shuffle(shuffled)
    first: dict[str, list[Mutation]] = {}
    seen_functions: set[str] = set()
    rest = []
    for mutation in shuffled:
        if mutation.function not in seen_functions:
            seen_functions.add(mutation.function)
            first.setdefault(mutation.kind, []).append(mutation)
        else:
            rest.append(mutation)
    interleaved = []
    queues = [first[kind] for kind in KINDS if kind in first]
    while any(queues):
        for queue in queues:
            if queue:
                interleaved.append(queue.pop(0))
    return interleaved + rest
