"""``expagent tasks synth``: bug-fix tasks made from a repository that has tests.

The pipeline, for a local git repository or a PyPI sdist (``name==version``):

1. make a pristine commit (the sdist, committed deterministically; or the repository's ``HEAD``),
   build the suite's environment for it, and run the tests twice: they must all pass (otherwise
   nothing is generated and the error says which fail);
2. for each source module, plant candidate mutations (``synth_mutations``) one at a time in a scratch
   checkout and run the module's test files; keep a mutation only when some tests fail and the rest
   pass, and the same outcome comes back on a second run (discards are counted by reason);
3. write the symptom as a user would (``synth_statement``), optionally rewritten by a model;
4. commit each kept mutation on top of the pristine commit (deterministic shas), take the gold patch
   as the diff that reverts it, and write ``suite.toml`` + ``tasks.jsonl``.

Tasks of one module form a chain (the same ``chain`` field, increasing ``created_at``), so replaying
a suite in order exercises what memory learned from the module's earlier bugs.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from expagent.codeintel.filekinds import is_pytest_file
from expagent.errors import ExpagentError
from expagent.fsutil import atomic_write_text
from expagent.tasks import synth_git
from expagent.tasks.logparse import FAILING, PASSING
from expagent.tasks.suite import EnvRecipe
from expagent.tasks.synth_mutations import Mutation, find_mutations, ordered_for_trial
from expagent.tasks.synth_runner import TestRun, TestRunner
from expagent.tasks.synth_statement import (
    Observation, failure_for, observe, parse_failures, statement_mentions, write_statement,
)

DISCARD_REASONS = ("nothing_failed", "everything_failed", "broke_collection", "timeout", "flaky",
                   "unclear_symptom", "statement_leaks")
_SKIP_DIRS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "benchmark",
              "bench", "scripts", "tools", ".github", "build", "dist"}
_SKIP_FILES = {"setup.py", "conftest.py", "noxfile.py", "tasks.py", "_version.py", "version.py", "__main__.py"}
LOCAL_REPO_DIR = "repo.git"  # a local repository's suite keeps its commits here, beside suite.toml
BASELINE_TIMEOUT = 900.0  # seconds for one run of the unchanged test suite
CREATED_BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


class SynthError(ExpagentError):
    pass


@dataclass
class SynthOptions:
    n: int = 12
    chain_length: int = 4  # tasks per module (a chain); at least 3 makes a meaningful sequence
    seed: int = 0
    max_trials_per_module: int = 40
    name: str | None = None
    description: str | None = None
    python: str = "3.11"
    pip_packages: list[str] | None = None
    install: list[str] | None = None
    system_site_packages: bool | None = None
    test_cmd: str = "python -m pytest -rA -p no:cacheprovider"
    modules: list[str] | None = None  # restrict to these source files (paths relative to the repo)
    model: str | None = None  # rewrite statements with this model when given


@dataclass
class Candidate:
    mutation: Mutation
    test_files: list[str]
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    statement: str
    statement_source: str = "template"


@dataclass
class SynthReport:
    out: Path
    tasks: list[dict[str, Any]]
    tried: int
    discarded: collections.Counter
    baseline_tests: int
    chains: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "tasks": len(self.tasks),
            "chains": self.chains,
            "tried": self.tried,
            "kept": len(self.tasks),
            "discarded": dict(self.discarded),
            "baseline_tests": self.baseline_tests,
        }


# ---------------------------------------------------------------------------------------------------------------------
# the source repository


@dataclass
class Source:
    repo: str  # "owner/name" as written in the suite
    version: str
    manifest_source: dict[str, str]  # {"pypi": spec} or {"path": ...}
    package: str  # name shown in problem statements


def _is_pypi_spec(text: str) -> bool:
    return text.startswith("pypi:") or ("==" in text and not Path(text).exists())


def prepare_source(spec: str, work: Path, echo: Callable[[str], None] = lambda _msg: None) -> tuple[Source, str]:
    """Put a git repository holding the pristine source at ``work``; return (source, pristine sha)."""
    from expagent.tasks import pypi_source

    if _is_pypi_spec(spec):
        pin = spec[len("pypi:"):] if spec.startswith("pypi:") else spec
        name, version = pypi_source.parse_spec(pin)
        sha = pypi_source.materialize(pin, work)
        return Source(repo=f"pypi/{name}", version=version, manifest_source={"pypi": f"{name}=={version}"},
                      package=name), sha
    path = Path(spec).expanduser().resolve()
    if not path.is_dir():
        raise SynthError(f"no such repository: {spec} (give a git repository path or a PyPI pin name==version)")
    try:
        top = synth_git.git(path, "rev-parse", "--show-toplevel").strip()
        sha = synth_git.git(path, "rev-parse", "HEAD").strip()
    except synth_git.SynthGitError:
        raise SynthError(f"{path} is not a git repository with a commit (run git init and commit it first)") from None
    if Path(top).resolve() != path:
        raise SynthError(f"{path} is inside the git repository {top}; give the repository's top directory")
    if synth_git.git(path, "status", "--porcelain", "--untracked-files=no").strip():
        echo(f"notice: {path} has uncommitted changes; synth uses the last commit ({sha[:12]}) and ignores them")
    # the user's repository is never touched: tasks are made in a clone
    synth_git.git(work.parent, "clone", "-q", "--no-hardlinks", str(path), str(work))
    synth_git.git(work, "checkout", "-q", "--detach", sha)
    # the suite carries its own bare repository (pristine history + task commits): see export_local_repo
    return Source(repo=f"local/{path.name}", version="0", manifest_source={"path": LOCAL_REPO_DIR},
                  package=path.name), sha


# ---------------------------------------------------------------------------------------------------------------------
# files


def _tracked_files(work: Path) -> list[str]:
    return [line for line in synth_git.git(work, "ls-files", "-z").split("\0") if line]


def find_test_files(files: list[str]) -> list[str]:
    return sorted(f for f in files if is_pytest_file(f))


def find_source_modules(files: list[str]) -> list[str]:
    modules = []
    for path in files:
        parts = path.split("/")
        if not path.endswith(".py") or is_pytest_file(path) or parts[-1] in _SKIP_FILES:
            continue
        if any(part in _SKIP_DIRS or part.startswith(".") for part in parts[:-1]):
            continue
        modules.append(path)
    return sorted(modules)


def tests_for_module(module: str, test_files: list[str], work: Path) -> list[str]:
    """The test files that exercise ``module``: named after it, else importing it, else all of them."""
    stem = Path(module).stem
    if stem == "__init__":
        stem = Path(module).parent.name
    named = [t for t in test_files if re.search(rf"(^|/)(test_{re.escape(stem)}(_\w+)?|{re.escape(stem)}_test)\.py$", t)]
    if named:
        return named
    dotted = module[:-3].replace("/", ".").removesuffix(".__init__")
    importing = []
    for test in test_files:
        try:
            text = (work / test).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if re.search(rf"\b(import|from)\s+{re.escape(dotted)}\b", text) or re.search(rf"\bimport\s+{re.escape(stem)}\b", text):
            importing.append(test)
    return importing or list(test_files)


def _module_api(text: str) -> set[str]:
    import ast

    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


# ---------------------------------------------------------------------------------------------------------------------
# the pipeline


class Synthesizer:
    def __init__(self, spec: str, options: SynthOptions, echo: Callable[[str], None] | None = None):
        self.spec = spec
        self.options = options
        self.echo = echo or (lambda _msg: None)
        self.discarded: collections.Counter = collections.Counter()
        self.tried = 0

    # -- environment -----------------------------------------------------------------------------------

    def recipe(self, source: Source) -> EnvRecipe:
        opts = self.options
        local = "path" in source.manifest_source
        system_site = opts.system_site_packages if opts.system_site_packages is not None else local
        pip_packages = opts.pip_packages if opts.pip_packages is not None else ([] if system_site else ["pytest"])
        return EnvRecipe(
            python=opts.python,
            pip_packages=list(pip_packages),
            install=list(opts.install or []),
            system_site_packages=bool(system_site),
            test_cmd=opts.test_cmd,
            parser="pytest",
            timeout=900.0,
        )

    def _runner(self, source: Source, recipe: EnvRecipe, work: Path, checkout: Path, pristine: str) -> TestRunner:
        from expagent.tasks.envs import build_env

        env = build_env(recipe, source.repo, work, pristine, echo=self.echo, label=source.version)
        return TestRunner(checkout, recipe.test_cmd, recipe.parser, env.shell_prefix(str(checkout)))

    # -- the main loop -----------------------------------------------------------------------------------

    def run(self, out: Path, force: bool = False) -> SynthReport:
        out = Path(out)
        if out.exists() and any(out.iterdir()) and not force:
            raise SynthError(f"{out} exists and is not empty (choose another --out or pass --force)")
        with tempfile.TemporaryDirectory(prefix="expagent-synth-") as tmp:
            tmp_path = Path(tmp)
            work = tmp_path / "repo"
            source, pristine = prepare_source(self.spec, work, self.echo)
            self.echo(f"source: {source.repo} {source.version} at {pristine[:12]}")
            checkout = self.checkout = tmp_path / "scratch"
            synth_git.git(tmp_path, "clone", "-q", "--no-checkout", str(work), str(checkout))
            synth_git.git(checkout, "checkout", "-q", "--detach", pristine)
            files = _tracked_files(checkout)
            test_files = find_test_files(files)
            if not test_files:
                raise SynthError(
                    f"no tests found in {self.spec} (no test_*.py or *_test.py files): synth needs a test suite; "
                    "generated nothing"
                )
            unknown = [m for m in self.options.modules or [] if m not in find_source_modules(files)]
            if unknown:
                raise SynthError(f"not a source module of this repository: {unknown[0]} (give a path like "
                                 f"{(find_source_modules(files) or ['pkg/mod.py'])[0]})")
            recipe = self.recipe(source)
            runner = self._runner(source, recipe, work, checkout, pristine)
            baseline = self._baseline(runner, test_files)
            candidates = self._search(runner, checkout, files, test_files, baseline, source)
            tasks = self._write_tasks(work, pristine, source, candidates, recipe, out)
        chains = collections.Counter(task["chain"] for task in tasks)
        return SynthReport(out=out, tasks=tasks, tried=self.tried, discarded=self.discarded,
                           baseline_tests=len(baseline), chains=dict(chains))

    def _timeout(self, duration: float) -> float:
        return max(30.0, 10.0 * duration)

    def _baseline(self, runner: TestRunner, test_files: list[str]) -> dict[str, str]:
        """Test id -> status on the pristine source; every test must pass, twice."""
        first = runner.run(test_files, timeout=BASELINE_TIMEOUT)
        if first.timed_out:
            raise SynthError("the test suite timed out before any mutation; generated nothing")
        second = runner.run(test_files, timeout=self._timeout(first.duration))
        self.baseline_duration = max(first.duration, second.duration)
        if not first.statuses:
            tail = [line for line in first.output.splitlines() if line.strip()][-1:] or ["no output"]
            raise SynthError(f"the tests ran but reported no results ({tail[0].strip()[:200]}); generated nothing")
        failing = sorted(t for t, s in first.statuses.items() if s in FAILING)
        failing += sorted(t for t, s in second.statuses.items() if s in FAILING and t not in failing)
        if failing:
            raise SynthError(
                f"tests fail before any mutation: {len(failing)} failing (e.g. {failing[0]}); "
                "fix them or give a clean commit; generated nothing"
            )
        differ = sorted(t for t in first.statuses if first.statuses[t] != second.statuses.get(t))
        if differ:
            raise SynthError(f"test results differ between two runs of the unchanged source (e.g. {differ[0]}); generated nothing")
        passing = {t: s for t, s in first.statuses.items() if s in PASSING}
        self.echo(f"baseline: {len(passing)} tests pass ({first.duration:.1f}s)")
        return passing

    def _search(self, runner, checkout, files, test_files, baseline, source) -> list[tuple[str, list[Candidate]]]:
        """Kept candidates grouped by module, modules in the order they were searched."""
        opts = self.options
        modules = list(opts.modules) if opts.modules else find_source_modules(files)
        plans = []
        for module in modules:
            text = (checkout / module).read_text(encoding="utf-8", errors="replace")
            mutations = find_mutations(module, text)
            tests = tests_for_module(module, test_files, checkout)
            if mutations and tests:
                dedicated = len(tests) < len(test_files)
                plans.append((not dedicated, -len(mutations), module, mutations, tests, text))
        if not opts.modules:  # modules with their own test file first, then the richest in candidates
            plans.sort(key=lambda p: p[:3])
        kept: list[tuple[str, list[Candidate]]] = []
        total = 0
        for _, _, module, mutations, tests, text in plans:
            if total >= opts.n:
                break
            want = min(opts.chain_length, opts.n - total)
            if want < 3 and total > 0 and not opts.modules:
                want = 3  # a chain shorter than three is not a sequence; overshoot n a little instead
            self.echo(f"module {module}: {len(mutations)} candidate mutations, tests {', '.join(tests)}")
            found = self._module(runner, checkout, module, text, mutations, tests, baseline, source, want)
            if found:
                kept.append((module, found))
                total += len(found)
        if not total:
            raise SynthError(
                f"no mutation made some tests fail while the rest passed (tried {self.tried}; discarded: "
                f"{dict(self.discarded) or 'none'}); generated nothing"
            )
        return kept

    def _module(self, runner, checkout, module, text, mutations, tests, baseline, source, want) -> list[Candidate]:
        opts = self.options
        base = {t: s for t, s in baseline.items() if t.split("::")[0] in tests}
        if len(tests) < len(set(t.split("::")[0] for t in baseline)):
            # these files alone (as trials and grading run them) may behave differently from the whole suite
            alone = runner.run(tests, timeout=self._timeout(getattr(self, "baseline_duration", 10.0)))
            base = {t: s for t, s in base.items() if alone.statuses.get(t) in PASSING}
        if not base:
            return []
        api = _module_api(text)
        found: list[Candidate] = []
        used_functions: set[str] = set()
        trials = 0
        path = checkout / module
        seed = opts.seed * 1_000_003 + sum(module.encode())
        for mutation in ordered_for_trial(mutations, seed):
            if len(found) >= want or trials >= opts.max_trials_per_module:
                break
            if mutation.function in used_functions:
                continue
            trials += 1
            self.tried += 1
            try:
                path.write_text(mutation.mutated, encoding="utf-8")
                candidate, reason = self._try(runner, tests, base, mutation, api, source)
            finally:
                path.write_text(text, encoding="utf-8")
            if candidate is None:
                self.discarded[reason] += 1
                continue
            used_functions.add(mutation.function)
            found.append(candidate)
            self.echo(f"  kept {mutation.kind} in {mutation.function} (line {mutation.line}): "
                      f"{len(candidate.fail_to_pass)} failing, {len(candidate.pass_to_pass)} passing")
        return found

    def _classify(self, run: TestRun, base: dict[str, str]) -> tuple[list[str], list[str], str]:
        if run.timed_out:
            return [], [], "timeout"
        missing = [t for t in base if t not in run.statuses]
        f2p = [t for t in base if run.statuses.get(t) in FAILING]
        p2p = [t for t in base if run.statuses.get(t) in PASSING]
        if missing:
            return f2p, p2p, "broke_collection"
        if not f2p:
            return f2p, p2p, "nothing_failed"
        if not p2p:
            return f2p, p2p, "everything_failed"
        return f2p, p2p, ""

    def _try(self, runner, tests, base, mutation, api, source) -> tuple[Candidate | None, str]:
        timeout = self._timeout(getattr(self, "baseline_duration", 10.0))
        first = runner.run(tests, timeout=timeout)
        f2p, p2p, reason = self._classify(first, base)
        if reason:
            return None, reason
        second = runner.run(tests, timeout=timeout)
        f2p2, p2p2, reason2 = self._classify(second, base)
        if reason2 or f2p2 != f2p or p2p2 != p2p:
            return None, "flaky"
        statement, reason = self._statement(first, f2p, mutation, api, source)
        if statement is None:
            return None, reason
        return Candidate(mutation, tests, f2p, p2p, statement), ""

    def _statement(self, run: TestRun, f2p: list[str], mutation: Mutation, api: set[str], source: Source):
        failures = parse_failures(run.output)
        checkout = self.checkout

        def read_file(rel: str) -> str:
            return (checkout / rel).read_text(encoding="utf-8")

        observations: list[Observation] = []
        seen_calls = set()
        for test_id in f2p:
            failure = failure_for(test_id, failures)
            obs = observe(failure, read_file) if failure else None
            if obs is None or obs.call in seen_calls:
                continue
            seen_calls.add(obs.call)
            observations.append(obs)
            if len(observations) >= 4:
                break
        if not observations:
            return None, "unclear_symptom"
        # a reproducer that leans on a test class's attributes (``self.x``) reads worst: show others first
        observations.sort(key=lambda o: any("self." in line for line in [*o.setup, o.call]))
        statement = write_statement(observations, source.package, source.version if source.version != "0" else "", api)
        if statement_mentions(statement, forbidden_words(mutation, f2p)):
            return None, "statement_leaks"
        return statement, ""

    # -- writing -----------------------------------------------------------------------------------------

    def _write_tasks(self, work: Path, pristine: str, source: Source, kept, recipe: EnvRecipe, out: Path):
        opts = self.options
        name = opts.name or out.name
        slug = re.sub(r"[^A-Za-z0-9]+", "_", source.repo.split("/")[-1]).strip("_")
        rewrite = _statement_rewriter(opts.model) if opts.model else None
        records = []
        for chain_index, (module, candidates) in enumerate(kept):
            chain = module
            stem = Path(module).stem if Path(module).stem != "__init__" else Path(module).parent.name
            for k, cand in enumerate(candidates, 1):
                instance_id = f"{slug}__{re.sub(r'[^A-Za-z0-9]+', '_', stem)}-{k}"
                blob = synth_git.git(work, "hash-object", "-w", "--stdin", input=cand.mutation.mutated).strip()
                with tempfile.TemporaryDirectory(prefix="expagent-synth-index-") as tmp:
                    env = synth_git.git_env({"GIT_INDEX_FILE": str(Path(tmp) / "index")})
                    synth_git.git(work, "read-tree", pristine, env=env)
                    mode = synth_git.git(work, "ls-tree", pristine, "--", module).split()[0]
                    synth_git.git(work, "update-index", "--cacheinfo", f"{mode},{blob},{module}", env=env)
                    tree = synth_git.git(work, "write-tree", env=env).strip()
                    base = synth_git.git(work, "commit-tree", tree, "-p", pristine, "-m",
                                         synth_git.task_commit_message(instance_id), env=env).strip()
                gold = synth_git.diff(work, base, pristine, module)
                # the builder recreates the base commit from the gold patch: check that it gives this sha
                rebuilt = synth_git.commit_patch(work, pristine, gold, synth_git.task_commit_message(instance_id), reverse=True)
                if rebuilt != base:
                    raise SynthError(f"internal error: rebuilding {instance_id} from its gold patch gave another commit")
                synth_git.git(work, "update-ref", synth_git.TASK_REF_PREFIX + instance_id, base)
                statement, origin = cand.statement, "template"
                if rewrite is not None:
                    rewritten = rewrite(cand.statement, forbidden_words(cand.mutation, cand.fail_to_pass))
                    if rewritten:
                        statement, origin = rewritten, "model"
                created = CREATED_BASE + dt.timedelta(days=chain_index, hours=k)
                records.append({
                    "instance_id": instance_id,
                    "repo": source.repo,
                    "base_commit": base,
                    "patch": gold,
                    "test_patch": "",
                    "problem_statement": statement,
                    "hints_text": "",
                    "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "version": source.version,
                    "environment_setup_commit": pristine,
                    "FAIL_TO_PASS": cand.fail_to_pass,
                    "PASS_TO_PASS": cand.pass_to_pass,
                    "chain": chain,
                    "test_files": cand.test_files,
                    "mutation": cand.mutation.record(),
                    "statement_source": origin,
                })
        description = opts.description or (
            f"Bug-fix tasks synthesized from {source.package} {source.version if source.version != '0' else ''}"
            f" by planting small mutations in real functions ({len(records)} tasks, "
            f"{len(kept)} chain{'s' if len(kept) != 1 else ''} by module)."
        ).replace("  ", " ")
        write_suite(out, name, description, source, recipe, records)
        if source.manifest_source.get("path") == LOCAL_REPO_DIR:
            export_local_repo(work, pristine, out / LOCAL_REPO_DIR)
        return records


def export_local_repo(work: Path, pristine: str, dest: Path) -> None:
    """A bare repository at ``dest`` with the pristine history (branch ``main``) and every task commit (tags)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    synth_git.git(dest, "init", "-q", "--bare")
    synth_git.git(work, "push", "-q", str(dest), f"{pristine}:refs/heads/main",
                  f"{synth_git.TASK_REF_PREFIX}*:{synth_git.TASK_REF_PREFIX}*")


def forbidden_words(mutation: Mutation, f2p: list[str]) -> list[str]:
    """Strings a problem statement must not contain: failing tests' names and the mutated source line."""
    words = []
    for test_id in f2p:
        last = test_id.split("::")[-1].split("[")[0]
        if last.startswith("test"):
            words.append(last)
    original_lines = mutation.original.splitlines()
    mutated_lines = mutation.mutated.splitlines()
    changed = set(original_lines) ^ set(mutated_lines)
    words += [line.strip() for line in changed if len(line.strip()) >= 12]
    return words


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_suite(out: Path, name: str, description: str, source: Source, recipe: EnvRecipe, records: list[dict]) -> None:
    """Write ``suite.toml`` and ``tasks.jsonl`` (each atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    (key, value), = source.manifest_source.items()
    lines = [
        f"name = {_toml_str(name)}",
        f"description = {_toml_str(description)}",
        "recipes = \"none\"",
        "",
        "# made by `expagent tasks synth`: each task's base commit is the pristine source plus one planted",
        "# mutation, rebuilt deterministically from the gold patch (see docs/synth.md)",
        f"[repos.{_toml_str(source.repo)}]",
        f"{key} = {_toml_str(value)}",
        "",
        "[env]",
        f"python = {_toml_str(recipe.python)}",
        f"pip_packages = {json.dumps(recipe.pip_packages)}",
        f"install = {json.dumps(recipe.install)}",
    ]
    if recipe.system_site_packages:
        lines.append("system_site_packages = true")
    lines += [
        f"test_cmd = {_toml_str(recipe.test_cmd)}",
        f"parser = {_toml_str(recipe.parser)}",
        f"timeout = {int(recipe.timeout)}",
        "",
    ]
    atomic_write_text(out / "suite.toml", "\n".join(lines))
    atomic_write_text(out / "tasks.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _statement_rewriter(model_name: str):
    """A function rewriting a statement with ``model_name``; returns None when the model fails or leaks."""
    from expagent.config import Settings
    from expagent.models.factory import make_model

    model = make_model(Settings(model=model_name))
    prompt = (
        "Rewrite this bug report so it reads like a real user's GitHub issue: keep every code example, "
        "observed value and expected value exactly, keep it short, do not guess at the cause, do not "
        "mention tests, and do not add code that is not in the report. Reply with the report only.\n\n"
    )

    def rewrite(statement: str, forbidden: list[str]) -> str | None:
        from expagent.errors import ModelError

        try:
            reply = model.query([{"role": "user", "content": prompt + statement}])
        except ModelError:
            return None
        text = (reply.content or "").strip()
        if not text or statement_mentions(text, forbidden):
            return None
        return text + "\n"

    return rewrite


def synthesize(spec: str, out: Path, options: SynthOptions | None = None, *, force: bool = False,
               echo: Callable[[str], None] | None = None) -> SynthReport:
    return Synthesizer(spec, options or SynthOptions(), echo).run(Path(out), force=force)
