"""The Pipeline page through AppTest, on the demo world built into tmp: the totals, charts and source health it shows
are the engine's numbers, an empty workspace says how to start collecting, Run now records a run and refreshes the
numbers, a failing job shows its error sentence, a schedule edit is stored in the workspace, and a running
`scheduler start` process is seen as running."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from engine.config import PipelineConfig
from engine.demo import build_demo
from engine.extract import inspect_sources
from engine.ops import scheduler, stats
from tests.conftest import ROOT
from tests.page_text import shown

CHARTS = ("daily", "source", "tier", "format")


def demo_world(folder: Path) -> tuple[PipelineConfig, Path]:
    """A fresh demo world (screenpipe DB, 24-commit repo, docs, conversation logs) with an empty workspace."""
    config = PipelineConfig.load(build_demo(folder))
    return config, config.workspace


@pytest.fixture(scope="module")
def collected_world(tmp_path_factory) -> Path:
    """A demo world whose workspace has been mined, quality-checked and deduplicated by the real jobs."""
    config, workspace = demo_world(tmp_path_factory.mktemp("collected") / "demo")
    for job_id in ("mining_code", "quality_check", "dedup_cleanup"):
        assert scheduler.run_job(config, workspace, job_id)["status"] == "ok"
    return config.base_dir


def use_world(folder: Path, monkeypatch) -> tuple[PipelineConfig, Path]:
    monkeypatch.setenv("STUDIO_CONFIG", str(folder / "pipeline_config.json"))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    config = PipelineConfig.load(folder / "pipeline_config.json")
    return config, config.workspace


@pytest.fixture
def collected(collected_world, tmp_path, monkeypatch) -> tuple[PipelineConfig, Path]:
    folder = tmp_path / "demo"
    shutil.copytree(collected_world, folder)
    return use_world(folder, monkeypatch)


@pytest.fixture
def empty(tmp_path, monkeypatch) -> tuple[PipelineConfig, Path]:
    config, _ = demo_world(tmp_path / "demo")
    return use_world(config.base_dir, monkeypatch)


def pipeline_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "views" / "pipeline.py"), default_timeout=60)


def metrics(at) -> dict[str, tuple[str, str]]:
    return {metric.label: (metric.value, metric.delta) for metric in at.metric}


def chart_data(at) -> dict[str, pd.DataFrame]:
    """The rows behind each altair chart on the page, decoded from what Streamlit sends the browser."""
    charts = at.get("vega_lite_chart")
    frames = [pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pandas() for chart in charts]
    assert len(frames) == len(CHARTS)
    return dict(zip(CHARTS, frames, strict=True))


def table(at, columns: set[str]) -> pd.DataFrame:
    """The dataframe on the page that has these columns."""
    return next(frame.value for frame in at.dataframe if columns <= set(frame.value.columns))


def texts(at) -> str:
    return "\n".join(shown(item.value) for kind in (at.markdown, at.caption, at.success, at.info, at.error)
                     for item in kind)


def test_totals_charts_and_health_are_the_engines_numbers(collected):
    config, workspace = collected
    at = pipeline_page().run()
    assert not at.exception and not at.error
    summary, readiness = stats.summary(workspace), stats.training_readiness(config, workspace)
    overall = summary["overall"]
    assert overall["total_examples"] > 0 and overall["by_source"]["conversations"] > 0
    shown = metrics(at)
    assert shown["Examples"][0] == f"{overall['total_examples']:,}"
    assert shown["Tokens"][0] == f"{overall['total_tokens']:,}"
    assert shown["Storage"][0] == f"{overall['storage_bytes'] / 1024:,.1f} KB"
    assert shown["Gold + silver"][0] == f"{summary['summary']['top_quality_percentage']:.1f}%"
    assert shown["Ready to train"] == (
        "yes" if readiness["ready_to_train"] else "not yet",
        f"{readiness['total_samples']:,} of {readiness['min_for_training']:,} examples")

    charts = chart_data(at)
    daily = stats.daily(workspace, days=30)
    per_day = charts["daily"].groupby("date")["examples"].sum()
    assert list(per_day.index) == [day["date"] for day in daily]
    assert list(per_day) == [day["total_examples"] for day in daily]
    assert per_day.iloc[-1] == overall["total_examples"]  # everything was collected today
    for name, key in (("source", "by_source"), ("tier", "by_quality"), ("format", "by_format")):
        assert dict(zip(charts[name]["name"], charts[name]["examples"], strict=True)) == overall[key]
    assert f"{overall['total_examples']:,} in the last 30 days" in texts(at)

    examples = table(at, {"health", "last 24 h"})
    expected = stats.sources(workspace)
    assert list(examples["source"]) == [item["source"] for item in expected]
    assert list(examples["examples"]) == [item["total_examples"] for item in expected]
    assert [None if pd.isna(value) else value for value in examples["health"]] == [
        item["health_score"] if item["total_examples"] else None for item in expected]
    inputs = table(at, {"location", "check"})
    assert list(inputs["source"]) == [status.kind for status in inspect_sources(config)]
    assert list(inputs["source"]) == ["screenpipe", "git", "documents", "conversations"]
    assert inputs["ok"].all()
    with sqlite3.connect(f"file:{config.screenpipe_db}?mode=ro", uri=True) as db:
        frames = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    commits = subprocess.run(["git", "rev-list", "--count", "--no-merges", "HEAD"], cwd=config.git_repos[0],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert f"frames {frames:,}" in inputs.loc[0, "holds"] and inputs.loc[1, "holds"] == f"non-merge commits {commits}"

    page = texts(at)
    assert page.count("Last run: **ok** ") == 3 and page.count("Last run: never run") == 1  # export_training
    assert all(run["summary"] in page for run in scheduler.job_history(workspace))
    history = table(at, {"run", "job", "status"})
    assert list(history["job"]) == ["dedup_cleanup", "quality_check", "mining_code"]
    assert set(history["status"]) == {"ok"}


def test_the_days_switch_redraws_the_daily_chart(collected):
    _, workspace = collected
    at = pipeline_page().run()
    at.get("button_group")[0].set_value(7).run()
    assert not at.exception
    per_day = chart_data(at)["daily"].groupby("date")["examples"].sum()
    assert list(per_day.index) == [day["date"] for day in stats.daily(workspace, days=7)]


def test_an_empty_workspace_says_how_to_start_collecting(empty):
    config, workspace = empty
    at = pipeline_page().run()
    assert not at.exception and not at.error
    (info, scheduler_note) = at.info
    assert info.value.startswith("Nothing collected yet: press **Run now** on **mining_code**")
    assert f"python -m engine collect --config {config.path}" in info.value
    assert len(at.get("vega_lite_chart")) == 0
    assert metrics(at)["Examples"][0] == "0"
    assert metrics(at)["Ready to train"] == ("not yet", "0 of 100 examples")
    assert "The scheduler is not running" in scheduler_note.value
    assert [code.value for code in at.code] == [f"python -m engine scheduler start --config {config.path}"]
    assert texts(at).count("Last run: never run") == 4
    assert "No job has run in this workspace yet." in texts(at)
    assert list(table(at, {"health"})["examples"]) == [0, 0, 0, 0]
    assert scheduler.job_history(workspace) == []


def test_run_now_records_a_run_and_refreshes_the_numbers(empty):
    config, workspace = empty
    at = pipeline_page().run()
    at.button(key="run-mining_code").click().run()
    assert not at.exception and not at.error
    (run,) = scheduler.job_history(workspace)
    assert (run["job_id"], run["trigger"], run["status"]) == ("mining_code", "manual", "ok")
    total = stats.summary(workspace)["overall"]["total_examples"]
    assert total > 0 and run["result"]["new_examples"] == total
    (done,) = at.success
    assert shown(done.value).startswith("mining_code finished in ") and run["summary"] in shown(done.value)
    assert f"+{total:,} examples" in done.value
    assert metrics(at)["Examples"][0] == f"{total:,}"
    assert not any("Nothing collected yet" in info.value for info in at.info)
    assert len(at.get("vega_lite_chart")) == len(CHARTS)
    history = table(at, {"run", "job", "status"})
    assert history.to_dict("records")[0] | {"started": None, "took": None} == {
        "run": run["run_id"], "job": "mining_code", "trigger": "manual", "status": "ok", "started": None,
        "took": None, "attempt": 1, "result": run["summary"]}

    at.button(key="run-quality_check").click().run()
    assert not at.exception and not at.error
    assert [run["job_id"] for run in scheduler.job_history(workspace)] == ["quality_check", "mining_code"]
    assert shown(at.success[0].value).startswith("quality_check finished in ") and f"checked {total} examples" in \
        shown(at.success[0].value)
    assert list(table(at, {"run", "job", "status"})["job"]) == ["quality_check", "mining_code"]


def test_a_failing_job_shows_its_error_and_is_recorded(empty):
    config, workspace = empty
    shutil.rmtree(config.base_dir / "repo")
    at = pipeline_page().run()
    assert any(shown(error.value).startswith("git: ") for error in at.error)  # the input check already says so
    at.button(key="run-mining_code").click().run()
    assert not at.exception
    (run,) = scheduler.job_history(workspace)
    assert run["status"] == "failed" and run["error"]
    (failed,) = [shown(error.value) for error in at.error if shown(error.value).startswith("mining_code failed after ")]
    assert failed.endswith(f": {run['error']} The log of run {run['run_id']} below has the details.")
    assert "Last run: **failed**" in texts(at)
    history = table(at, {"run", "job", "status"})
    assert list(history["status"]) == ["failed"] and list(history["result"]) == [run["error"]]
    assert "failed" in scheduler.job_log(workspace, run["run_id"])


def test_a_schedule_edit_is_stored_in_the_workspace_not_the_config(empty):
    config, workspace = empty
    before = config.path.read_bytes()
    at = pipeline_page().run()
    at.toggle(key="enabled-quality_check").set_value(False)
    at.number_input(key="interval-quality_check").set_value(90)
    at.button(key="save-quality_check").click().run()
    assert not at.exception and not at.error
    assert [success.value for success in at.success] == [
        "Saved: quality_check is disabled, every 1 h 30 min. Kept in the workspace (the config file is unchanged)."]
    job = next(job for job in scheduler.list_jobs(config, workspace) if job["job_id"] == "quality_check")
    assert (job["enabled"], job["interval_minutes"]) == (False, 90)
    assert config.path.read_bytes() == before
    assert "**disabled** (interval 1 h 30 min)" in texts(at)
    at.toggle(key="enabled-quality_check").set_value(True)
    at.button(key="save-quality_check").click().run()
    assert "every 1 h 30 min (workspace setting)" in texts(at)


def planned(status: dict) -> bool:
    """The scheduler beats and has published when mining_code runs next."""
    return status["running"] and bool(next(job for job in status["jobs"] if job["job_id"] == "mining_code")[
        "next_run_at"])


def test_a_running_scheduler_is_shown_with_its_pid_and_next_runs(empty):
    config, workspace = empty
    assert scheduler.run_job(config, workspace, "mining_code")["status"] == "ok"
    for job_id in ("quality_check", "dedup_cleanup", "export_training"):  # not due: nothing runs behind our back
        scheduler.configure_job(config, workspace, job_id, enabled=False)
    process = subprocess.Popen([sys.executable, "-m", "engine", "scheduler", "start", "--config", str(config.path)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while not planned(scheduler.scheduler_status(config, workspace)):
            assert process.poll() is None, "scheduler start exited"
            assert time.monotonic() < deadline, "the scheduler did not report running and its plan within 30 s"
            time.sleep(0.3)
        at = pipeline_page().run()
        assert not at.exception and not at.error
        assert any(f"Scheduler running · pid {process.pid}" in item.value for item in at.markdown)
        (running,) = at.success
        assert running.value.startswith(f"The scheduler is running (pid {process.pid}, started ")
        assert not any("scheduler start" in code.value for code in at.code)  # no start command while it runs
        assert any(re.fullmatch(r"next run in (5 h 59 min|6 h)", caption.value) for caption in at.caption)
        assert sum(caption.value == "runs only when you press Run now" for caption in at.caption) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert not scheduler.scheduler_status(config, workspace)["running"]


def test_the_page_starts_a_scheduler_that_outlives_it_and_stops_it(empty):
    config, workspace = empty
    for job_id in scheduler.JOBS:  # nothing due on start, so the test sees only the process itself
        scheduler.configure_job(config, workspace, job_id, enabled=False)
    at = pipeline_page().run()
    assert any("Scheduler not running" in item.value for item in at.markdown)
    at.button(key="start_scheduler").click().run()
    status = scheduler.scheduler_status(config, workspace)
    try:
        assert not at.exception and not at.error
        assert status["running"], "the page returned before the scheduler reported itself running"
        pid = status["pid"]
        assert pid != os.getpid() and Path(f"/proc/{pid}").exists()  # a process of its own
        at = pipeline_page().run()  # a new session (another tab, or after a server restart) sees the same one
        assert any(f"Scheduler running · pid {pid}" in item.value for item in at.markdown)
        assert [button.key for button in at.button if "scheduler" in str(button.key)] == ["stop_scheduler"]
        at.button(key="stop_scheduler").click().run()
        assert not at.exception and not at.error
    finally:
        if scheduler.scheduler_status(config, workspace)["running"]:
            os.kill(scheduler.scheduler_status(config, workspace)["pid"], signal.SIGTERM)
    assert not scheduler.scheduler_status(config, workspace)["running"]
    assert any("Scheduler not running" in item.value for item in at.markdown)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:  # ended and reaped, not a zombie
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()
    assert (workspace / "logs" / "scheduler-process.log").read_text().strip()


def test_missing_config_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CONFIG", str(tmp_path / "nope.json"))
    at = pipeline_page().run()
    assert any("does not exist" in error.value for error in at.error)
    assert any("python -m engine demo" in info.value for info in at.info)
