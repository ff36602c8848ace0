"""The mutation engine and the problem-statement writer of ``expagent tasks synth``."""

from __future__ import annotations

import ast
import difflib
import subprocess
import sys
import textwrap

from expagent.tasks.synth_mutations import KINDS, find_mutations, ordered_for_trial
from expagent.tasks.synth_statement import failure_for, observe, parse_failures, write_statement

SOURCE = textwrap.dedent('''\
    """Module docstring: ünïcode before the code shifts byte offsets."""
    import itertools

    LIMIT = 10  # module level: never mutated


    def window(items, size=2, strict=False, sep="-"):
        """Docstring with < and == inside it."""
        if not items:
            return []
        if size > len(items) and strict:
            raise ValueError("window larger than items")
        out = []
        for i in range(0, len(items) - size + 1):
            out.append(sep.join(items[i:i + size]))  # ünïcode comment
        return out


    class Box:
        def contains(self, value, low, high):
            return low <= value < high and value is not None

        def pair(self, a, b):
            return divmod(a, b)
''')


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_every_kind_is_found_and_each_mutation_is_one_small_valid_edit():
    mutations = find_mutations("pkg/window.py", SOURCE)
    kinds = {m.kind for m in mutations}
    assert kinds == set(KINDS)
    for m in mutations:
        ast.parse(m.mutated)  # still valid Python
        changed = _changed_lines(m.original, m.mutated)
        assert 1 <= len(changed) <= 4, (m.kind, changed)
        # the rest of the file is byte-for-byte the same (docstrings and comments kept)
        assert m.mutated.count("ünïcode") == 2
        assert "LIMIT = 10" in m.mutated
        assert m.function in {"window", "Box.contains", "Box.pair"}
    assert len({m.mutated for m in mutations}) == len(mutations)


def test_specific_mutations_are_realistic():
    mutations = find_mutations("pkg/window.py", SOURCE)
    edits = {(m.kind, tuple(_changed_lines(m.original, m.mutated))) for m in mutations}
    assert ("flipped_comparison", ("-    if size > len(items) and strict:", "+    if size < len(items) and strict:")) in edits
    assert ("off_by_one", ("-    if size > len(items) and strict:", "+    if size >= len(items) and strict:")) in edits
    assert ("dropped_condition", ("-    if size > len(items) and strict:", "+    if size > len(items):")) in edits
    assert ("wrong_default", ('-def window(items, size=2, strict=False, sep="-"):',
                              '+def window(items, size=3, strict=False, sep="-"):')) in edits
    assert ("wrong_default", ('-def window(items, size=2, strict=False, sep="-"):',
                              '+def window(items, size=2, strict=True, sep="-"):')) in edits
    assert ("swapped_arguments", ("-        return divmod(a, b)", "+        return divmod(b, a)")) in edits
    assert ("off_by_one", ("-    for i in range(0, len(items) - size + 1):",
                           "+    for i in range(0, len(items) - size + 2):")) in edits
    assert ("missing_edge_case", ("-    if not items:", "-        return []")) in edits
    assert ("flipped_comparison", ("-        return low <= value < high and value is not None",
                                   "+        return low <= value < high and value is None")) in edits
    # docstrings are not code: the comparison signs inside them are never touched
    assert all('"""Docstring with < and == inside it."""' in m.mutated for m in mutations)


def test_trial_order_is_deterministic_and_spreads_over_functions():
    mutations = find_mutations("pkg/window.py", SOURCE)
    first = ordered_for_trial(mutations, seed=7)
    assert first == ordered_for_trial(mutations, seed=7)
    assert sorted(first, key=id) == sorted(mutations, key=id)
    functions = [m.function for m in first[:3]]
    assert len(set(functions)) == 3  # one mutation per function comes before any second one


def test_unparsable_file_has_no_mutations():
    assert find_mutations("bad.py", "def broken(:\n") == []


TEST_FILE = textwrap.dedent('''\
    import pytest


    def total(items):
        return sum(items) + 1  # the planted bug


    def parse(text):
        return int(text)


    def plural(word):
        return word + "es"


    @pytest.mark.parametrize(("word", "expected"), [("cow", "cows")])
    def test_plural(word, expected):
        assert expected == plural(word)


    def test_total():
        data = [1, 2, 3]
        assert total(data) == 6


    def test_parse_rejects_words():
        with pytest.raises(ValueError):
            parse("12")


    class TestParse:
        base = 10

        def test_parse_number(self):
            assert parse("x7") == 7

        def test_total_with_base(self):
            start = self.base
            assert total([start]) == 10
''')


def test_statement_is_built_from_real_pytest_output(tmp_path):
    (tmp_path / "test_sample.py").write_text(TEST_FILE)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--tb=long",
                           "test_sample.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"})
    failures = parse_failures(proc.stdout)

    def read_file(rel):
        return (tmp_path / rel).read_text()

    # the traceback of ``with pytest.raises`` stops at the with line: the call is read from the test file
    assert observe(failure_for("test_sample.py::test_parse_rejects_words", failures)) is None
    wrong = observe(failure_for("test_sample.py::test_total", failures), read_file)
    assert (wrong.outcome, wrong.call, wrong.actual, wrong.expected) == ("wrong_value", "total(data)", "7", "6")
    assert wrong.setup == ["data = [1, 2, 3]"]
    not_raised = observe(failure_for("test_sample.py::test_parse_rejects_words", failures), read_file)
    assert (not_raised.outcome, not_raised.call, not_raised.expected) == ("not_raised", "parse('12')", "ValueError")
    raised = observe(failure_for("test_sample.py::TestParse::test_parse_number", failures), read_file)
    assert raised.outcome == "raised" and raised.error.startswith("ValueError: invalid literal")
    assert raised.expected == "7"

    # a test class's simple attribute is shown as its value
    attr = observe(failure_for("test_sample.py::TestParse::test_total_with_base", failures), read_file)
    assert (attr.setup, attr.call, attr.actual) == (["start = 10"], "total([start])", "11")

    # parametrized: the shown argument values are put into the call, and the call is found on either side
    param = observe(failure_for("test_sample.py::test_plural[cow-cows]", failures), read_file)
    assert (param.call, param.actual, param.expected) == ("plural('cow')", "'cowes'", "'cows'")

    statement = write_statement([wrong, raised], "sample", "1.0", api={"total", "parse"})
    assert statement.startswith("`total` returns a wrong result")
    assert ">>> data = [1, 2, 3]\n>>> total(data)\n7" in statement
    assert "but I expected `6`" in statement
    assert "ValueError: invalid literal" in statement
    # nothing from inside the library (the planted line) and no test names
    assert "sum(items) + 1" not in statement and "planted" not in statement
    assert "test_total" not in statement and "TestParse" not in statement
