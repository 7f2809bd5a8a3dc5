"""Reviewing collected examples that hold possible sensitive data: the same decisions (good / bad / skip / redact,
engine.dataset.review) the linked pairs get, recorded under each example's content hash, so export_training keeps,
redacts or drops them and a pair reviewed on the Validation page counts here too.

`flagged_examples(workspace_path)` lists every example (duplicates aside) whose texts or metadata hold findings
under today's rules, with kinds and field paths, never values; `decide_example` records a decision on one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.dataset.gate import scan_records
from engine.dataset.review import Decision, ItemStatus, item_statuses, record_decision
from engine.errors import StudioError
from engine.store import Workspace

DATASET = "collected"  # the dataset name review decisions on examples carry
_BATCH = 2_000


@dataclass
class FlaggedExample:
    id: int
    content_hash: str
    source: str
    format: str
    origin: str
    kinds: list[str]
    fields: list[str]  # where the findings are: `output`, `messages[1].content`, `metadata.window_name`, ...
    decision: ItemStatus | None  # the item's status by the review rule; None while nobody answered


def flagged_examples(workspace_path: Path, pending_only: bool = False) -> list[FlaggedExample]:
    """Examples with sensitive findings, oldest first; `pending_only` leaves out those decided good/bad/redact."""
    workspace = Workspace.open(workspace_path)
    flagged: list[FlaggedExample] = []
    conn = workspace.connect()
    try:
        last = 0
        while True:
            rows = conn.execute("SELECT id, content_hash, source, format, origin, record_json FROM examples"
                                " WHERE id > ? AND duplicate_of IS NULL ORDER BY id LIMIT ?", (last, _BATCH)).fetchall()
            if not rows:
                break
            last = rows[-1]["id"]
            found = scan_records(workspace, [(row["id"], json.loads(row["record_json"])) for row in rows])
            for row in rows:
                findings = found.get(row["id"])
                if findings:
                    flagged.append(FlaggedExample(row["id"], row["content_hash"], row["source"], row["format"],
                                                  row["origin"], sorted({f.kind for f in findings}),
                                                  sorted({f.field for f in findings}), None))
    finally:
        conn.close()
    decisions = item_statuses(workspace, [example.content_hash for example in flagged])
    for example in flagged:
        example.decision = decisions.get(example.content_hash)
    if pending_only:
        flagged = [e for e in flagged if e.decision is None or e.decision.decision is None]
    return flagged


def decide_example(workspace_path: Path, example_id: int, decision: str, reviewer: str,
                   note: str | None = None) -> Decision:
    """Record `decision` on collected example `example_id` (its number in `review --collected`)."""
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    try:
        row = conn.execute("SELECT content_hash FROM examples WHERE id = ?", (example_id,)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise StudioError(f"The workspace has no collected example {example_id}; "
                          "`python -m engine review --collected` lists the flagged ones.")
    return record_decision(workspace, row["content_hash"], decision, reviewer, dataset=DATASET,
                           pair_index=example_id, note=note)
