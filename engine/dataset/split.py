"""Train / valid / test split that is stable: a pair's split follows from its content hash, so re-exporting after
new data arrives never moves an old pair from test into train (no leakage between adapter versions)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from engine.errors import StudioError


def _position(pair_hash: str) -> float:
    return int(hashlib.sha1(f"split:{pair_hash}".encode()).hexdigest()[:12], 16) / float(1 << 48)


def split_by_hash(pair_hashes: Sequence[str], valid_fraction: float = 0.1, test_fraction: float = 0.1
                  ) -> dict[str, list[int]]:
    """Indexes of `pair_hashes` per split (train, valid, test). mlx-lm needs a non-empty train and valid set, so
    with two or more pairs (and a valid fraction above zero) both get at least one even when the fractions round
    to none: valid takes the train pair nearest the valid band when train can spare one, else a test pair (or the
    last train pair); train takes a test pair whenever it has none (or a valid one when valid can spare it). Only
    tiny sets move; larger ones keep the plain hash bands."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise StudioError("valid and test fractions must each be between 0 and 1 and leave room for training.")
    splits: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for index, pair_hash in enumerate(pair_hashes):
        position = _position(pair_hash)
        if position < test_fraction:
            splits["test"].append(index)
        elif position < test_fraction + valid_fraction:
            splits["valid"].append(index)
        else:
            splits["train"].append(index)
    if not splits["valid"] and valid_fraction > 0:
        if len(splits["train"]) >= 2:
            moved = min(splits["train"], key=lambda i: _position(pair_hashes[i]))
            splits["train"].remove(moved)
            splits["valid"].append(moved)
        elif len(pair_hashes) >= 2:
            donor = "test" if splits["test"] else "train"
            splits["valid"].append(splits[donor].pop())
    if not splits["train"] and (splits["test"] or len(splits["valid"]) >= 2):
        splits["train"].append(splits["test" if splits["test"] else "valid"].pop())
    return splits
