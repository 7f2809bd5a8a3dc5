"""Export the cleaned dataset as an mlx-lm data folder: train.jsonl, valid.jsonl, test.jsonl of
`{"prompt", "completion"}` lines (mlx-lm's completions format, detected from the first line).

What goes in: usable pairs (readable, well-formed, within length bounds, not duplicates, not marked bad) at or
above `min_tier`. Pairs with sensitive findings go in only once a reviewer chose keep (`good`) or `redact`; a
redacted pair carries typed placeholders (`<AWS_ACCESS_KEY_1>`) instead of the values. Each file is written
atomically; the manifest export.json records counts and the reason for every pair left out.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.clock import now_iso
from engine.config import DEFAULT_MIN_CONFIDENCE
from engine.dataset.mlx import write_mlx_splits
from engine.dataset.redact import redact_record
from engine.dataset.validate import PairAnalysis, analyze_dataset
from engine.errors import StudioError
from engine.files import write_atomic
from engine.formats import dumps_line, to_completion
from engine.progress import ProgressFn, no_progress
from engine.records import SPLITS, TIERS
from engine.store import Workspace

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class ExportResult:
    folder: str
    counts: dict[str, int]
    redacted_pairs: int
    excluded: dict[str, int] = field(default_factory=dict)
    preview: list[dict] = field(default_factory=list)  # the first lines of train.jsonl, as written

    def to_dict(self) -> dict:
        return asdict(self)



def _exclusion(pair: PairAnalysis, min_tier: str) -> str | None:
    if pair.record is None:
        return "unreadable line"
    if pair.quality.dropped:
        return pair.quality.reasons[0].split(":")[0]
    if pair.duplicate is not None:
        return f"{pair.duplicate.kind} duplicate"
    if pair.unresolved:
        return "unresolved sensitive data (needs keep or redact)"
    if TIERS.index(pair.quality.tier) > TIERS.index(min_tier):
        return f"below {min_tier} tier"
    return None


def export_folder(workspace: Workspace, name: str) -> Path:
    if not _NAME.fullmatch(name or ""):
        raise StudioError(f"A dataset name is letters, digits, '.', '_' or '-' (up to 64); got {name!r}.")
    return workspace.path("datasets", name)


def export_dataset(path: str | Path, workspace: Workspace, name: str = "default", out_dir: str | Path | None = None,
                   min_tier: str = "bronze", min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                   valid_fraction: float = 0.1, test_fraction: float = 0.1,
                   progress: ProgressFn = no_progress) -> ExportResult:
    """Write the MLX folder for the JSONL at `path` into workspace/datasets/<name>/ (or `out_dir`, a folder the
    user named) and return what went where."""
    if min_tier not in TIERS:
        raise StudioError(f"min_tier is one of {', '.join(TIERS)}; got {min_tier!r}.")
    folder = Path(out_dir).expanduser() if out_dir else export_folder(workspace, name)
    if folder.exists() and not folder.is_dir():
        raise StudioError(f"The export folder {folder} is a file; choose another folder.")
    analysis = analyze_dataset(path, workspace, min_confidence, progress=progress)
    excluded: Counter = Counter()
    chosen: list[PairAnalysis] = []
    for pair in analysis.pairs:
        reason = _exclusion(pair, min_tier)
        if reason:
            excluded[reason] += 1
        else:
            chosen.append(pair)
    if len(chosen) < 2:
        detail = "; ".join(f"{reason}: {count}" for reason, count in excluded.most_common()) or "the file is empty"
        raise StudioError(f"Only {len(chosen)} pair(s) can be exported, and mlx-lm needs at least two ({detail}).")
    lines, redacted = [], 0
    for pair in chosen:
        record = pair.record
        if pair.findings and pair.decision == "redact":
            record = redact_record(record, pair.findings)
            redacted += 1
        lines.append(dumps_line(to_completion(record)))
    splits = write_mlx_splits(folder, lines, [pair.pair_hash for pair in chosen], valid_fraction, test_fraction)
    counts = {split_name: len(splits[split_name]) for split_name in SPLITS}
    preview = [json.loads(lines[i]) for i in splits["train"][:3]]
    result = ExportResult(str(folder), counts, redacted, dict(excluded.most_common()), preview)
    summary = {key: value for key, value in result.to_dict().items() if key != "preview"}
    manifest = {**summary, "source": str(analysis.path), "min_tier": min_tier,
                "exported_at": now_iso("seconds"), "format": "completions"}
    write_atomic(folder / "export.json", json.dumps(manifest, indent=2) + "\n")
    return result
