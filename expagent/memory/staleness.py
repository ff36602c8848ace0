"""Is a remembered item still about code that exists? Anchors checked against a new checkout.

Each episode and repo-scoped lesson records its **anchors** (:class:`expagent.memory.records.Anchor`): the
files and the symbols in them it is about, at the commit where it was learned. An episode's anchors come from
its patch (:func:`anchors_from_patch`: each file the patch changed and the definitions its hunks touched);
a repo-scoped lesson's from its source episodes. Records written before anchors existed get them derived from
the patch at check time.

Against the symbol index of the new task's checkout (:class:`expagent.codeintel.index.SymbolIndex`), each
anchor is one of:

* ``ok``: the file exists and defines each anchored symbol;
* ``moved``: the file is gone but its symbols are defined elsewhere (a rename), or a symbol left the file for
  another one;
* ``deleted``: the file is gone and none of its symbols is defined anywhere;
* ``symbol_gone``: the file exists but an anchored symbol is defined nowhere.

An item with any non-``ok`` anchor is **stale** (its advice may point at code that changed); one whose every
anchor is ``deleted`` is **obsolete** (nothing it talks about exists any more). Retrieval drops obsolete items
and labels stale ones (``Hit.stale``, shown by ``format_hit`` and so in the prompt); ``memory ls --stale-for
PATH`` lists the state of each record for a checkout. Anchored files of languages the index cannot parse are
checked for existence only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from expagent.memory.records import Anchor, Episode, Lesson


@dataclass(frozen=True)
class AnchorCheck:
    path: str
    state: str  # "ok" | "moved" | "deleted" | "symbol_gone"
    detail: str = ""


@dataclass(frozen=True)
class Staleness:
    """The verdict for one record against one checkout."""

    checks: tuple[AnchorCheck, ...] = ()

    @property
    def stale(self) -> bool:
        return any(c.state != "ok" for c in self.checks)

    @property
    def obsolete(self) -> bool:
        return bool(self.checks) and all(c.state == "deleted" for c in self.checks)

    @property
    def state(self) -> str:
        if not self.checks:
            return "unanchored"
        return "obsolete" if self.obsolete else "stale" if self.stale else "current"

    def label(self) -> str:
        """One line for a prompt or a listing ("" when current)."""
        problems = [c.detail for c in self.checks if c.state != "ok"]
        if not problems:
            return ""
        return "STALE (the code changed since this was learned): " + "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else "")


def anchors_from_patch(patch: str, commit: str = "") -> list[Anchor]:
    """One anchor per file a patch changed, with the definitions its hunks touched (added files included: after
    the fix they exist)."""
    from expagent.codeintel.patchkeys import symbols_by_file_from_patch

    if not (patch or "").strip():
        return []
    return [Anchor(path, list(symbols), commit) for path, symbols in symbols_by_file_from_patch(patch).items()]


def anchors_of(record: Any, episodes: dict[str, Any] | None = None) -> list[Anchor]:
    """The record's anchors; derived from the patch (episodes) or the source episodes (repo-scoped lessons)
    when the record predates anchors."""
    if getattr(record, "anchors", None):
        return list(record.anchors)
    if isinstance(record, Episode):
        return anchors_from_patch(record.patch, record.base_commit)
    if isinstance(record, Lesson) and record.scope != "general" and episodes:
        out: dict[str, Anchor] = {}
        for eid in record.source_episodes:
            ep = episodes.get(eid)
            for anchor in anchors_of(ep) if ep is not None else []:
                out.setdefault(anchor.path, anchor)
        return list(out.values())
    return []


def _defines(index: Any, path: str, symbol: str) -> bool:
    tail = symbol.rsplit(".", 1)[-1]
    return any(d.qualname == symbol or ("." not in symbol and d.name == tail)
               for d in index.definitions(path) or [] if not d.local)


def _defined_elsewhere(index: Any, path: str, symbol: str) -> list[str]:
    from expagent.codeintel.history import is_test_path

    found = [p for p, d in index.lookup(symbol) if p != path and not d.local and not is_test_path(p)]
    return sorted(set(found))


def check_anchor(anchor: Anchor, index: Any) -> AnchorCheck:
    exists = (Path(index.root) / anchor.path).is_file()
    if exists and index.definitions(anchor.path) is None:
        return AnchorCheck(anchor.path, "ok")  # a file the index does not parse: its existence is all we know
    if not exists:
        moved = {s: _defined_elsewhere(index, anchor.path, s) for s in anchor.symbols}
        moved = {s: where for s, where in moved.items() if where}
        if moved:
            targets = sorted({w for where in moved.values() for w in where[:2]})
            return AnchorCheck(anchor.path, "moved", f"{anchor.path} is gone; {', '.join(sorted(moved)[:3])} now in "
                               f"{', '.join(targets[:3])}")
        return AnchorCheck(anchor.path, "deleted", f"{anchor.path} was deleted")
    missing = [s for s in anchor.symbols if not _defines(index, anchor.path, s)]
    if not missing:
        return AnchorCheck(anchor.path, "ok")
    moved = {s: _defined_elsewhere(index, anchor.path, s) for s in missing}
    parts = []
    for s in missing[:3]:
        parts.append(f"{s} moved from {anchor.path} to {', '.join(moved[s][:2])}" if moved[s]
                     else f"{s} no longer in {anchor.path}")
    state = "moved" if all(moved[s] for s in missing) else "symbol_gone"
    return AnchorCheck(anchor.path, state, "; ".join(parts))


def check_record(record: Any, index: Any, episodes: dict[str, Any] | None = None) -> Staleness:
    """Staleness of ``record`` against ``index`` (the new checkout's symbol index)."""
    return Staleness(tuple(check_anchor(a, index) for a in anchors_of(record, episodes)))


def check_records(records: Iterable[Any], checkout: str | Path, episodes: dict[str, Any] | None = None
                  ) -> dict[str, Staleness]:
    """``record id -> Staleness`` against the checkout at ``checkout`` (indexed once, with the index cache)."""
    from expagent.codeintel.index import SymbolIndex

    index = SymbolIndex.build(checkout)
    return {r.id: check_record(r, index, episodes) for r in records}
