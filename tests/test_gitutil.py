"""gitutil.read_head reads HEAD from git's files; it must agree with git itself in every layout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from expagent.gitutil import git_env, read_head


def _git(repo: Path, *args: str) -> str:
    env = {**git_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    (repo / "a.py").write_text("x = 2\n")
    _git(repo, "commit", "-q", "-am", "two")
    return repo


def test_read_head_agrees_with_git_in_every_layout(tmp_path):
    repo = _repo(tmp_path)
    assert read_head(repo) == _git(repo, "rev-parse", "HEAD")  # loose ref
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_head(repo) == _git(repo, "rev-parse", "HEAD")  # packed ref
    first = _git(repo, "rev-parse", "HEAD~1")
    _git(repo, "checkout", "-q", "--detach", first)
    assert read_head(repo) == first  # detached
    linked = tmp_path / "linked"
    _git(repo, "worktree", "add", "-q", "-b", "side", str(linked), "main")
    assert (linked / ".git").is_file()
    assert read_head(linked) == _git(repo, "rev-parse", "main")  # a linked work tree, its ref in the common dir
    (repo / "sub").mkdir()
    assert read_head(repo / "sub") == first  # a subdirectory: git answers


def test_read_head_outside_git_and_unborn(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert read_head(plain) == ""
    unborn = tmp_path / "unborn"
    unborn.mkdir()
    _git(unborn, "init", "-q")
    assert read_head(unborn) == ""
