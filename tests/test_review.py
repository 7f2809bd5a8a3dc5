"""Review answers in the workspace: concurrent reviewers lose nothing, each reviewer's answer counts on its own,
one rule turns answers into a status, agreement and Cohen's kappa, undo and bulk, and the queue holds flagged pairs
first and a reproducible sample."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.dataset.review import (
    Decision,
    agreement,
    clears_findings,
    cohens_kappa,
    count_decisions,
    decision_history,
    enqueue,
    findings_action,
    item_statuses,
    record_bulk,
    record_decision,
    review_queue,
    review_settings,
    save_review_settings,
    status_of,
    undo_last,
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
    statuses = item_statuses(workspace)
    assert len(statuses) == 1000
    assert {reviewer for status in statuses.values() for reviewer in status.answers} == \
        {f"reviewer-{r}" for r in range(5)}
    assert sum(status.state == "pending" for status in statuses.values()) == 250  # every fourth answer is a skip


def test_each_reviewer_answers_for_themselves_and_history_is_kept(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    pair = _pair(1)
    record_decision(workspace, pair, "skip", "ana")
    record_decision(workspace, pair, "redact", "bo", note="key in the input")
    status = item_statuses(workspace, [pair])[pair]
    assert status.decision == "redact" and status.answer_of("ana") == "skip"  # a skip is not an answer
    record_decision(workspace, pair, "good", "ana")  # ana's answer no longer replaces bo's: they now disagree
    status = item_statuses(workspace, [pair])[pair]
    assert (status.state, status.decision, status.counted) == ("conflict", None, {"ana": "good", "bo": "redact"})
    record_decision(workspace, pair, "redact", "ana")  # ana changes her own answer only
    assert item_statuses(workspace, [pair])[pair].decision == "redact"
    assert [(d.decision, d.reviewer) for d in decision_history(workspace, pair)] == [
        ("skip", "ana"), ("redact", "bo"), ("good", "ana"), ("redact", "ana")]


def _answer(decision: str, reviewer: str, when: str = "2026-01-01T00:00:00", settles: bool = False) -> Decision:
    return Decision(_pair(0), decision, reviewer, when, None, settles)


@pytest.mark.parametrize("answers,needed,state", [
    ({}, 1, "pending"),
    ({"ana": "skip"}, 1, "pending"),
    ({"ana": "good"}, 1, "good"),
    ({"ana": "good"}, 2, "partial"),
    ({"ana": "good", "bo": "skip"}, 2, "partial"),
    ({"ana": "good", "bo": "good"}, 2, "good"),
    ({"ana": "bad", "bo": "good"}, 2, "conflict"),
    ({"ana": "bad", "bo": "good"}, 3, "conflict"),  # disagreement shows before the last answer comes in
    ({"ana": "redact", "bo": "redact", "cy": "redact"}, 2, "redact"),
])
def test_the_rule_from_answers_to_status(answers, needed, state):
    status = status_of(_pair(0), {who: _answer(what, who) for who, what in answers.items()}, needed)
    assert status.state == state
    assert status.decision == (state if state in ("good", "bad", "redact") else None)


@pytest.mark.parametrize(("decision", "action", "clears"), [
    ("good", "keep", True), ("redact", "redact", True), ("bad", "drop", False), (None, "hold", False),
    ("skip", "hold", False)])
def test_the_rule_for_flagged_items_good_or_redact_clears_bad_drops_anything_else_holds(decision, action, clears):
    assert findings_action(decision) == action
    assert clears_findings(decision) is clears


def test_an_owners_settling_answer_decides_a_conflict_and_the_latest_settle_counts():
    answers = {"ana": _answer("bad", "ana"), "bo": _answer("good", "bo"),
               "dana (settles)": _answer("redact", "dana", "2026-01-02T00:00:00", settles=True)}
    status = status_of(_pair(0), answers, 2)
    assert (status.state, status.settled_by) == ("redact", "dana")
    answers["eve (settles)"] = _answer("bad", "eve", "2026-01-03T00:00:00", settles=True)
    assert status_of(_pair(0), answers, 2).decision == "bad"


def test_answers_per_item_is_a_workspace_setting_the_statuses_follow(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    assert review_settings(workspace).answers_per_item == 1
    record_decision(workspace, _pair(1), "good", "ana")
    assert item_statuses(workspace)[_pair(1)].decision == "good"
    save_review_settings(workspace, "dana", answers_per_item=2, guidelines="Redact every token; **bold** stays text")
    assert item_statuses(workspace)[_pair(1)].state == "partial"
    assert review_settings(workspace).guidelines == "Redact every token; **bold** stays text"
    record_decision(workspace, _pair(1), "good", "bo")
    assert item_statuses(workspace)[_pair(1)].decision == "good"
    with pytest.raises(StudioError, match="from 1 to 10"):
        save_review_settings(workspace, "dana", answers_per_item=0)


def test_undo_takes_back_the_reviewers_latest_action_only(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    record_decision(workspace, _pair(1), "bad", "ana")
    record_decision(workspace, _pair(1), "redact", "ana")
    record_decision(workspace, _pair(1), "good", "bo")
    assert undo_last(workspace, "ana") == [_pair(1)]  # ana's redact goes; her earlier bad comes back
    assert item_statuses(workspace)[_pair(1)].counted == {"ana": "bad", "bo": "good"}
    assert undo_last(workspace, "ana") == [_pair(1)]
    assert item_statuses(workspace)[_pair(1)].counted == {"bo": "good"}
    assert undo_last(workspace, "ana") == []
    assert count_decisions(workspace) == 3  # nothing deleted: undone answers stay in the history


def test_a_bulk_decision_is_one_action(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    record_decision(workspace, _pair(1), "bad", "ana")
    assert record_bulk(workspace, [(_pair(n), "training_data.jsonl", n) for n in range(1, 6)], "good", "ana") == 5
    assert {status.decision for status in item_statuses(workspace).values()} == {"good"}
    assert sorted(undo_last(workspace, "ana")) == sorted(_pair(n) for n in range(1, 6))
    statuses = item_statuses(workspace)
    assert list(statuses) == [_pair(1)] and statuses[_pair(1)].decision == "bad"


def test_cohens_kappa_matches_the_textbook_example():
    # 50 items, two raters: 20 both yes, 15 both no, 5 yes/no, 10 no/yes -> p_o 0.7, p_e 0.5, kappa 0.4
    pairs = [("yes", "yes")] * 20 + [("no", "no")] * 15 + [("yes", "no")] * 5 + [("no", "yes")] * 10
    assert cohens_kappa(pairs) == pytest.approx(0.4)
    assert cohens_kappa([("good", "good")] * 4) is None  # every answer in one category: undefined
    assert cohens_kappa([]) is None


def test_agreement_on_items_with_two_answers(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    answers = [("good", "good"), ("good", "good"), ("good", "bad"), ("bad", "bad"), ("bad", "good"),
               ("redact", "redact"), ("good", "good"), ("bad", "bad"), ("redact", "good"), ("good", "good")]
    for n, (ana, bo) in enumerate(answers):
        record_decision(workspace, _pair(n), ana, "ana")
        record_decision(workspace, _pair(n), bo, "bo")
    record_decision(workspace, _pair(99), "good", "ana")  # one answer: not part of agreement
    record_decision(workspace, _pair(98), "skip", "bo")
    record_decision(workspace, _pair(98), "good", "ana")
    found = agreement(item_statuses(workspace).values())
    assert (found.items, found.agreeing, found.percent, found.two_answer_items) == (10, 7, 70.0, 10)
    # p_o = 0.7; ana 5 good 3 bad 2 redact, bo 6 good 3 bad 1 redact: p_e = (30 + 9 + 2) / 100 = 0.41
    assert found.kappa == pytest.approx((0.7 - 0.41) / (1 - 0.41), abs=1e-4)
    assert [(p.first, p.second, p.items, p.agreeing) for p in found.pairs] == [("ana", "bo", 10, 7)]
    assert found.pairs[0].kappa == found.kappa


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


def test_cli_undo_agreement_and_answers_per_item(tmp_path, capsys):
    from engine.__main__ import main

    workspace = Workspace.open(tmp_path / "ws")
    for n, (ana, bo) in enumerate([("good", "good"), ("bad", "good"), ("redact", "redact"), ("good", "bad")]):
        record_decision(workspace, _pair(n), ana, "ana")
        record_decision(workspace, _pair(n), bo, "bo")
    assert main(["review", "--workspace", str(workspace.root), "--agreement"]) == 0
    out = capsys.readouterr().out
    found = agreement(item_statuses(workspace).values())
    assert f"4 items with two or more answers; agreement 50.0%; Cohen's kappa {found.kappa:.3f}" in out
    assert "ana and bo: 4 items, 50.0% agree" in out
    assert main(["review", "--workspace", str(workspace.root), "--answers-per-item", "3"]) == 0
    assert review_settings(workspace).answers_per_item == 3
    assert main(["review", "--workspace", str(workspace.root), "--undo", "--reviewer", "bo"]) == 0
    assert "Undid bo's last answer on 1 item." in capsys.readouterr().out
    assert item_statuses(workspace)[_pair(3)].counted == {"ana": "good"}
    assert main(["review", "--workspace", str(workspace.root), "--answers-per-item", "0"]) == 1
    assert "from 1 to 10" in capsys.readouterr().err
