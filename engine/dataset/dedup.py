"""Duplicate training pairs: exact copies, and near duplicates (the same output code with near-identical inputs,
as when screenpipe captured the same discussion a few seconds apart). Each group keeps its best pair; the others
are dropped with the reason and the index of the pair kept.

Cost: one hash per pair, then word-shingle Jaccard only inside groups that share their output code.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.formats import pair_hash

NEAR_DUPLICATE_JACCARD = 0.8
_WORD = re.compile(r"\w+")



def _normalized_code(text: str) -> str:
    return "\n".join(line.strip() for line in str(text).splitlines() if line.strip())


def _shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    words = _WORD.findall(str(text).lower())
    if len(words) < size:
        return {tuple(words)}
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Duplicate:
    index: int  # the pair dropped (position in the sequence given)
    kept: int  # the pair kept in its place
    kind: str  # exact | near
    similarity: float


def find_duplicates(records: Sequence[dict | None], better: Callable[[int], tuple] | None = None,
                    threshold: float = NEAR_DUPLICATE_JACCARD) -> list[Duplicate]:
    """Duplicates among `records` (None entries are skipped). `better(i)` gives a sort key, larger is better
    (quality score, confidence, ...); ties keep the earlier pair."""
    def rank(index: int) -> tuple:
        return (*(better(index) if better else ()), -index)

    duplicates: list[Duplicate] = []
    by_output: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if isinstance(record, dict) and isinstance(record.get("output"), str):
            by_output[hashlib.sha1(_normalized_code(record["output"]).encode("utf-8", "surrogatepass")).hexdigest()
                      ].append(index)
    for members in by_output.values():
        if len(members) < 2:
            continue
        # Exact duplicates first: identical instruction + input within the same output.
        exact: dict[str, list[int]] = defaultdict(list)
        for index in members:
            exact[pair_hash(records[index])].append(index)
        survivors = []
        for group in exact.values():
            best = max(group, key=rank)
            survivors.append(best)
            duplicates.extend(Duplicate(index, best, "exact", 1.0) for index in group if index != best)
        # Near duplicates: greedy clustering by Jaccard of instruction+input shingles, best pair first.
        survivors.sort(key=rank, reverse=True)
        shingles = {index: _shingles(f"{records[index].get('instruction', '')} {records[index].get('input', '')}")
                    for index in survivors}
        kept: list[int] = []
        for index in survivors:
            match = next(((other, score) for other in kept
                          if (score := jaccard(shingles[index], shingles[other])) >= threshold), None)
            if match:
                duplicates.append(Duplicate(index, match[0], "near", round(match[1], 3)))
            else:
                kept.append(index)
    return sorted(duplicates, key=lambda duplicate: duplicate.index)
