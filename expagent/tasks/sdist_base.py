"""Approximate a SWE-bench instance's base state from a PyPI source release, for repositories too large to clone.

SWE-bench grades at ``base_commit``, a commit of the project's git history. When that history cannot be had (the
repository's snapshot is too large to bring in), a source release close to the instance still carries the code and
the tests: the release that *follows* the fix usually contains the gold patch, so applying the gold patch (and the
test patch) in reverse gives an approximation of the base state; a release that *precedes* the fix, to which the
gold patch applies forward, is used as it is. Each candidate release is tried in order and the first that fits is
kept, with the reasons the others were not. When the code or the tests moved on between the fix and the release,
the patches are placed with GNU patch's fuzz, and the task is graded with its test patch rebased on the release's
test files (the record's no longer applies with ``git apply``); the note says so.

The result is a deterministic commit (fixed identity and dates, see :mod:`expagent.tasks.synth_git`) in a bare
repository laid out for ``--repos`` (``<owner>+<name>``), so the real environment build and grader run on it
unchanged: the task is re-targeted with :func:`retarget` (``base_commit`` is the reconstruction, the environment is
built from the pristine release). This is **not** the real base commit: files the release leaves out (CI
configuration, some test data), changes between the base commit and the release, and generated files the release
ships pre-built all differ.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from expagent.errors import ExpagentError
from expagent.patchutil import patch_files
from expagent.tasks import pypi_source, synth_git

#: where each reconstruction and each pristine release is kept reachable in the repository. A release is a tag
#: ``sdist-<name>-<version>``, so that ``git describe`` at a base names it in a form setuptools_scm parses (it
#: refuses ``sdist/matplotlib-3.8.0``: matplotlib 3.8's build failed on it); a reconstruction is a branch, which
#: describe ignores (as a tag, its instance number would be read as the version)
BASE_REF_PREFIX = "refs/heads/sdist-base/"
RELEASE_REF_PREFIX = "refs/tags/sdist-"

GOLD_REVERSED = "gold reverse-applied"
AS_RELEASED = "release as is"
#: how a candidate whose sdist could not be had here is named among the rejected
UNAVAILABLE = "not available here"


class SdistBaseError(ExpagentError):
    """No candidate release gives a usable base state."""


@dataclass(frozen=True)
class Reconstruction:
    """An instance's approximate base state, made from one source release."""

    instance_id: str
    spec: str  # "Django==2.2"
    archive: str  # the sdist's file name
    mode: str  # GOLD_REVERSED or AS_RELEASED
    release_commit: str  # the pristine release
    base_commit: str  # the approximation of base_commit
    tests: str  # how the test patch was placed: "" (it applied as is) or "test patch reverse-applied[ with fuzz]"
    rejected: tuple[str, ...] = ()  # "spec: why", for each candidate tried before this one
    #: the test patch to grade with when the record's no longer applies (rebased on the release), else None
    test_patch: str | None = None

    @property
    def note(self) -> str:
        tests = f", {self.tests}" if self.tests else ""
        note = f"sdist reconstruction from {self.archive} ({self.mode}{tests}), not the real base commit"
        if self.rejected:
            note += "; rejected: " + "; ".join(self.rejected)
        return note


def _applies(repo: Path, commit: str, patch: str, reverse: bool = False) -> bool:
    """Whether ``patch`` applies to ``commit`` (in reverse if asked), checked on a private index."""
    with tempfile.TemporaryDirectory(prefix="expagent-sdist-index-") as tmp:
        env = synth_git.git_env({"GIT_INDEX_FILE": str(Path(tmp) / "index")})
        synth_git.git(repo, "read-tree", commit, env=env)
        args = ["apply", "--cached", "--check", "--whitespace=nowarn"] + (["-R"] if reverse else [])
        try:
            synth_git.git(repo, *args, "-", input=patch, env=env)
        except synth_git.SynthGitError:
            return False
        return True


def init_repos_dir(repos_dir: Path, repo: str) -> Path:
    """The bare repository ``<repos_dir>/<owner>+<name>`` (made empty if missing)."""
    path = Path(repos_dir) / repo.replace("/", "+")
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        synth_git.git(path, "init", "-q", "--bare")
    return path


def release_commit(bare: Path, spec: str) -> str:
    """The pristine commit of ``spec``'s sdist in ``bare`` (materialized and fetched in once)."""
    name, version = pypi_source.parse_spec(spec)
    ref = f"{RELEASE_REF_PREFIX}{name}-{version}"
    proc = synth_git.gitutil.run_git(bare, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}",
                                     env=synth_git.git_env(), check=False)
    if proc.returncode == 0:
        return proc.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="expagent-sdist-", dir=bare.parent) as tmp:
        work = Path(tmp) / "repo"
        sha = pypi_source.materialize(spec, work)
        synth_git.git(bare, "fetch", "-q", "--no-tags", str(work), f"+refs/heads/main:{ref}")
    return sha


def _fuzzy_commit(repo: Path, parent: str, patch: str, message: str, reverse: bool) -> str | None:
    """``parent`` + ``patch`` applied with GNU patch's fuzz (``--fuzz=3``, in reverse if asked), as a commit; None
    when a hunk still fails. Only the files the patch touches are checked out, into a scratch directory."""
    import subprocess

    files = patch_files(patch, include_old=True)
    with tempfile.TemporaryDirectory(prefix="expagent-sdist-fuzz-") as tmp:
        work = Path(tmp) / "tree"
        work.mkdir()
        env = synth_git.git_env({"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(work)})
        synth_git.git(repo, "read-tree", parent, env=env)
        present = synth_git.git(repo, "ls-files", "-z", "--", *files, env=env).split("\0")
        present = [f for f in present if f]
        if present:
            synth_git.git(repo, "checkout-index", "-f", "--", *present, env=env)
        # --force, not --batch: --batch takes a patch that looks reversed and applies it the other way round
        proc = subprocess.run(["patch", "--force", "-s", "-p1", "--fuzz=3", "--no-backup-if-mismatch", "-r", "-",
                               *(["-R"] if reverse else [])], cwd=work, input=patch, text=True, capture_output=True)
        if proc.returncode != 0:
            return None
        synth_git.git(repo, "add", "-A", "-f", "--", *files, env=env)
        tree = synth_git.git(repo, "write-tree", env=env).strip()
        return synth_git.git(repo, "commit-tree", tree, "-p", parent, "-m", message, env=env).strip()


def _diff_files(repo: Path, a: str, b: str, files: Sequence[str]) -> str:
    """``git diff a b -- files``, as a patch ``git apply`` accepts."""
    return synth_git.git(repo, "diff", "--no-color", "--no-ext-diff", "--no-renames", a, b, "--", *files)


def _reverse(repo: Path, commit: str, patch: str, message: str) -> tuple[str, str] | None:
    """(commit with ``patch`` reverse-applied, how: "exact" or "fuzz"), or None when it does not reverse."""
    if _applies(repo, commit, patch, reverse=True):
        return synth_git.commit_patch(repo, commit, patch, message, reverse=True), "exact"
    fuzzy = _fuzzy_commit(repo, commit, patch, message, reverse=True)
    return (fuzzy, "fuzz") if fuzzy else None


def reconstruct(task, candidates: Sequence[str], repos_dir: Path) -> Reconstruction:
    """The base state of ``task`` from the first of ``candidates`` (``name==version`` specs) that fits.

    Per candidate: when the gold patch applies forward, the release is used as it is (it precedes the fix);
    otherwise the gold patch is reverse-applied (exactly, else with GNU patch's fuzz: the code moved between the
    fix and the release), and so is the test patch when the release holds it. The candidate fits when the test
    patch then applies exactly, as the grader applies it. ``repos_dir`` receives the bare repository
    ``<owner>+<name>``, where the reconstruction is the branch ``sdist-base/<instance_id>``.
    """
    if not task.patch:
        raise SdistBaseError(f"{task.instance_id}: no gold patch to place the release against")
    bare = init_repos_dir(repos_dir, task.repo)
    rejected: list[str] = []
    for spec in candidates:
        try:
            pristine = release_commit(bare, spec)
        except pypi_source.PypiSourceError as exc:
            rejected.append(f"{spec}: {UNAVAILABLE}: {exc}")
            continue
        archive = pypi_source.download_sdist(spec).name
        if _applies(bare, pristine, task.patch):
            mode, base = AS_RELEASED, pristine
        else:
            gold = _reverse(bare, pristine, task.patch, f"sdist base: {task.instance_id} (gold reversed)")
            if gold is not None:
                base, how = gold
                mode = GOLD_REVERSED if how == "exact" else GOLD_REVERSED + " with fuzz"
            elif _fuzzy_commit(bare, pristine, task.patch, "probe", reverse=False):
                # the grader applies a candidate with ``patch --fuzz=5`` when ``git apply`` refuses it, so does gold
                mode, base = AS_RELEASED + " (the gold patch applies with fuzz)", pristine
            else:
                rejected.append(f"{spec}: the gold patch neither applies nor reverse-applies (even with fuzz)")
                continue
        tests, rebased = "", None
        if task.test_patch.strip() and not _applies(bare, base, task.test_patch):
            # the release's test files moved on from the record's: place the test patch with fuzz (in reverse when
            # the release holds it) and grade with it rebased on the release, from the base's test files to the
            # ones with the tests in
            placing = "applied" if mode.startswith(AS_RELEASED) else "reversed"
            message = f"sdist base: {task.instance_id} (tests {placing})"
            if mode.startswith(AS_RELEASED):
                placed = _fuzzy_commit(bare, base, task.test_patch, message, reverse=False)
                with_tests = placed
                tests = "test patch applied with fuzz"
            else:
                placed, with_tests = _reverse(bare, base, task.test_patch, message), base
                if placed is not None:
                    base = placed[0]
                    tests = "test patch reverse-applied" + (" with fuzz" if placed[1] == "fuzz" else "")
            if placed is None:
                rejected.append(f"{spec}: {mode}, but the test patch does not apply to it, even with fuzz")
                continue
            if not _applies(bare, base, task.test_patch):
                rebased = _diff_files(bare, base, with_tests, patch_files(task.test_patch, include_old=True))
                tests += ", graded with the test patch rebased on the release's test files"
        synth_git.git(bare, "update-ref", BASE_REF_PREFIX + task.instance_id, base)
        return Reconstruction(task.instance_id, spec, archive, mode, pristine, base, tests, tuple(rejected), rebased)
    raise SdistBaseError(f"{task.instance_id}: no release fits ({'; '.join(rejected) or 'no candidates'})")


def retarget(task, rec: Reconstruction, env_commit: str | None = None):
    """``task`` graded on the reconstruction: its base is ``rec.base_commit`` and its environment is built from
    ``env_commit`` (default: the pristine release, so instances of one release share one environment)."""
    env = env_commit or rec.release_commit
    task = dataclasses.replace(task, base_commit=rec.base_commit, environment_setup_commit=env, env_commit=env)
    return dataclasses.replace(task, test_patch=rec.test_patch) if rec.test_patch is not None else task
