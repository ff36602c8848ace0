"""The memory against a real Chroma server (``chroma run`` on loopback, started and stopped by the test)."""

from __future__ import annotations

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
