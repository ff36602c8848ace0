"""Downloading a source release whose build pip cannot prepare: the archive comes straight from the index."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from expagent.tasks import pypi_source

#: a setup.py that fails as soon as pip prepares its metadata (scikit-learn 1.3's build needs what pip cannot get)
_UNBUILDABLE = "raise SystemExit('this release needs a compiler toolchain pip cannot install')\n"


def _sdist(name: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, text in {"setup.py": _UNBUILDABLE, "pkg/__init__.py": "VALUE = 1\n"}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture()
def index(tmp_path, monkeypatch):
    """A PEP 503 index on loopback holding one unbuildable sdist; PIP_INDEX_URL points at it."""
    root = tmp_path / "index"
    (root / "simple" / "unbuildable-pkg").mkdir(parents=True)
    archive = _sdist("unbuildable_pkg", "1.0")
    (root / "files").mkdir()
    (root / "files" / "unbuildable_pkg-1.0.tar.gz").write_bytes(archive)
    digest = hashlib.sha256(archive).hexdigest()

    def page(sha: str) -> None:
        (root / "simple" / "unbuildable-pkg" / "index.html").write_text(
            f'<a href="../../files/unbuildable_pkg-1.0.tar.gz#sha256={sha}">unbuildable_pkg-1.0.tar.gz</a>\n'
            '<a href="../../files/unbuildable_pkg-0.9.tar.gz">unbuildable_pkg-0.9.tar.gz</a>\n')

    page(digest)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    yield archive, page
    server.shutdown()


def test_an_sdist_pip_cannot_prepare_is_fetched_from_the_index(index, monkeypatch):
    archive, _ = index
    with monkeypatch.context() as patched:  # pip alone fails on it: it runs the setup.py to prepare metadata
        patched.setattr(pypi_source, "_download_from_index", lambda *a: None)
        with pytest.raises(pypi_source.PypiSourceError, match="cannot download the sdist"):
            pypi_source.download_sdist("Unbuildable-Pkg==1.0")
    got = pypi_source.download_sdist("Unbuildable-Pkg==1.0")
    assert got.name == "unbuildable_pkg-1.0.tar.gz" and got.read_bytes() == archive
    assert got.parent == pypi_source.sdist_cache()  # cached: the next call does not reach the index
    assert pypi_source.download_sdist("unbuildable_pkg==1.0") == got


def test_a_file_that_does_not_match_the_index_digest_is_refused(index):
    _, page = index
    page("0" * 64)
    with pytest.raises(pypi_source.PypiSourceError, match="cannot download the sdist of Unbuildable-Pkg==1.0"):
        pypi_source.download_sdist("Unbuildable-Pkg==1.0")
    assert not any(Path(pypi_source.sdist_cache()).glob("*.tar.gz"))  # nothing half-checked is cached
    with pytest.raises(pypi_source.PypiSourceError):
        pypi_source.download_sdist("unbuildable_pkg==2.0")  # a version the index does not list


def test_sdist_names_match_normalized_and_exactly_versioned():
    assert pypi_source._is_sdist_of("scikit-learn-1.3.0.tar.gz", "scikit_learn", "1.3.0")
    assert pypi_source._is_sdist_of("Django-5.0.tar.gz", "django", "5.0")
    assert not pypi_source._is_sdist_of("Django-5.0.1.tar.gz", "django", "5.0")
    assert not pypi_source._is_sdist_of("django_extensions-5.0.tar.gz", "django", "5.0")
    assert not pypi_source._is_sdist_of("Django-5.0-py3-none-any.whl", "django", "5.0")
