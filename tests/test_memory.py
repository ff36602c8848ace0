"""Experience memory: records, offline embeddings, the embedded Chroma store, retrieval, import/export, audit,
concurrent writers. Everything runs for real (Chroma, onnxruntime); nothing is mocked."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _patch(path: str, header: str, old: str, new: str) -> str:
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -10,3 +10,3 @@ {header}\n"
            f"     context_line = 1\n-    {old}\n+    {new}\n     return value\n")


# A small made-up history of one project, SWE-bench style (times in order).
HISTORY = [
    dict(repo="acme/shop", instance_id="acme__shop-101", base_commit="a" * 40, created_at="2021-01-01T00:00:00Z",
         problem_statement="Cart.total() ignores discount codes when the cart has a single item. "
                           "Calling cart.total() after apply_discount('SAVE10') returns the full price.",
         patch=_patch("shop/cart.py", "def total(self):", "value = sum(self.prices)",
                      "value = sum(self.prices) - self.discount")),
    dict(repo="acme/shop", instance_id="acme__shop-102", base_commit="b" * 40, created_at="2021-02-01T00:00:00Z",
         problem_statement="Invoice PDF export crashes with UnicodeEncodeError for customer names with accents "
                           "in shop/invoice.py render_pdf.",
         patch=_patch("shop/invoice.py", "def render_pdf(invoice):", "text = name.encode('latin-1')",
                      "text = name.encode('utf-8')")),
    dict(repo="acme/shop", instance_id="acme__shop-103", base_commit="c" * 40, created_at="2021-03-01T00:00:00Z",
         problem_statement="Cart.total() returns a negative number when apply_discount is used twice with the "
                           "same code; the discount must not stack.",
         patch=_patch("shop/cart.py", "def apply_discount(self, code):", "self.discount += amount",
                      "self.discount = max(self.discount, amount)")),
    dict(repo="other/lib", instance_id="other__lib-7", base_commit="d" * 40, created_at="2021-01-15T00:00:00Z",
         problem_statement="Cart.total() in the demo app ignores discount codes for single items.",
         patch=_patch("lib/demo.py", "def total(self):", "return 0", "return 1")),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def embedder():
    from expagent.memory.embedding import make_embedder

    return make_embedder("minilm-int8")


@pytest.fixture
def store(tmp_path):
    from expagent.memory.store import MemoryStore

    s = MemoryStore.open(home=tmp_path / "home")
    yield s
    s.close()


@pytest.fixture
def seeded(store, tmp_path):
    from expagent.memory.swebench import import_swebench

    added, present, problems = import_swebench(store, write_jsonl(tmp_path / "seed.jsonl", HISTORY))
    assert len(added) == len(HISTORY) and present == 0 and problems == []
    return store


# ------------------------------------------------------------------------------------------------- embeddings
def test_offline_embeddings_are_normalised_and_meaningful(embedder):
    import numpy as np

    v = np.array(embedder.embed(["The cart total ignores the discount code",
                                 "Discount codes are not applied to the cart total",
                                 "Segmentation fault in the image decoder on big PNG files",
                                 ""]))
    assert v.shape == (4, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > 0.7 > v[0] @ v[2]


def test_embedding_mismatch_is_a_clear_error(store):
    from expagent.memory.embedding import EmbeddingError
    from expagent.memory.store import MemoryStore

    with pytest.raises(EmbeddingError, match="built with embedding model 'minilm-int8'"):
        MemoryStore.open(home=store.memory_dir.parent, embedding="litellm:text-embedding-3-small")
    with pytest.raises(EmbeddingError, match="unknown embedding model"):
        MemoryStore.open(home=store.memory_dir.parent, embedding="word2vec")


def test_chroma_collection_uses_our_embedding_function(store):
    # Chroma must never fall back to its default (downloading) model: its stored config names ours
    collection = store.chroma_collection()
    assert collection.metadata["embedding_model"] == "minilm-int8"
    assert collection._embedding_function.name() == "expagent"
    vectors = collection._embedding_function(["hello world"])
    assert len(vectors[0]) == 384


# ------------------------------------------------------------------------------------------------- records
def test_records_round_trip_and_validate():
    from expagent.memory.records import Episode, Lesson, RecordError, record_from_dict

    ep = Episode(repo="a/b", issue="x", patch="p" * 30_000, outcome="resolved", outcome_source="tests",
                 files=["a.py"], symbols=["f"], provenance={"source": "run"})
    assert ep.patch_truncated and len(ep.patch) <= 20_000
    assert record_from_dict(json.loads(json.dumps(ep.to_dict()))) == ep
    assert ep.id.startswith("ep-") and Episode(repo="a/b", issue="x", patch="p" * 30_000).id == ep.id
    lesson = Lesson(applies_when="w", advice="a", source_episodes=[ep.id])
    assert record_from_dict(lesson.to_dict()) == lesson
    with pytest.raises(RecordError, match="outcome"):
        Episode(repo="a/b", issue="x", outcome="great")
    with pytest.raises(RecordError, match="unknown field"):
        record_from_dict({**lesson.to_dict(), "colour": "red"})
    with pytest.raises(RecordError, match="schema_version"):
        record_from_dict({**lesson.to_dict(), "schema_version": 99})


# ------------------------------------------------------------------------------------------------- store
def test_import_swebench_makes_reference_fix_episodes(seeded):
    episodes = {e.instance_id: e for e in seeded.list(kind="episode")}
    ep = episodes["acme__shop-101"]
    assert ep.outcome == "resolved" and ep.outcome_source == "reference_fix"
    assert ep.files == ["shop/cart.py"] and "total" in ep.symbols
    assert ep.created_at.startswith("2021-01-01")
    assert ep.provenance["source"] == "swebench-import" and ep.provenance["line"] == 1
    assert [h.action for h in seeded.history(ep.id)] == ["add"]


def test_reimport_adds_nothing(seeded, tmp_path):
    from expagent.memory.swebench import import_swebench

    added, present, _ = import_swebench(seeded, write_jsonl(tmp_path / "again.jsonl", HISTORY))
    assert added == [] and present == len(HISTORY)
    assert seeded.count() == len(HISTORY)


def test_lessons_version_retire_restore_usage_evidence_and_audit(seeded):
    from expagent.memory.records import Lesson
    from expagent.memory.store import MemoryOperationError, UnknownRecord

    eps = {e.instance_id: e for e in seeded.list(kind="episode")}
    lesson = Lesson(applies_when="a discount is applied to a cart", advice="check Cart.total for stacking",
                    lesson_kind="contrast", scope="acme/shop", source_episodes=[eps["acme__shop-101"].id])
    seeded.add_lesson(lesson, actor="test")
    seeded.add_evidence(lesson.id, eps["acme__shop-103"].id, actor="test")
    assert seeded.get(lesson.id).source_episodes == [eps["acme__shop-101"].id, eps["acme__shop-103"].id]

    seeded.record_usage([lesson.id], resolved=True)
    seeded.record_usage([lesson.id], resolved=False)
    seeded.record_usage([lesson.id], resolved=None)
    got = seeded.get(lesson.id)
    assert (got.times_retrieved, got.injected_resolved, got.injected_unresolved) == (3, 1, 1)
    assert got.usefulness == pytest.approx(0.5)

    new_id = seeded.add_lesson_version(lesson.id, Lesson(applies_when="a discount is applied twice",
                                                         advice="discounts must not stack", scope="acme/shop"),
                                       actor="test")
    old, new = seeded.get(lesson.id), seeded.get(new_id)
    assert old.status == "retired" and old.superseded_by == new_id
    assert new.supersedes == lesson.id and new.version == 2 and len(new.source_episodes) == 2

    seeded.restore(lesson.id, actor="test")
    assert seeded.get(lesson.id).status == "active"
    seeded.retire(lesson.id, actor="test", reason="wrong")
    assert seeded.get(lesson.id).retired_reason == "wrong"
    assert [h.action for h in seeded.history(lesson.id)] == [
        "add", "evidence", "usage", "usage", "usage", "retire", "restore", "retire"]
    assert all(h.actor for h in seeded.history(lesson.id))

    with pytest.raises(MemoryOperationError, match="immutable"):
        seeded.retire(eps["acme__shop-101"].id, actor="test", reason="no")
    with pytest.raises(UnknownRecord):
        seeded.get("ls-doesnotexist")
    with pytest.raises(UnknownRecord):
        seeded.record_usage(["ep-nope"], resolved=True)


def test_find_similar_lessons(store):
    from expagent.memory.records import Lesson

    a = Lesson(applies_when="tests fail with an ImportError after moving a module", advice="update the imports")
    store.add_lesson(a, actor="test")
    similar = store.find_similar_lessons("an ImportError in tests after a module was moved", threshold=0.7)
    assert [lesson.id for lesson, _ in similar] == [a.id]
    assert store.find_similar_lessons("the chart legend overlaps the axis labels", threshold=0.7) == []


def test_delete_is_audited_with_the_record(seeded):
    ep = seeded.list(kind="episode")[0]
    seeded.delete(ep.id, actor="tester")
    assert not seeded.exists(ep.id)
    last = seeded.history(ep.id)[-1]
    assert last.action == "delete" and last.actor == "tester" and last.detail["record"]["id"] == ep.id


def test_audit_log_is_append_only(seeded):
    import sqlite3

    conn = sqlite3.connect(seeded.memory_dir / "audit.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'x'")


# ------------------------------------------------------------------------------------------------- retrieval
def test_search_finds_the_related_fix_first(seeded):
    from expagent.memory.retrieval import retrieve

    hits = retrieve(seeded, "Cart.total() is wrong after apply_discount with a coupon code", repo="acme/shop", k=3)
    assert hits and hits[0].record.files == ["shop/cart.py"]
    assert all(h.record.repo == "acme/shop" for h in hits)  # never another repo's episodes


def test_search_abstains_on_unrelated_issues(seeded):
    from expagent.memory.retrieval import retrieve

    assert retrieve(seeded, "The websocket server leaks file descriptors on reconnect", repo="acme/shop") == []
    assert retrieve(seeded, "Cart.total() ignores discount codes", repo="nobody/else") == []


def test_leakage_guards_before_and_exclude_instance(seeded):
    from expagent.memory.retrieval import retrieve

    query = "Cart.total() returns a negative number when apply_discount is used twice"
    ids = lambda hits: {h.record.instance_id for h in hits}  # noqa: E731
    assert "acme__shop-103" in ids(retrieve(seeded, query, repo="acme/shop", floor=0, k=5))
    # the same query, as a replay of instance 103: neither itself nor anything from its future
    hits = retrieve(seeded, query, repo="acme/shop", before="2021-03-01T00:00:00Z",
                    exclude_instance="acme__shop-103", floor=0, k=5)
    assert ids(hits) <= {"acme__shop-101", "acme__shop-102"} and "acme__shop-101" in ids(hits)
    assert retrieve(seeded, query, repo="acme/shop", before="2020-12-31", floor=0) == []
    hits = retrieve(seeded, query, repo="acme/shop", exclude_instance="acme__shop-103", floor=0, k=5)
    assert "acme__shop-103" not in ids(hits)


def test_keys_and_token_budget(seeded):
    from expagent.memory.retrieval import estimate_tokens, format_hit, retrieve

    query = "Exporting fails for some customers"
    plain = {h.record.instance_id: h.score for h in retrieve(seeded, query, repo="acme/shop", floor=0, k=5)}
    keyed = {h.record.instance_id: h.score for h in retrieve(seeded, query, repo="acme/shop", floor=0, k=5,
                                                              keys={"files": ["shop/invoice.py"]})}
    assert keyed["acme__shop-102"] > plain["acme__shop-102"]
    assert keyed["acme__shop-101"] == pytest.approx(plain["acme__shop-101"])
    hits = retrieve(seeded, query, repo="acme/shop", floor=0, k=5)
    one = estimate_tokens(format_hit(hits[0]))
    budgeted = retrieve(seeded, query, repo="acme/shop", floor=0, k=5, token_budget=one)
    assert len(budgeted) == 1 and budgeted[0].id == hits[0].id


def test_usefulness_reranks(seeded):
    from expagent.memory.retrieval import retrieve

    query = "Cart.total() and apply_discount are wrong"
    before = {h.id: h.score for h in retrieve(seeded, query, repo="acme/shop", floor=0, k=5)}
    winner = next(iter(before))
    for _ in range(5):
        seeded.record_usage([winner], resolved=False)
    after = {h.id: h.score for h in retrieve(seeded, query, repo="acme/shop", floor=0, k=5)}
    assert after[winner] < before[winner]


def test_retired_lessons_are_not_retrieved_and_general_lessons_are(store):
    from expagent.memory.records import Lesson
    from expagent.memory.retrieval import retrieve

    general = Lesson(applies_when="a test fails only on Windows because of path separators",
                     advice="use os.path.join or pathlib instead of '/' string concatenation")
    store.add_lesson(general, actor="test")
    query = "test_paths fails on Windows: backslash vs slash path separators"
    assert [h.id for h in retrieve(store, query, repo="any/repo")] == [general.id]
    store.retire(general.id, actor="test", reason="obsolete")
    assert retrieve(store, query, repo="any/repo", floor=0) == []


# ------------------------------------------------------------------------------------------------- export/import
def test_export_import_round_trip_is_exact(seeded, tmp_path):
    from expagent.memory.records import Lesson
    from expagent.memory.store import MemoryStore
    from expagent.memory.transfer import export_jsonl, import_jsonl

    lesson = Lesson(applies_when="w", advice="a", scope="acme/shop")
    seeded.add_lesson(lesson, actor="test")
    seeded.record_usage([lesson.id], resolved=True)
    for with_embeddings in (False, True):
        first = tmp_path / f"export-{with_embeddings}.jsonl"
        export_jsonl(seeded, first, with_embeddings=with_embeddings)
        other = MemoryStore.open(home=tmp_path / f"other-{with_embeddings}")
        added, present, problems = import_jsonl(other, first)
        assert len(added) == len(HISTORY) + 1 and present == 0 and problems == []
        second = tmp_path / f"again-{with_embeddings}.jsonl"
        export_jsonl(other, second, with_embeddings=with_embeddings)
        assert sorted(first.read_text().splitlines()) == sorted(second.read_text().splitlines())
        assert other.get(lesson.id).injected_resolved == 1


def test_malformed_jsonl_imports_nothing_unless_skip_bad(store, tmp_path):
    from expagent.memory.jsonl import BadInput
    from expagent.memory.swebench import import_swebench

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(HISTORY[0]) + "\n{not json\n" + json.dumps({**HISTORY[1], "patch": None}) + "\n")
    with pytest.raises(BadInput, match=r"bad\.jsonl:2: "):
        import_swebench(store, bad)
    assert store.count() == 0
    added, _present, problems = import_swebench(store, bad, skip_bad=True)
    assert len(added) == 1 and len(problems) == 2 and problems[1].startswith(f"{bad}:3: ")


# ------------------------------------------------------------------------------------------------- concurrency
WRITER = textwrap.dedent("""
    import sys
    from expagent.memory.records import Episode
    from expagent.memory.store import MemoryStore
    home, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = MemoryStore.open(home=home)
    for i in range(n):
        store.add_episode(Episode(repo="r/x", issue=f"writer {tag} issue {i}: parser fails on input {i}",
                                  instance_id=f"{tag}-{i}"), actor=f"writer-{tag}")
    print(store.count())
""")


@pytest.mark.slow  # a few seconds; the default run stays under 5 min (.ci/run runs the slow set)
def test_two_processes_writing_the_same_store(tmp_path):
    from expagent.memory.retrieval import retrieve
    from expagent.memory.store import MemoryStore

    home = tmp_path / "shared"
    MemoryStore.open(home=home).close()  # create it first, as a user's first command would
    n = 15
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), tag, str(n)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in ("A", "B")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    store = MemoryStore.open(home=home)
    episodes = store.list(kind="episode")
    assert len(episodes) == 2 * n == store.count()
    assert {e.instance_id for e in episodes} == {f"{t}-{i}" for t in "AB" for i in range(n)}
    actors = [h.actor for h in store.audit.history()]
    assert actors.count("writer-A") == n and actors.count("writer-B") == n
    hits = retrieve(store, "writer B issue 7: parser fails on input 7", repo="r/x", floor=0, k=1)
    assert hits[0].record.instance_id == "B-7"


SWAPPER = textwrap.dedent("""
    import sys
    from expagent.memory.records import Episode
    from expagent.memory.store import MemoryStore
    store = MemoryStore.open(home=sys.argv[1])
    store.delete(sys.argv[2], actor="other-process")
    store.add_episode(Episode(repo="acme/shop", issue="Cart.total() double counts shipping fees for gift cards",
                              instance_id="acme__shop-200", files=["shop/shipping.py"]), actor="other-process")
""")


def test_a_long_lived_reader_sees_another_process_changes(seeded):
    from expagent.memory.retrieval import retrieve

    query = "Cart.total() is wrong for gift cards with shipping fees and discounts"
    first = retrieve(seeded, query, repo="acme/shop", floor=0, k=5)
    victim = first[0].id
    count = seeded.count()
    subprocess.run([sys.executable, "-c", SWAPPER, str(seeded.memory_dir.parent), victim], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    assert seeded.count() == count  # same size: only the write token tells the lexical cache to rebuild
    again = retrieve(seeded, query, repo="acme/shop", floor=0, k=5)
    assert victim not in {h.id for h in again}
    assert "acme__shop-200" in {h.record.instance_id for h in again}


def _unit_vectors(seed: int):
    """A function giving a new random unit vector (384 dimensions, as the model's) per call."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def vec():
        v = rng.normal(size=384)
        return (v / np.linalg.norm(v)).tolist()
    return vec


def test_index_after_additions_equals_a_full_rebuild(seeded, monkeypatch):
    import numpy as np

    from expagent.memory import lexical
    from expagent.memory.records import Episode
    from expagent.memory.retrieval import retrieve

    retrieve(seeded, "warm the index", repo="acme/shop", floor=0)
    seeded.add_episode(Episode(repo="acme/shop", issue="Refunds ignore the VAT rate in shop/refund.py",
                               instance_id="acme__shop-300", files=["shop/refund.py"], symbols=["refund"]),
                       actor="test")
    full_build = lexical._build
    monkeypatch.setattr(lexical, "_build", lambda *a: pytest.fail("the index was rebuilt, not extended"))
    extended = lexical.lexical_index(seeded)
    rebuilt = full_build(seeded, extended.token)
    assert sorted(extended.ids) == sorted(rebuilt.ids)  # order may differ, content may not
    order = [extended.position()[i] for i in rebuilt.ids]
    query = lexical.code_tokens("refund VAT rate ignored")
    assert np.allclose(extended.scores(query)[order], rebuilt.scores(query))
    assert np.allclose(np.asarray(extended.vectors)[order], rebuilt.vectors)
    assert list(extended.repos[order]) == list(rebuilt.repos)
    hits = retrieve(seeded, "Refunds ignore the VAT rate", repo="acme/shop", k=1)
    assert hits[0].record.instance_id == "acme__shop-300"


def test_additions_to_a_large_index_join_its_delta_without_a_rebuild(store, monkeypatch):
    """A writer adding one record at a time must not make every searcher re-index BM25 over everything."""
    import numpy as np

    from expagent.memory import lexical
    from expagent.memory.records import Episode

    rng = np.random.default_rng(3)
    words = ["parser", "cache", "lock", "thread", "socket", "render", "schema", "query", "token", "index"]

    def vec():
        v = rng.normal(size=384)
        return (v / np.linalg.norm(v)).tolist()

    base = [Episode(repo="r/x", issue=f"the {words[n % 10]} fails when the {words[(n * 3) % 10]} is empty, case {n}",
                    instance_id=f"b-{n}") for n in range(240)]
    store.add_records(base, "t", embeddings=[vec() for _ in base])
    first = lexical.lexical_index(store)
    new = [Episode(repo="r/x", issue="zygomorphic flanges wobble under the parser", instance_id="new-1"),
           Episode(repo="r/x", issue="the lock and the cache disagree after a fork", instance_id="new-2")]
    store.add_records(new, "t", embeddings=[vec() for _ in new])
    monkeypatch.setattr(lexical, "_build", lambda *a: pytest.fail("the index was rebuilt, not extended"))
    extended = lexical.lexical_index(store)
    assert extended.bm25 is first.bm25 and len(extended.delta_tf) == 2 and len(extended.ids) == 242
    monkeypatch.undo()
    rebuilt = lexical._build(store, extended.token)
    order = [extended.position()[i] for i in rebuilt.ids]
    for text in ("zygomorphic flanges wobble", "lock cache disagree fork", "the socket fails when the schema is empty"):
        q = lexical.code_tokens(text)
        got, want = extended.scores(q)[order], rebuilt.scores(q)
        assert int(np.argmax(got)) == int(np.argmax(want))
        assert np.allclose(got, want, rtol=0.05, atol=0.05)  # base statistics: close to a rebuild, not equal
    store.delete(new[0].id, "t")  # a removal always rebuilds
    assert lexical.lexical_index(store).delta_tf is None


def test_catching_up_asks_the_ledger_what_changed_not_every_id(store, monkeypatch):
    """Searchers catch up with a writer from the ledger's change mark: an updated record (its counters) is not
    new, an added one is, and a removal hidden by an addition (the same count) still forces a rebuild."""
    import numpy as np

    from expagent.memory import lexical
    from expagent.memory.records import Episode

    vec = _unit_vectors(5)

    base = [Episode(repo="r/x", issue=f"case {n}: the parser fails on empty input", instance_id=f"b-{n}")
            for n in range(240)]
    store.add_records(base, "t", embeddings=[vec() for _ in base])
    first = lexical.lexical_index(store)
    assert first.mark is not None
    store.record_usage([base[3].id], True, key="task-1")  # rewrites the record's row in the ledger
    extra = Episode(repo="r/x", issue="a socket leaks on retry", instance_id="new-1")
    store.add_records([extra], "t", embeddings=[vec()])
    monkeypatch.setattr(type(store), "all_ids", lambda self: pytest.fail("read every id to catch up"))
    caught_up = lexical.lexical_index(store)
    assert caught_up.ids == first.ids + [extra.id] and caught_up.mark > first.mark
    monkeypatch.undo()
    store.delete(base[0].id, "t")
    other = Episode(repo="r/x", issue="the cache is cold after a fork", instance_id="new-2")
    store.add_records([other], "t", embeddings=[vec()])
    after = lexical.lexical_index(store)
    assert base[0].id not in after.ids and other.id in after.ids and len(after.ids) == 241


def test_a_new_process_extends_the_index_saved_before_a_write_instead_of_rebuilding(store, monkeypatch):
    """While a writer adds records, every saved index is one token behind: a new process (a CLI search) loads the
    newest saved one and adds what was written since its mark, rather than re-reading and re-indexing everything."""
    import numpy as np

    from expagent.memory import lexical
    from expagent.memory.records import Episode

    vec = _unit_vectors(7)

    base = [Episode(repo="r/x", issue=f"case {n}: the renderer drops frames", instance_id=f"b-{n}")
            for n in range(240)]
    store.add_records(base, "t", embeddings=[vec() for _ in base])
    saved = lexical.lexical_index(store)
    assert list((store.memory_dir / "cache").glob("lexical-*"))
    extra = Episode(repo="r/x", issue="zygomorphic flanges wobble", instance_id="new-1")
    store.add_records([extra], "t", embeddings=[vec()])
    monkeypatch.setattr(lexical, "_memo", {})  # a new process: nothing in memory
    monkeypatch.setattr(lexical, "_token_memo", {})
    monkeypatch.setattr(lexical, "_build", lambda *a: pytest.fail("rebuilt instead of extending the saved index"))
    fresh = lexical.lexical_index(store)
    assert fresh.ids == saved.ids + [extra.id] and fresh.token == store.write_token() != saved.token
    q = lexical.code_tokens("zygomorphic flanges wobble")
    assert int(np.argmax(fresh.scores(q))) == len(saved.ids)
    # an index saved for another source (a server's, under the same home) is never taken for this one
    monkeypatch.setattr(lexical, "_memo", {})
    for side in (store.memory_dir / "cache").glob("lexical-*/side.json"):
        side.write_text(side.read_text().replace('"source": ""', '"source": "http://elsewhere:8000"'))
    assert lexical._newest_saved(store) is None


# ------------------------------------------------------------------------------------------- abstention gate
def _gate_rows(n: int = 400, seed: int = 3):
    """Synthetic queries: the chance of a relevant episode rises with the pool and the top score."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        pool = int(rng.integers(0, 200))
        score = float(rng.uniform(0.05, 0.45))
        logit = 1.2 * (np.log1p(pool) - 3.0) + 25.0 * (score - 0.24)
        rows.append({"log_pool": float(np.log1p(pool)), "top_score": score,
                     "top_dense": float(min(0.74, score * 2)), "file_recurrence": float(rng.uniform(0, 0.2))})
        labels.append(bool(rng.random() < 1 / (1 + np.exp(-logit))))
    return rows, labels


def test_gate_fit_learns_the_signals_and_meets_its_target_on_the_fitting_data():
    from expagent.memory.abstain import Gate, fit_logistic

    rows, labels = _gate_rows()
    gate = fit_logistic(rows, labels, target_abstention=0.85)
    weights = dict(zip(gate.features, gate.weights[1:]))
    assert weights["log_pool"] > 0 and weights["top_score"] > 0  # both raise the chance of answering
    negatives = [r for r, lab in zip(rows, labels) if not lab]
    silent = sum(not gate.answers(r) for r in negatives) / len(negatives)
    assert 0.85 <= silent < 0.87  # the threshold is the lowest that reaches the target, not a blanket "no"
    positives = [r for r, lab in zip(rows, labels) if lab]
    assert sum(gate.answers(r) for r in positives) / len(positives) > 0.5
    again = Gate.from_dict(json.loads(json.dumps(gate.to_dict())))
    assert [again.answers(r) for r in rows] == [gate.answers(r) for r in rows]


def test_gate_answers_more_for_a_larger_history_and_always_for_a_near_duplicate():
    from expagent.memory.abstain import FEATURES, default_gate

    gate = default_gate()  # the shipped coefficients (expagent/memory/abstain_gate.json)
    assert gate.features == FEATURES
    base = {"log_pool": 1.0, "top_score": 0.22, "top_dense": 0.5, "file_recurrence": 0.0}
    assert gate.probability({**base, "log_pool": 5.0}) > gate.probability(base)
    assert gate.probability({**base, "top_score": 0.3}) > gate.probability(base)
    assert not gate.answers(base)  # a middling match in a young memory: stay silent
    assert gate.answers({**base, "top_dense": gate.sure_dense})  # a near-duplicate: always answer
    assert not gate.answers({})  # nothing to answer with


def test_query_features_count_the_pool_and_the_recurrence_of_the_top_files():
    from expagent.memory.abstain import query_features
    from expagent.memory.records import Episode
    from expagent.memory.retrieval import Hit

    def hit(score, dense, files):
        return Hit("x", "episode", score, Episode(repo="r/x", issue="i", files=files), {"dense": dense})

    hits = [hit(0.3, 0.5, ["a.py"]), hit(0.2, 0.6, ["a.py", "b.py"]), hit(0.1, 0.4, ["c.py"])]
    feats = query_features(hits, pool_size=9)
    assert feats["log_pool"] == pytest.approx(math.log(10))
    assert feats["top_score"] == 0.3 and feats["top_dense"] == 0.6
    assert feats["file_recurrence"] == pytest.approx(0.5)  # one of the two others touched a.py
    assert query_features([], pool_size=9) == {}


def test_gate_decides_for_episodes_and_an_explicit_floor_replaces_it(seeded):
    from expagent.memory.retrieval import RetrievalSettings, retrieve, score_candidates, select_hits

    query = "The websocket server leaks file descriptors on reconnect"
    cands = score_candidates(seeded, query, repo="acme/shop")
    assert cands and cands.pool_size == 3  # the three acme/shop episodes passed the filters
    assert select_hits(cands, repo="acme/shop") == []  # the gate: nothing relevant
    # an explicit floor replaces the gate: floor 0 keeps every candidate scoring above zero
    assert select_hits(cands, repo="acme/shop", floor=0, k=5) == [h for h in cands if h.score >= 0]
    no_gate = RetrievalSettings(gate=False, floor=0.0)
    assert retrieve(seeded, query, repo="acme/shop", settings=no_gate, k=5)
