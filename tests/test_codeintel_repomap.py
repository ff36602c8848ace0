"""Repo map budget and ranking, issue keys, and the ``expagent map`` command."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from expagent.codeintel.index import SymbolIndex
from expagent.codeintel.issuekeys import WEAK, PatchCatalog, extract_mentions, key_overlap, likely_keys_from_issue
from expagent.codeintel.repomap import build_repo_map, estimate_tokens, pagerank
from expagent.codeintel.tools import repo_map_tool


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A small package: many modules use ``core.Base``; ``invoices.py`` is a leaf nobody imports."""
    files = {
        "shop/__init__.py": "",
        "shop/core.py": """
            class Base:
                def save(self):
                    return True

                def delete(self):
                    return False


            def connect(url):
                return url
            """,
        "shop/invoices.py": """
            from shop.core import Base


            class InvoiceRenderer(Base):
                def render_pdf(self, invoice):
                    return b"%PDF"

                def render_html(self, invoice):
                    return "<html>"
            """,
        "tests/test_core.py": """
            from shop.core import Base

            def test_save():
                assert Base().save()
            """,
    }
    for i in range(12):
        files[f"shop/module{i}.py"] = f"""
            from shop.core import Base, connect


            class Thing{i}(Base):
                def run_{i}(self):
                    connect("db")
                    return self.save()
            """
    return _write(tmp_path / "shop_repo", files)


@pytest.mark.parametrize("budget", [64, 128, 256, 512, 2048])
def test_map_respects_budget(shop: Path, budget: int):
    text = build_repo_map(shop, focus_text="render_pdf produces broken output", token_budget=budget)
    assert estimate_tokens(text) <= budget
    assert text.startswith("Repository map")


def test_bigger_budget_shows_more(shop: Path):
    small = build_repo_map(shop, token_budget=128)
    large = build_repo_map(shop, token_budget=2048)
    assert len(large.splitlines()) > len(small.splitlines())
    assert all(line in large for line in small.splitlines()[1:] if line.endswith(":"))


def test_without_focus_the_most_used_file_leads(shop: Path):
    text = build_repo_map(shop, token_budget=256)
    first_file = text.splitlines()[1]
    assert first_file == "shop/core.py:"


def test_mentioned_symbol_file_ranks_first(shop: Path):
    # invoices.py is referenced by nothing: only the focus can bring it to the top
    text = build_repo_map(shop, focus_text="InvoiceRenderer.render_pdf returns an empty file", token_budget=256)
    lines = text.splitlines()
    assert lines[1] == "shop/invoices.py:"
    assert "    def render_pdf(self, invoice):" in lines
    # a file name in the focus works too
    text = build_repo_map(shop, focus_text="something is off in module7.py", token_budget=128)
    assert text.splitlines()[1] == "shop/module7.py:"


def test_tiny_budget_gives_empty_map(shop: Path):
    assert build_repo_map(shop, token_budget=5) == ""


def test_pagerank_personalisation_moves_rank():
    nodes = ["a", "b", "c"]
    edges = {"a": {"b": 1.0}, "b": {"a": 1.0}, "c": {"a": 1.0}}
    plain = pagerank(nodes, edges)
    focused = pagerank(nodes, edges, {"c": 1.0})
    assert abs(sum(plain.values()) - 1.0) < 1e-6
    assert focused["c"] > plain["c"]
    assert plain["c"] < plain["a"]
    # the vectorised version the map uses computes the same ranks
    import numpy as np

    from expagent.codeintel.repomap import _pagerank_arrays

    src, dst, w = np.array([0, 1, 2]), np.array([1, 0, 0]), np.array([1.0, 1.0, 1.0])
    converged = (pagerank(nodes, edges, iterations=300), pagerank(nodes, edges, {"c": 1.0}, iterations=300))
    for restart, expected in zip((np.full(3, 1 / 3), np.array([0.0, 0.0, 1.0])), converged):
        ranks = _pagerank_arrays(3, src, dst, w, restart)
        assert np.allclose(ranks, [expected["a"], expected["b"], expected["c"]], atol=1e-4)


def test_extract_mentions_from_traceback_and_code():
    text = textwrap.dedent("""\
        Calling `InvoiceRenderer.render_pdf()` crashes:

        Traceback (most recent call last):
          File "shop/invoices.py", line 6, in render_pdf
        ValueError: bad invoice
        """)
    m = extract_mentions(text)
    assert "shop/invoices.py" in m.paths
    assert {"InvoiceRenderer.render_pdf", "render_pdf", "InvoiceRenderer", "ValueError"} <= set(m.identifiers)
    assert "the" not in m.identifiers  # stop words are dropped
    assert m.identifiers.get("crashes", 0) <= WEAK < m.identifiers["render_pdf"]  # prose words weigh little


def test_likely_keys_from_issue_with_index(shop: Path):
    issue = "InvoiceRenderer.render_pdf returns garbage when the invoice is empty"
    keys = likely_keys_from_issue(issue, shop)
    assert keys["files"][0] == "shop/invoices.py"
    assert keys["symbols"][0] == "InvoiceRenderer.render_pdf"
    # the same through an already built index
    assert likely_keys_from_issue(issue, SymbolIndex.build(shop)) == keys
    # text naming nothing in the repository gives no keys
    assert likely_keys_from_issue("the app is slow sometimes", shop) == {"files": [], "symbols": []}


def test_patch_catalog_proxy_and_overlap():
    catalog = PatchCatalog()
    catalog.add({"django/db/models/query.py": ["QuerySet.bulk_create", "QuerySet._batched_insert"]})
    catalog.add({"django/forms/fields.py": ["DateField.to_python"]})
    keys = likely_keys_from_issue("bulk_create ignores batch_size when ignore_conflicts is set", catalog)
    assert keys == {"files": ["django/db/models/query.py"], "symbols": ["QuerySet.bulk_create"]}
    # generic names and plain words are not keys on their own
    catalog.add({"django/core/paginator.py": ["Paginator.__iter__", "Paginator.page"]})
    assert likely_keys_from_issue("iterating calls __iter__ twice", catalog) == {"files": [], "symbols": []}
    assert likely_keys_from_issue("the page is blank", catalog) == {"files": [], "symbols": []}
    assert likely_keys_from_issue("`Paginator.__iter__` yields pages twice", catalog)["symbols"] == [
        "Paginator.__iter__"]
    same = key_overlap(keys, ["django/db/models/query.py"], ["QuerySet.bulk_create"])
    other = key_overlap(keys, ["django/forms/fields.py"], ["DateField.to_python"])
    unqualified = key_overlap(keys, ["x.py"], ["bulk_create"])
    assert same == 1.0 and other == 0.0 and 0 < unqualified < same


def test_repo_map_tool_reports_errors_as_text(shop: Path, tmp_path: Path):
    assert repo_map_tool(str(shop), "Base", 256).startswith("Repository map")
    assert repo_map_tool(str(tmp_path / "nope")).startswith("error: not a directory")
    assert repo_map_tool(str(shop), "", "lots").startswith("error: tokens must be an integer")
    assert repo_map_tool(str(shop), "", 10).startswith("error:")


def _cli(*args: str) -> subprocess.CompletedProcess:
    from conftest import run_cli

    return run_cli(*args)


def test_map_command(shop: Path):
    (shop / "shop" / "broken.py").write_text("def broken(:\n")
    proc = _cli("map", str(shop), "--focus", "render_pdf", "--tokens", "200")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == "shop/invoices.py:"
    assert estimate_tokens(proc.stdout) <= 200
    assert "warning: 1 file(s) had syntax errors" in proc.stderr

    as_json = json.loads(_cli("map", str(shop), "--json", "--tokens", "100").stdout)
    assert as_json["tokens_estimate"] <= 100 and as_json["files_indexed"] == 17

    bad = _cli("map", str(shop / "missing"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: not a directory")
    assert "Traceback" not in bad.stderr
