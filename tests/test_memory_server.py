"""The memory against a real Chroma server (``chroma run`` on loopback, started and stopped by the test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from test_memory import HISTORY, write_jsonl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    exe = shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma CLI is not installed")
    data = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (data / "server.log").open("w")
    proc = subprocess.Popen([exe, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chroma server did not start: " + (data / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
    import os
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "EXPAGENT_HOME": str(tmp_path), "EXPAGENT_CHROMA_URL": f"http://127.0.0.1:{_free_port()}"}
    proc = subprocess.run([sys.executable, "-m", "expagent", "memory", "stats", "--json"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot reach the Chroma server") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
