"""A recipe's ``index_date``: builds resolve against the package index as it was on a date (all on loopback)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from expagent.tasks import index_date
from expagent.tasks.envs import build_env, env_key
from expagent.tasks.suite import EnvRecipe

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def wheel(name: str, version: str) -> bytes:
    """A minimal wheel of ``name`` whose module says its version."""
    buf = io.BytesIO()
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", f"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return buf.getvalue()


class Upstream:
    """A PEP 691 JSON index on loopback: project ``demo`` with 1.0 (2020), 2.0 (2024) and 3.0 (no upload time)."""

    def __init__(self) -> None:
        self.files = {f"demo-{v}-py3-none-any.whl": wheel("demo", v) for v in ("1.0", "2.0", "3.0")}
        self.page_requests = 0
        times = {"1.0": "2020-05-01T10:00:00.123456Z", "2.0": "2024-01-01T00:00:00Z", "3.0": None}
        entries = []
        for version, uploaded in times.items():
            filename = f"demo-{version}-py3-none-any.whl"
            entry = {"filename": filename, "url": f"../../files/{filename}", "yanked": False,
                     "hashes": {"sha256": hashlib.sha256(self.files[filename]).hexdigest()},
                     "requires-python": ">=3.6"}
            if uploaded:
                entry["upload-time"] = uploaded
            entries.append(entry)
        page = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": entries}).encode()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") == "/simple/demo":
                    upstream.page_requests += 1
                    self._send(200, page, index_date.JSON_PAGE)
                elif self.path.startswith("/files/") and self.path[len("/files/"):] in upstream.files:
                    self._send(200, upstream.files[self.path[len("/files/"):]], "application/octet-stream")
                else:
                    self._send(404, b"no such page", "text/plain")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def upstream():
    server = Upstream()
    yield server
    server.close()


def test_the_dated_index_serves_only_files_uploaded_before_the_date(upstream):
    index = index_date.DatedIndex(upstream.url, index_date.parse_date("2021-06-23")).start()
    try:
        page = urllib.request.urlopen(index.url + "Demo/").read().decode()
        again = urllib.request.urlopen(index.url + "demo/").read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(index.url + "absent/")
    finally:
        index.stop()
    assert "demo-1.0-py3-none-any.whl" in page
    assert "demo-2.0" not in page  # uploaded after the date
    assert "demo-3.0" not in page  # no upload time: it cannot be shown to be older
    # the relative file URL resolved against the upstream page, its hash kept, Requires-Python escaped
    sha = hashlib.sha256(upstream.files["demo-1.0-py3-none-any.whl"]).hexdigest()
    assert f'href="{upstream.url[:-len("simple/")]}files/demo-1.0-py3-none-any.whl#sha256={sha}"' in page
    assert 'data-requires-python="&gt;=3.6"' in page
    assert again == page and upstream.page_requests == 1  # one upstream fetch per project (names normalized)
    assert missing.value.code == 404


def test_index_date_values_resolve_to_a_literal_utc_datetime(tmp_path):
    assert index_date.resolve("") == ""
    assert index_date.resolve("created_at", created_at="2021-06-23T03:05:05Z") == "2021-06-23T03:05:05Z"
    assert index_date.resolve("2021-06-23") == "2021-06-23T00:00:00Z"
    assert index_date.resolve("2021-06-23T05:05:05+02:00") == "2021-06-23T03:05:05Z"
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_COMMITTER_DATE": "2021-08-12T20:00:00+02:00",
           "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x"], check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert index_date.resolve("env_commit", source=repo, env_commit=head) == "2021-08-12T18:00:00Z"
    with pytest.raises(index_date.IndexDateError):
        index_date.resolve("created_at", created_at="")
    with pytest.raises(index_date.IndexDateError):
        index_date.resolve("yesterday")


def test_the_date_is_part_of_the_cache_key_and_a_recipe_without_it_keeps_its_key():
    plain = EnvRecipe(python="3.8", pip_packages=["ipython"])
    dated = EnvRecipe(python="3.8", pip_packages=["ipython"], index_date="2021-06-23T03:05:05Z")
    later = EnvRecipe(python="3.8", pip_packages=["ipython"], index_date="2022-06-23T03:05:05Z")
    keys = {env_key(r, "a/b", "c0", "/usr/bin/python3", "3.8.18") for r in (plain, dated, later)}
    assert len(keys) == 3
    # the key of a recipe without a date is computed as before the setting existed
    assert "index_date" not in json.dumps({n: getattr(plain, n) for n in EnvRecipe.BUILD_FIELDS
                                           if getattr(plain, n) not in ([], False, None, "")})


def test_matplotlib_3_4_resolves_its_unpinned_requirements_as_of_its_environment_commit():
    from expagent.tasks import swebench_specs

    assert swebench_specs.recipe_values("matplotlib/matplotlib", "3.4")["index_date"] == "env_commit"
    assert "index_date" not in swebench_specs.recipe_values("matplotlib/matplotlib", "3.1")


@pytest.mark.slow  # a few seconds; the default run stays under 5 min (.ci/run runs the slow set)
def test_a_dated_build_installs_the_release_of_that_date_not_todays(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    # the upstream is the user's index; extra indexes and find-links (no upload times) must not leak in
    monkeypatch.setenv("PIP_INDEX_URL", upstream.url)
    extra = tmp_path / "links"
    extra.mkdir()
    (extra / "demo-9.0-py3-none-any.whl").write_bytes(wheel("demo", "9.0"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(extra))
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x"], check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    recipe = EnvRecipe(python=PY, pip_packages=["demo"], install=[], index_date="2021-06-23T03:05:05Z")
    built = build_env(recipe, "acme/demo", repo, head)
    version = subprocess.run([str(built.bin_dir / "python"), "-c", "import demo; print(demo.VERSION)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "1.0"
    log = (built.path / "build.log").read_text()
    assert "pip sees the package index as of 2021-06-23T03:05:05Z" in log
