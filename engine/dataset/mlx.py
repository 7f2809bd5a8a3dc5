"""The one writer of an mlx-lm data folder: `{train,valid,test}.jsonl`, each pair in the split its content hash
decides (engine.dataset.split), each file written atomically.

Linking's `data/` folder, `export`'s datasets/<name>/ and the collected export all write through here, so the
three folders follow the same split rule and the same guarantee mlx-lm needs: with two or more lines, train and
valid are never empty. What goes in (the safety gate, tiers, reviews) and what sits beside the files (manifests,
by_source/) stay with each caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.dataset.split import split_by_hash
from engine.errors import StudioError
from engine.files import write_atomic
from engine.records import SPLITS


def write_mlx_splits(folder: Path, lines: Sequence[str], hashes: Sequence[str], valid_fraction: float,
                     test_fraction: float) -> dict[str, list[int]]:
    """Write `lines` (one JSON line each, no newline) into folder/<split>.jsonl by the hash split of `hashes` and
    return the indexes per split. A split left empty has no file: a stale one from an earlier write is removed,
    since mlx-lm would read it as if it were current."""
    if len(lines) != len(hashes):
        raise StudioError(f"An MLX folder needs one hash per line; got {len(lines)} lines and {len(hashes)} hashes.")
    if len(lines) < 2:
        raise StudioError(f"Only {len(lines)} line(s) for the MLX folder {folder}, and mlx-lm needs at least two.")
    splits = split_by_hash(hashes, valid_fraction, test_fraction)
    # Every file's bytes first, so a problem in any of them leaves the folder as it was, not half-written.
    payloads = {name: "".join(lines[index] + "\n" for index in splits[name]).encode("utf-8")
                for name in SPLITS if splits[name]}
    folder = Path(folder)
    for name, payload in payloads.items():
        write_atomic(folder / f"{name}.jsonl", payload)
    for name in SPLITS:
        if name not in payloads:
            (folder / f"{name}.jsonl").unlink(missing_ok=True)
    return splits


def remove_mlx_splits(folder: Path) -> None:
    """Remove the split files of an MLX folder that can no longer be written (fewer than two lines): a stale
    train.jsonl would be trained on as if it were current."""
    for name in SPLITS:
        (Path(folder) / f"{name}.jsonl").unlink(missing_ok=True)
