"""Export and import of the whole memory as JSONL, exactly round-tripping every record.

One line per record::

    {"record": {...to_dict()...}, "usage": {"retrieved": 0, "resolved": 0, "unresolved": 0},
     "embedding_model": "minilm-int8", "embedding": [...]}      # "embedding" only with --embeddings

On import the vector is used as carried when the export's ``embedding_model`` is the store's, and recomputed
otherwise. Records whose id is already stored are left alone (an import never overwrites).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError
from expagent.memory.jsonl import read_jsonl
from expagent.memory.records import record_from_dict
from expagent.memory.store import Usage, record_from_document, usage_from


def export_jsonl(store: Any, path: Path | str, with_embeddings: bool = False) -> int:
    """Write every record to ``path`` (atomically); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for _id, doc, meta, emb in store.iter_raw(include_embeddings=with_embeddings):
                record = record_from_document(doc, meta)
                usage = usage_from(meta)
                line: dict[str, Any] = {"record": record.to_dict(),
                                        "usage": {"retrieved": usage.retrieved, "resolved": usage.resolved,
                                                  "unresolved": usage.unresolved},
                                        "embedding_model": store.embedding_name}
                if with_embeddings and emb is not None:
                    line["embedding"] = emb
                fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExpagentError(f"cannot write {path}: {exc.strerror}") from None
    return n


def _parse_line(obj: dict[str, Any], _line_no: int) -> tuple[Any, Usage, str | None, list[float] | None]:
    if "record" not in obj:
        raise ExpagentError("missing 'record' (is this a 'memory export' file?)")
    record = record_from_dict(obj["record"])
    u = obj.get("usage") or {}
    if not isinstance(u, dict):
        raise ExpagentError("'usage' must be an object")
    usage = Usage(int(u.get("retrieved", 0)), int(u.get("resolved", 0)), int(u.get("unresolved", 0)))
    emb = obj.get("embedding")
    if emb is not None and (not isinstance(emb, list) or not all(isinstance(x, (int, float)) for x in emb)):
        raise ExpagentError("'embedding' must be a list of numbers")
    return record, usage, obj.get("embedding_model"), emb


def import_jsonl(store: Any, path: Path | str, actor: str = "import", skip_bad: bool = False
                 ) -> tuple[list[str], int, list[str]]:
    """Import an export file: returns (ids added, number already present, problems skipped)."""
    items, problems = read_jsonl(path, _parse_line, skip_bad=skip_bad)
    seen: set[str] = set()
    unique = []
    for item in items:
        if item[0].id not in seen:
            seen.add(item[0].id)
            unique.append(item)
    records = [i[0] for i in unique]
    usages = [i[1] for i in unique]
    dim = getattr(store.embedder, "dim", 0)
    vectors = [i[3] if (i[3] is not None and i[2] == store.embedder.name and (not dim or len(i[3]) == dim))
               else None for i in unique]
    added = store.add_records(records, actor, embeddings=vectors, usages=usages,
                              audit_detail={"from": str(Path(path).resolve())})
    return added, len(records) - len(added), problems
