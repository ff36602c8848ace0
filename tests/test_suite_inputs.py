"""Suites from the inputs people already have: a SWE-bench parquet file, a ``datasets`` saved dataset, and a dataset
name served from the local ``datasets`` cache (offline), with one-line errors otherwise.

The datasets cache is a real one: the test loads the rows once with ``datasets.load_dataset("parquet", ...)`` and lays
the result out where an earlier online ``load_dataset("<owner>/<name>")`` would have left it
(``<cache>/<owner>___<name>/default/0.0.0/<hash>/``); the load under test then runs offline in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from expagent.tasks.suite import SuiteError, load_suite

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data" / "swe-lite-dev-23.jsonl"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    if not SHARED.is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    return [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines()[:6]]


def _records(suite) -> list[dict]:
    return [t.to_record() for t in suite.tasks]


def test_parquet_file_loads_like_the_jsonl(rows, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    jsonl = tmp_path / "lite.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the hub's parquet files hold FAIL_TO_PASS / PASS_TO_PASS as JSON-encoded strings
    table = pa.Table.from_pylist([{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()} for r in rows])
    pq.write_table(table, tmp_path / "test-00000-of-00001.parquet")
    suite = load_suite(tmp_path / "test-00000-of-00001.parquet")
    assert _records(suite) == _records(load_suite(jsonl))
    assert [t.instance_id for t in suite.tasks] == [r["instance_id"] for r in rows]
    assert suite.tasks[0].fail_to_pass and suite.tasks[0].suite is suite


def test_bad_parquet_and_duplicates_are_one_line_errors(rows, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(SuiteError, match="broken.parquet: not a readable parquet file"):
        load_suite(tmp_path / "broken.parquet")
    twice = [{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in rows[0].items()}] * 2
    pq.write_table(pa.Table.from_pylist(twice), tmp_path / "dup.parquet")
    with pytest.raises(SuiteError, match=f"duplicate instance_id '{rows[0]['instance_id']}'"):
        load_suite(tmp_path / "dup.parquet")


def test_saved_dataset_directory_with_splits(rows, tmp_path):
    datasets = pytest.importorskip("datasets")
    data = datasets.DatasetDict({"test": datasets.Dataset.from_list(rows[:4]), "dev": datasets.Dataset.from_list(rows[4:])})
    data.save_to_disk(str(tmp_path / "saved"))
    test = load_suite(tmp_path / "saved")
    assert [t.instance_id for t in test.tasks] == [r["instance_id"] for r in rows[:4]]
    dev = load_suite(tmp_path / "saved", split="dev")
    assert [t.instance_id for t in dev.tasks] == [r["instance_id"] for r in rows[4:]]
    with pytest.raises(SuiteError, match="no split 'train' \\(splits: test, dev\\)"):
        load_suite(tmp_path / "saved", split="train")


_BUILD_CACHE = textwrap.dedent('''
    import json, pathlib, shutil, sys
    import datasets
    rows = json.loads(pathlib.Path(sys.argv[1]).read_text())
    src = pathlib.Path(sys.argv[2])
    src.write_text("".join(json.dumps(r) + "\\n" for r in rows))
    datasets.load_dataset("json", data_files={"test": str(src)})
    cache = pathlib.Path(datasets.config.HF_DATASETS_CACHE)
    built = next(p for p in cache.glob("json/*/0.0.0/*") if p.is_dir())
    target = cache / "demo-org___swe-mini" / "default" / "0.0.0" / built.name
    shutil.copytree(built, target)
    for arrow in target.glob("json-*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace("json-", "swe-mini-", 1)))
    info = json.loads((target / "dataset_info.json").read_text())
    info.update(dataset_name="swe-mini", config_name="default")
    (target / "dataset_info.json").write_text(json.dumps(info))
''')

_LOAD = textwrap.dedent('''
    import json, sys
    from expagent.errors import ExpagentError
    from expagent.tasks.suite import load_suite
    out = []
    for name, split in json.loads(sys.argv[1]):
        try:
            out.append([t.instance_id for t in load_suite(name, split=split).tasks])
        except ExpagentError as exc:
            out.append("error: " + str(exc))
    print(json.dumps(out))
''')


@pytest.mark.slow  # two fresh processes importing datasets: about a minute on a loaded machine
def test_dataset_name_from_the_local_datasets_cache_offline(rows, tmp_path):
    pytest.importorskip("datasets")
    import os

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    subprocess.run([sys.executable, "-c", _BUILD_CACHE, str(tmp_path / "rows.json"), str(tmp_path / "rows.jsonl")],
                   check=True, env=env, capture_output=True, cwd=tmp_path)
    # a fresh process, as a user's later run would be: nothing but the cache on disk
    asks = [["demo-org/swe-mini", None], ["demo-org/swe-mini", "test"], ["princeton-nlp/SWE-bench_Lite", None],
            ["demo-org/swe-mini", "train"]]
    proc = subprocess.run([sys.executable, "-c", _LOAD, json.dumps(asks)], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    default, test, missing, no_split = json.loads(proc.stdout.strip().splitlines()[-1])
    assert default == test == [r["instance_id"] for r in rows]
    assert missing.startswith("error: dataset princeton-nlp/SWE-bench_Lite (split test) is not in the local datasets "
                              "cache"), missing
    assert "\n" not in missing
    assert no_split.startswith("error: dataset demo-org/swe-mini") and "train" in no_split, no_split


def test_split_is_refused_for_a_plain_file(rows, tmp_path):
    jsonl = tmp_path / "lite.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SuiteError, match="--split applies to datasets only"):
        load_suite(jsonl, split="test")
