"""Reviewing collected examples that hold possible sensitive data: the same decisions (good / bad / skip / redact,
engine.dataset.review) the linked pairs get, recorded under each example's content hash, so export_training keeps,
redacts or drops them and a pair reviewed on the Validation page counts here too.

`flagged_examples(workspace_path)` lists every example (duplicates aside) whose texts or metadata hold findings
under today's rules, with kinds and field paths, never values; `decide_example` records a decision on one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.dataset.queue import COLLECTED, scanned_examples
from engine.dataset.review import Decision, ItemStatus, item_statuses, record_decision, unresolved
from engine.errors import StudioError
from engine.store import Workspace


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
    flagged = [FlaggedExample(row["id"], row["content_hash"], row["source"], row["format"], row["origin"],
                              sorted({f.kind for f in findings}), sorted({f.field for f in findings}), None)
               for row, _, findings in scanned_examples(workspace) if findings]
    decisions = item_statuses(workspace, [example.content_hash for example in flagged])
    for example in flagged:
        example.decision = decisions.get(example.content_hash)
    if pending_only:
        flagged = [example for example in flagged if unresolved(example.decision)]
    return flagged


def decide_example(workspace_path: Path, example_id: int, decision: str, reviewer: str,
                   note: str | None = None) -> Decision:
    """Record `decision` on collected example `example_id` (its number in `review --collected`)."""
    workspace = Workspace.open(workspace_path)
    row = workspace.row("SELECT content_hash FROM examples WHERE id = ?", (example_id,))
    if row is None:
        raise StudioError(f"The workspace has no collected example {example_id}; "
                          "`python -m engine review --collected` lists the flagged ones.")
    return record_decision(workspace, row["content_hash"], decision, reviewer, dataset=COLLECTED,
                           pair_index=example_id, note=note)
