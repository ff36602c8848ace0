"""The memory against a real Chroma server (``chroma run`` on loopback, started and stopped by the test)."""

from __future__ import annotations

import time

import pytest

import servers
from test_memory import HISTORY, write_jsonl

_free_port = servers.free_port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    with servers.chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


def test_server_store_import_search_and_share(chroma_server, tmp_path):
    from expagent.memory.retrieval import retrieve
    from expagent.memory.store import MemoryStore
    from expagent.memory.swebench import import_swebench

    # two "machines" (two homes) share one memory through the server
    alice = MemoryStore.open(home=tmp_path / "alice", chroma_url=chroma_server)
    added, _, _ = import_swebench(alice, write_jsonl(tmp_path / "seed.jsonl", HISTORY))
    assert len(added) == len(HISTORY)
    bob = MemoryStore.open(home=tmp_path / "bob", chroma_url=chroma_server)
    assert bob.count() == len(HISTORY)
    hits = retrieve(bob, "Cart.total() is wrong after apply_discount", repo="acme/shop", k=2)
    assert hits and hits[0].record.files == ["shop/cart.py"]
    # a change on one machine invalidates the other's lexical cache
    victim = hits[0].id
    alice.delete(victim, actor="alice")
    assert victim not in {h.id for h in retrieve(bob, "Cart.total() is wrong after apply_discount",
                                                  repo="acme/shop", k=5, floor=0)}
    # the audit log is per machine: alice's actions are in alice's log
    assert [h.action for h in alice.history(victim)] == ["add", "delete"]
    assert bob.history(victim) == []
    # nothing was written to an embedded database under either home
    assert not (tmp_path / "alice" / "memory" / "chroma").exists()


def test_unreachable_server_is_one_line_error(tmp_path):
    from expagent.memory.store import ChromaUnavailable, MemoryStore

    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ChromaUnavailable) as info:
        MemoryStore.open(home=tmp_path, chroma_url=url)
    assert str(info.value).startswith(f"cannot reach the Chroma server at {url}")
    assert "\n" not in str(info.value)


def test_cli_unreachable_server_exit_code(tmp_path):
    from conftest import run_cli

    env = {"EXPAGENT_HOME": str(tmp_path), "EXPAGENT_CHROMA_URL": f"http://127.0.0.1:{_free_port()}"}
    proc = run_cli("memory", "stats", "--json", env=env)
    assert proc.returncode == 1  # a service that does not answer: the work failed, the input was fine
    assert proc.stderr.startswith("error: cannot reach the Chroma server") and proc.stderr.count("\n") == 1
    env["EXPAGENT_CHROMA_URL"] = "http://"
    proc = run_cli("memory", "stats", "--json", env=env)
    assert proc.returncode == 2  # what the user gave cannot be used
    assert "must be an http:// or https:// URL" in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_server_readers_catch_up_by_write_time_and_fall_back_when_a_clock_is_off(chroma_server, tmp_path,
                                                                                 monkeypatch):
    """A searcher on another machine catches up with a writer by asking what was written since its mark (records
    carry their write time), not by reading every id; a record whose writer's clock is far off is still found
    (the count disagrees, and every id is read)."""
    from expagent.memory import lexical
    from expagent.memory import store as store_mod
    from expagent.memory.retrieval import retrieve
    from expagent.memory.store import MemoryStore
    from expagent.memory.swebench import episode_from_swebench, import_swebench

    alice = MemoryStore.open(home=tmp_path / "alice", chroma_url=chroma_server)
    collection = alice.chroma_collection()
    if leftover := collection.get(include=[])["ids"]:  # the module's server is shared with other tests
        collection.delete(ids=leftover)
    import_swebench(alice, write_jsonl(tmp_path / "seed.jsonl", HISTORY))
    bob = MemoryStore.open(home=tmp_path / "bob", chroma_url=chroma_server)
    query = "Coupon.redeem() raises KeyError for expired coupon codes in shop/coupon.py"
    assert all(h.record.instance_id != "acme__shop-201" for h in retrieve(bob, query, repo="acme/shop", k=5, floor=0))
    reads_of_every_id = []
    real_all_ids = MemoryStore.all_ids
    monkeypatch.setattr(MemoryStore, "all_ids", lambda self: reads_of_every_id.append(self) or real_all_ids(self))

    def add(instance: str, **row) -> None:
        alice.add_episode(episode_from_swebench(dict(
            repo="acme/shop", instance_id=instance, base_commit="e" * 40, created_at="2021-04-01T00:00:00Z",
            problem_statement="Coupon.redeem() raises KeyError when the coupon code has expired (shop/coupon.py).",
            patch=HISTORY[0]["patch"].replace("shop/cart.py", "shop/coupon.py"), **row), actor="alice"), "alice")

    add("acme__shop-201")
    written = collection.get(where={"instance_id": "acme__shop-201"}, include=["metadatas"])
    assert abs(written["metadatas"][0][store_mod.WRITTEN_TS] - time.time()) < 60
    hits = retrieve(bob, query, repo="acme/shop", k=5, floor=0)
    assert "acme__shop-201" in {h.record.instance_id for h in hits}
    assert reads_of_every_id == []  # caught up from the write times
    index = lexical.lexical_index(bob)
    assert index.mark is not None and len(index.ids) == len(HISTORY) + 1

    # a writer whose clock is an hour behind: outside the window bob asks about
    real_time = time.time
    monkeypatch.setattr(store_mod.time, "time", lambda: real_time() - 3600)
    add("acme__shop-202")
    monkeypatch.setattr(store_mod.time, "time", real_time)
    hits = retrieve(bob, query, repo="acme/shop", k=5, floor=0)
    assert {"acme__shop-201", "acme__shop-202"} <= {h.record.instance_id for h in hits}
    assert len(reads_of_every_id) == 1
