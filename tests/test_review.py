"""Review decisions in the workspace: concurrent reviewers lose nothing, the latest decision counts, the queue
holds flagged pairs first and a reproducible sample."""

from __future__ import annotations

import hashlib
import multiprocessing

import pytest

from engine.dataset.review import (
    count_decisions,
    decision_history,
    enqueue,
    latest_decisions,
    record_decision,
    review_queue,
)
from engine.dataset.validate import review_items, validate_dataset
from engine.errors import StudioError
from engine.store import Workspace
from tests.data_sensitive import write_training_jsonl


def _pair(n: int) -> str:
    return hashlib.sha1(f"pair-{n}".encode()).hexdigest()


def _reviewer(root: str, reviewer: int, count: int, start, results) -> None:
    workspace = Workspace.open(root)
    start.wait()  # every process begins writing at the same moment
    for n in range(count):
        record_decision(workspace, _pair(reviewer * 1000 + n), ("good", "bad", "skip", "redact")[n % 4],
                        f"reviewer-{reviewer}", dataset="training_data.jsonl", pair_index=n)
    results.put(reviewer)


def test_five_processes_record_1000_decisions_and_lose_none(tmp_path):
    root = str(tmp_path / "ws")
    Workspace.open(root)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(5), context.Queue()
    processes = [context.Process(target=_reviewer, args=(root, r, 200, start, results)) for r in range(5)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * 5
    assert sorted(results.get(timeout=5) for _ in range(5)) == [0, 1, 2, 3, 4]
    workspace = Workspace.open(root)
    assert count_decisions(workspace) == 1000
    latest = latest_decisions(workspace)
    assert len(latest) == 1000
    assert {decision.reviewer for decision in latest.values()} == {f"reviewer-{r}" for r in range(5)}


def test_latest_decision_wins_and_history_is_kept(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    pair = _pair(1)
    record_decision(workspace, pair, "skip", "ana")
    record_decision(workspace, pair, "redact", "bo", note="key in the input")
    assert latest_decisions(workspace, [pair])[pair].decision == "redact"
    assert [(d.decision, d.reviewer) for d in decision_history(workspace, pair)] == [("skip", "ana"), ("redact", "bo")]


@pytest.mark.parametrize("decision,reviewer,pair,message", [
    ("maybe", "ana", _pair(1), "one of good, bad, skip, redact"),
    ("good", "  ", _pair(1), "reviewer's name"),
    ("good", "ana", "abc", "40-character hash"),
])
def test_bad_decisions_are_refused_in_one_sentence(tmp_path, decision, reviewer, pair, message):
    workspace = Workspace.open(tmp_path / "ws")
    with pytest.raises(StudioError, match=message):
        record_decision(workspace, pair, decision, reviewer)
    assert count_decisions(workspace) == 0


def test_queue_lists_flagged_pairs_first_and_hides_decided_ones_when_asked(tmp_path):
    path = tmp_path / "training_data.jsonl"
    planted = write_training_jsonl(path, pairs=30)
    workspace = Workspace.open(tmp_path / "ws")
    validate_dataset(path, workspace, sample_size=5)
    items = review_items(path, workspace)
    flagged_lines = sorted(planted["lines"][name] for name in ("aws", "stripe", "spoken"))
    assert [item.pair_index + 1 for item in items[:3]] == flagged_lines
    assert [item.reason for item in items] == ["flagged"] * 3 + ["sampled"] * 5
    assert all(item.findings for item in items[:3]) and not any(item.findings for item in items[3:])
    first_sample = [item.pair_hash for item in items[3:]]
    validate_dataset(path, workspace, sample_size=5)  # re-validating queues the same sample again
    assert [item.pair_hash for item in review_items(path, workspace)[3:]] == first_sample

    record_decision(workspace, items[0].pair_hash, "redact", "ana")
    record_decision(workspace, items[1].pair_hash, "skip", "ana")
    pending = review_queue(workspace, str(path.resolve()), pending_only=True)
    assert items[0].pair_hash not in {entry.pair_hash for entry in pending}
    assert items[1].pair_hash in {entry.pair_hash for entry in pending}  # a skipped pair comes back
    assert enqueue(workspace, str(path.resolve()), [(items[0].pair_hash, 0, "sampled")]) == 0
