"""The one review queue over every example source: JSONL pairs, collected commit / doc / conversation / linked
examples and held widget examples, each key once, with filters, a search that cannot find secrets, progress per
reviewer, and decisions that reach the exports (a collected commit example with a token is reviewed, redacted and
exported)."""

from __future__ import annotations

import json

import pytest

from engine.dataset.queue import QueueFilter, decide, decide_all, filter_queue, load_queue, review_progress
from engine.dataset.review import undo_last
from engine.dataset.validate import validate_dataset
from engine.store import Workspace
from tests.review_worlds import TOKEN, build_leaky_world, build_widget_world


@pytest.fixture
def leaky_world(tmp_path, git_repo, screenpipe_db):
    return build_leaky_world(tmp_path, git_repo, screenpipe_db)


@pytest.fixture
def widget_world(tmp_path):
    return build_widget_world(tmp_path)


def _mined(config) -> Workspace:
    from engine.ops.scheduler import run_job

    mined = run_job(config, config.workspace, "mining_code")
    assert mined["status"] == "ok", mined["error"]
    return Workspace.open(config.workspace)


def test_a_collected_commit_example_with_a_token_is_reviewed_redacted_and_exported(leaky_world):
    from engine.ops.scheduler import run_job

    config = leaky_world
    workspace = _mined(config)
    queue = load_queue(workspace, [])
    (commit,) = [item for item in queue if item.source == "commits" and item.findings]
    assert commit.reason == "flagged" and commit.kinds == ["github_token"] and commit.state == "pending"
    # The finding sits where the text has the token: offsets into the exact field that will be trained.
    path, text, findings = next(field for field in commit.fields() if field[2])
    assert text[findings[0].start:findings[0].end] == TOKEN
    assert commit.record == json.loads(_example_row(workspace, commit.index)["record_json"])

    decide(workspace, commit, "redact", "dana")
    assert run_job(config, config.workspace, "quality_check")["status"] == "ok"
    exported = run_job(config, config.workspace, "export_training")["result"]
    assert exported["redacted"] == 1
    commits = (config.workspace / "datasets" / "collected" / "by_source" / "commits.jsonl").read_text()
    assert "GITHUB_TOKEN=<GITHUB_TOKEN_1>" in commits and TOKEN not in commits
    assert _example_row(workspace, commit.index)["human_reviewed"] == 1


def _example_row(workspace: Workspace, example_id: int):
    conn = workspace.connect()
    try:
        return conn.execute("SELECT * FROM examples WHERE id = ?", (example_id,)).fetchone()
    finally:
        conn.close()


def test_every_source_is_in_one_queue_and_a_pair_found_twice_is_one_item(leaky_world, widget_world):
    from engine.uebersicht.dataset import create_dataset

    config = leaky_world
    workspace = _mined(config)
    validate_dataset(config.output_file, workspace)
    create_dataset(widget_world, "v1", workspace=workspace)
    queue = load_queue(workspace)
    flagged = [item for item in queue if item.findings]
    assert {item.source for item in flagged} == {"pairs", "commits", "docs", "conversations", "widgets"}
    assert queue[:len(flagged)] == flagged  # flagged items first
    assert len({item.key for item in queue}) == len(queue)
    (pair,) = [item for item in flagged if item.source == "pairs"]
    assert pair.origin == "training_data.jsonl line 5" and pair.index == 4
    assert any(origin.startswith("linked example") for origin in pair.also)  # the collected copy of that pair
    assert [f.field for f in pair.findings] == ["metadata.sources[0].window_name"]
    (path, text, findings), = [field for field in pair.fields() if field[2]]
    assert path == "metadata.sources[0].window_name" and text[findings[0].start:findings[0].end] == TOKEN
    (widget,) = [item for item in flagged if item.source == "widgets"]
    assert widget.origin == "v1: clock" and isinstance(widget.record, list)

    decide(workspace, widget, "redact", "maya")
    report = create_dataset(widget_world, "v1", workspace=workspace)
    assert report.redacted == ["clock"] and report.held == []


def test_filters_search_and_progress(leaky_world):
    config = leaky_world
    workspace = _mined(config)
    queue = load_queue(workspace, [])
    by_source = filter_queue(queue, QueueFilter(sources={"docs"}))
    assert by_source and {item.source for item in by_source} == {"docs"}
    assert filter_queue(queue, QueueFilter(kinds={"github_token"})) == [item for item in queue if item.findings]
    assert filter_queue(queue, QueueFilter(search=TOKEN)) == []  # search reads masked text: no oracle for secrets
    assert filter_queue(queue, QueueFilter(search=TOKEN[:12])) == []
    deploy = filter_queue(queue, QueueFilter(search="STAGING deploy settings"))
    assert [item.source for item in deploy] == ["commits"]

    flagged = filter_queue(queue, QueueFilter(flagged_only=True))
    assert decide_all(workspace, flagged, "redact", "ana") == len(flagged)
    decide(workspace, flagged[0], "bad", "bo")
    queue = load_queue(workspace, [])
    assert [item.state for item in filter_queue(queue, QueueFilter(states={"conflict"}))] == ["conflict"]
    mine = filter_queue(queue, QueueFilter(states={"mine"}), reviewer="ana")
    assert len(mine) == len(queue) - len(flagged)
    assert [item.key for item in filter_queue(queue, QueueFilter(answered_by="bo"))] == [flagged[0].key]
    progress = review_progress(queue, ["cy"])
    assert progress.total == len(queue) and progress.resolved == len(flagged) - 1
    assert progress.by_reviewer == {"cy": 0, "ana": len(flagged), "bo": 1}
    assert progress.by_state["conflict"] == 1

    assert sorted(undo_last(workspace, "bo")) == [flagged[0].key]
    assert sorted(undo_last(workspace, "ana")) == sorted(item.key for item in flagged)  # the bulk action, whole
    assert review_progress(load_queue(workspace, [])).resolved == 0


def test_a_pair_decision_lands_on_the_pairs_hash_and_survives_reordering(tmp_path):
    from tests.data_sensitive import write_training_jsonl

    path = tmp_path / "training_data.jsonl"
    planted = write_training_jsonl(path, pairs=12)
    workspace = Workspace.open(tmp_path / "ws")
    validate_dataset(path, workspace, sample_size=2)
    queue = load_queue(workspace, [path])
    aws = next(item for item in queue if item.index == planted["lines"]["aws"] - 1)
    decide(workspace, aws, "redact", "dana")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(reversed(lines)) + "\n")  # the file is regenerated in another order
    validate_dataset(path, workspace, sample_size=2)
    again = {item.key: item for item in load_queue(workspace, [path])}
    assert again[aws.key].state == "redact" and again[aws.key].index == len(lines) - planted["lines"]["aws"]
