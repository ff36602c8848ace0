"""``expagent memory ...`` through the console script's ``main`` (in-process, a private --home)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli
from test_memory import HISTORY, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, home: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """The console script's ``main`` in this process (its error formatting and exit codes), with a private --home
    and no EXPAGENT_* settings; a subprocess would only add an interpreter start-up and a model load per call."""
    env = {"COLUMNS": "250", **(env or {})}  # rich tables fold cells to the terminal width
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("EXPAGENT_")}
    try:
        proc = run_cli("memory", *args, "--home", str(home), cwd=ROOT, env=env)
    finally:
        os.environ.update(saved)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli-home")
    seed = write_jsonl(home / "seed.jsonl", HISTORY)
    out = json.loads(run("import-swebench", str(seed), "--json", home=home).stdout)
    assert out == {"added": len(HISTORY), "already_present": 0, "skipped_bad": []}
    return home


def test_ls_show_stats(home):
    rows = json.loads(run("ls", "--json", "--repo", "acme/shop", "--sort", "id", home=home).stdout)
    assert len(rows) == 3 and [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert {r["instance_id"] for r in rows} == {"acme__shop-101", "acme__shop-102", "acme__shop-103"}
    shown = json.loads(run("show", rows[0]["id"], "--json", home=home).stdout)
    assert shown["record"]["id"] == rows[0]["id"] and shown["history"][0]["action"] == "add"
    stats = json.loads(run("stats", "--json", home=home).stdout)
    assert stats["episodes"] == len(HISTORY) and stats["by_repo"]["acme/shop"] == 3
    assert stats["embedding_model"] == "minilm-int8"
    table = run("ls", home=home).stdout
    assert "acme__shop-101" in table


def test_listing_fits_80_columns_and_json_is_whole(home):
    narrow = run("ls", home=home, env={"COLUMNS": "80"}).stdout.splitlines()
    assert len(narrow) == len(HISTORY) + 2  # header, one line per record (truncated, never wrapped), count
    assert max(len(line) for line in narrow) <= 80 and any(line.endswith("\u2026") for line in narrow)
    assert narrow[-1] == f"{len(HISTORY)} record(s)"
    rows = json.loads(run("ls", "--json", home=home, env={"COLUMNS": "40"}).stdout)
    assert {"issue", "patch", "summary", "provenance", "files", "usage", "created_at"} <= set(rows[0])
    assert any(len(r["issue"]) > 80 for r in rows)  # every field, uncut
    shown = run("show", rows[0]["id"], "--json", home=home, env={"COLUMNS": "30"}).stdout
    assert json.loads(shown)["record"] == {k: v for k, v in rows[0].items() if k != "usage"}
    plain = run("show", rows[0]["id"], home=home, env={"COLUMNS": "30"}).stdout
    assert json.loads(plain[: plain.index("\n}\n") + 2])["id"] == rows[0]["id"]  # the plain view's JSON is valid too


def test_listing_an_empty_home_creates_nothing(tmp_path):
    home = tmp_path / "empty"
    home.mkdir()
    for args in (("ls",), ("stats", "--json"), ("search", "anything at all")):
        proc = run(*args, home=home)
        assert proc.returncode == 0
    assert list(home.iterdir()) == []
    assert run("show", "ep-nope", home=home, check=False).returncode == 2 and list(home.iterdir()) == []


def test_search_batch_one_line_per_query(home, tmp_path):
    queries = [
        {"query": "Cart.total() wrong after apply_discount twice", "repo": "acme/shop", "k": 2},
        {"query": "Cart.total() wrong after apply_discount twice", "repo": "acme/shop",
         "before": "2021-03-01T00:00:00Z", "exclude_instance": "acme__shop-103"},
        {"query": "websocket reconnect leaks file descriptors", "repo": "acme/shop"},
    ]
    batch = write_jsonl(tmp_path / "q.jsonl", queries)
    lines = run("search", "--batch", str(batch), "--json", home=home).stdout.splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert set(first["results"][0]) == {"id", "kind", "instance_id", "repo", "score"}
    assert 1 <= len(first["results"]) <= 2 and first["results"][0]["instance_id"] in ("acme__shop-101", "acme__shop-103")
    assert all(r["instance_id"] == "acme__shop-101" for r in second["results"])
    assert third == {"results": []}


def test_bad_batch_line_is_reported(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "x"}) + "\n" + json.dumps({"query": "y", "k": 0}) + "\n")
    proc = run("search", "--batch", str(bad), "--json", home=home, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {bad}:2: 'k' must be a positive integer")


def test_unknown_id_and_rm_and_round_trip(home, tmp_path):
    proc = run("show", "ep-nope", home=home, check=False)
    assert proc.returncode == 2 and proc.stderr == "error: no memory record with id 'ep-nope'\n"
    proc = run("rm", "ep-nope", home=home, check=False)
    assert proc.returncode == 2

    export = tmp_path / "all.jsonl"
    run("export", str(export), home=home)
    other = tmp_path / "other"
    out = json.loads(run("import", str(export), "--json", home=other).stdout)
    assert out["added"] == len(HISTORY)
    again = tmp_path / "again.jsonl"
    run("export", str(again), home=other)
    assert sorted(export.read_text().splitlines()) == sorted(again.read_text().splitlines())

    victim = json.loads(export.read_text().splitlines()[0])["record"]["id"]
    assert json.loads(run("rm", victim, "--json", home=other).stdout) == {"deleted": victim, "kind": "episode"}
    history = json.loads(run("show", victim, "--json", home=home).stdout)["history"]  # still in the first home
    assert history[0]["action"] == "add"
    assert run("show", victim, home=other, check=False).returncode == 2


def test_malformed_import_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(HISTORY[0]) + "\nnot json\n")
    proc = run("import-swebench", str(bad), home=tmp_path / "h", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad}:2: ")
    stats = json.loads(run("stats", "--json", home=tmp_path / "h").stdout)
    assert stats["total"] == 0
    out = json.loads(run("import-swebench", str(bad), "--skip-bad", "--json", home=tmp_path / "h").stdout)
    assert out["added"] == 1 and len(out["skipped_bad"]) == 1
