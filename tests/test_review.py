"""Review decisions in the workspace: concurrent reviewers lose nothing, the latest decision counts, the queue
holds flagged pairs first and a reproducible sample."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

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

ROOT = Path(__file__).resolve().parent.parent


def _pair(n: int) -> str:
    return hashlib.sha1(f"pair-{n}".encode()).hexdigest()


REVIEWER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root_dir!r})
from engine.dataset.review import record_decision
from engine.store import Workspace
from tests.test_review import _pair
workspace = Workspace.open({root!r})
go = Path({go!r})
while not go.exists():  # every process begins writing at the same moment
    time.sleep(0.005)
for n in range({count}):
    record_decision(workspace, _pair({reviewer} * 1000 + n), ("good", "bad", "skip", "redact")[n % 4],
                    "reviewer-{reviewer}", dataset="training_data.jsonl", pair_index=n)
print("done {reviewer}")
"""


def test_five_processes_record_1000_decisions_and_lose_none(tmp_path):
    # Separate interpreters (not multiprocessing, whose spawn re-imports __main__, which AppTest rebinds).
    root = str(tmp_path / "ws")
    Workspace.open(root)
    go = tmp_path / "go"
    processes = [
        subprocess.Popen([sys.executable, "-c", REVIEWER.format(root_dir=str(ROOT), root=root, go=str(go), count=200,
                                                                reviewer=r)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in range(5)
    ]
    time.sleep(1.0)  # let every interpreter start and open the workspace
    go.touch()
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [0] * 5, [err for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == [f"done {r}" for r in range(5)]
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
