"""export_training: the collected examples as an mlx-lm data folder, `<workspace>/datasets/collected/`.

What goes in: examples that are not marked duplicates, not dropped by the quality check, at or above
collect.export_min_tier, and through the sensitive-data gate (engine.dataset.gate): every text of the example,
metadata included, is scanned with today's rules; one with findings goes in only once a reviewer kept it (`good`)
or chose `redact` (then every finding, in the metadata too, becomes a typed placeholder). Flagged examples are
listed by `python -m engine review --collected`.
Lines are in collect.export_format: "chat" writes `{"messages": [...]}`; "completion" and "instruction" write
`{"prompt", "completion"}` (mlx-lm has no instruction format, so an instruction pair's prompt is its instruction
and context, as engine.dataset.export writes it). Beside them, `by_source/<source>.jsonl` holds the same examples in
their own format (seed 002's instruction `{instruction, input, output, metadata}` or chat `{messages, metadata}`)
with metadata naming the source, quality tier and score, for other tools and for reading.
The split files come from the one MLX writer (engine.dataset.mlx): each example's content hash decides its split,
so an example never moves between train and test as the data grows. The folder is built beside its final place and
swapped in, so a reader sees the old export or the new one, never half of either.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from engine.clock import now_iso
from engine.config import PipelineConfig
from engine.dataset.gate import gate_records
from engine.dataset.mlx import write_mlx_splits
from engine.files import building_folder, write_atomic
from engine.formats import dumps_line, to_chat_line, to_completion_line
from engine.progress import ProgressFn, no_progress
from engine.records import SPLITS, TIERS
from engine.store import Workspace

FOLDER = ("datasets", "collected")
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1


def export_training(config: PipelineConfig, workspace_path: Path, progress: ProgressFn = no_progress) -> dict:
    """Write `<workspace>/datasets/collected/{train,valid,test}.jsonl`, `by_source/*.jsonl` and `manifest.json`.

    Returns {"folder", "written", "counts", "by_source_files", "format", "mlx_format", "min_tier", "examples",
    "tokens", "by_source", "by_tier", "excluded" {reason: count}, "redacted", "exported_at"}; with fewer than two
    exportable examples nothing is written (a stale export is removed) and "written" is False with the "reason"."""
    fmt = config.get("collect.export_format")
    min_tier = config.get("collect.export_min_tier")
    workspace = Workspace.open(workspace_path)
    folder = workspace.path(*FOLDER)
    with workspace.connection() as conn:
        rows = conn.execute("SELECT id, content_hash, source, format, record_json, tier, quality_score, dropped,"
                            " sensitive, duplicate_of, tokens, human_reviewed, source_time FROM examples"
                            " ORDER BY id").fetchall()
    excluded: Counter = Counter()
    candidates = []
    for row in rows:
        if row["duplicate_of"] is not None:
            excluded["duplicate"] += 1
        elif row["dropped"]:
            excluded["dropped by the quality check"] += 1
        elif TIERS.index(row["tier"]) > TIERS.index(min_tier):
            excluded[f"below {min_tier} tier"] += 1
        else:
            candidates.append(row)
    # One gate for every example, scanned again with today's rules (cached by content): a secret the rules of
    # collection time did not know still waits for a reviewer, and a redaction covers the metadata too.
    verdicts = gate_records(workspace, [(row["content_hash"], json.loads(row["record_json"])) for row in candidates],
                            progress)
    chosen, lines, redacted = [], [], 0
    native: dict[str, list[str]] = {}
    for done, (row, verdict) in enumerate(zip(candidates, verdicts, strict=True), start=1):
        progress("export", done, len(candidates))
        if verdict.action == "hold":
            excluded["possible sensitive data, not reviewed"] += 1
            continue
        if verdict.action == "drop":
            excluded["sensitive data, marked bad by a reviewer"] += 1
            continue
        record = verdict.record
        redacted += verdict.action == "redact"
        line = to_chat_line(record, row["format"]) if fmt == "chat" else to_completion_line(record, row["format"])
        chosen.append(row)
        lines.append(dumps_line(line))
        metadata = {**(record.get("metadata") or {}), "source": row["source"], "format": row["format"],
                    "quality_tier": row["tier"], "quality_score": row["quality_score"],
                    "human_reviewed": bool(row["human_reviewed"]), "timestamp": row["source_time"]}
        native.setdefault(row["source"], []).append(dumps_line({**record, "metadata": metadata}))
    exported_at = now_iso("seconds")
    result = {
        "folder": str(folder), "written": False, "counts": dict.fromkeys(SPLITS, 0), "format": fmt,
        "mlx_format": "chat" if fmt == "chat" else "completions", "min_tier": min_tier, "examples": len(chosen),
        "tokens": sum(row["tokens"] for row in chosen),
        "by_source": dict(Counter(row["source"] for row in chosen)),
        "by_tier": {tier: sum(row["tier"] == tier for row in chosen) for tier in TIERS},
        "excluded": dict(excluded.most_common()), "redacted": redacted, "exported_at": exported_at,
    }
    if len(chosen) < 2:
        result["reason"] = (f"Only {len(chosen)} example(s) can be exported and mlx-lm needs at least two; collect "
                            f"more or lower collect.export_min_tier (now {min_tier}).")
        if folder.exists():
            shutil.rmtree(folder)  # a stale export would be trained on as if it were current
        return result
    with building_folder(folder) as staging:
        splits = write_mlx_splits(staging, lines, [row["content_hash"] for row in chosen], VALID_FRACTION,
                                  TEST_FRACTION)
        (staging / "by_source").mkdir()
        for source, source_lines in native.items():
            write_atomic(staging / "by_source" / f"{source}.jsonl", "".join(line + "\n" for line in source_lines))
        result["by_source_files"] = sorted(f"by_source/{source}.jsonl" for source in native)
        result["counts"] = {name: len(splits[name]) for name in SPLITS}
        result["written"] = True
        manifest = {key: value for key, value in result.items() if key != "folder"}
        write_atomic(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return result


def last_export(workspace_path: Path) -> dict | None:
    """The manifest of the current export, or None when there is none."""
    manifest = Path(workspace_path).joinpath(*FOLDER, "manifest.json")
    try:
        return json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
