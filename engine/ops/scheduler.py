"""Run the pipeline's jobs on a schedule (APScheduler), on change (watchdog) and on demand, with a history.

- Settings: the config's `scheduler.jobs` (enabled, interval_minutes), overridden by `configure_job`, which stores its
  changes in the workspace (the config file is the user's and is not rewritten). A running scheduler re-reads them
  every few seconds, so a change from the API or the page takes effect without a restart.
- Runs: `run_job` (synchronous) and `submit_job` (a background thread) record every run, whatever started it
  (schedule, manual, watch, retry), in `job_runs` with its result or a one-sentence error, and write its log lines to
  `<workspace>/logs/scheduler.log` and `<workspace>/logs/runs/<run>-<job>.log`.
- One run of a job at a time, across processes: a run holds an exclusive flock on `<workspace>/locks/<job>.lock`,
  which the kernel releases when its process dies, so a crash never leaves the job locked; the row it left
  "running" is marked failed by the next status, start or run.
- `SchedulerService` is what `python -m engine scheduler start` runs: a BackgroundScheduler with one interval job
  per enabled job, the watcher triggering mining_code, retries of failed runs after `retry_delay_seconds` (up to
  `max_retries`), and a heartbeat row so other processes can tell it is alive and when each job runs next.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from engine.clock import utc_now
from engine.config import PipelineConfig
from engine.errors import StudioError
from engine.ops.jobs import JOB_IDS, JOBS, summarize
from engine.ops.watcher import ChangeWatcher
from engine.store import Workspace

TRIGGERS = ("schedule", "manual", "watch", "retry")
POLL_SECONDS = 2.0  # how often a running scheduler beats, re-reads overrides and plans retries
HEARTBEAT_STALE_SECONDS = 30.0  # a heartbeat older than this means the scheduler is gone (or frozen)
MAX_INTERVAL_MINUTES = 366 * 24 * 60
_ACTIVE_RUNS: set[int] = set()  # runs executing in this process (a row of ours not in here was abandoned)
_ACTIVE_LOCK = threading.Lock()  # a run's row and its entry in _ACTIVE_RUNS appear together


class SchedulerError(StudioError):
    """A job id, a setting or a scheduler operation is not valid."""


class JobBusyError(SchedulerError):
    """The job is already running (in this process or another one)."""


# -- small helpers ------------------------------------------------------------------------------------------------
def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds") if moment else None


def _parse(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or job_id not in JOBS:
        shown = repr(job_id)
        shown = shown if len(shown) <= 80 else shown[:79] + "…"  # an id from a request can be megabytes long
        raise SchedulerError(f"There is no job {shown}; the jobs are {', '.join(JOB_IDS)}.")
    return job_id


def one_sentence(exc: BaseException) -> str:
    """A failure as one sentence for the history: the domain message as-is, else the error's first line."""
    if isinstance(exc, StudioError):
        return str(exc)
    detail = getattr(exc, "stderr", None)  # git's own complaint, not GitPython's command dump
    text = detail if isinstance(detail, str) and detail.strip() else str(exc)
    lines = [line.strip().strip("'\"") for line in text.strip().splitlines() if line.strip()]
    first = next((line.removeprefix("stderr:").strip().strip("'\"") for line in lines), "") or "no message"
    sentence = f"{type(exc).__name__}: {first[:300]}"
    return sentence if sentence.endswith(".") else f"{sentence}."


# -- settings ----------------------------------------------------------------------------------------------------
def _interval_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"is {json.dumps(value, default=str)[:40]}, not a number"
    if not math.isfinite(value) or value <= 0 or value > MAX_INTERVAL_MINUTES:
        return f"is {value}"
    return None


def _configured(config: PipelineConfig) -> dict[str, dict]:
    """The config's scheduler.jobs, validated (engine.config only checks it is an object)."""
    jobs = config.get("scheduler.jobs") or {}
    unknown = sorted(set(jobs) - set(JOB_IDS))
    if unknown:
        raise SchedulerError(f"`scheduler.jobs.{unknown[0]}` is not a job; the jobs are {', '.join(JOB_IDS)}.")
    settings = {}
    for job_id in JOB_IDS:
        entry = jobs.get(job_id, {})
        if not isinstance(entry, dict):
            raise SchedulerError(f"`scheduler.jobs.{job_id}` must be an object like "
                                 '{"enabled": true, "interval_minutes": 360}.')
        enabled, interval = entry.get("enabled", True), entry.get("interval_minutes", 60)
        if not isinstance(enabled, bool):
            raise SchedulerError(f"`scheduler.jobs.{job_id}.enabled` must be true or false.")
        problem = _interval_problem(interval)
        if problem:
            raise SchedulerError(f"`scheduler.jobs.{job_id}.interval_minutes` {problem}; it must be a number of "
                                 f"minutes above 0 and at most {MAX_INTERVAL_MINUTES}.")
        settings[job_id] = {"enabled": enabled, "interval_minutes": interval}
    return settings


def _effective(config: PipelineConfig, conn: sqlite3.Connection) -> dict[str, dict]:
    """Config settings with the workspace's overrides applied; `override` says which fields were overridden."""
    settings = _configured(config)
    for job_id in settings:
        settings[job_id]["override"] = []
    for row in conn.execute("SELECT job_id, enabled, interval_minutes FROM job_settings"):
        if row["job_id"] not in settings:
            continue
        entry = settings[row["job_id"]]
        if row["enabled"] is not None:
            entry["enabled"], entry["override"] = bool(row["enabled"]), [*entry["override"], "enabled"]
        if row["interval_minutes"] is not None:
            entry["interval_minutes"] = row["interval_minutes"]
            entry["override"] = [*entry["override"], "interval_minutes"]
    return settings


def configure_job(config: PipelineConfig, workspace_path: str | os.PathLike, job_id: str,
                  enabled: bool | None = None, interval_minutes: float | None = None) -> dict:
    """Enable/disable a job or change its interval (minutes, fractions allowed), stored in the workspace; a running
    scheduler picks it up within a few seconds. Returns the job as `list_jobs` shows it. SchedulerError if the job
    id or a value is not valid (nothing is stored then)."""
    _check_job_id(job_id)
    if enabled is None and interval_minutes is None:
        raise SchedulerError("Nothing to change: give `enabled` (true or false) and/or `interval_minutes`.")
    if enabled is not None and not isinstance(enabled, bool):
        raise SchedulerError(f"`enabled` must be true or false, not {json.dumps(enabled, default=str)[:40]}.")
    if interval_minutes is not None:
        problem = _interval_problem(interval_minutes)
        if problem:
            raise SchedulerError(f"`interval_minutes` {problem}; it must be a number of minutes above 0 and at most "
                                 f"{MAX_INTERVAL_MINUTES} (0.5 is 30 seconds).")
    _configured(config)  # a broken config section is reported before anything is stored
    ws = Workspace.open(workspace_path)
    with ws.transaction() as conn:
        conn.execute(
            "INSERT INTO job_settings(job_id, enabled, interval_minutes, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(job_id) DO UPDATE SET enabled = COALESCE(excluded.enabled, enabled),"
            " interval_minutes = COALESCE(excluded.interval_minutes, interval_minutes),"
            " updated_at = excluded.updated_at",
            (job_id, None if enabled is None else int(enabled),
             None if interval_minutes is None else float(interval_minutes), _iso(utc_now())),
        )
    _log_line(ws, f"{job_id}: settings changed ("
              + ", ".join(f"{key} {value}" for key, value in
                          (("enabled", enabled), ("interval_minutes", interval_minutes)) if value is not None) + ")")
    return next(job for job in list_jobs(config, workspace_path) if job["job_id"] == job_id)


def reset_job(config: PipelineConfig, workspace_path: str | os.PathLike, job_id: str) -> dict:
    """Drop a job's overrides: it runs as the config says again. Returns the job as `list_jobs` shows it."""
    _check_job_id(job_id)
    ws = Workspace.open(workspace_path)
    with ws.connection() as conn:
        conn.execute("DELETE FROM job_settings WHERE job_id = ?", (job_id,))
    return next(job for job in list_jobs(config, workspace_path) if job["job_id"] == job_id)


# -- logs --------------------------------------------------------------------------------------------------------
_LOG_LOCK = threading.Lock()


def _log_line(workspace: Workspace, message: str, run_log: Path | None = None) -> None:
    line = f"{_iso(utc_now())} [pid {os.getpid()}] {message}\n"
    with _LOG_LOCK:
        for path in (workspace.path("logs", "scheduler.log"), run_log):
            if path is None:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line)


class _RunProgress:
    """A ProgressFn that writes each stage's progress to the run log, at most every few seconds per stage."""

    def __init__(self, log: Callable[[str], None], every_seconds: float = 5.0):
        self.log, self.every, self.last = log, every_seconds, {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if finished or now - self.last.get(stage, -math.inf) >= self.every:
            self.last[stage] = now
            self.log(f"  {stage}: {done:,}" + (f" of {total:,}" if total is not None else ""))


# -- history -----------------------------------------------------------------------------------------------------
def _run_dict(workspace: Workspace, row: sqlite3.Row) -> dict:
    result = json.loads(row["result_json"]) if row["result_json"] else None
    return {
        "run_id": row["id"], "job_id": row["job_id"], "trigger": row["trigger"], "status": row["status"],
        "started_at": row["started_at"], "finished_at": row["finished_at"], "attempt": row["attempt"],
        "result": result, "error": row["error"], "seconds": row["seconds"], "pid": row["pid"],
        "summary": summarize(row["job_id"], result) if row["status"] == "ok" else (row["error"] or ""),
        "log_path": str(workspace.path(row["log_path"])) if row["log_path"] else None,
    }


def _fail_abandoned(conn: sqlite3.Connection, job_id: str | None = None, lock_held: bool = False) -> int:
    """Mark failed the runs still "running" whose process is gone (or, with the job's lock held, any of them)."""
    marked = 0
    with _ACTIVE_LOCK:
        rows = conn.execute(
            "SELECT id, pid FROM job_runs WHERE status = 'running'" + (" AND job_id = ?" if job_id else ""),
            (job_id,) if job_id else (),
        ).fetchall()
        for row in rows:
            ours = row["pid"] == os.getpid()
            abandoned = (lock_held or (ours and row["id"] not in _ACTIVE_RUNS)
                         or (not ours and not _pid_alive(row["pid"])))
            if not abandoned:
                continue
            marked += conn.execute(
                "UPDATE job_runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'",
                (_iso(utc_now()), f"The process running this job (pid {row['pid']}) stopped before it finished; "
                               "its unfinished transaction was rolled back.", row["id"]),
            ).rowcount
    return marked


def job_history(workspace_path: str | os.PathLike, job_id: str | None = None, limit: int = 50) -> list[dict]:
    """Runs, newest first (all jobs, or one): each a run dict as `run_job` returns it."""
    if job_id is not None:
        _check_job_id(job_id)
    ws = Workspace.open(workspace_path)
    with ws.connection() as conn:
        _fail_abandoned(conn, job_id)
        rows = conn.execute(
            "SELECT * FROM job_runs" + (" WHERE job_id = ?" if job_id else "") + " ORDER BY id DESC LIMIT ?",
            ((job_id,) if job_id else ()) + (max(0, int(limit)),),
        ).fetchall()
        return [_run_dict(ws, row) for row in rows]


def get_job_run(workspace_path: str | os.PathLike, run_id: int) -> dict:
    """One run dict; SchedulerError if the workspace has no such run."""
    ws = Workspace.open(workspace_path)
    row = ws.row("SELECT * FROM job_runs WHERE id = ?", (run_id,))
    if row is None:
        raise SchedulerError(f"There is no job run {run_id} in {ws.root}; "
                             "`python -m engine scheduler list` shows the recent runs.")
    return _run_dict(ws, row)


def job_log(workspace_path: str | os.PathLike, run_id: int) -> str:
    """The log lines of one run (what it did, progress, the traceback of a failure)."""
    run = get_job_run(workspace_path, run_id)
    path = Path(run["log_path"]) if run["log_path"] else None
    if path is None or not path.exists():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


# -- running a job -----------------------------------------------------------------------------------------------
class _Run:
    """A claimed run: the job's lock is held and its history row exists."""

    def __init__(self, ws: Workspace, job_id: str, trigger: str, attempt: int, lock_handle):
        self.ws, self.job_id, self.trigger, self.attempt = ws, job_id, trigger, attempt
        self.lock_handle = lock_handle
        self.started = utc_now()
        self.began = time.perf_counter()
        with ws.connection() as conn:
            _fail_abandoned(conn, job_id, lock_held=True)
            with _ACTIVE_LOCK:
                self.run_id = conn.execute(
                    "INSERT INTO job_runs(job_id, trigger, status, attempt, started_at, pid)"
                    " VALUES (?, ?, 'running', ?, ?, ?)",
                    (job_id, trigger, attempt, _iso(self.started), os.getpid()),
                ).lastrowid
                _ACTIVE_RUNS.add(self.run_id)
            self.relative_log = f"logs/runs/{self.run_id}-{job_id}.log"
            conn.execute("UPDATE job_runs SET log_path = ? WHERE id = ?", (self.relative_log, self.run_id))

    def log(self, message: str) -> None:
        _log_line(self.ws, f"run {self.run_id} {self.job_id}: {message}",
                  self.ws.path(self.relative_log))

    def execute(self, config: PipelineConfig) -> dict:
        """Run the body, record ok/failed, release the lock; never raises for a failure of the job itself."""
        status, result, error = "failed", None, None
        try:
            self.log(f"started ({self.trigger}, attempt {self.attempt})")
            result = JOBS[self.job_id].body(config, self.ws.root, _RunProgress(self.log))
            status = "ok"
            self.log(f"ok: {summarize(self.job_id, result)}")
        except Exception as exc:  # the job failed: record it as one sentence, the traceback goes to its log
            error = one_sentence(exc)
            self.log(f"failed: {error}\n{traceback.format_exc()}")
        except BaseException as exc:  # Ctrl-C or SystemExit in the middle: record it, then let it stop us
            error = (f"Interrupted ({type(exc).__name__}) before it finished; "
                     "its unfinished transaction was rolled back.")
            self.log(f"failed: {error}")
            self._finish(status, result, error)
            raise
        return self._finish(status, result, error)

    def _finish(self, status: str, result: dict | None, error: str | None) -> dict:
        try:
            with self.ws.connection() as conn:
                conn.execute(
                    "UPDATE job_runs SET status = ?, finished_at = ?, seconds = ?, result_json = ?, error = ?"
                    " WHERE id = ?",
                    (status, _iso(utc_now()), round(time.perf_counter() - self.began, 3),
                     json.dumps(result, default=str) if result is not None else None, error, self.run_id),
                )
                row = conn.execute("SELECT * FROM job_runs WHERE id = ?", (self.run_id,)).fetchone()
                return _run_dict(self.ws, row)
        finally:
            _ACTIVE_RUNS.discard(self.run_id)
            self.lock_handle.close()  # closing the file releases the flock


def _claim(workspace_path: str | os.PathLike, job_id: str, trigger: str, attempt: int) -> _Run:
    _check_job_id(job_id)
    if trigger not in TRIGGERS:
        raise SchedulerError(f"Unknown trigger {trigger!r}; use one of {', '.join(TRIGGERS)}.")
    ws = Workspace.open(workspace_path)
    lock_path = ws.path("locks", f"{job_id}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")  # held until the run finishes: _Run._finish closes it
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        with ws.connection() as conn:
            row = conn.execute("SELECT id, started_at, pid, trigger FROM job_runs WHERE job_id = ? AND status ="
                               " 'running' ORDER BY id DESC LIMIT 1", (job_id,)).fetchone()
        where = (f" (run {row['id']}, {row['trigger']}, started {row['started_at']}, pid {row['pid']})"
                 if row else "")
        raise JobBusyError(f"{job_id} is already running{where}; wait for it to finish and try again.") from None
    try:
        return _Run(ws, job_id, trigger, attempt, handle)
    except BaseException:
        handle.close()
        raise


def run_job(config: PipelineConfig, workspace_path: str | os.PathLike, job_id: str, trigger: str = "manual",
            *, attempt: int = 1) -> dict:
    """Run a job now, in this thread, and return its run dict {run_id, job_id, trigger, status ("ok" | "failed"),
    started_at, finished_at, attempt, result, error, seconds, pid, summary, log_path}. A failure of the job is a
    "failed" run, not an exception. SchedulerError for an unknown job id, JobBusyError if it is already running."""
    return _claim(workspace_path, job_id, trigger, attempt).execute(config)


def submit_job(config: PipelineConfig, workspace_path: str | os.PathLike, job_id: str, trigger: str = "manual",
               *, attempt: int = 1) -> int:
    """Start a job in a background thread; return its run id once its history row exists (status "running").
    Same errors as `run_job`, raised here before anything starts."""
    claimed = _claim(workspace_path, job_id, trigger, attempt)
    threading.Thread(target=claimed.execute, args=(config,), name=f"job-{job_id}-{claimed.run_id}").start()
    return claimed.run_id


# -- status ------------------------------------------------------------------------------------------------------
def _state(conn: sqlite3.Connection) -> dict | None:
    row = conn.execute("SELECT * FROM scheduler_state WHERE id = 1").fetchone()
    if row is None or row["pid"] is None:
        return None
    heartbeat = _parse(row["heartbeat_at"])
    alive = _pid_alive(row["pid"]) and heartbeat is not None and (
        (utc_now() - heartbeat).total_seconds() <= HEARTBEAT_STALE_SECONDS)
    return {"alive": alive, "pid": row["pid"], "started_at": row["started_at"], "heartbeat_at": row["heartbeat_at"],
            "config_path": row["config_path"], "watching": json.loads(row["watching_json"] or "[]"),
            "next_runs": json.loads(row["next_runs_json"] or "{}")}


def _jobs(config: PipelineConfig, ws: Workspace, conn: sqlite3.Connection) -> list[dict]:
    _fail_abandoned(conn)
    settings = _effective(config, conn)
    state = _state(conn)
    next_runs = state["next_runs"] if state and state["alive"] else {}
    jobs = []
    for job_id, spec in JOBS.items():
        row = conn.execute("SELECT * FROM job_runs WHERE job_id = ? ORDER BY id DESC LIMIT 1", (job_id,)).fetchone()
        last = _run_dict(ws, row) if row else None
        planned = next_runs.get(job_id, {})
        jobs.append({
            "job_id": job_id, "title": spec.title, "description": spec.description,
            "enabled": settings[job_id]["enabled"], "interval_minutes": settings[job_id]["interval_minutes"],
            "override": settings[job_id]["override"],
            "next_run_at": planned.get("next_run_at") if settings[job_id]["enabled"] else None,
            "retry_at": planned.get("retry_at"),
            "running": bool(last and last["status"] == "running"),
            "last_run": last,
        })
    return jobs


def list_jobs(config: PipelineConfig, workspace_path: str | os.PathLike) -> list[dict]:
    """The four jobs: {job_id, title, description, enabled, interval_minutes, next_run_at (ISO, or None when no
    scheduler is running or the job is disabled), last_run (a run dict or None), override (fields set by
    configure_job), retry_at (a planned retry), running}."""
    ws = Workspace.open(workspace_path)
    with ws.connection() as conn:
        return _jobs(config, ws, conn)


def scheduler_status(config: PipelineConfig, workspace_path: str | os.PathLike) -> dict:
    """{running, pid, started_at, heartbeat_at, watching, jobs}: running is True only while a `scheduler start`
    process for this workspace is alive and beating; otherwise pid/started_at/heartbeat_at are None and
    last_heartbeat_at says when one was last seen."""
    ws = Workspace.open(workspace_path)
    with ws.connection() as conn:
        state = _state(conn)
        jobs = _jobs(config, ws, conn)
    running = bool(state and state["alive"])
    return {
        "running": running, "pid": state["pid"] if running else None,
        "started_at": state["started_at"] if running else None,
        "heartbeat_at": state["heartbeat_at"] if running else None,
        "last_heartbeat_at": state["heartbeat_at"] if state else None,
        "watching": state["watching"] if running else [],
        "workspace": str(ws.root),
        "jobs": jobs,
    }


# -- the scheduler process ---------------------------------------------------------------------------------------
class SchedulerService:
    """The scheduler of one workspace, as `scheduler start` runs it (tests run it in-process too).

    `start()` claims the workspace's scheduler lock (one scheduler per workspace), marks abandoned runs failed,
    schedules every enabled job, starts the watcher and the heartbeat. `on_event(kind, data)` hears what happens:
    "scheduled" (a job's settings applied: data is the job dict), "run" (a finished run dict), "busy" (a run was
    skipped, data {job_id, error}), "watch" (data {changed}), "error" (data {job_id, error}).
    """

    def __init__(self, config: PipelineConfig, workspace_path: str | os.PathLike,
                 on_event: Callable[[str, dict], None] | None = None, poll_seconds: float = POLL_SECONDS):
        self.config = config
        self.ws = Workspace.open(workspace_path)
        self.on_event = on_event or (lambda kind, data: None)
        self.poll_seconds = poll_seconds
        self.max_retries = int(config.get("scheduler.max_retries"))
        self.retry_delay = float(config.get("scheduler.retry_delay_seconds"))
        self.debounce = float(config.get("scheduler.debounce_seconds"))
        # Jobs run one at a time in this process ("default"), so mining and export never race each other; the
        # heartbeat has its own thread ("ops") so a long job does not make the scheduler look dead.
        # Everything APScheduler would log (a skipped run, a crashed job) reaches on_event and scheduler.log through
        # the listener; without a handler its warnings would go to stderr a second time.
        logging.getLogger("apscheduler").addHandler(logging.NullHandler())
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1), "ops": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        self.watcher: ChangeWatcher | None = None
        self._applied: dict[str, tuple[bool, float]] = {}
        self._lock_handle = None
        # Held around everything that changes the APScheduler jobs from a worker or watcher thread. stop() sets
        # _stopping under it before shutdown(wait=True): shutdown holds APScheduler's job store lock while it joins
        # the workers, so a worker still calling into the scheduler then would deadlock it.
        self._state_lock = threading.RLock()
        self._stopping = False

    # lifecycle
    def start(self) -> dict:
        _configured(self.config)
        lock_path = self.ws.path("locks", "scheduler.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # held while the scheduler runs
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            with self.ws.connection() as conn:
                state = _state(conn)
            raise SchedulerError(
                f"A scheduler is already running for {self.ws.root}"
                + (f" (pid {state['pid']})" if state else "") + "; stop it first, or pass another --workspace."
            ) from None
        self._lock_handle = handle
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> dict:
        with self.ws.connection() as conn:
            abandoned = _fail_abandoned(conn)
        started = utc_now()
        if self.config.get("scheduler.watch"):
            self.watcher = ChangeWatcher(self.config.screenpipe_db, self.config.git_repos, self.debounce,
                                         self._on_change)
        watching = self.watcher.watching if self.watcher else []
        with self.ws.connection() as conn:
            conn.execute(
                "INSERT INTO scheduler_state(id, pid, started_at, heartbeat_at, config_path, watching_json,"
                " next_runs_json) VALUES (1, ?, ?, ?, ?, ?, '{}') ON CONFLICT(id) DO UPDATE SET pid = excluded.pid,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
                " config_path = excluded.config_path, watching_json = excluded.watching_json, next_runs_json = '{}'",
                (os.getpid(), _iso(started), _iso(started), str(self.config.path or ""), json.dumps(watching)),
            )
        self.scheduler.add_listener(self._on_job_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        self._tick()
        self.scheduler.add_job(self._tick, "interval", seconds=self.poll_seconds, id="_heartbeat", executor="ops",
                               replace_existing=True)
        if self.watcher:
            self.watcher.start()
        _log_line(self.ws, f"scheduler started (watching {len(watching)} sources)"
                  + (f"; marked {abandoned} abandoned runs failed" if abandoned else ""))
        return {"pid": os.getpid(), "started_at": _iso(started), "watching": watching,
                "watch_notes": self.watcher.notes if self.watcher else [], "abandoned_runs_failed": abandoned,
                "jobs": list_jobs(self.config, self.ws.root)}

    def stop(self, wait: bool = True) -> None:
        """Stop the watcher and the scheduler (waiting for a running job when `wait`), then clear the heartbeat."""
        with self._state_lock:
            self._stopping = True
        if self.watcher:
            self.watcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        if self._lock_handle is not None:
            with self.ws.connection() as conn:
                conn.execute("UPDATE scheduler_state SET pid = NULL, heartbeat_at = NULL, watching_json = '[]',"
                             " next_runs_json = '{}' WHERE id = 1 AND pid = ?", (os.getpid(),))
            _log_line(self.ws, "scheduler stopped")
            self._lock_handle.close()
            self._lock_handle = None

    def running_jobs(self) -> list[str]:
        with self.ws.connection() as conn:
            return [row[0] for row in conn.execute(
                "SELECT job_id FROM job_runs WHERE status = 'running' AND pid = ?", (os.getpid(),))]

    # what the scheduler runs
    def _execute(self, job_id: str, trigger: str, attempt: int = 1) -> dict | None:
        with self._state_lock:
            if self._stopping:  # queued before the stop: it runs at its next time, after a restart
                return None
        if trigger == "retry" and not self._retry_still_wanted(job_id, attempt):
            return None
        try:
            return run_job(self.config, self.ws.root, job_id, trigger, attempt=attempt)
        except JobBusyError as exc:
            self.on_event("busy", {"job_id": job_id, "trigger": trigger, "error": str(exc)})
            if trigger == "watch":  # the change must not be lost: look again once the other run is done
                self._add_once(f"watch:{job_id}", job_id, "watch", utc_now() + timedelta(seconds=max(self.debounce, 5)),
                               max_instances=2)
            return None

    def _add_once(self, aps_id: str, job_id: str, trigger: str, when: datetime, attempt: int = 1,
                  max_instances: int = 1) -> None:
        with self._state_lock:
            if self._stopping:
                return
            self.scheduler.add_job(self._execute, "date", run_date=when, args=(job_id, trigger, attempt),
                                   id=aps_id, replace_existing=True, max_instances=max_instances)

    def _on_change(self, changed: list[str]) -> None:
        with self.ws.connection() as conn:
            enabled = _effective(self.config, conn)["mining_code"]["enabled"]
        self.on_event("watch", {"changed": changed, "enabled": enabled})
        _log_line(self.ws, f"change in {', '.join(changed)}"
                  + ("; mining_code queued" if enabled else "; mining_code is disabled, not queued"))
        if enabled:
            # One running and one waiting: a change during a run is mined by the waiting one.
            self._add_once("watch:mining_code", "mining_code", "watch", utc_now(), max_instances=2)

    def _on_job_event(self, event) -> None:
        if event.job_id == "_heartbeat":
            if event.code == EVENT_JOB_ERROR:
                _log_line(self.ws, f"heartbeat failed: {one_sentence(event.exception)}")
            return
        job_id = event.job_id.split(":")[-1]
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.on_event("busy", {"job_id": job_id, "error": "skipped: its previous run is still running or waiting "
                                                              "for the job before it."})
        elif event.code == EVENT_JOB_ERROR:
            error = one_sentence(event.exception)
            _log_line(self.ws, f"{job_id}: could not run: {error}")
            self.on_event("error", {"job_id": job_id, "error": error})
        elif event.retval is not None:
            self.on_event("run", event.retval)
            self._tick()

    # the heartbeat: beat, apply overrides, plan retries, publish next run times
    def _tick(self) -> None:
        with self._state_lock:
            if self._stopping:
                return
            with self.ws.connection() as conn:
                settings = _effective(self.config, conn)
                latest = {row["job_id"]: row for row in conn.execute(
                    "SELECT * FROM job_runs WHERE id IN (SELECT MAX(id) FROM job_runs GROUP BY job_id)")}
                last_started = dict(conn.execute(
                    "SELECT job_id, MAX(started_at) FROM job_runs WHERE trigger IN ('schedule', 'manual') "
                    "GROUP BY job_id").fetchall())
            for job_id in JOB_IDS:
                self._apply(job_id, settings[job_id], _parse(last_started.get(job_id)))
                self._plan_retry(job_id, settings[job_id]["enabled"], latest.get(job_id))
            self._publish()

    def _apply(self, job_id: str, setting: dict, last_started: datetime | None) -> None:
        wanted = (setting["enabled"], float(setting["interval_minutes"]))
        if self._applied.get(job_id) == wanted:
            return
        self._applied[job_id] = wanted
        enabled, minutes = wanted
        if not enabled:
            if self.scheduler.get_job(job_id):
                self.scheduler.remove_job(job_id)
        else:
            # Due an interval after the last run, or now: restarting the scheduler does not postpone a job forever.
            order = JOB_IDS.index(job_id) * 0.05  # mining first when several are due at once
            due = max(utc_now(), last_started + timedelta(minutes=minutes) if last_started else utc_now())
            self.scheduler.add_job(self._execute, "interval", seconds=minutes * 60, args=(job_id, "schedule"),
                                   id=job_id, replace_existing=True, next_run_time=due + timedelta(seconds=order))
        self.on_event("scheduled", {"job_id": job_id, "enabled": enabled, "interval_minutes": setting[
            "interval_minutes"], "override": setting["override"], "next_run_at": self._next(job_id)})
        _log_line(self.ws, f"{job_id}: " + (
            f"every {setting['interval_minutes']} min, next {self._next(job_id)}" if enabled else "disabled"))

    def _retry_still_wanted(self, job_id: str, attempt: int) -> bool:
        with self.ws.connection() as conn:
            row = conn.execute("SELECT status, attempt FROM job_runs WHERE job_id = ? ORDER BY id DESC LIMIT 1",
                               (job_id,)).fetchone()
        return bool(row and row["status"] == "failed" and row["attempt"] == attempt - 1)

    def _plan_retry(self, job_id: str, enabled: bool, latest: sqlite3.Row | None) -> None:
        aps_id = f"retry:{job_id}"
        wanted = (enabled and latest is not None and latest["status"] == "failed"
                  and latest["attempt"] <= self.max_retries)
        pending = self.scheduler.get_job(aps_id)
        if not wanted:
            if pending:
                pending.remove()
            return
        attempt = latest["attempt"] + 1
        if pending and pending.args[2] == attempt:
            return
        last = _parse(latest["finished_at"] or latest["started_at"])
        when = max(utc_now(), last + timedelta(seconds=self.retry_delay))
        self._add_once(aps_id, job_id, "retry", when, attempt=attempt)
        _log_line(self.ws, f"{job_id}: run {latest['id']} failed; retry {attempt - 1} of "
                                        f"{self.max_retries} at {_iso(when)}")

    def _next(self, aps_id: str) -> str | None:
        job = self.scheduler.get_job(aps_id)
        return _iso(job.next_run_time) if job and job.next_run_time else None

    def _publish(self) -> None:
        next_runs = {job_id: {"next_run_at": self._next(job_id), "retry_at": self._next(f"retry:{job_id}")}
                     for job_id in JOB_IDS}
        with self.ws.connection() as conn:
            conn.execute("UPDATE scheduler_state SET heartbeat_at = ?, next_runs_json = ? WHERE id = 1 AND pid = ?",
                         (_iso(utc_now()), json.dumps(next_runs), os.getpid()))
