"""The seeds' own matchers, kept as they were specified so their results can be compared with the link model's.

A block of commits against a block of knowledge items is scored as a small dense matrix and merged into a running
top-`candidates` per commit, so memory is bounded by the block sizes, never by commits x knowledge.
- `semantic` (seed v2): cosine of the commit message and the knowledge text (best chunk), no time window.
- `hybrid` (seed v1): only knowledge seen in [commit - time_window_days, commit - commit_offset_hours] that shares
  at least one tech keyword; score = keyword_weight * keyword + semantic_weight * cosine.
Their raw scores are turned into calibrated probabilities by the link model's per-mode maps (engine.linking.model);
`best`, the default, is not a matcher here but the learned model over engine.linking.features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

SEED_MODES = ("semantic", "hybrid")
COMMIT_BLOCK = 64
KNOWLEDGE_BLOCK_CHUNKS = 8192
HOUR = 3600.0
DAY = 24 * HOUR


@dataclass
class MatchParams:
    mode: str = "semantic"
    candidates: int = 20  # kept per commit (top_k and min_confidence filter these later)
    time_window_days: float = 7.0
    commit_offset_hours: float = 1.0
    keyword_weight: float = 0.3
    semantic_weight: float = 0.7


@dataclass
class CommitSide:
    """Commits as the seed matchers see them; rows align across every array."""

    shas: list[str]
    times: np.ndarray  # unix seconds
    message_vectors: np.ndarray  # (commits, dim)
    keywords: sparse.csr_matrix  # (commits, keyword vocabulary), 1 where the commit text has the keyword


@dataclass
class KnowledgeSide:
    """Knowledge representatives; chunk rows of one item are contiguous, `chunk_starts[i]` is item i's first."""

    ids: np.ndarray
    first_times: np.ndarray  # unix seconds, NaN when unknown
    last_times: np.ndarray
    chunk_vectors: np.ndarray  # (chunks, dim)
    chunk_starts: np.ndarray  # (items,)
    keywords: sparse.csr_matrix  # (items, keyword vocabulary), binary

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Candidates:
    """Per commit, the kept items (indices into KnowledgeSide) with the parts of their scores; -1 pads."""

    items: np.ndarray  # (commits, candidates) int
    confidence: np.ndarray  # the mode's raw score
    semantic: np.ndarray
    keyword: np.ndarray  # NaN where the mode does not use it


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


def _score_block(params: MatchParams, commits: CommitSide, rows: slice, knowledge: KnowledgeSide,
                 block: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    item_start, item_end = block[0], block[1]
    semantic = _best_chunk_similarity(commits.message_vectors[rows], knowledge, block)
    nan = np.full(semantic.shape, np.nan, dtype=np.float32)
    if params.mode == "semantic":
        return {"confidence": np.clip(semantic, 0, 1), "semantic": semantic, "keyword": nan}
    times = commits.times[rows][:, None]
    first = knowledge.first_times[item_start:item_end][None, :]
    last = knowledge.last_times[item_start:item_end][None, :]
    shared = (commits.keywords[rows] @ knowledge.keywords[item_start:item_end].T).toarray()
    commit_keywords = np.asarray(commits.keywords[rows].sum(axis=1)).reshape(-1, 1)
    keyword = shared / np.maximum(commit_keywords, 1)
    window_start = times - params.time_window_days * DAY
    window_end = times - params.commit_offset_hours * HOUR
    in_window = (first <= window_end) & (last >= window_start)
    confidence = params.keyword_weight * keyword + params.semantic_weight * np.clip(semantic, 0, 1)
    confidence = np.where(in_window & (shared > 0), confidence, -1.0)
    return {"confidence": confidence, "semantic": semantic, "keyword": keyword}


def match(commits: CommitSide, knowledge: KnowledgeSide, params: MatchParams) -> Candidates:
    """The top `params.candidates` items per commit under a seed mode, with every part of their scores."""
    if params.mode not in SEED_MODES:
        raise ValueError(f"mode must be one of {SEED_MODES}, not {params.mode!r}")
    count, keep = len(commits.shas), params.candidates
    parts = ("confidence", "semantic", "keyword")
    kept = {name: np.full((count, keep), -np.inf if name == "confidence" else np.nan, dtype=np.float32)
            for name in parts}
    kept_items = np.full((count, keep), -1, dtype=np.int64)
    if count == 0 or len(knowledge) == 0:
        return Candidates(kept_items, *(kept[name] for name in parts))
    blocks = _item_blocks(knowledge)
    for row_start in range(0, count, COMMIT_BLOCK):
        rows = slice(row_start, min(count, row_start + COMMIT_BLOCK))
        for block in blocks:
            scored = _score_block(params, commits, rows, knowledge, block)
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
