"""Problem statements for synthesized tasks, written from what the failing tests observed.

A user reporting a bug says what they called, what happened and what they expected; they do not
know which test exercises it or which line is wrong. So the statement is built only from the
first traceback frame of each failing test (the test's own code: the call and its expected value)
and the final error line (the observed value or exception). Frames inside the library, where the
mutated line would show, are never read.

``parse_failures`` reads pytest's ``FAILURES`` section (``--tb=long``); ``write_statement`` turns
up to two failures into a short issue text.
"""

from __future__ import annotations

import ast
import builtins
import copy
import re
import textwrap
from dataclasses import dataclass, field

_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$")
_SECTION = re.compile(r"^={3,} (.+?) ={3,}$")
_FRAME_SEP = re.compile(r"^(_ ){5,}_?\s*$")
_LOCATION = re.compile(r"^(\S[^:]*\.py):(\d+): ?(\w*)\s*$")


@dataclass
class Failure:
    """What one failing test showed: its own source up to the failing statement, and the error."""

    name: str  # the section header (``test_x`` or ``TestA.test_x[param]``); used only for matching
    source: list[str] = field(default_factory=list)  # the test function's lines, up to the failing statement
    failing_line: int = -1  # index in ``source`` of the line marked ``>``
    error: list[str] = field(default_factory=list)  # the ``E`` lines, without the marker
    exception: str = ""  # the exception type named on the location line
    location: tuple[str, int] | None = None  # (test file, line) of the failing statement in the test
    args: dict[str, str] = field(default_factory=dict)  # the test's arguments as shown (parametrized values)
    class_attrs: dict[str, str] = field(default_factory=dict)  # simple attributes of the test's class

    @property
    def error_line(self) -> str:
        return self.error[0].strip() if self.error else self.exception


def parse_failures(output: str) -> dict[str, Failure]:
    """Failures by section header, from pytest output run with ``--tb=long``."""
    failures: dict[str, Failure] = {}
    lines = output.splitlines()
    in_failures = False
    current: Failure | None = None
    frame = 0
    for line in lines:
        section = _SECTION.match(line)
        if section:
            in_failures = section.group(1).strip() in ("FAILURES", "ERRORS")
            current = None
            continue
        if not in_failures:
            continue
        header = _HEADER.match(line)
        if header and not _FRAME_SEP.match(line):
            current = Failure(name=header.group(1).strip())
            failures[current.name] = current
            frame = 0
            continue
        if current is None:
            continue
        if _FRAME_SEP.match(line):
            frame += 1
            continue
        if line.startswith("E ") or line == "E":
            current.error.append(line[2:] if len(line) > 2 else "")
            continue
        location = _LOCATION.match(line)
        if location:
            if location.group(3):
                current.exception = location.group(3)
            if frame == 0:
                current.location = (location.group(1), int(location.group(2)))
            frame += 1  # whatever follows belongs to another frame
            continue
        if frame == 0:
            if not current.source and not line.startswith("    def ") and not line.startswith("    async def "):
                current.args.update(_shown_args(line))  # argument values shown before the function
                continue
            if line.startswith(">"):
                current.failing_line = len(current.source)
                line = " " + line[1:]
            current.source.append(line)
    return failures


def _shown_args(line: str) -> dict[str, str]:
    """``a = 'cow', b = 'kine'`` (pytest's line of argument values) -> {"a": "'cow'", "b": "'kine'"}."""
    if not re.match(r"^\w+ = ", line):
        return {}
    try:
        call = ast.parse(f"f({line.replace(' = ', '=')})", mode="eval").body
    except SyntaxError:
        return {}
    if not isinstance(call, ast.Call):
        return {}
    return {kw.arg: ast.unparse(kw.value) for kw in call.keywords if kw.arg and kw.arg != "self"}


def failure_for(test_id: str, failures: dict[str, Failure]) -> Failure | None:
    """The failure of a ``path::Class::test[param]`` id (headers read ``Class.test[param]``)."""
    parts = test_id.split("::")[1:]
    if not parts:
        return None
    return failures.get(".".join(parts))


# ---------------------------------------------------------------------------------------------------------------------
# understanding the failing statement


@dataclass
class Observation:
    call: str  # the expression the user evaluated
    setup: list[str]  # statements it needs first
    outcome: str  # "wrong_value" | "raised" | "not_raised" | "false" | "true" | "other"
    actual: str = ""
    expected: str = ""
    error: str = ""
    callee_names: list[str] = field(default_factory=list)


_COMPOUND = (ast.With, ast.For, ast.If, ast.While, ast.Try)


def _statement_at(func: ast.AST, target: int) -> ast.stmt | None:
    """The innermost simple statement of ``func`` on line ``target`` (else the compound one around it)."""
    found = None
    for node in ast.walk(func):
        if isinstance(node, ast.stmt) and node is not func and node.lineno <= target <= node.end_lineno:
            if not isinstance(node, _COMPOUND) or found is None:
                found = node
            if node.lineno == target and not isinstance(node, _COMPOUND):
                found = node
    return found


def _test_ast_from_file(failure: Failure, read_file) -> tuple[ast.FunctionDef, ast.stmt] | None:
    """The test function and failing statement read from the test file itself (the listing may stop short)."""
    try:
        tree = ast.parse(read_file(failure.location[0]))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    line = failure.location[1]
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.lineno <= line <= n.end_lineno]
    if not funcs:
        return None
    func = max(funcs, key=lambda n: n.lineno)  # the innermost
    stmt = _statement_at(func, line)
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.lineno <= line <= n.end_lineno]
    if classes:
        # ``D = dict`` in the test class lets ``self.D`` be shown as what it is
        for node in max(classes, key=lambda n: n.lineno).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and _simple_value(node.value)):
                failure.class_attrs[node.targets[0].id] = ast.unparse(node.value)
    return (func, stmt) if stmt is not None else None


def _simple_value(node: ast.AST) -> bool:
    if isinstance(node, (ast.Name, ast.Attribute)):
        return True
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _test_ast(failure: Failure, read_file=None) -> tuple[ast.FunctionDef, ast.stmt] | None:
    """The test function and its failing statement: from the test file when readable, else from the listing."""
    if read_file is not None and failure.location is not None:
        parsed = _test_ast_from_file(failure, read_file)
        if parsed is not None:
            return parsed
    text = textwrap.dedent("\n".join(failure.source))
    lines = text.splitlines()
    # the listing may end mid-way through a compound statement: drop trailing lines until it parses
    for end in range(len(lines), max(failure.failing_line, 0), -1):
        try:
            tree = ast.parse("\n".join(lines[:end]))
        except SyntaxError:
            continue
        if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
            return None
        func = tree.body[0]
        found = _statement_at(func, failure.failing_line + 1)
        if found is not None:
            return func, found
    return None


def _has_call(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


class _Inline(ast.NodeTransformer):
    def __init__(self, values: dict[str, ast.expr], attrs: dict[str, ast.expr]):
        self.values = values
        self.attrs = attrs

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id in self.values:
            return copy.deepcopy(self.values[node.id])
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if (isinstance(node.value, ast.Name) and node.value.id == "self" and isinstance(node.ctx, ast.Load)
                and node.attr in self.attrs):
            return copy.deepcopy(self.attrs[node.attr])
        return self.generic_visit(node)


def _parsed(values: dict[str, str]) -> dict[str, ast.expr]:
    parsed = {}
    for name, text in values.items():
        try:
            parsed[name] = ast.parse(text, mode="eval").body
        except SyntaxError:
            continue
    return parsed


def _substitute(node: ast.AST, values: dict[str, str], attrs: dict[str, str] | None = None) -> ast.AST:
    """``node`` with the test's (parametrized) argument names replaced by the values pytest showed,
    and ``self.x`` by the test class's simple attribute ``x``."""
    names, fields_ = _parsed(values), _parsed(attrs or {})
    if not names and not fields_:
        return node
    return _Inline(names, fields_).visit(copy.deepcopy(node))


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _setup_for(func: ast.FunctionDef, stmt: ast.stmt, needed: set[str]) -> list[str]:
    """The statements before ``stmt`` that define names it uses (transitively); asserts are left out."""
    before = [s for s in func.body if s.end_lineno < stmt.lineno]
    chosen: list[ast.stmt] = []
    for candidate in reversed(before):
        if isinstance(candidate, (ast.Assert, ast.Pass)):
            continue
        targets: set[str] = set()
        for node in ast.walk(candidate):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                targets.add(node.id)
        if isinstance(candidate, (ast.FunctionDef, ast.ClassDef)):
            targets.add(candidate.name)
        if targets & needed:
            chosen.append(candidate)
            needed |= _names(candidate)
    return [ast.unparse(s) for s in reversed(chosen)]


def _call_names(node: ast.AST) -> list[str]:
    names = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            if isinstance(sub.func, ast.Name):
                names.append(sub.func.id)
            elif isinstance(sub.func, ast.Attribute):
                names.append(sub.func.attr)
    return names


def _raises_target(node: ast.AST) -> tuple[str, ast.AST] | None:
    """``raises(Exc, lambda: call)`` / ``pytest.raises(Exc, f, *args)`` -> (exception, call)."""
    if not isinstance(node, ast.Call) or len(node.args) < 2:
        return None
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    if name != "raises":
        return None
    exc = ast.unparse(node.args[0])
    fn = node.args[1]
    if isinstance(fn, ast.Lambda):
        return exc, fn.body
    call = ast.Call(func=fn, args=list(node.args[2:]), keywords=list(node.keywords))
    return exc, call


def _split_assert_message(error: str) -> tuple[str, str] | None:
    """``assert <actual> == <expected>`` from pytest's rewritten message -> (actual, expected) texts."""
    text = error
    if text.startswith("AssertionError: "):
        text = text[len("AssertionError: "):]
    if not text.startswith("assert "):
        return None
    body = text[len("assert "):]
    try:
        expr = ast.parse(body, mode="eval").body
        if isinstance(expr, ast.Compare) and len(expr.ops) == 1:
            return ast.get_source_segment(body, expr.left), ast.get_source_segment(body, expr.comparators[0])
    except SyntaxError:
        pass
    if " == " in body:
        left, _, right = body.partition(" == ")
        return left, right
    return None


def observe(failure: Failure, read_file=None) -> Observation | None:
    """What the user would have seen: the call, and the observed vs expected outcome.

    ``read_file(path)`` returns a test file's text (paths as pytest prints them); without it only
    the traceback listing is used.
    """
    parsed = _test_ast(failure, read_file)
    if parsed is None:
        return None
    func, stmt = parsed
    error = failure.error_line
    raised_type = failure.exception or error.split(":", 1)[0].strip()
    enclosing_raises = None
    for node in ast.walk(func):
        if isinstance(node, ast.With) and node.lineno < stmt.lineno <= node.end_lineno:
            for item in node.items:
                ctx = item.context_expr
                if isinstance(ctx, ast.Call) and getattr(ctx.func, "attr", getattr(ctx.func, "id", "")) == "raises":
                    if ctx.args:
                        enclosing_raises = ast.unparse(ctx.args[0])
    if isinstance(stmt, ast.With) and stmt.body:
        for item in stmt.items:
            ctx = item.context_expr
            if isinstance(ctx, ast.Call) and getattr(ctx.func, "attr", getattr(ctx.func, "id", "")) == "raises" and ctx.args:
                enclosing_raises = ast.unparse(ctx.args[0])
        stmt = stmt.body[-1]  # ``with pytest.raises(X): call()`` fails on the with line; the call is inside

    params = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
    values = {name: text for name, text in failure.args.items() if name in params}

    def result(call_node: ast.AST, **kw) -> Observation:
        needed = _names(call_node)
        call_node = _substitute(call_node, values, failure.class_attrs)
        call = ast.unparse(call_node)
        setup = [ast.unparse(_substitute(ast.parse(line), values, failure.class_attrs))
                 for line in _setup_for(func, stmt, needed)]
        # the interesting call may sit in the setup (``result = f(x)`` then ``assert result == ...``)
        names = _call_names(call_node) + [n for line in setup for n in _call_names(ast.parse(line))]
        # a function the reproducer defines itself is not the library's: name what wraps it instead
        local, wrappers = set(), []
        for line in setup:
            for node in ast.walk(ast.parse(line)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(node.name)
                    for deco in node.decorator_list:
                        target = deco.func if isinstance(deco, ast.Call) else deco
                        wrappers.append(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
        names = [n for n in names if n not in local] + [w for w in wrappers if w] or names
        return Observation(call=call, setup=setup, callee_names=names, **kw)

    if error.startswith("Failed: DID NOT RAISE") or enclosing_raises and "DID NOT RAISE" in error:
        target = stmt.value if isinstance(stmt, ast.Expr) else stmt
        return result(target, outcome="not_raised", expected=enclosing_raises or error.rsplit(" ", 1)[-1])
    if isinstance(stmt, ast.Assert):
        test = stmt.test
        is_assertion_failure = raised_type == "AssertionError" or error.startswith("assert ")
        if not is_assertion_failure:
            call = test.left if isinstance(test, ast.Compare) else test
            expected = ast.unparse(test.comparators[0]) if isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.Eq) else ""
            return result(call, outcome="raised", error=error, expected=expected)
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            split = _split_assert_message(error)
            actual, expected = split if split else ("", ast.unparse(test.comparators[0]))
            call_side, expected_side = test.left, test.comparators[0]
            if not _has_call(call_side) and _has_call(expected_side):
                # ``assert expected == f(x)``: the call is on the right
                call_side, expected_side = expected_side, call_side
                actual, expected = (expected, actual) if split else ("", ast.unparse(expected_side))
            return result(call_side, outcome="wrong_value", actual=actual, expected=expected)
        raises = _raises_target(test)
        if raises:
            exc, call = raises
            return result(call, outcome="not_raised", expected=exc)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return result(test.operand, outcome="true")
        if isinstance(test, ast.Compare):
            return result(test, outcome="false", error=error)
        return result(test, outcome="false")
    if isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign, ast.Return)):
        value = stmt.value
        if enclosing_raises is None:
            return result(value, outcome="raised", error=error)
    return None


# ---------------------------------------------------------------------------------------------------------------------
# writing


def _pick_callee(names: list[str], api: set[str]) -> str:
    for name in names:
        if name in api:
            return name
    for name in names:
        if not hasattr(builtins, name) and not name.startswith("assert"):
            return name
    return names[0] if names else ""


def _code(setup: list[str], call: str) -> str:
    lines = [f">>> {line}" if i == 0 else f"... {line}" for stmt in setup for i, line in enumerate(stmt.splitlines())]
    lines += [f">>> {line}" if i == 0 else f"... {line}" for i, line in enumerate(call.splitlines())]
    return "\n".join(lines)


def _short(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _example(obs: Observation) -> tuple[str, str]:
    """(title fragment, markdown body) for one observation."""
    code = _code(obs.setup, obs.call)
    if obs.outcome == "wrong_value":
        body = f"```python\n{code}\n{_short(obs.actual) or '(a different value)'}\n```\n\nbut I expected `{_short(obs.expected, 200)}`."
        return "returns a wrong result", body
    if obs.outcome == "raised":
        expected = f" and return `{_short(obs.expected, 200)}`" if obs.expected else ""
        body = (f"```python\n{code}\nTraceback (most recent call last):\n  ...\n{_short(obs.error)}\n```\n\n"
                f"I expected this call to succeed{expected}.")
        kind = obs.error.split(":", 1)[0].strip() or "an exception"
        return f"raises {kind}", body
    if obs.outcome == "not_raised":
        body = f"```python\n{code}\n```\n\nreturns normally, but I expected it to raise `{obs.expected}`."
        return f"does not raise {obs.expected}", body
    if obs.outcome == "true":
        body = f"```python\n{code}\n```\n\nis true, but it should be false here."
        return "gives a wrong answer", body
    body = f"```python\n{code}\n```\n\nshould be true here, but it is not."
    if obs.error and obs.error.startswith(("assert ", "AssertionError")):
        body += f" (I see `{_short(obs.error.replace('AssertionError: ', ''), 200)}`.)"
    return "gives a wrong answer", body


def write_statement(observations: list[Observation], package: str, version: str, api: set[str]) -> str:
    """An issue text from one or two observations of the same bug."""
    first = observations[0]
    callee = _pick_callee(first.callee_names, api)
    title_tail, body = _example(first)
    title = f"`{callee}` {title_tail}" if callee else f"Unexpected behaviour: {title_tail}"
    where = f"{package} {version}".strip()
    parts = [title, "", f"With {where}, running:" if where else "Running:", "", body]
    for other in observations[1:2]:  # one more example at most: enough to show the pattern
        _, other_body = _example(other)
        parts += ["", "Something similar happens with:", "", other_body]
    return "\n".join(parts).strip() + "\n"


def statement_mentions(statement: str, forbidden: list[str]) -> list[str]:
    """The forbidden strings (test names, the mutated line) that a statement contains."""
    return [word for word in forbidden if word and word in statement]
