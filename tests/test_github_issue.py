"""Issue URLs: title and body come from the GitHub REST API (a recorded response served on loopback)."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from conftest import run_cli, write_script

RECORDED = json.loads((Path(__file__).parent / "data" / "github_issue_4242.json").read_text())


@pytest.fixture
def github_api():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path == "/repos/acme/calc/issues/4242":
                body, status = json.dumps(RECORDED).encode(), 200
            else:
                body, status = b'{"message": "Not Found"}', 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_issue_url_is_read_through_the_api(buggy_repo, tmp_path, isolated_home, github_api):
    url, seen = github_api
    script = write_script(tmp_path / "s.json", [{"tool_calls": [{"name": "submit"}]}])
    proc = run_cli("fix", "https://github.com/acme/calc/issues/4242", "--model", f"scripted:{script}",
                   "--sandbox", "local", cwd=buggy_repo, env={"GITHUB_API_URL": url, "GITHUB_TOKEN": "ghp_testtoken123"})
    assert proc.returncode == 1  # empty patch, but the issue was read
    traj_path = next((isolated_home / "runs").glob("*/trajectory.json"))
    traj = json.loads(traj_path.read_text())
    assert traj["issue"]["text"].startswith("add() returns a difference\n\nCalling `calc.add(2, 3)` returns -1")
    assert traj["issue"]["source"] == "https://github.com/acme/calc/issues/4242"
    assert seen == [("/repos/acme/calc/issues/4242", "Bearer ghp_testtoken123")]
    assert "ghp_testtoken123" not in traj_path.read_text()  # the token never reaches the trajectory


def test_missing_issue_is_a_one_line_error(buggy_repo, github_api):
    url, _ = github_api
    proc = run_cli("fix", "https://github.com/acme/calc/issues/1", "--model", "scripted:x", cwd=buggy_repo,
                   env={"GITHUB_API_URL": url})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: cannot read issue https://github.com/acme/calc/issues/1: HTTP 404" in proc.stderr
