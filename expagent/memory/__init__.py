"""Experience memory: episodes (evidence) and lessons (advice) in Chroma, retrieved with abstention.

Modules, each with one job:

* ``records``   — ``Episode`` / ``Lesson`` dataclasses, ids, schema version, validation, JSON round trip.
* ``embedding`` — offline MiniLM (int8 ONNX) or ``litellm:<model>`` embedders; the Chroma embedding function.
* ``store``     — ``MemoryStore.open(home=None, chroma_url=None, embedding="minilm-int8")``: add/get/list,
  retire/restore/delete, ``add_lesson_version``, ``add_evidence``, ``record_usage``, ``find_similar_lessons``,
  ``history``, ``transaction``; embedded Chroma or a Chroma server; every write one journaled op.
* ``retrieval`` — ``retrieve(store, query, repo=, before=, exclude_instance=, k=, kinds=, keys=, token_budget=)``
  returning ``Hit`` objects (possibly none), and ``format_hit`` for prompt injection.
* ``lexical`` / ``tokens`` — the cached BM25 index and code-aware tokenisation.
* ``swebench`` / ``transfer`` / ``jsonl`` — SWE-bench import, export/import, strict JSONL reading.
* ``audit`` / ``lock`` — the ledger (audit log, write journal, committed records) and the cross-process write lock.
* ``check``     — ``memory check [--repair]``: the ledger against Chroma, and repairs.
* ``cli``       — ``expagent memory ...``.

Nothing heavy is imported here: chromadb, numpy, onnxruntime and bm25s load inside the functions that need them.
See docs/memory.md.
"""
