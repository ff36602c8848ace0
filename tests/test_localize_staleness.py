"""Localization of an issue in a real checkout, and stale memory: anchors checked against a later commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git, make_repo, run_cli

CORE = '''"""Unit conversion core."""


class Unit:
    def __init__(self, name, scale):
        self.name = name
        self.scale = scale

    def to(self, other, value):
        return value * self.scale / other.scale


def parse_unit(text):
    return Unit(text, 1.0)
'''

FORMAT = '''"""Rendering quantities as text."""


def format_quantity(value, unit, precision=3):
    return f"{value:.{precision}f} {unit.name}"


def latex_quantity(value, unit):
    return f"${value}\\\\,{unit.name}$"
'''

HELPERS = '''def clamp(x, low, high):
    return max(low, min(high, x))
'''


def _repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "units", {
        "units/__init__.py": "", "units/core.py": CORE, "units/format.py": FORMAT, "units/helpers.py": HELPERS,
        "tests/test_core.py": "from units.core import Unit\n\ndef test_to():\n    assert Unit('m', 1).to(Unit('m', 1), 2) == 2\n",
    })


def test_localize_ranks_the_traceback_file_and_the_lexical_match_and_skips_tests(tmp_path):
    from expagent.codeintel.localize import localize, localizer_for

    repo = _repo(tmp_path)
    issue = ('Unit.to gives the wrong result\n\nTraceback (most recent call last):\n'
             '  File "units/core.py", line 10, in to\nZeroDivisionError: float division by zero\n')
    loc = localize(issue, repo)
    assert loc.paths(1) == ["units/core.py"]
    assert "Unit.to" in loc.symbols
    assert all(not p.startswith("tests/") for p in loc.paths())
    # no path named: the words of the issue meet the file that talks about them
    loc2 = localize("latex rendering of a quantity ignores the precision", repo)
    assert loc2.paths(1) == ["units/format.py"]
    assert loc2.overlap(["units/format.py"]) == 1.0 and loc2.overlap(["nowhere.py"]) == 0.0
    # cached per (repository, commit): the same object until HEAD moves
    first = localizer_for(repo)
    assert localizer_for(repo) is first
    (repo / "units" / "extra.py").write_text("def latex_table(rows):\n    return rows\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "extra")
    again = localizer_for(repo)
    assert again is not first and "units/extra.py" in again.paths


def _history(tmp_path: Path) -> tuple[Path, list[dict], str]:
    """A repo with two real fixes (their patches from git), then a commit that renames core.py and deletes
    helpers.py. Returns the repo, the SWE-bench style rows of the two fixes and the later commit."""
    repo = _repo(tmp_path)
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "units/core.py").write_text(CORE.replace("value * self.scale / other.scale",
                                                     "value * self.scale / (other.scale or 1.0)"))
    git(repo, "commit", "-qam", "fix to")
    fix1 = git(repo, "diff", base, "HEAD")
    base2 = git(repo, "rev-parse", "HEAD").strip()
    (repo / "units/helpers.py").write_text(HELPERS.replace("max(low, min(high, x))", "min(high, max(low, x))"))
    git(repo, "commit", "-qam", "fix clamp")
    fix2 = git(repo, "diff", base2, "HEAD")
    git(repo, "mv", "units/core.py", "units/base.py")
    git(repo, "rm", "-q", "units/helpers.py")
    git(repo, "commit", "-qm", "rename core, drop helpers")
    rows = [
        dict(repo="acme/units", instance_id="acme__units-1", base_commit=base, created_at="2021-01-01T00:00:00Z",
             problem_statement="Unit.to divides by zero when the other unit has no scale", patch=fix1),
        dict(repo="acme/units", instance_id="acme__units-2", base_commit=base2, created_at="2021-02-01T00:00:00Z",
             problem_statement="clamp returns the low bound when low is greater than high", patch=fix2),
    ]
    return repo, rows, git(repo, "rev-parse", "HEAD").strip()


def test_anchors_detect_renamed_and_deleted_files_between_two_commits(tmp_path):
    from expagent.codeintel.index import SymbolIndex
    from expagent.memory.staleness import check_record
    from expagent.memory.swebench import episode_from_swebench

    repo, rows, _head = _history(tmp_path)
    fix_to, fix_clamp = (episode_from_swebench(r) for r in rows)
    assert [(a.path, a.symbols, a.commit) for a in fix_to.anchors] == [("units/core.py", ["Unit.to"],
                                                                         rows[0]["base_commit"])]
    later = check_record(fix_to, SymbolIndex.build(repo))
    assert later.state == "stale" and later.checks[0].state == "moved"
    assert "units/base.py" in later.label() and "units/core.py" in later.label()
    gone = check_record(fix_clamp, SymbolIndex.build(repo))
    assert gone.state == "obsolete" and "units/helpers.py was deleted" in gone.label()
    # at the commit where they were learned, both are current
    tree = tmp_path / "then"
    git(repo, "worktree", "add", "-q", "--detach", str(tree), rows[1]["base_commit"])
    index = SymbolIndex.build(tree)
    assert check_record(fix_to, index).state == "current" and check_record(fix_clamp, index).state == "current"
    # a symbol that left its file: stale although the file stays
    (tree / "units/core.py").write_text(CORE.replace("def parse_unit", "def _parse"))
    moved = tree / "units/parsing.py"
    moved.write_text("def parse_unit(text):\n    return text\n")
    from expagent.memory.records import Anchor

    fix_to.anchors = [Anchor("units/core.py", ["Unit.to", "parse_unit"], rows[0]["base_commit"])]
    check = check_record(fix_to, SymbolIndex.build(tree)).checks[0]
    assert check.state == "moved" and "parse_unit moved from units/core.py to units/parsing.py" in check.detail


@pytest.fixture
def history_store(tmp_path):
    from expagent.memory.store import MemoryStore
    from expagent.memory.swebench import import_swebench

    repo, rows, head = _history(tmp_path)
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = MemoryStore.open(home=tmp_path / "home")
    import_swebench(store, seed)
    yield store, repo, rows
    store.close()


def test_retrieval_labels_stale_items_drops_obsolete_ones_and_keeps_the_guards(history_store, tmp_path):
    from expagent.memory.records import Lesson
    from expagent.memory.retrieval import format_hit, retrieve

    store, repo, rows = history_store
    eps = {e.instance_id: e for e in store.list(kind="episode")}
    lesson = Lesson(applies_when="clamping a value to a range", advice="check the order of min and max",
                    scope="acme/units", source_episodes=[eps["acme__units-2"].id], created_at="2021-03-01T00:00:00Z")
    store.add_lesson(lesson, "test")
    query = "Unit.to divides by zero; clamp returns the wrong bound"
    plain = retrieve(store, query, repo="acme/units", floor=0, k=5)
    assert {h.record.id for h in plain} == {eps["acme__units-1"].id, eps["acme__units-2"].id, lesson.id}
    assert all(not h.stale for h in plain)
    hits = retrieve(store, query, repo="acme/units", floor=0, k=5, checkout=repo)
    # helpers.py is gone: its episode and the lesson learned from it (anchored through it) are dropped
    assert [h.record.instance_id for h in hits] == ["acme__units-1"]
    assert hits[0].stale.startswith("STALE") and "units/base.py" in hits[0].stale
    assert hits[0].stale in format_hit(hits[0])
    assert "loc" in hits[0].parts
    kept = retrieve(store, query, repo="acme/units", floor=0, k=5, checkout=repo, drop_obsolete=False)
    assert {h.id for h in kept} == {h.id for h in plain} and all(h.stale for h in kept)
    # the leakage guards still hold with a checkout
    guarded = retrieve(store, query, repo="acme/units", floor=0, k=5, checkout=repo,
                       before=rows[1]["created_at"], exclude_instance="acme__units-1")
    assert guarded == []


def test_memory_ls_shows_staleness_for_a_checkout(history_store, tmp_path):
    store, repo, rows = history_store
    home = store.memory_dir.parent
    store.close()
    proc = run_cli("memory", "ls", "--home", str(home), "--stale-for", str(repo), "--json")
    assert proc.returncode == 0, proc.stderr
    states = {r["instance_id"]: r["staleness"] for r in json.loads(proc.stdout)}
    assert states["acme__units-1"]["state"] == "stale" and "units/base.py" in states["acme__units-1"]["label"]
    assert states["acme__units-2"]["state"] == "obsolete"
    bad = run_cli("memory", "ls", "--home", str(home), "--stale-for", str(tmp_path / "missing"))
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_localized_candidates_rise_when_their_files_are_likely_edit_locations_and_feed_the_gate():
    from expagent.codeintel.localize import Localization, Location
    from expagent.memory.abstain import LOCALIZED_FEATURES, default_gate, query_features
    from expagent.memory.records import Episode
    from expagent.memory.retrieval import Hit, ScoredCandidates, localize_candidates

    def hit(name: str, score: float, files: list[str]) -> Hit:
        ep = Episode(repo="a/b", issue=name, instance_id=name, files=files, created_at="2021-01-01T00:00:00Z")
        return Hit(ep.id, "episode", score, ep, {"dense": 0.5})

    cands = ScoredCandidates([hit("x", 0.40, ["pkg/other.py"]), hit("y", 0.35, ["pkg/core.py"])], pool_size=30)
    loc = Localization((Location("pkg/core.py", 1.2), Location("pkg/util.py", 0.8)))
    rescored = localize_candidates(cands, loc)
    assert [h.record.instance_id for h in rescored] == ["y", "x"]
    assert rescored[0].parts["loc"] == 1.0 and rescored[1].parts["loc"] == 0.0
    assert rescored.localization is loc and rescored.pool_size == 30
    feats = query_features(rescored, rescored.pool_size, localized=True)
    assert set(LOCALIZED_FEATURES) <= set(feats) and feats["top_loc"] == 1.0 and feats["best_loc"] == 1.0
    # the shipped localized gate answers more readily when memory touched the likely location than when not
    gate = default_gate(True)
    assert gate.probability(feats) > gate.probability({**feats, "top_loc": 0.0, "best_loc": 0.0})
