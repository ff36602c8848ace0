"""Real servers for tests, started and stopped by the test: a Chroma server and a Ray cluster on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def chroma_server(data: Path) -> Iterator[str]:
    """``chroma run`` on a free loopback port over ``data``; yields its URL."""
    exe = shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma CLI is not installed")
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (data / "server.log").open("w") as log:
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
            _stop(proc)


class RayCluster:
    """A Ray cluster on this machine (``ray.cluster_utils.Cluster``): a head without CPUs (it only schedules) and
    worker nodes (one CPU each by default), every node with its own ``EXPAGENT_HOME`` (as on separate machines).
    ``remove(i)`` kills node ``i`` at once, like a machine that goes away."""

    def __init__(self, root: Path, homes: list[Path], env: dict[str, str], cpus_per_node: int = 1) -> None:
        import secrets

        self.root, self.homes, self.cpus = root, homes, cpus_per_node
        # token authentication with this cluster's own token (never the machine's ~/.ray); clients (the replay
        # under test) get it through ``self.env``
        self.env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
        self.cluster = None
        self.nodes: list = []
        self.address = ""

    def start(self, attempts: int = 3) -> None:
        """Start the nodes; Ray gives a node 30 s to register, which a loaded machine can miss: then again."""
        for attempt in range(attempts):
            try:
                self._start()
                return
            except Exception:  # noqa: BLE001 - "The current node timed out during startup"
                self.stop()
                self.cluster, self.nodes = None, []
                if attempt == attempts - 1:
                    raise

    def _start(self) -> None:
        saved = dict(os.environ)
        try:
            # node processes inherit the environment at their start; Ray reads its auth mode when imported
            os.environ.update(self.env)
            from ray.cluster_utils import Cluster

            os.environ["EXPAGENT_HOME"] = str(self.root / "head-home")
            self.cluster = Cluster(initialize_head=True, connect=False, head_node_args={
                "num_cpus": 0, "object_store_memory": 100 * 1024 * 1024, "include_dashboard": False})
            for home in self.homes:
                os.environ["EXPAGENT_HOME"] = str(home)
                self.nodes.append(self.cluster.add_node(num_cpus=self.cpus, object_store_memory=100 * 1024 * 1024))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.address = self.cluster.address

    def remove(self, i: int) -> None:
        self.cluster.remove_node(self.nodes[i], allow_graceful=False)

    def stop(self) -> None:
        if self.cluster is not None:
            try:
                self.cluster.shutdown()
            except Exception:  # noqa: BLE001 - a half-started cluster
                pass
