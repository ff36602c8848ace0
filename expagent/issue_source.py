"""Where the issue text comes from: an argument, a file, standard input, or a GitHub issue URL."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from expagent.errors import ExpagentError

_GITHUB_ISSUE = re.compile(r"^https?://github\.com/([\w.-]+)/([\w.-]+)/issues/(\d+)/?$")


@dataclass
class Issue:
    text: str
    source: str  # "argument", "stdin", a file path or a URL


def fetch_github_issue(url: str, timeout: float = 20.0) -> Issue:
    """Read a GitHub issue's title and body through the REST API (``GITHUB_API_URL`` overrides the host)."""
    import urllib.error
    import urllib.request

    owner, name, number = _GITHUB_ISSUE.match(url).groups()
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    request = urllib.request.Request(f"{api}/repos/{owner}/{name}/issues/{number}")
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("User-Agent", "expagent")
    token = os.environ.get("GITHUB_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        hint = " (set GITHUB_TOKEN for private repositories)" if exc.code in (401, 403, 404) and not token else ""
        raise ExpagentError(f"cannot read issue {url}: HTTP {exc.code}{hint}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExpagentError(f"cannot reach the GitHub API for {url}: {reason}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ExpagentError(f"the GitHub API returned something that is not JSON for {url}") from None
    title, body = (data.get("title") or "").strip(), (data.get("body") or "").strip()
    return Issue(f"{title}\n\n{body}".strip(), url)


def read_issue(argument: str | None, issue_file: str | None) -> Issue:
    if argument and issue_file:
        raise ExpagentError("give the issue either as text or with --issue-file, not both")
    if issue_file:
        try:
            issue = Issue(Path(issue_file).read_text(encoding="utf-8"), issue_file)
        except (OSError, UnicodeDecodeError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc)
            raise ExpagentError(f"cannot read issue file {issue_file}: {detail}") from None
    elif argument == "-":
        issue = Issue(sys.stdin.read(), "stdin")
    elif argument and _GITHUB_ISSUE.match(argument.strip()):
        issue = fetch_github_issue(argument.strip())
    elif argument is not None:
        issue = Issue(argument, "argument")
    else:
        raise ExpagentError('no issue given: expagent fix "describe the bug" (or --issue-file PATH, or - for stdin)')
    if not issue.text.strip():
        raise ExpagentError(f"the issue is empty ({issue.source})")
    return issue
