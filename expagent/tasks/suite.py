"""Task suites: SWE-bench-compatible task records plus a small manifest.

A suite is either

* a directory ``swe_tasks/<suite>/`` holding ``suite.toml`` (the manifest) and ``tasks.jsonl``, or
* a plain SWE-bench JSONL, JSON or parquet file (e.g. SWE-bench Lite), a directory written by
  ``datasets``' ``save_to_disk``, or a dataset name (``princeton-nlp/SWE-bench_Lite``, a split)
  read from the local ``datasets`` cache; their repositories come from GitHub URLs (or
  ``--repos DIR``) and their environments from the SWE-bench per-version recipes.

Task records are SWE-bench instances: ``instance_id, repo, base_commit, problem_statement,
test_patch, FAIL_TO_PASS, PASS_TO_PASS, version, created_at`` (``patch``, the gold patch, is
used only to validate the suite; ``environment_setup_commit`` is optional). ``FAIL_TO_PASS`` and
``PASS_TO_PASS`` may be lists or JSON-encoded strings.

The manifest (``suite.toml``)::

    name = "demo"
    description = "what these tasks have in common"
    tasks = "tasks.jsonl"          # optional, the default
    recipes = "swebench"           # optional: use SWE-bench's per-version recipes for known repos

    [repos."owner/name"]           # one table per repository; exactly one source:
    url = "https://host/owner/name.git"   # cloned once into the cache
    # path = "repos/name"                 # a local clone (relative to the suite directory)
    # pypi = "attrs==23.2.0"              # a git repo made from the PyPI sdist

    [env]                          # defaults for every repository (see ``EnvRecipe``)
    python = "3.11"
    install = ["python -m pip install -e ."]
    test_cmd = "python -m pytest -rA -p no:cacheprovider"
    parser = "pytest"
    timeout = 900

    [repos."owner/name".env]       # per-repository overrides
    [repos."owner/name".env.versions."1.2"]   # per-version overrides

Later layers win: built-in defaults < ``[env]`` < SWE-bench recipe (+ carried overrides)
< ``[repos.X.env]`` < ``[repos.X.env.versions."V"]``.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError


class SuiteError(ExpagentError):
    """A suite that cannot be read or is malformed."""


REQUIRED_FIELDS = ("instance_id", "repo", "base_commit", "problem_statement", "test_patch")


@dataclass
class EnvRecipe:
    """How to build and use a Python environment for one (repository, version).

    Build order (SWE-bench's, after ``bootstrap``): ``requirements`` (the first of these files that exists in the
    environment checkout) and ``packages``, then ``pip_packages``, then ``pre_install`` and
    ``install`` run as shell commands in the environment checkout with the venv activated.
    ``constraints`` are pins applied to every pip call of the build (``PIP_CONSTRAINT``): this is
    where pins that no longer resolve today are fixed; ``index_date`` resolves the build against the package
    index as it was on a date, for unpinned requirements that no longer resolve together today. ``system_packages`` are OS packages the
    recipe needs; the local backend does not install them (it records them in the build log).
    """

    python: str = "3.11"
    # pip requirement specs installed first of all, e.g. a newer pip for an old interpreter
    bootstrap: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    # requirement names dropped from that file (packages that no longer install, e.g. removed stubs)
    requirements_exclude: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    # conda environment files (the first that exists at env_commit), translated to pip requirements
    conda_env: list[str] = field(default_factory=list)
    pip_packages: list[str] = field(default_factory=list)
    pre_install: list[str] = field(default_factory=list)
    install: list[str] = field(default_factory=lambda: ["python -m pip install -e ."])
    constraints: list[str] = field(default_factory=list)
    # resolve every pip call of the build against the index as of this date ("created_at", "env_commit" or an
    # ISO date; ``expagent.tasks.index_date``): for recipes whose unpinned requirements no longer resolve today
    index_date: str = ""
    system_packages: list[str] = field(default_factory=list)
    # give the venv the host interpreter's site-packages (used by tests and for offline suites)
    system_site_packages: bool = False
    # shell commands run in every fresh test checkout before the patches (e.g. SWE-bench's seds on tox.ini)
    checkout_setup: list[str] = field(default_factory=list)
    # SWE-bench's eval_commands: ``export`` lines set the test run's environment, the rest run in the checkout
    # before the tests (``runtime.eval_setup``)
    eval_commands: list[str] = field(default_factory=list)
    # how tests run: ``{tests}`` is replaced by the test files of the test patch (appended when absent)
    test_cmd: str = "python -m pytest -rA -p no:cacheprovider"
    parser: str = "pytest"
    timeout: float = 900.0

    #: fields that shape the environment itself (the cache key); the rest only affect test runs
    BUILD_FIELDS = (
        "python", "bootstrap", "requirements", "requirements_exclude", "packages", "conda_env", "pip_packages", "pre_install", "install",
        "constraints", "system_site_packages", "index_date",
    )

    def updated(self, values: dict[str, Any], origin: str) -> "EnvRecipe":
        """A copy with ``values`` applied; ``extend_<field>`` appends to a list field."""
        known = {f.name: f for f in fields(self)}
        data = {name: getattr(self, name) for name in known}
        for key, value in values.items():
            if key == "versions":
                continue
            name = key[len("extend_"):] if key.startswith("extend_") else key
            if name not in known:
                raise SuiteError(f"{origin}: unknown env setting '{key}'")
            if isinstance(data[name], list):
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise SuiteError(f"{origin}: env '{key}' must be a list of strings")
                data[name] = [*data[name], *items] if key.startswith("extend_") else list(items)
            elif name == "timeout":
                data[name] = float(value)
            elif name == "system_site_packages":
                data[name] = bool(value)
            else:
                data[name] = str(value)
        return EnvRecipe(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class RepoSource:
    """Where a repository comes from: exactly one of ``url``, ``path``, ``pypi``."""

    repo: str
    url: str | None = None
    path: Path | None = None
    pypi: str | None = None
    env: dict[str, Any] = field(default_factory=dict)


@dataclass
class Task:
    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    test_patch: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    version: str = ""
    created_at: str = ""
    patch: str | None = None  # the gold patch: only for validation, never shown to an agent
    environment_setup_commit: str | None = None
    hints_text: str = ""
    #: the commit whose dependencies the shared (repo, version) environment is built from:
    #: ``environment_setup_commit`` when the record has one, else the first task's base commit
    env_commit: str = ""
    suite: "Suite | None" = field(default=None, repr=False, compare=False)

    @property
    def test_files(self) -> list[str]:
        from expagent.tasks.patches import test_directives

        if not self.test_patch.strip():
            # synthesized tasks: the tests already exist; run the files their test ids name
            return sorted({t.split("::")[0] for t in self.fail_to_pass + self.pass_to_pass if "::" in t})
        return test_directives(self.test_patch, self.repo)

    def to_record(self) -> dict[str, Any]:
        """The SWE-bench record for this task (lists, not JSON strings)."""
        record = {
            "instance_id": self.instance_id,
            "repo": self.repo,
            "base_commit": self.base_commit,
            "problem_statement": self.problem_statement,
            "test_patch": self.test_patch,
            "FAIL_TO_PASS": list(self.fail_to_pass),
            "PASS_TO_PASS": list(self.pass_to_pass),
            "version": self.version,
            "created_at": self.created_at,
            "hints_text": self.hints_text,
        }
        if self.patch is not None:
            record["patch"] = self.patch
        if self.environment_setup_commit:
            record["environment_setup_commit"] = self.environment_setup_commit
        return record


@dataclass
class Suite:
    name: str
    description: str
    root: Path  # the suite directory (or the JSONL file's directory)
    tasks: list[Task]
    repos: dict[str, RepoSource]
    env: dict[str, Any] = field(default_factory=dict)  # the manifest's [env] table
    use_swebench_recipes: bool = True
    manifest_path: Path | None = None

    def task(self, instance_id: str) -> Task:
        for task in self.tasks:
            if task.instance_id == instance_id:
                return task
        known = ", ".join(t.instance_id for t in self.tasks[:5])
        more = f", ... ({len(self.tasks)} in all)" if len(self.tasks) > 5 else ""
        raise SuiteError(f"unknown instance {instance_id!r} in suite {self.name!r} (known: {known}{more})")

    def source(self, repo: str) -> RepoSource:
        if repo in self.repos:
            return self.repos[repo]
        # a plain SWE-bench file names GitHub repositories; a manifest must list its repositories
        if self.manifest_path is None:
            return RepoSource(repo=repo, url=f"https://github.com/{repo}.git")
        raise SuiteError(f"repository {repo!r} is not listed in {self.manifest_path} (add a [repos.\"{repo}\"] table)")

    def recipe(self, repo: str, version: str) -> EnvRecipe:
        """The environment recipe for ``repo`` at ``version`` (see the module docstring for layering)."""
        from expagent.tasks import swebench_specs

        recipe = EnvRecipe()
        origin = str(self.manifest_path or self.root)
        recipe = recipe.updated(self.env, f"{origin} [env]")
        if self.use_swebench_recipes:
            spec = swebench_specs.recipe_values(repo, version)
            if spec is not None:
                recipe = recipe.updated(spec, f"SWE-bench recipe for {repo} {version}")
        source_env = self.repos[repo].env if repo in self.repos else {}
        recipe = recipe.updated(source_env, f"{origin} [repos.\"{repo}\".env]")
        by_version = source_env.get("versions", {}) if isinstance(source_env, dict) else {}
        if str(version) in by_version:
            recipe = recipe.updated(by_version[str(version)], f"{origin} [repos.\"{repo}\".env.versions.\"{version}\"]")
        return recipe


# ---------------------------------------------------------------------------------------------------------------------
# loading


def _as_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise SuiteError(f"{where}: not a list nor a JSON-encoded list") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SuiteError(f"{where}: must be a list of test names")
    return list(value)


def task_from_record(record: dict[str, Any], where: str) -> Task:
    """One SWE-bench record to a ``Task``; ``where`` names the record in error messages."""
    if not isinstance(record, dict):
        raise SuiteError(f"{where}: a task record must be a JSON object")
    # test_patch may be "" (synthesized tasks: the tests already exist at the base commit), but must be present
    missing = [name for name in REQUIRED_FIELDS if not record.get(name) and not (name == "test_patch" and name in record)]
    if missing:
        raise SuiteError(f"{where}: missing field(s) {', '.join(missing)}")
    if "FAIL_TO_PASS" not in record:
        raise SuiteError(f"{where}: missing field FAIL_TO_PASS")
    return Task(
        instance_id=str(record["instance_id"]),
        repo=str(record["repo"]),
        base_commit=str(record["base_commit"]),
        problem_statement=str(record["problem_statement"]),
        test_patch=str(record["test_patch"]),
        fail_to_pass=_as_list(record.get("FAIL_TO_PASS"), f"{where}: FAIL_TO_PASS"),
        pass_to_pass=_as_list(record.get("PASS_TO_PASS"), f"{where}: PASS_TO_PASS"),
        version=str(record.get("version") or ""),
        created_at=str(record.get("created_at") or ""),
        patch=record.get("patch") or None,
        environment_setup_commit=record.get("environment_setup_commit") or None,
        hints_text=str(record.get("hints_text") or ""),
    )


def _json_records(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"cannot read tasks file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SuiteError(f"{path}: not a UTF-8 JSON or JSONL file") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}: malformed JSON: {exc}") from None
        return [(f"{path} item {i + 1}", item) for i, item in enumerate(data)]
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from None
    return records


def _parquet_records(path: Path) -> list[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SuiteError(f"reading {path.name} needs pyarrow (pip install 'expagent[swebench]')") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSErrors
        raise SuiteError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    return [(f"{path} row {i + 1}", row) for i, row in enumerate(rows)]


def tasks_from_records(records: list[tuple[str, Any]], origin: str) -> list[Task]:
    """``Task``s from ``(where, record)`` pairs; a duplicate ``instance_id`` is an error naming ``origin``."""
    tasks = [task_from_record(record, where) for where, record in records]
    seen: set[str] = set()
    for task in tasks:
        if task.instance_id in seen:
            raise SuiteError(f"{origin}: duplicate instance_id {task.instance_id!r}")
        seen.add(task.instance_id)
    return tasks


def read_tasks(path: Path) -> list[Task]:
    """Read SWE-bench records from a JSONL file, a JSON list, or a parquet file (as the datasets hub serves them)."""
    records = _parquet_records(path) if path.suffix == ".parquet" else _json_records(path)
    return tasks_from_records(records, str(path))


def _assign_env_commits(tasks: list[Task]) -> None:
    first_base: dict[tuple[str, str], str] = {}
    for task in tasks:
        first_base.setdefault((task.repo, task.version), task.base_commit)
    for task in tasks:
        task.env_commit = task.environment_setup_commit or first_base[(task.repo, task.version)]


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SuiteError(f"cannot read suite manifest {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"malformed suite manifest {path}: {exc}") from None


def _repo_sources(manifest: dict[str, Any], root: Path, path: Path) -> dict[str, RepoSource]:
    sources = {}
    repos = manifest.get("repos", {})
    if not isinstance(repos, dict):
        raise SuiteError(f"{path}: [repos] must be a table of \"owner/name\" tables")
    for repo, table in repos.items():
        if not isinstance(table, dict):
            raise SuiteError(f"{path}: [repos.\"{repo}\"] must be a table")
        given = [key for key in ("url", "path", "pypi") if table.get(key)]
        if len(given) != 1:
            raise SuiteError(f"{path}: [repos.\"{repo}\"] needs exactly one of url, path, pypi (got {given or 'none'})")
        local = None
        if table.get("path"):
            local = Path(table["path"]).expanduser()
            local = local if local.is_absolute() else (root / local)
        env = table.get("env", {})
        if not isinstance(env, dict):
            raise SuiteError(f"{path}: [repos.\"{repo}\".env] must be a table")
        sources[repo] = RepoSource(repo=repo, url=table.get("url"), path=local, pypi=table.get("pypi"), env=env)
    return sources


_DATASET_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_dataset_name(spec: str | Path) -> bool:
    """``owner/name`` that is not a path here and has no file suffix: a datasets-library name."""
    text = str(spec)
    if not _DATASET_NAME.fullmatch(text) or text.endswith((".jsonl", ".json", ".parquet", ".toml")):
        return False
    # "swe_tasks/typo" is a missing path, not a dataset: its first part is a directory here
    return not Path(text).expanduser().exists() and not Path(text.split("/")[0]).is_dir()


def find_suite_path(spec: str | Path) -> Path:
    """A suite given as a path, or as a bare name found under ``./swe_tasks`` or the project's ``swe_tasks``."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    bases = (Path.cwd() / "swe_tasks", Path(__file__).resolve().parents[2] / "swe_tasks")
    if "/" not in str(spec) and not str(spec).endswith((".jsonl", ".json", ".parquet", ".toml")):
        for base in bases:
            if (base / str(spec)).is_dir():
                return base / str(spec)
    known = sorted({d.name for base in bases if base.is_dir() for d in base.iterdir() if (d / "suite.toml").is_file()})
    raise SuiteError(f"no such suite: {spec} (give a suite directory, a suite.toml, a SWE-bench JSONL, JSON or parquet "
                     "file, or a dataset name such as princeton-nlp/SWE-bench_Lite"
                     + (f"; shipped suites: {', '.join(known)})" if known else ")"))


def load_suite(path: str | Path, split: str | None = None) -> Suite:
    """Load a suite directory, a ``suite.toml``, a plain SWE-bench JSONL/JSON/parquet file, a directory written
    by ``datasets``' ``save_to_disk``, or a dataset name (``owner/name``) from the ``datasets`` cache.

    ``split`` picks the split of a dataset (default ``test``); it is an error for other inputs.
    """
    if is_dataset_name(path):
        return _dataset_suite(str(path), split or "test")
    path = find_suite_path(path)
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        return _saved_dataset_suite(path, split)
    if split is not None:
        raise SuiteError(f"--split applies to datasets only ({path} is a suite file or directory)")
    if path.is_dir():
        manifest_path = path / "suite.toml"
        if not manifest_path.is_file():
            jsonl = path / "tasks.jsonl"
            if jsonl.is_file():
                return _plain_suite(jsonl, name=path.name)
            raise SuiteError(f"{path} is not a suite directory (no suite.toml)")
    elif path.suffix == ".toml":
        manifest_path = path
    else:
        return _plain_suite(path, name=path.stem)
    root = manifest_path.parent.resolve()
    manifest = _read_manifest(manifest_path)
    tasks_file = root / str(manifest.get("tasks", "tasks.jsonl"))
    tasks = read_tasks(tasks_file)
    env = manifest.get("env", {})
    if not isinstance(env, dict):
        raise SuiteError(f"{manifest_path}: [env] must be a table")
    recipes = str(manifest.get("recipes", "")).lower()
    if recipes not in ("", "swebench", "none"):
        raise SuiteError(f"{manifest_path}: recipes must be \"swebench\" or \"none\" (got {recipes!r})")
    suite = Suite(
        name=str(manifest.get("name") or root.name),
        description=str(manifest.get("description", "")),
        root=root,
        tasks=tasks,
        repos=_repo_sources(manifest, root, manifest_path),
        env=env,
        use_swebench_recipes=recipes == "swebench",
        manifest_path=manifest_path.resolve(),
    )
    EnvRecipe().updated(env, f"{manifest_path} [env]")  # fail early on a typo in [env]
    for task in tasks:
        suite.source(task.repo)
    _finish(suite)
    return suite


def _plain_suite(path: Path, name: str) -> Suite:
    return _records_suite(read_tasks(path), name, f"SWE-bench records from {path.name}", path.parent.resolve())


def _records_suite(tasks: list[Task], name: str, description: str, root: Path) -> Suite:
    suite = Suite(name=name, description=description, root=root, tasks=tasks, repos={}, use_swebench_recipes=True)
    _finish(suite)
    return suite


def _import_datasets(what: str):
    import os

    # never reach the hub: a dataset is read from the local cache or not at all
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise SuiteError(f"{what} needs the datasets library (pip install 'expagent[swebench]')") from None
    datasets.config.HF_DATASETS_OFFLINE = True  # also when it was imported before the variables were set
    return datasets


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _dataset_rows(dataset, origin: str) -> list[tuple[str, Any]]:
    return [(f"{origin} row {i + 1}", dict(row)) for i, row in enumerate(dataset)]


def _dataset_suite(name: str, split: str) -> Suite:
    datasets = _import_datasets(f"no such suite {name}; as a dataset name it")
    try:
        dataset = datasets.load_dataset(name, split=split)
    except ValueError as exc:  # an unknown split
        raise SuiteError(f"dataset {name}: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "not available offline"
        raise SuiteError(f"dataset {name} (split {split}) is not in the local datasets cache and the hub is not "
                         f"reached offline ({type(exc).__name__}: {_first_line(exc)})") from None
    origin = f"{name}[{split}]"
    tasks = tasks_from_records(_dataset_rows(dataset, origin), origin)
    return _records_suite(tasks, name.split("/")[-1], f"SWE-bench records from the dataset {origin}", Path.cwd())


def _saved_dataset_suite(path: Path, split: str | None) -> Suite:
    datasets = _import_datasets(f"reading the saved dataset {path}")
    try:
        data = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001
        raise SuiteError(f"{path}: not a readable saved dataset ({_first_line(exc)})") from None
    if isinstance(data, datasets.DatasetDict):
        split = split or "test"
        if split not in data:
            raise SuiteError(f"{path}: no split {split!r} (splits: {', '.join(data)})")
        data = data[split]
    elif split is not None:
        raise SuiteError(f"{path} holds a single split; drop --split")
    origin = f"{path}" + (f"[{split}]" if split else "")
    tasks = tasks_from_records(_dataset_rows(data, origin), origin)
    return _records_suite(tasks, path.name, f"SWE-bench records from the saved dataset {path.name}", path.resolve())


def _finish(suite: Suite) -> None:
    _assign_env_commits(suite.tasks)
    for task in suite.tasks:
        task.suite = suite
