"""Score commits against knowledge and keep the best candidates per commit, block by block.

Three modes share one loop (`match`): a block of commits against a block of knowledge items is scored as a small
dense matrix and merged into a running top-`candidates` per commit, so memory is bounded by the block sizes,
never by commits x knowledge.
- `semantic` (seed v2): cosine of the commit message and the knowledge text (best chunk).
- `hybrid` (seed v1): only knowledge seen in [commit - time_window_days, commit - commit_offset_hours] that shares
  at least one tech keyword; confidence = keyword_weight * keyword + semantic_weight * cosine.
- `best`: cosine of a richer commit text (message, changed paths, identifiers from the added code), corrected for
  screens that resemble every commit (hubness), plus explicit references seen in the knowledge (issue numbers, file
  names, identifiers), scaled by when it was seen: recent before the commit counts fully, older fades, after the
  commit is discounted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

MODES = ("semantic", "hybrid", "best")
COMMIT_BLOCK = 64
KNOWLEDGE_BLOCK_CHUNKS = 8192
HOUR = 3600.0
DAY = 24 * HOUR


@dataclass
class BestWeights:
    """The `best` score: evidence = semantic_weight * (cosine - hub_weight * hubness) + reference_weight * reference,
    times a time factor: 1 when last seen within `recent_days` before the commit, then halving every
    `half_life_days`; `after_factor` when first seen only after the commit; documents (whose file time says nothing
    about when they were read) `document_factor`. Clipped to [0, 1]."""

    semantic_weight: float = 1.0
    hub_weight: float = 1.0
    reference_weight: float = 0.5
    recent_days: float = 1.0
    half_life_days: float = 4.0
    after_factor: float = 0.5
    document_factor: float = 0.7
    unknown_time_factor: float = 0.5


@dataclass
class MatchParams:
    mode: str = "best"
    candidates: int = 50  # kept per commit (top_k and min_confidence filter these later)
    time_window_days: float = 7.0
    commit_offset_hours: float = 1.0
    keyword_weight: float = 0.3
    semantic_weight: float = 0.7
    best: BestWeights = field(default_factory=BestWeights)


@dataclass
class CommitSide:
    """Commits as the matcher sees them; rows align across every array."""

    shas: list[str]
    times: np.ndarray  # unix seconds
    message_vectors: np.ndarray  # (commits, dim)
    rich_vectors: np.ndarray  # (commits, dim)
    keywords: sparse.csr_matrix  # (commits, keyword vocabulary), 1 where the commit text has the keyword
    references: sparse.csr_matrix  # (commits, reference vocabulary), weight of each reference


@dataclass
class KnowledgeSide:
    """Knowledge representatives; chunk rows of one item are contiguous, `chunk_starts[i]` is item i's first."""

    ids: np.ndarray
    first_times: np.ndarray  # unix seconds, NaN when unknown
    last_times: np.ndarray
    is_document: np.ndarray
    chunk_vectors: np.ndarray  # (chunks, dim)
    chunk_starts: np.ndarray  # (items,)
    keywords: sparse.csr_matrix  # (items, keyword vocabulary), binary
    references: sparse.csr_matrix  # (items, reference vocabulary), binary

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Candidates:
    """Per commit, the kept items (indices into KnowledgeSide) with the parts of their scores; -1 pads."""

    items: np.ndarray  # (commits, candidates) int
    confidence: np.ndarray
    semantic: np.ndarray
    keyword: np.ndarray  # NaN where the mode does not use it
    time_score: np.ndarray
    reference: np.ndarray


def _item_blocks(knowledge: KnowledgeSide) -> list[tuple[int, int, int, int]]:
    """(first item, end item, first chunk, end chunk) blocks of about KNOWLEDGE_BLOCK_CHUNKS chunks."""
    starts = knowledge.chunk_starts
    total_chunks = len(knowledge.chunk_vectors)
    blocks, item = [], 0
    while item < len(starts):
        chunk_start = int(starts[item])
        end = int(np.searchsorted(starts, chunk_start + KNOWLEDGE_BLOCK_CHUNKS, side="left"))
        end = max(end, item + 1)
        chunk_end = int(starts[end]) if end < len(starts) else total_chunks
        blocks.append((item, end, chunk_start, chunk_end))
        item = end
    return blocks


def _best_chunk_similarity(queries: np.ndarray, knowledge: KnowledgeSide, block: tuple[int, int, int, int]):
    item_start, item_end, chunk_start, chunk_end = block
    sims = queries @ knowledge.chunk_vectors[chunk_start:chunk_end].T
    offsets = knowledge.chunk_starts[item_start:item_end] - chunk_start
    return np.maximum.reduceat(sims, offsets, axis=1)


def hubness(commits: CommitSide, knowledge: KnowledgeSide) -> np.ndarray:
    """Per item, its mean cosine to all commits (linear, so one product with the mean commit vector): a screen
    that resembles every commit says little about any one of them."""
    mean_query = commits.rich_vectors.mean(axis=0)
    per_chunk = knowledge.chunk_vectors @ mean_query
    return np.maximum.reduceat(per_chunk, knowledge.chunk_starts) if len(per_chunk) else per_chunk


def _score_block(params: MatchParams, commits: CommitSide, rows: slice, knowledge: KnowledgeSide,
                 block: tuple[int, int, int, int], hub: np.ndarray | None) -> dict[str, np.ndarray]:
    item_start, item_end = block[0], block[1]
    times = commits.times[rows][:, None]
    first = knowledge.first_times[item_start:item_end][None, :]
    last = knowledge.last_times[item_start:item_end][None, :]
    nan = np.full((times.shape[0], item_end - item_start), np.nan, dtype=np.float32)
    if params.mode == "semantic":
        semantic = _best_chunk_similarity(commits.message_vectors[rows], knowledge, block)
        return {"confidence": np.clip(semantic, 0, 1), "semantic": semantic, "keyword": nan, "time_score": nan,
                "reference": nan}
    if params.mode == "hybrid":
        semantic = _best_chunk_similarity(commits.message_vectors[rows], knowledge, block)
        shared = (commits.keywords[rows] @ knowledge.keywords[item_start:item_end].T).toarray()
        commit_keywords = np.asarray(commits.keywords[rows].sum(axis=1)).reshape(-1, 1)
        keyword = shared / np.maximum(commit_keywords, 1)
        window_start = times - params.time_window_days * DAY
        window_end = times - params.commit_offset_hours * HOUR
        in_window = (first <= window_end) & (last >= window_start)
        confidence = params.keyword_weight * keyword + params.semantic_weight * np.clip(semantic, 0, 1)
        confidence = np.where(in_window & (shared > 0), confidence, -1.0)
        return {"confidence": confidence, "semantic": semantic, "keyword": keyword, "time_score": nan,
                "reference": nan}
    weights = params.best
    semantic = np.maximum(_best_chunk_similarity(commits.rich_vectors[rows], knowledge, block),
                          _best_chunk_similarity(commits.message_vectors[rows], knowledge, block))
    adjusted = semantic - weights.hub_weight * (hub[item_start:item_end][None, :] - float(np.mean(hub)))
    reference_sum = (commits.references[rows] @ knowledge.references[item_start:item_end].T).toarray()
    reference = 1.0 - np.exp(-reference_sum)
    seen_before = first <= times
    age_days = np.where(seen_before, (times - np.minimum(last, times)) / DAY, 0.0)
    decay = np.exp2(-np.maximum(age_days - weights.recent_days, 0.0) / weights.half_life_days)
    time_score = np.where(seen_before, decay, weights.after_factor)
    documents = knowledge.is_document[item_start:item_end][None, :]
    time_score = np.where(documents, weights.document_factor,
                          np.where(np.isnan(first), weights.unknown_time_factor, time_score))
    evidence = weights.semantic_weight * adjusted + weights.reference_weight * reference
    confidence = np.clip(evidence * time_score, 0, 1)
    return {"confidence": confidence, "semantic": semantic, "keyword": nan, "time_score": time_score,
            "reference": reference}


def match(commits: CommitSide, knowledge: KnowledgeSide, params: MatchParams) -> Candidates:
    """The top `params.candidates` items per commit under `params.mode`, with every part of their scores."""
    if params.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {params.mode!r}")
    count, keep = len(commits.shas), params.candidates
    parts = ("confidence", "semantic", "keyword", "time_score", "reference")
    kept = {name: np.full((count, keep), -np.inf if name == "confidence" else np.nan, dtype=np.float32)
            for name in parts}
    kept_items = np.full((count, keep), -1, dtype=np.int64)
    if count == 0 or len(knowledge) == 0:
        return Candidates(kept_items, *(kept[name] for name in parts))
    hub = hubness(commits, knowledge) if params.mode == "best" else None
    blocks = _item_blocks(knowledge)
    for row_start in range(0, count, COMMIT_BLOCK):
        rows = slice(row_start, min(count, row_start + COMMIT_BLOCK))
        for block in blocks:
            scored = _score_block(params, commits, rows, knowledge, block, hub)
            item_ids = np.arange(block[0], block[1])
            merged_conf = np.concatenate([kept["confidence"][rows], scored["confidence"]], axis=1)
            merged_items = np.concatenate(
                [kept_items[rows], np.broadcast_to(item_ids, scored["confidence"].shape)], axis=1)
            top = np.argpartition(-merged_conf, keep - 1, axis=1)[:, :keep]
            for name in parts:
                merged = np.concatenate([kept[name][rows], scored[name].astype(np.float32)], axis=1)
                kept[name][rows] = np.take_along_axis(merged, top, axis=1)
            kept_items[rows] = np.take_along_axis(merged_items, top, axis=1)
    order = np.argsort(-kept["confidence"], axis=1, kind="stable")
    kept_items = np.take_along_axis(kept_items, order, axis=1)
    result = {name: np.take_along_axis(kept[name], order, axis=1) for name in parts}
    dropped = ~np.isfinite(result["confidence"]) | (result["confidence"] < 0)
    kept_items[dropped] = -1
    return Candidates(kept_items, *(result[name] for name in parts))
