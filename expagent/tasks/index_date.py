"""A package index as it was on a date, for environment builds whose recipe leaves requirements unpinned.

A SWE-bench recipe such as matplotlib 3.4's installs the repository's requirement files, whose names are mostly
unpinned (``ipython``, ``nbconvert[execute]``, ``sphinx``...). Resolved today for the recipe's old Python, the
newest releases that still support it no longer fit together, and pip's resolver backtracks for an hour. The
recipe's ``index_date`` makes every pip call of the build (and of the install at a base commit) see the index as
it was on that date, when the unpinned names did resolve together:

- ``created_at``: the instance's date (``Task.created_at``);
- ``env_commit``: the committer date of the environment commit (one date for all instances of a version);
- an ISO 8601 date or datetime (UTC when it names no offset).

``ensure_env`` turns the first two into the literal datetime, which is part of the environment's cache key.

pip 26 has ``--uploaded-prior-to``, but the venvs of old interpreters (3.8 and older) cannot run pip 26, and it
does not filter local files (find-links, ``file://`` indexes), which may offer releases of today. So the build's
pip is pointed instead at a small index on the loopback address that serves, for each project, the upstream
index's files uploaded before the date (PEP 700 ``upload-time``, from the upstream's PEP 691 JSON pages), as a
PEP 503 HTML page every pip since 18 reads. The upstream is the build's ``PIP_INDEX_URL``, else PyPI; the pip
configuration files and the extra indexes and find-links (``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``) are left
out of such a build, since their files carry no upload time. A file the upstream gives no upload time is left out.
This is the local backend's mechanism (``envs`` and ``overlays``); the Docker backend's builds do not use it yet.
"""

from __future__ import annotations

import html
import json
import os
import re
import ssl
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urljoin

from expagent.errors import ExpagentError
from expagent.gitutil import GitError, git
from expagent.timeutil import parse_iso

DEFAULT_INDEX = "https://pypi.org/simple/"
JSON_PAGE = "application/vnd.pypi.simple.v1+json"
#: variables whose indexes or files would bypass the date (they carry no upload time)
BYPASSING_VARS = ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX")
UPSTREAM_TIMEOUT = 120.0


class IndexDateError(ExpagentError):
    """A recipe's ``index_date`` cannot be resolved (no instance date, unreadable commit, not a date)."""


def parse_date(value: str) -> datetime:
    """``value`` (ISO 8601 date or datetime; UTC when no offset) as an aware UTC datetime."""
    try:
        return parse_iso(value).astimezone(timezone.utc)
    except ValueError:
        raise IndexDateError(f"index_date {value!r} is not an ISO 8601 date or datetime") from None


def format_date(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve(value: str, *, created_at: str = "", source: Path | None = None, env_commit: str = "") -> str:
    """The literal UTC datetime a recipe's ``index_date`` stands for ("" stays "": no date)."""
    if not value:
        return ""
    if value == "created_at":
        if not created_at:
            raise IndexDateError("index_date 'created_at': the task has no created_at")
        return format_date(parse_date(created_at))
    if value == "env_commit":
        try:
            committed = git(source, "log", "-1", "--format=%cI", env_commit).strip()
        except GitError:
            committed = ""
        if not committed:
            raise IndexDateError(f"index_date 'env_commit': cannot read the date of {env_commit[:12]} in {source}")
        return format_date(parse_date(committed))
    return format_date(parse_date(value))


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def filtered_files(page: dict[str, Any], cutoff: datetime, page_url: str) -> list[dict[str, Any]]:
    """The files of a PEP 691 project page uploaded before ``cutoff``, with absolute URLs."""
    kept = []
    for item in page.get("files", []):
        uploaded = item.get("upload-time")
        if not uploaded:
            continue
        try:
            if parse_date(uploaded) >= cutoff:
                continue
        except IndexDateError:
            continue
        kept.append({**item, "url": urljoin(page_url, item["url"])})
    return kept


def render_page(project: str, files: list[dict[str, Any]]) -> str:
    """A PEP 503 project page of ``files`` (hash fragment, ``data-requires-python``, PEP 658 metadata, ``data-yanked``)."""
    links = []
    for item in files:
        url = item["url"].split("#", 1)[0]
        hashes = item.get("hashes") or {}
        if "sha256" in hashes:
            url += f"#sha256={hashes['sha256']}"
        attrs = f' href="{html.escape(url)}"'
        if item.get("requires-python"):
            attrs += f' data-requires-python="{html.escape(item["requires-python"])}"'
        metadata = item.get("core-metadata", item.get("dist-info-metadata"))
        if metadata:
            value = html.escape(f"sha256={metadata['sha256']}" if isinstance(metadata, dict) and "sha256" in metadata
                                else "true")
            attrs += f' data-core-metadata="{value}" data-dist-info-metadata="{value}"'
        yanked = item.get("yanked")
        if yanked:
            attrs += f' data-yanked="{html.escape(yanked if isinstance(yanked, str) else "")}"'
        links.append(f"<a{attrs}>{html.escape(item['filename'])}</a><br>")
    return (f"<!DOCTYPE html><html><head><title>Links for {html.escape(project)}</title></head><body>\n"
            + "\n".join(links) + "\n</body></html>\n")


@dataclass
class DatedIndex:
    """An index on the loopback address serving ``upstream``'s files uploaded before ``cutoff``."""

    upstream: str
    cutoff: datetime
    cafile: str | None = None
    server: ThreadingHTTPServer | None = None
    pages: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def page(self, project: str) -> tuple[int, bytes]:
        """(HTTP status, body) of the dated page of ``project``, fetched from the upstream once."""
        name = _normalized(project)
        with self.lock:
            if name in self.pages:
                return self.pages[name]
        page_url = urljoin(self.upstream.rstrip("/") + "/", f"{name}/")
        request = urllib.request.Request(page_url, headers={"Accept": JSON_PAGE})
        context = ssl.create_default_context(cafile=self.cafile) if page_url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT, context=context) as response:
                data = json.loads(response.read().decode("utf-8"))
                final_url = response.geturl()
        except urllib.error.HTTPError as exc:
            result = (404 if exc.code == 404 else 502, f"upstream {page_url}: HTTP {exc.code}".encode())
        except (OSError, ValueError) as exc:
            return 502, f"upstream {page_url}: {exc}".encode()  # not cached: a later request may succeed
        else:
            body = render_page(name, filtered_files(data, self.cutoff, final_url)).encode("utf-8")
            result = (200, body)
        with self.lock:
            self.pages[name] = result
        return result

    def start(self) -> "DatedIndex":
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
                if len(parts) != 2 or parts[0] != "simple":
                    self.send_error(404)
                    return
                status, body = index.page(parts[1])
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="dated-index", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def dated_environ(environ: dict[str, str], index_url: str) -> dict[str, str]:
    """``environ`` for pip calls that see only ``index_url``: no configuration files, extra indexes or find-links."""
    env = {k: v for k, v in environ.items() if k not in BYPASSING_VARS}
    env.update(PIP_INDEX_URL=index_url, PIP_CONFIG_FILE=os.devnull)
    return env


@contextmanager
def serving(builder, date: str) -> Iterator[DatedIndex | None]:
    """While open, ``builder``'s commands (an ``envs.Builder``) resolve against the index as of ``date``
    (a literal from ``resolve``; "" does nothing)."""
    if not date:
        yield None
        return
    environ = builder.environ
    upstream = environ.get("PIP_INDEX_URL") or DEFAULT_INDEX
    cafile = environ.get("PIP_CERT") or environ.get("SSL_CERT_FILE") or None
    index = DatedIndex(upstream, parse_date(date), cafile).start()
    builder.log.write(f"note: pip sees the package index as of {date} (index_date): {upstream} through "
                      f"{index.url}, without pip's configuration files, extra indexes and find-links\n")
    builder.environ = dated_environ(environ, index.url)
    try:
        yield index
    finally:
        builder.environ = environ
        index.stop()
