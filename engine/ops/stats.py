"""Statistics of the collected examples (seed 002's training_stats: summary, daily, sources, json), read from the
workspace's `examples` table. The API, the Pipeline page and `python -m engine stats` all show these numbers.

What counts: every stored example except those the dedup job marked as a duplicate of another (they stay in the
table for the record, and are reported as `duplicates`). A workspace that does not exist yet, or holds nothing,
gives zeros, never an error, and reading stats never creates a workspace.

- summary(workspace) -> {"overall": {total_examples, by_source, by_format, by_quality, avg_token_length,
  total_tokens, storage_bytes, duplicates, human_reviewed, first_collected_at, last_collected_at},
  "summary": {total_examples, storage_mb, healthy_sources, sources_with_examples, top_quality_percentage,
  last_collected_at, duplicates}}
- daily(workspace, days=30) -> [{date, total_examples, by_source, by_quality}] for every day, oldest first
  (by the day an example was collected, UTC)
- sources(workspace) -> [{source, total_examples, quality_distribution, health_score, examples_24h,
  last_updated, avg_tokens, duplicates}] for every collect source. health_score is the source's mean quality
  score (0-1; the seed wants every source above 0.6), 0 while it has no examples.
- full(workspace, days=30) -> everything above, for `stats json`
- training_readiness(config, workspace) -> {total_samples, min_for_training, ready_to_train, export_min_tier,
  by_tier, held_for_review, last_export[, exported]}: total_samples are the examples export_training would write;
  exported (with_exported=True) is folder_readiness of the folder it wrote.
- folder_readiness(config, workspace, data_dir=None) -> {data_folder, exists, train, valid, test, examples,
  min_for_training, ready_to_train}: the examples a data folder holds, which POST /api/train trains on.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from engine.clock import utc_now
from engine.config import COLLECT_SOURCES, EXAMPLE_FORMATS, PipelineConfig
from engine.errors import StudioError
from engine.records import SPLITS, TIERS
from engine.store import DB_NAME, Workspace

HEALTHY_SCORE = 0.6
MAX_DAYS = 3650
_COUNTED = "duplicate_of IS NULL"


@contextlib.contextmanager
def _connection(workspace_path: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection to an existing workspace, or None when there is no workspace database yet."""
    if not (Path(workspace_path) / DB_NAME).is_file():
        yield None
        return
    with Workspace.open(workspace_path).connection() as conn:
        yield conn


def _zeros(keys) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


def summary(workspace_path: Path) -> dict:
    """Totals by source, format and tier, tokens and storage (seed 002's GET /api/training/stats `data`)."""
    overall = {"total_examples": 0, "by_source": _zeros(COLLECT_SOURCES), "by_format": _zeros(EXAMPLE_FORMATS),
               "by_quality": _zeros(TIERS), "avg_token_length": 0.0, "total_tokens": 0, "storage_bytes": 0,
               "duplicates": 0, "human_reviewed": 0, "first_collected_at": None, "last_collected_at": None}
    with _connection(workspace_path) as conn:
        if conn is not None:
            for column, key in (("source", "by_source"), ("format", "by_format"), ("tier", "by_quality")):
                for name, count in conn.execute(
                        f"SELECT {column}, COUNT(*) FROM examples WHERE {_COUNTED} GROUP BY {column}"):
                    overall[key][name] = count
            row = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(tokens), 0), COALESCE(SUM(human_reviewed), 0),"
                               f" MIN(created_at), MAX(created_at) FROM examples WHERE {_COUNTED}").fetchone()
            overall.update(total_examples=row[0], total_tokens=row[1], human_reviewed=row[2],
                           first_collected_at=row[3], last_collected_at=row[4],
                           avg_token_length=round(row[1] / row[0], 1) if row[0] else 0.0)
            row = conn.execute("SELECT COALESCE(SUM(LENGTH(CAST(record_json AS BLOB))), 0),"
                               " COUNT(duplicate_of) FROM examples").fetchone()
            overall.update(storage_bytes=row[0], duplicates=row[1])
    total = overall["total_examples"]
    health = sources(workspace_path)
    top = overall["by_quality"]["gold"] + overall["by_quality"]["silver"]
    return {
        "overall": overall,
        "summary": {
            "total_examples": total,
            "storage_mb": round(overall["storage_bytes"] / 1_048_576, 2),
            "healthy_sources": sum(1 for item in health if item["total_examples"]
                                   and item["health_score"] >= HEALTHY_SCORE),
            "sources_with_examples": sum(1 for item in health if item["total_examples"]),
            "top_quality_percentage": round(100 * top / total, 1) if total else 0.0,
            "last_collected_at": overall["last_collected_at"],
            "duplicates": overall["duplicates"],
        },
    }


def _check_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise StudioError(f"days is a whole number from 1 to {MAX_DAYS}; got {days!r}.")
    return days


def daily(workspace_path: Path, days: int = 30) -> list[dict]:
    """Examples collected per UTC day for the last `days` days (today included), every day listed, oldest first."""
    days = _check_days(days)
    today = utc_now().date()
    first = today - timedelta(days=days - 1)
    result = {first + timedelta(days=offset): {"date": (first + timedelta(days=offset)).isoformat(),
                                               "total_examples": 0, "by_source": _zeros(COLLECT_SOURCES),
                                               "by_quality": _zeros(TIERS)} for offset in range(days)}
    with _connection(workspace_path) as conn:
        if conn is not None:
            rows = conn.execute(
                f"SELECT substr(created_at, 1, 10) AS day, source, tier, COUNT(*) FROM examples"
                f" WHERE {_COUNTED} AND created_at >= ? GROUP BY day, source, tier", (first.isoformat(),))
            for day, source, tier, count in rows:
                entry = result.get(date.fromisoformat(day))
                if entry is None:  # collected "tomorrow" by a clock ahead of ours: not in the range asked for
                    continue
                entry["total_examples"] += count
                entry["by_source"][source] = entry["by_source"].get(source, 0) + count
                entry["by_quality"][tier] += count
    return list(result.values())


def sources(workspace_path: Path) -> list[dict]:
    """Health of every example source: how much it produced, of what quality, and how recently."""
    found: dict[str, dict] = {
        name: {"source": name, "total_examples": 0, "quality_distribution": _zeros(TIERS), "health_score": 0.0,
               "examples_24h": 0, "last_updated": None, "avg_tokens": 0.0, "duplicates": 0}
        for name in COLLECT_SOURCES}
    with _connection(workspace_path) as conn:
        if conn is not None:
            since = (utc_now() - timedelta(hours=24)).isoformat()
            for row in conn.execute(
                    f"SELECT source, COUNT(*), AVG(quality_score), SUM(created_at >= ?), MAX(created_at), AVG(tokens)"
                    f" FROM examples WHERE {_COUNTED} GROUP BY source", (since,)):
                entry = found.setdefault(row[0], {"source": row[0], "quality_distribution": _zeros(TIERS),
                                                  "duplicates": 0})
                entry.update(total_examples=row[1], health_score=round(row[2], 2), examples_24h=row[3],
                             last_updated=row[4], avg_tokens=round(row[5], 1))
            for source, tier, count in conn.execute(
                    f"SELECT source, tier, COUNT(*) FROM examples WHERE {_COUNTED} GROUP BY source, tier"):
                found[source]["quality_distribution"][tier] = count
            for source, count in conn.execute(
                    "SELECT source, COUNT(*) FROM examples WHERE duplicate_of IS NOT NULL GROUP BY source"):
                found[source]["duplicates"] = count
    return list(found.values())


def training_readiness(config: PipelineConfig, workspace_path: Path, *, with_exported: bool = False) -> dict:
    """Whether the collected examples are enough to train (collect.min_examples_for_training), counting the
    examples export_training would write: not duplicates, not dropped, at or above collect.export_min_tier, and
    without unreviewed sensitive-data findings. With `with_exported`, also what the exported folder holds now
    (`exported`, as `folder_readiness` counts it), which is what the API's POST /api/train trains on; a broken
    exported folder is part of the answer (its `problem`), not an error."""
    from engine.collect.export import last_export
    from engine.dataset.review import clears_findings, item_statuses

    min_tier = config.get("collect.export_min_tier")
    needed = int(config.get("collect.min_examples_for_training"))
    allowed = TIERS[:TIERS.index(min_tier) + 1]
    by_tier, flagged = _zeros(TIERS), []
    with _connection(workspace_path) as conn:
        if conn is not None:
            base = f"FROM examples WHERE {_COUNTED} AND dropped = 0 AND tier IN ({','.join('?' * len(allowed))})"
            for tier, count in conn.execute(f"SELECT tier, COUNT(*) {base} AND sensitive = 0 GROUP BY tier", allowed):
                by_tier[tier] = count
            flagged = conn.execute(f"SELECT content_hash, tier {base} AND sensitive > 0", allowed).fetchall()
    held = 0
    if flagged:
        decisions = item_statuses(Workspace.open(workspace_path), [digest for digest, _ in flagged])
        for digest, tier in flagged:
            if digest in decisions and clears_findings(decisions[digest].decision):
                by_tier[tier] += 1
            else:
                held += 1
    total = sum(by_tier.values())
    export = last_export(workspace_path)
    readiness = {"total_samples": total, "min_for_training": needed, "ready_to_train": total >= needed,
                 "export_min_tier": min_tier, "by_tier": by_tier, "held_for_review": held,
                 "last_export": None if export is None else {key: export.get(key) for key in
                                                             ("exported_at", "counts", "format", "examples")}}
    if with_exported:
        from engine.collect.export import FOLDER as EXPORT_FOLDER

        try:
            readiness["exported"] = folder_readiness(config, workspace_path)
        except StudioError as exc:  # a collected folder that is not UTF-8 or not JSON lines
            readiness["exported"] = {"data_folder": str(Path(workspace_path).joinpath(*EXPORT_FOLDER)),
                                     "exists": True, **dict.fromkeys(SPLITS, 0), "examples": 0,
                                     "min_for_training": needed, "ready_to_train": False, "problem": str(exc)}
    return readiness


def folder_readiness(config: PipelineConfig, workspace_path: Path, data_dir: str | None = None) -> dict:
    """Whether a data folder (default: the exported collected folder) holds enough examples to train on:
    {data_folder, exists, train, valid, test, examples, min_for_training, ready_to_train}.

    The count is every example in the folder (train + valid + test lines), as collect.min_examples_for_training
    counts the examples before they are split; a collected folder not exported yet counts 0. A given folder that
    cannot be read raises the launcher's StudioError naming the problem.
    """
    from engine.collect.export import FOLDER as EXPORT_FOLDER
    from engine.training.launcher import inspect_data_folder

    folder = Path(data_dir).expanduser() if data_dir else Path(workspace_path).joinpath(*EXPORT_FOLDER)
    needed = int(config.get("collect.min_examples_for_training"))
    counts = dict.fromkeys(SPLITS, 0)
    exists = (folder / "train.jsonl").is_file()
    if data_dir or exists:
        data = inspect_data_folder(folder)
        counts = {split: getattr(data, split) for split in SPLITS}
        folder = data.path
    examples = sum(counts.values())
    return {"data_folder": str(folder), "exists": exists, **counts, "examples": examples,
            "min_for_training": needed, "ready_to_train": examples >= needed}


def full(workspace_path: Path, days: int = 30) -> dict:
    """Everything: summary, daily and sources together (what `python -m engine stats json` prints)."""
    return {"generated_at": utc_now().isoformat(timespec="seconds"), "workspace": str(workspace_path), "days": days,
            **summary(workspace_path), "daily": daily(workspace_path, days), "sources": sources(workspace_path)}
