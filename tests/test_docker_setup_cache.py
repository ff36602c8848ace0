"""Set-up images are cached by the set-up commands and the dependency files, not by the commit: a new commit
that changes no dependency reuses the image with its checkout moved; a failing set-up shows its last lines."""

from __future__ import annotations

import pytest

from conftest import git, make_repo

from expagent.errors import SandboxError

pytestmark = pytest.mark.docker

from test_docker_sandbox import _sandbox, client, settings  # noqa: E402,F401  (the daemon fixtures)


def _commit(repo, files: dict[str, str | None], message: str) -> str:
    for name, content in files.items():
        if content is None:
            (repo / name).unlink()
        else:
            (repo / name).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


def test_new_commit_with_the_same_dependencies_reuses_the_set_up_image(client, settings, tmp_path):  # noqa: F811
    repo = make_repo(tmp_path / "proj", {"calc.py": "def add(a, b):\n    return a - b\n", "old.py": "x = 1\n",
                                         "requirements.txt": "toolz==1.0\n"})
    first = git(repo, "rev-parse", "HEAD").strip()
    setup = ["echo built-once > artifact.txt"]
    notices: list[str] = []
    tags = set()
    try:
        with _sandbox(repo, settings, base_commit=first, setup=setup, notice=notices.append) as sb:
            tags.add(sb.image)
        assert any(n.startswith("building the set-up image for proj") for n in notices)
        assert "  set-up [1/1]: echo built-once > artifact.txt" in notices

        second = _commit(repo, {"calc.py": "def add(a, b):\n    return a + b\n", "old.py": None,
                                "new.py": "y = 2\n"}, "fix add, move old to new")
        notices.clear()
        with _sandbox(repo, settings, base_commit=second, setup=setup, notice=notices.append) as sb:
            tags.add(sb.image)
            assert notices == []  # nothing built, nothing to say
            assert sb.run("git rev-parse HEAD").output.strip() == second
            assert "a + b" in sb.read_file("calc.py") and sb.read_file("new.py") == "y = 2\n"
            assert sb.run("test -e old.py").exit_code == 1
            assert sb.read_file("artifact.txt") == "built-once\n"  # the set-up's work is kept
            assert sb.diff() == ""  # the moved checkout is clean against the new base
        assert len(tags) == 1

        third = _commit(repo, {"requirements.txt": "toolz==1.1\n"}, "bump a dependency")
        with _sandbox(repo, settings, base_commit=third, setup=setup, notice=notices.append) as sb:
            tags.add(sb.image)
        assert len(tags) == 2  # a dependency file changed: a new image
    finally:
        for tag in tags:
            client.images.remove(tag, force=True)


def test_failing_set_up_shows_the_end_of_its_output(client, settings, tmp_path):  # noqa: F811
    repo = make_repo(tmp_path / "proj", {"a.py": "x = 1\n"})
    notices: list[str] = []
    command = "for i in $(seq 1 40); do echo line-$i; done; echo 'ERROR: No matching distribution' >&2; exit 3"
    with pytest.raises(SandboxError, match=r"setup command failed \(exit 3\).*full log: .*\.log\)$") as info:
        with _sandbox(repo, settings, setup=[command], notice=notices.append):
            pass
    assert "    ERROR: No matching distribution" in notices
    assert "    line-40" in notices and "    line-10" not in notices  # the tail, not a fragment, not all
    log = str(info.value).rsplit("full log: ", 1)[1].rstrip(")")
    assert "line-1\n" in open(log).read()
