"""The scheduler and the watcher, on real screenpipe databases, real git repositories and real processes.

Acceptance (issue 8): the scheduler runs with short intervals and a watched database, and incremental mining adds
exactly the new items; a failed job is recorded and retried and never half-applied; one run of a job at a time
across processes; `scheduler start` runs as a real process and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.config import PipelineConfig
from engine.demo.screenpipe_builder import ScreenpipeWriter
from engine.ops.scheduler import (
    JobBusyError,
    SchedulerError,
    SchedulerService,
    configure_job,
    job_history,
    job_log,
    list_jobs,
    reset_job,
    run_job,
    scheduler_status,
    submit_job,
)
from engine.ops.watcher import ChangeWatcher
from tests.conftest import BASE_TIME, sample_frames

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ["retry budget", "cache invalidation", "token refresh", "schema migration", "rate limiter", "tracing"]


def code(lines: int, name: str) -> str:
    return "".join(f"{name}_{index} = compute({index})\n" for index in range(lines))


def add_frames(db: Path, count: int, start: datetime, tag: str) -> list[int]:
    """Append frames with texts the workspace has never seen (longer than min_knowledge_length); their ids."""
    with ScreenpipeWriter(db) as writer:
        return [writer.add_frame(start + timedelta(seconds=index),
                                 f"Design notes {tag}-{index}: the {TOPICS[index % len(TOPICS)]} needs a decision "
                                 f"before Friday; owner dana, reviewer maria, ticket WEATHER-{100 + index} {tag}",
                                 "Obsidian", f"notes {tag}") for index in range(count)]


def snapshot(workspace: Path) -> dict:
    """What mining has stored: knowledge source ids, commit shas, and collected examples (source, origin)."""
    conn = sqlite3.connect(workspace / "studio.db")
    try:
        return {
            "sources": {row[0] for row in conn.execute("SELECT source_id FROM knowledge_sources")},
            "knowledge": conn.execute("SELECT COUNT(*) FROM knowledge").fetchone()[0],
            "commits": {row[0] for row in conn.execute("SELECT sha FROM commits")},
            "examples": {tuple(row) for row in conn.execute("SELECT source, origin FROM examples")},
        }
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class World:
    """A screenpipe database, a git repository, a config file and a workspace, all under tmp_path."""

    def __init__(self, tmp_path: Path, screenpipe_db, git_repo):
        self.db = screenpipe_db(frames=sample_frames(40))
        self.repo = git_repo("weatherly")
        self.repo.commit("Add forecast client with retries", {"client.py": code(8, "client")}, BASE_TIME)
        self.repo.commit("Add cache with TTL", {"cache.py": code(10, "cache")}, BASE_TIME + timedelta(hours=1))
        self.workspace = tmp_path / "workspace"
        self.config_path = tmp_path / "pipeline_config.json"
        self.commits = 2

    def config(self, collect: dict | None = None, **scheduler) -> PipelineConfig:
        jobs = scheduler.pop("jobs", {})
        raw = {
            "paths": {"screenpipe_db": str(self.db), "git_repo": str(self.repo.path),
                      "output_file": str(self.config_path.parent / "output" / "pairs.jsonl")},
            "studio": {"workspace": str(self.workspace)},
            "scheduler": {"jobs": {job: {"enabled": True, "interval_minutes": every} for job, every in jobs.items()},
                          **scheduler},
            "collect": collect or {},
        }
        self.config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
        return PipelineConfig.load(self.config_path)

    def commit(self, name: str) -> str:
        self.commits += 1
        return self.repo.commit(f"Add the {name} module to the forecast client", {f"{name}.py": code(9, name)},
                                BASE_TIME + timedelta(hours=self.commits))


@pytest.fixture
def world(tmp_path, screenpipe_db, git_repo) -> World:
    return World(tmp_path, screenpipe_db, git_repo)


def cli(*argv: str) -> int:
    return main(["scheduler", *argv])


# -- settings ----------------------------------------------------------------------------------------------------
def test_configure_job_validates_stores_overrides_and_leaves_the_config_file_alone(world, capsys):
    config = world.config()
    before = world.config_path.read_bytes()
    with pytest.raises(SchedulerError, match="no job 'mining'.*mining_code, quality_check, dedup_cleanup, "
                                             "export_training"):
        configure_job(config, world.workspace, "mining", enabled=False)
    for bad in (0, -5, "5", True, float("nan"), float("inf"), 10**9):
        with pytest.raises(SchedulerError, match="interval_minutes"):
            configure_job(config, world.workspace, "mining_code", interval_minutes=bad)
    with pytest.raises(SchedulerError, match="`enabled` must be true or false"):
        configure_job(config, world.workspace, "mining_code", enabled="yes")
    with pytest.raises(SchedulerError, match="Nothing to change"):
        configure_job(config, world.workspace, "mining_code")
    assert [job["interval_minutes"] for job in list_jobs(config, world.workspace)] == [360, 720, 1440, 1440]

    job = configure_job(config, world.workspace, "quality_check", interval_minutes=0.5)
    assert (job["job_id"], job["interval_minutes"], job["enabled"], job["override"]) == (
        "quality_check", 0.5, True, ["interval_minutes"])
    job = configure_job(config, world.workspace, "quality_check", enabled=False)  # the interval override stays
    assert (job["interval_minutes"], job["enabled"], job["override"]) == (0.5, False, ["enabled", "interval_minutes"])
    jobs = {job["job_id"]: job for job in list_jobs(config, world.workspace)}
    assert jobs["quality_check"]["enabled"] is False and jobs["mining_code"]["override"] == []
    assert jobs["quality_check"]["next_run_at"] is None and jobs["quality_check"]["last_run"] is None
    assert world.config_path.read_bytes() == before
    assert reset_job(config, world.workspace, "quality_check")["interval_minutes"] == 720

    capsys.readouterr()
    assert cli("configure", "--job", "dedup_cleanup", "--disable", "--interval-minutes", "2.5",
               "--config", str(world.config_path)) == 0
    assert "dedup_cleanup    no*      2.5 min*" in capsys.readouterr().out
    assert cli("configure", "--job", "dedup_cleanup", "--interval-minutes", "0",
               "--config", str(world.config_path)) == 1
    assert "error: `interval_minutes` is 0.0; it must be a number of minutes above 0" in capsys.readouterr().err
    assert cli("status", "--json", "--config", str(world.config_path)) == 0
    status = json.loads(capsys.readouterr().out)
    assert set(status) >= {"running", "pid", "started_at", "heartbeat_at", "watching", "jobs"}
    assert status["jobs"][2]["override"] == ["enabled", "interval_minutes"]
    assert cli("configure", "--job", "dedup_cleanup", "--reset", "--config", str(world.config_path)) == 0
    assert "dedup_cleanup    yes      24 h" in capsys.readouterr().out

    for jobs_section, message in (({"mining": {}}, "`scheduler.jobs.mining` is not a job"),
                                  ({"mining_code": {"interval_minutes": "often"}}, "mining_code.interval_minutes"),
                                  ({"mining_code": {"enabled": 1}}, "mining_code.enabled` must be true or false")):
        broken = config.with_values({"scheduler.jobs": jobs_section})
        with pytest.raises(SchedulerError, match=message):
            list_jobs(broken, world.workspace)


# -- running jobs ------------------------------------------------------------------------------------------------
def test_run_job_mines_exactly_the_new_items_and_keeps_history_and_logs(world, capsys):
    config = world.config()
    first = run_job(config, world.workspace, "mining_code")
    assert first["status"] == "ok" and first["trigger"] == "manual" and first["attempt"] == 1, first
    base = snapshot(world.workspace)
    assert len(base["commits"]) == 2 and base["knowledge"] > 0
    assert base["examples"] == {("commits", sha) for sha in base["commits"]}
    assert first["result"]["extract"]["new_commits"] == 2 and first["result"]["new_examples"] == 2
    assert first["result"]["extract"]["new_knowledge"] == base["knowledge"]

    frame_ids = add_frames(world.db, 3, BASE_TIME + timedelta(days=1), "a")
    sha = world.commit("radar")
    second = run_job(config, world.workspace, "mining_code")
    after = snapshot(world.workspace)
    assert second["status"] == "ok", second
    assert after["sources"] - base["sources"] == {f"ocr:{frame_id}" for frame_id in frame_ids}
    assert after["knowledge"] == base["knowledge"] + 3
    assert after["commits"] - base["commits"] == {sha}
    assert after["examples"] - base["examples"] == {("commits", sha)}
    assert second["result"]["extract"]["new_knowledge"] == 3 and second["result"]["extract"]["new_commits"] == 1
    assert second["summary"] == "+3 knowledge items, +1 commits, +1 examples"

    third = run_job(config, world.workspace, "mining_code")
    assert third["result"]["extract"]["new_knowledge"] == 0 and snapshot(world.workspace) == after

    history = job_history(world.workspace)
    assert [run["run_id"] for run in history] == [third["run_id"], second["run_id"], first["run_id"]]
    assert job_history(world.workspace, "quality_check") == []
    log = job_log(world.workspace, second["run_id"])
    assert "started (manual, attempt 1)" in log and "ok: +3 knowledge items, +1 commits" in log
    assert f"run {second['run_id']} mining_code: ok" in (world.workspace / "logs" / "scheduler.log").read_text()
    with pytest.raises(SchedulerError, match="no job run 999"):
        job_log(world.workspace, 999)

    assert cli("run", "--job", "mining_code", "--config", str(world.config_path)) == 0
    out = capsys.readouterr().out
    assert f"run {third['run_id'] + 1} mining_code (manual" in out and "+0 knowledge items" in out
    assert cli("run", "--job", "bogus", "--config", str(world.config_path)) == 1
    assert "error: There is no job 'bogus'; the jobs are mining_code" in capsys.readouterr().err
    assert cli("list", "--config", str(world.config_path)) == 0
    out = capsys.readouterr().out
    assert "mining_code      yes      6 h" in out and "Recent runs:" in out and "+3 knowledge items" in out


def test_all_four_jobs_run_on_short_intervals_one_at_a_time(world):
    config = world.config(jobs={"mining_code": 0.01, "quality_check": 0.01, "dedup_cleanup": 0.01,
                                "export_training": 0.01}, watch=False)
    world.commit("radar")  # three commits: enough examples for an export (mlx-lm needs two or more)
    events = []
    service = SchedulerService(config, world.workspace, on_event=lambda kind, data: events.append((kind, data)),
                               poll_seconds=0.2)
    started = service.start()
    assert [job["job_id"] for job in started["jobs"]] == ["mining_code", "quality_check", "dedup_cleanup",
                                                          "export_training"]
    try:
        wait_for(lambda: all(sum(run["job_id"] == job and run["status"] == "ok" for run in job_history(world.workspace))
                             >= 2 for job in ("mining_code", "quality_check", "dedup_cleanup", "export_training")),
                 what="every job to run twice")
    finally:
        service.stop()
    runs = job_history(world.workspace, limit=500)
    assert all(run["status"] == "ok" for run in runs), [run["error"] for run in runs if run["error"]]
    spans = sorted((run["started_at"], run["finished_at"]) for run in runs)
    assert all(previous[1] <= following[0] for previous, following in zip(spans, spans[1:], strict=False))
    first = {job: min((run for run in runs if run["job_id"] == job), key=lambda run: run["run_id"])
             for job in ("mining_code", "quality_check", "dedup_cleanup", "export_training")}
    assert first["mining_code"]["run_id"] == 1 and first["mining_code"]["result"]["new_examples"] == 3
    assert first["quality_check"]["result"]["checked"] == 3
    assert first["dedup_cleanup"]["result"]["duplicates_marked"] == 0
    export = first["export_training"]["result"]
    assert export["written"] is True and sum(export["counts"].values()) == 3
    assert (world.workspace / "datasets" / "collected" / "train.jsonl").exists()
    assert first["export_training"]["summary"].startswith("wrote train ")
    assert first["quality_check"]["summary"].startswith("checked 3 examples, 0 changed tier")
    assert {data["job_id"] for kind, data in events if kind == "run"} == set(first)


def corrupt(path: Path) -> bytes:
    """Make a screenpipe database unreadable (as a half-copied file is); return its bytes to restore it."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    original = path.read_bytes()
    path.write_bytes(b"this is not a database any more\n" * 64)
    return original


def test_failed_job_is_recorded_retried_until_it_succeeds_and_never_half_applied(world):
    settings = {"jobs": {"mining_code": 60}, "retry_delay_seconds": 0.5, "max_retries": 3, "watch": False}
    assert run_job(world.config(**settings), world.workspace, "mining_code")["status"] == "ok"
    base = snapshot(world.workspace)
    for job in ("quality_check", "dedup_cleanup", "export_training"):
        configure_job(world.config(**settings), world.workspace, job, enabled=False)

    # A real screenpipe database that cannot be read (a half-copied file): nothing at all is stored.
    frame_ids = add_frames(world.db, 2, BASE_TIME + timedelta(days=2), "b")
    sha = world.commit("alerts")
    original = corrupt(world.db)
    failed = run_job(world.config(**settings), world.workspace, "mining_code")
    assert failed["status"] == "failed" and failed["result"] is None
    assert "is not an SQLite database" in failed["error"], failed
    assert failed["error"].count("\n") == 0 and failed["error"].endswith(".")
    assert "Traceback" in job_log(world.workspace, failed["run_id"])
    assert snapshot(world.workspace) == base

    # Mining fails half-way: extract stores the new rows (each batch with its watermark), then collecting from a
    # conversation log that is not there yet fails, and its transaction leaves the examples as they were.
    world.db.write_bytes(original)
    config = world.config(collect={"conversation_logs": ["chat.jsonl"]}, **settings)
    failed = run_job(config, world.workspace, "mining_code")
    assert failed["status"] == "failed" and "`collect.conversation_logs[0]`" in failed["error"], failed
    extracted = snapshot(world.workspace)
    assert extracted["sources"] - base["sources"] == {f"ocr:{frame_id}" for frame_id in frame_ids}
    assert extracted["commits"] - base["commits"] == {sha}
    assert extracted["examples"] == base["examples"]

    events = []
    service = SchedulerService(config, world.workspace, on_event=lambda kind, data: events.append((kind, data)),
                               poll_seconds=0.2)
    service.start()
    try:
        retry = wait_for(lambda: [run for run in job_history(world.workspace, "mining_code")
                                  if run["attempt"] == 2 and run["status"] != "running"], what="the first retry")[0]
        assert (retry["trigger"], retry["status"]) == ("retry", "failed")
        assert snapshot(world.workspace) == extracted
        (world.config_path.parent / "chat.jsonl").write_text("".join(json.dumps({"messages": [
            {"role": "user", "content": f"How do I stop the forecast cache going stale ({topic})?"},
            {"role": "assistant", "content": f"Compute the TTL in UTC and invalidate on deploy; {topic} too."},
        ], "feedback": "positive"}) + "\n" for topic in TOPICS[:2]), encoding="utf-8")
        done = wait_for(lambda: [run for run in job_history(world.workspace, "mining_code")
                                 if run["attempt"] == 3 and run["status"] != "running"], what="the second retry")[0]
        assert (done["trigger"], done["status"]) == ("retry", "ok"), done
        after = snapshot(world.workspace)
        assert (after["sources"], after["commits"]) == (extracted["sources"], extracted["commits"])
        assert after["examples"] - base["examples"] == {("commits", sha), ("conversations", "chat.jsonl:1"),
                                                        ("conversations", "chat.jsonl:2")}
        assert done["summary"] == "+0 knowledge items, +0 commits, +3 examples"
        time.sleep(1.0)  # longer than retry_delay_seconds + a poll: no retry after a success
        assert [run["attempt"] for run in job_history(world.workspace, "mining_code")] == [3, 2, 1, 1, 1]
    finally:
        service.stop()
    assert [data["status"] for kind, data in events if kind == "run"] == ["failed", "ok"]


def test_retries_stop_after_max_retries(world):
    config = world.config(jobs={"mining_code": 60}, retry_delay_seconds=0.2, max_retries=1, watch=False)
    for job in ("quality_check", "dedup_cleanup", "export_training"):
        configure_job(config, world.workspace, job, enabled=False)
    corrupt(world.db)
    service = SchedulerService(config, world.workspace, poll_seconds=0.2)
    service.start()  # never run before: mining_code is due at once
    try:
        wait_for(lambda: [(run["trigger"], run["status"]) for run in job_history(world.workspace)] == [
            ("retry", "failed"), ("schedule", "failed")], what="one failed run and its one retry")
        time.sleep(0.8)
        assert len(job_history(world.workspace)) == 2
        jobs = {job["job_id"]: job for job in scheduler_status(config, world.workspace)["jobs"]}
        assert jobs["mining_code"]["retry_at"] is None and jobs["mining_code"]["next_run_at"] is not None
    finally:
        service.stop()


def test_one_run_at_a_time_across_processes_and_a_killed_run_is_marked_failed(world):
    config = world.config()
    # Hold screenpipe's database the way a long write does: the other process's mining run waits on it.
    holder = sqlite3.connect(world.db, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "scheduler", "run", "--job", "mining_code", "--config",
         str(world.config_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        running = wait_for(lambda: [run for run in job_history(world.workspace) if run["status"] == "running"],
                           what="the other process's run")[0]
        assert running["pid"] == process.pid
        with pytest.raises(JobBusyError, match=f"mining_code is already running \\(run {running['run_id']}, manual"):
            run_job(config, world.workspace, "mining_code")
        with pytest.raises(JobBusyError):
            submit_job(config, world.workspace, "mining_code")
        jobs = {job["job_id"]: job for job in list_jobs(config, world.workspace)}
        assert jobs["mining_code"]["running"] is True
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        holder.execute("ROLLBACK")
        holder.close()
    status = scheduler_status(config, world.workspace)
    last = status["jobs"][0]["last_run"]
    assert (last["run_id"], last["status"]) == (running["run_id"], "failed")
    assert f"(pid {process.pid}) stopped before it finished" in last["error"]
    run_id = submit_job(config, world.workspace, "mining_code", trigger="watch")
    finished = wait_for(lambda: [run for run in job_history(world.workspace) if run["run_id"] == run_id
                                 and run["status"] != "running"], what="the submitted run")[0]
    assert (finished["status"], finished["trigger"]) == ("ok", "watch") and len(snapshot(world.workspace)["commits"])


def test_watcher_ignores_reads_and_debounces_a_burst_of_writes(world):
    fired = []
    watcher = ChangeWatcher(world.db, [world.repo.path], 0.4, fired.append)
    assert watcher.watching == [str(world.db.resolve()), str(world.repo.path.resolve())]
    watcher.start()
    try:
        run_job(world.config(), world.workspace, "mining_code")  # reads both sources
        time.sleep(0.6)
        assert fired == [] and watcher.events == 0
        for index in range(4):
            add_frames(world.db, 1, BASE_TIME + timedelta(days=3, minutes=index), f"burst{index}")
            time.sleep(0.1)
        wait_for(lambda: fired, what="the debounced change")
        time.sleep(0.6)
        assert fired == [[str(world.db.resolve())]]
        world.commit("sync")
        wait_for(lambda: len(fired) == 2, what="the commit")
        assert fired[1] == [str(world.repo.path.resolve())]
    finally:
        watcher.stop()


def test_watcher_fires_during_a_burst_that_never_settles(world):
    """Screenpipe writes every few seconds while someone works: max_wait_seconds bounds the wait."""
    fired = []
    watcher = ChangeWatcher(world.db, [], 0.5, lambda labels: fired.append(time.monotonic()), max_wait_seconds=0.6)
    watcher.start()
    try:
        began = time.monotonic()
        index = 0
        while time.monotonic() - began < 2.0:  # a write every 0.15 s: never quiet for debounce_seconds
            add_frames(world.db, 1, BASE_TIME + timedelta(days=5, seconds=index), f"steady{index}")
            index += 1
            time.sleep(0.15)
        during = [moment for moment in fired if moment < began + 2.0]
        assert len(during) >= 2, fired
    finally:
        watcher.stop()


# -- scheduler start, as a user runs it ----------------------------------------------------------------------------
def test_scheduler_start_mines_on_change_follows_overrides_and_stops_on_sigterm(world):
    config = world.config(jobs={"mining_code": 60}, debounce_seconds=0.3, retry_delay_seconds=60)
    for job in ("quality_check", "dedup_cleanup", "export_training"):
        configure_job(config, world.workspace, job, enabled=False)
    before = scheduler_status(config, world.workspace)
    assert before["running"] is False and before["pid"] is None and before["watching"] == []
    assert cli("status", "--config", str(world.config_path)) == 0

    log = open(world.workspace / "start.out", "w+")
    process = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "engine", "scheduler", "start", "--config",
         str(world.config_path)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        status = wait_for(lambda: (s := scheduler_status(config, world.workspace))["running"] and s,
                          what="the scheduler to beat")
        assert status["pid"] == process.pid
        assert status["watching"] == [str(world.db.resolve()), str(world.repo.path.resolve())]
        first = wait_for(lambda: [r for r in job_history(world.workspace) if r["status"] == "ok"],
                         what="the first scheduled mining run")[0]
        assert first["trigger"] == "schedule"
        base = snapshot(world.workspace)
        assert len(base["commits"]) == 2
        def minutes_to_next_run() -> float:  # published by the scheduler's heartbeat, so wait for the next beat
            planned = scheduler_status(config, world.workspace)["jobs"][0]["next_run_at"]
            started = datetime.fromisoformat(first["started_at"])
            return (datetime.fromisoformat(planned) - started).total_seconds() / 60 if planned else 0

        assert 59 <= wait_for(lambda: max(0, minutes_to_next_run()), what="the next run time") <= 61
        time.sleep(0.8)  # the run read both sources; reading is not a change
        assert [run["trigger"] for run in job_history(world.workspace)] == ["schedule"]
        with pytest.raises(SchedulerError, match=f"already running for .*\\(pid {process.pid}\\)"):
            SchedulerService(config, world.workspace).start()

        frame_ids = add_frames(world.db, 4, BASE_TIME + timedelta(days=4), "c")
        watched = wait_for(lambda: [r for r in job_history(world.workspace)
                                    if r["trigger"] == "watch" and r["status"] == "ok"], what="a watch-triggered run")
        after = snapshot(world.workspace)
        assert after["sources"] - base["sources"] == {f"ocr:{frame_id}" for frame_id in frame_ids}
        assert after["commits"] == base["commits"] and watched[-1]["result"]["extract"]["new_knowledge"] == 4

        sha = world.commit("maps")
        wait_for(lambda: [r for r in job_history(world.workspace) if r["status"] == "ok"
                          and r["result"]["extract"]["new_commits"] == 1], what="the commit to be mined")
        final = snapshot(world.workspace)
        assert final["commits"] - after["commits"] == {sha} and final["sources"] == after["sources"]
        assert final["examples"] - after["examples"] == {("commits", sha)}

        # A PUT from the API or the page: the running scheduler picks it up without a restart.
        configure_job(config, world.workspace, "mining_code", interval_minutes=0.01)
        wait_for(lambda: sum(r["trigger"] == "schedule" for r in job_history(world.workspace)) >= 3,
                 what="two runs on the new 0.6 s interval")
        assert all(run["status"] != "failed" for run in job_history(world.workspace))
        assert snapshot(world.workspace) == final  # nothing new, nothing twice
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code_ = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # -X faulthandler prints every thread's stack
            process.wait(timeout=10)
            code_ = None
        log.seek(0)
        output = log.read()
        log.close()
    assert code_ == 0, output
    assert "mining_code: every 1 h" in output and "quality_check: disabled" in output
    assert "(watch" in output and ": ok: +4 knowledge items" in output and "Scheduler stopped." in output
    after_stop = scheduler_status(config, world.workspace)
    assert after_stop["running"] is False and after_stop["pid"] is None and after_stop["jobs"][0]["next_run_at"] is None
    assert after_stop["last_heartbeat_at"] is None
    assert all(run["status"] != "running" for run in job_history(world.workspace))
    assert "scheduler stopped" in (world.workspace / "logs" / "scheduler.log").read_text()
    assert os.path.exists(world.workspace / "locks" / "mining_code.lock")
