"""Human review: a queue of flagged and sampled pairs, and the decisions teammates record on them.

Decisions are good / bad / skip / redact, with who and when, appended to `review_decisions` (one transaction
each): several reviewers working at once never overwrite one another, and the latest decision on a pair counts.
For a pair with sensitive findings, `good` keeps it as it is (the findings were false alarms), `redact` keeps it
with typed placeholders, `bad` drops it and `skip` leaves it unresolved (export keeps refusing it).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime, timezone

from engine.errors import StudioError
from engine.store import Workspace

DECISIONS = ("good", "bad", "skip", "redact")
RESOLVING = frozenset({"good", "bad", "redact"})  # decisions that settle a pair's sensitive findings
_CHUNK = 500


@dataclass(frozen=True)
class Decision:
    pair_hash: str
    decision: str
    reviewer: str
    decided_at: str
    note: str | None = None


@dataclass(frozen=True)
class QueueEntry:
    pair_hash: str
    pair_index: int
    reason: str  # flagged | sampled
    decision: Decision | None


def default_reviewer() -> str:
    """Who is reviewing when nobody said: $STUDIO_REVIEWER, else the login name."""
    if os.environ.get("STUDIO_REVIEWER"):
        return os.environ["STUDIO_REVIEWER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def record_decision(workspace: Workspace, pair_hash: str, decision: str, reviewer: str, *, dataset: str | None = None,
                    pair_index: int | None = None, note: str | None = None) -> Decision:
    """Append one decision (its own transaction) and return it."""
    if decision not in DECISIONS:
        raise StudioError(f"A review decision is one of {', '.join(DECISIONS)}; got {decision!r}.")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise StudioError("A review decision needs the reviewer's name.")
    if not isinstance(pair_hash, str) or len(pair_hash) != 40:
        raise StudioError("A review decision needs the pair's 40-character hash.")
    made = Decision(pair_hash, decision, reviewer, _now(), note)
    with workspace.transaction() as conn:
        conn.execute(
            "INSERT INTO review_decisions(pair_hash, decision, reviewer, decided_at, dataset, pair_index, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pair_hash, decision, reviewer, made.decided_at, dataset, pair_index, note),
        )
    return made


def latest_decisions(workspace: Workspace, pair_hashes: list[str] | None = None) -> dict[str, Decision]:
    """The latest decision per pair (all pairs, or only those named)."""
    query = ("SELECT d.pair_hash, d.decision, d.reviewer, d.decided_at, d.note FROM review_decisions d"
             " JOIN (SELECT pair_hash, MAX(id) AS id FROM review_decisions {where} GROUP BY pair_hash) last"
             " ON last.id = d.id")
    conn = workspace.connect()
    try:
        rows = []
        if pair_hashes is None:
            rows = conn.execute(query.format(where="")).fetchall()
        else:
            unique = list(dict.fromkeys(pair_hashes))
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                where = f"WHERE pair_hash IN ({','.join('?' * len(chunk))})"
                rows.extend(conn.execute(query.format(where=where), chunk).fetchall())
    finally:
        conn.close()
    return {row["pair_hash"]: Decision(row["pair_hash"], row["decision"], row["reviewer"], row["decided_at"],
                                       row["note"]) for row in rows}


def decision_history(workspace: Workspace, pair_hash: str) -> list[Decision]:
    conn = workspace.connect()
    try:
        rows = conn.execute("SELECT pair_hash, decision, reviewer, decided_at, note FROM review_decisions"
                            " WHERE pair_hash = ? ORDER BY id", (pair_hash,)).fetchall()
    finally:
        conn.close()
    return [Decision(*row) for row in rows]


def count_decisions(workspace: Workspace) -> int:
    conn = workspace.connect()
    try:
        return int(conn.execute("SELECT COUNT(*) FROM review_decisions").fetchone()[0])
    finally:
        conn.close()


def enqueue(workspace: Workspace, dataset: str, entries: list[tuple[str, int, str]]) -> int:
    """Add (pair_hash, pair_index, reason) entries to a dataset's queue; pairs already queued keep their place
    (their index is refreshed). Returns how many were new."""
    with workspace.transaction() as conn:
        before = conn.execute("SELECT COUNT(*) FROM review_queue WHERE dataset = ?", (dataset,)).fetchone()[0]
        for pair_hash, pair_index, reason in entries:
            conn.execute(
                "INSERT INTO review_queue(dataset, pair_hash, pair_index, reason, added_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(dataset, pair_hash) DO UPDATE SET pair_index = excluded.pair_index,"
                " reason = CASE WHEN excluded.reason = 'flagged' THEN 'flagged' ELSE review_queue.reason END",
                (dataset, pair_hash, pair_index, reason, _now()),
            )
        after = conn.execute("SELECT COUNT(*) FROM review_queue WHERE dataset = ?", (dataset,)).fetchone()[0]
    return after - before


def review_queue(workspace: Workspace, dataset: str, pending_only: bool = False) -> list[QueueEntry]:
    """The dataset's queue, flagged pairs first, each with its latest decision (None when undecided). With
    `pending_only`, pairs already decided good/bad/redact are left out (skipped pairs come back)."""
    conn = workspace.connect()
    try:
        rows = conn.execute("SELECT pair_hash, pair_index, reason FROM review_queue WHERE dataset = ?"
                            " ORDER BY reason = 'sampled', pair_index", (dataset,)).fetchall()
    finally:
        conn.close()
    decisions = latest_decisions(workspace, [row["pair_hash"] for row in rows])
    entries = [QueueEntry(row["pair_hash"], row["pair_index"], row["reason"], decisions.get(row["pair_hash"]))
               for row in rows]
    if pending_only:
        entries = [entry for entry in entries if entry.decision is None or entry.decision.decision not in RESOLVING]
    return entries
