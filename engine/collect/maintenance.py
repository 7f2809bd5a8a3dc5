"""The scheduler's upkeep of collected examples: re-scoring them (quality_check) and marking near duplicates
(dedup_cleanup). Both read the examples in batches, decide, and write all their changes in one transaction.

quality_check applies what changed since collection: review decisions (good makes an example human-reviewed and
can make it gold; bad drops it), the scoring rules or min_confidence of today, and today's sensitive-data rules
(the `sensitive` count, engine.dataset.gate; scans are cached by content, so only new rules cost time).
dedup_cleanup runs engine.dataset.dedup over the examples' instruction views (a chat's last reply is its
output): of each group of exact or near duplicates the best (human-reviewed, then highest score, then oldest) is
kept and the others point at it in `duplicate_of`. Nothing is deleted, so a later check can undo a mark and a
report can show it. Memory follows the batch size and the number of candidates (examples sharing an answer), not
the table's size.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from engine.clock import now_iso
from engine.collect.scoring import score_example
from engine.config import PipelineConfig
from engine.dataset.dedup import _normalized_code, find_duplicates
from engine.dataset.gate import scan_records
from engine.dataset.review import clears_findings, item_statuses
from engine.formats import instruction_view
from engine.progress import ProgressFn, no_progress
from engine.records import TIERS
from engine.store import Workspace

BATCH = 2_000


def _batches(conn: sqlite3.Connection, columns: str, where: str = "1") -> Iterator[list[sqlite3.Row]]:
    last = 0
    while True:
        rows = conn.execute(f"SELECT id, {columns} FROM examples WHERE id > ? AND {where} ORDER BY id LIMIT ?",
                            (last, BATCH)).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def quality_check(config: PipelineConfig, workspace_path: Path, progress: ProgressFn = no_progress) -> dict:
    """Re-score every example; returns {"checked", "by_tier", "changed" (tier changed), "rescored" (score or
    reasons changed), "dropped", "human_reviewed", "checked_at"}."""
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        total = conn.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
        updates, by_tier, changed, checked = [], Counter(), 0, 0
        for rows in _batches(conn, "content_hash, source, format, record_json, tier, quality_score, quality_reasons,"
                                   " dropped, human_reviewed, sensitive"):
            decisions = item_statuses(workspace, [row["content_hash"] for row in rows])
            records = [json.loads(row["record_json"]) for row in rows]
            findings = scan_records(workspace, list(enumerate(records)))
            for index, (row, record) in enumerate(zip(rows, records, strict=True)):
                decision = decisions.get(row["content_hash"])
                verdict = decision.decision if decision else None
                quality = score_example(record, row["format"], row["source"], verdict, config.min_confidence)
                new = (quality.tier, quality.score, json.dumps(quality.reasons), int(quality.dropped),
                       int(clears_findings(verdict)), len(findings.get(index, ())))
                old = (row["tier"], row["quality_score"], row["quality_reasons"], row["dropped"],
                       row["human_reviewed"], row["sensitive"])
                by_tier[quality.tier] += 1
                if new != old:
                    updates.append((*new, row["id"]))
                    changed += quality.tier != row["tier"]
            checked += len(rows)
            progress("quality check", checked, total)
        checked_at = now_iso()
        with workspace.transaction(conn):
            conn.executemany("UPDATE examples SET tier = ?, quality_score = ?, quality_reasons = ?, dropped = ?,"
                             " human_reviewed = ?, sensitive = ? WHERE id = ?", updates)
            conn.execute("UPDATE examples SET checked_at = ?", (checked_at,))
            dropped = conn.execute("SELECT COUNT(*) FROM examples WHERE dropped = 1").fetchone()[0]
            reviewed = conn.execute("SELECT COUNT(*) FROM examples WHERE human_reviewed = 1").fetchone()[0]
    return {"checked": checked, "by_tier": {tier: by_tier.get(tier, 0) for tier in TIERS}, "changed": changed,
            "rescored": len(updates), "dropped": dropped, "human_reviewed": reviewed, "checked_at": checked_at}


def _answer_key(view: dict) -> str:
    """What engine.dataset.dedup groups by first: the answer with its whitespace normalized."""
    return hashlib.sha1(_normalized_code(view["output"]).encode("utf-8", "surrogatepass")).hexdigest()


def dedup_cleanup(config: PipelineConfig, workspace_path: Path, progress: ProgressFn = no_progress) -> dict:
    """Mark exact and near duplicates among all examples; returns {"checked", "duplicates_marked" (newly marked),
    "duplicates_cleared" (no longer duplicates), "duplicates_total", "exact", "near", "by_source"}."""
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        total = conn.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
        # Pass 1: only examples that share an answer can be duplicates (find_duplicates compares nothing else).
        by_answer: dict[str, list[int]] = {}
        marked_before: dict[int, int] = {}
        checked = 0
        for rows in _batches(conn, "format, record_json, duplicate_of"):
            for row in rows:
                key = _answer_key(instruction_view(json.loads(row["record_json"]), row["format"]))
                by_answer.setdefault(key, []).append(row["id"])
                if row["duplicate_of"] is not None:
                    marked_before[row["id"]] = row["duplicate_of"]
            checked += len(rows)
            progress("dedup", checked, total)
        candidates = sorted(example for ids in by_answer.values() if len(ids) > 1 for example in ids)
        del by_answer
        # Pass 2: the real comparison, on the candidates only.
        rows = []
        for start in range(0, len(candidates), 500):
            chunk = candidates[start:start + 500]
            rows += conn.execute(
                "SELECT id, source, format, record_json, quality_score, human_reviewed, dropped FROM examples"
                f" WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall()
        views = [instruction_view(json.loads(row["record_json"]), row["format"]) for row in rows]

        def better(index: int) -> tuple:
            row = rows[index]
            return (row["human_reviewed"], not row["dropped"], row["quality_score"])

        found = find_duplicates(views, better)
        target = {rows[duplicate.index]["id"]: rows[duplicate.kept]["id"] for duplicate in found}
        changes = [(kept, example) for example, kept in target.items() if marked_before.get(example) != kept]
        changes += [(None, example) for example in marked_before if example not in target]
        with workspace.transaction(conn):
            conn.executemany("UPDATE examples SET duplicate_of = ? WHERE id = ?", changes)
    kinds = Counter(duplicate.kind for duplicate in found)
    return {"checked": checked, "duplicates_marked": sum(1 for example in target if example not in marked_before),
            "duplicates_cleared": sum(1 for example in marked_before if example not in target),
            "duplicates_total": len(found), "exact": kinds.get("exact", 0), "near": kinds.get("near", 0),
            "by_source": dict(Counter(rows[duplicate.index]["source"] for duplicate in found))}
