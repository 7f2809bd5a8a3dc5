"""Training run records: list, show, metrics for charts, stop, wait, and the liveness check that turns a killed
or crashed worker into a failed run with the tail of its log.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from engine.clock import utc_now, zulu_now
from engine.errors import StudioError
from engine.processes import end_task, process_alive, terminate_process_group
from engine.store import Workspace

ACTIVE = ("queued", "running", "evaluating")  # evaluating: the adapter is saved and usable, its checks still run
USABLE = ("evaluating", "completed")
LOG_TAIL_LINES = 30
STARTING_GRACE_SECONDS = 60
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class RunRecord:
    """One training run as stored in the workspace (config and evaluation decoded)."""

    id: str
    status: str
    data_dir: str
    base_model: str
    model_path: str | None
    preset: str | None
    config: dict
    train_samples: int
    valid_samples: int
    test_samples: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    train_seconds: float | None
    iterations_done: int
    final_train_loss: float | None
    final_val_loss: float | None
    tokens_per_second: float | None
    peak_memory_gb: float | None
    blas: str | None
    pid: int | None
    error: str | None
    log_tail: str | None
    phase: str | None = None
    usable_at: str | None = None
    adapter_files: list[dict] = field(default_factory=list)
    evaluation: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def usable(self) -> bool:
        """Its adapter is saved: chat, probe and export can use it (deploy waits for the evaluation)."""
        return self.status in USABLE

    @property
    def iters(self) -> int:
        return int(self.config.get("iters", 0))

    @property
    def status_text(self) -> str:
        """The one line every view shows for a run: status, and while it is active its phase and iterations."""
        if self.status == "evaluating":
            return "adapter ready · evaluating"
        if self.active and self.phase and self.phase != self.status:
            return f"{self.status} · {self.phase}"
        return self.status


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], status=row["status"], data_dir=row["data_dir"], base_model=row["base_model"],
        model_path=row["model_path"], preset=row["preset"], config=json.loads(row["config_json"]),
        train_samples=row["train_samples"], valid_samples=row["valid_samples"], test_samples=row["test_samples"],
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
        train_seconds=row["train_seconds"], iterations_done=row["iterations_done"],
        final_train_loss=row["final_train_loss"], final_val_loss=row["final_val_loss"],
        tokens_per_second=row["tokens_per_second"], peak_memory_gb=row["peak_memory_gb"], blas=row["blas"],
        pid=row["pid"], error=row["error"], log_tail=row["log_tail"], phase=row["phase"], usable_at=row["usable_at"],
        adapter_files=json.loads(row["adapter_files_json"] or "[]"),
        evaluation=json.loads(row["evaluation_json"] or "{}"),
    )


def read_log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's log, without terminal colour codes or progress-bar redraws."""
    if not log_file.is_file():
        return ""
    with open(log_file, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    text = _ANSI.sub("", text)
    kept = [line.split("\r")[-1].rstrip() for line in text.splitlines()]
    return "\n".join([line for line in kept if line.strip()][-lines:])


def refresh_runs(ws: Workspace) -> list[str]:
    """Mark runs whose worker is gone without finishing as failed, with their log tail; return their ids."""
    with ws.connection() as conn:
        rows = conn.execute(
            "SELECT id, pid, pid_started, status, created_at FROM training_runs"
            " WHERE status IN ('queued', 'running', 'evaluating')"
        ).fetchall()
        failed = []
        for row in rows:
            if row["pid"] is None and _age_seconds(row["created_at"]) < STARTING_GRACE_SECONDS:
                continue  # recorded, its process being started by the launcher right now
            if process_alive(row["pid"], row["pid_started"]):
                continue
            tail = read_log_tail(ws.path("runs", row["id"], "train.log"))
            with ws.transaction(conn):
                changed = conn.execute(
                    "UPDATE training_runs SET status='failed', phase='failed', finished_at=?, log_tail=?, error=?"
                    " WHERE id=? AND status IN ('queued', 'running', 'evaluating')",
                    (zulu_now(), tail, "The training process ended before finishing (killed or crashed); "
                     "see the end of its log.", row["id"]),
                ).rowcount
            if changed:
                failed.append(row["id"])
        return failed


def _age_seconds(iso: str) -> float:
    started = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (utc_now() - started).total_seconds()


def list_runs(ws: Workspace, limit: int = 200) -> list[RunRecord]:
    """Runs, newest first, after the liveness check."""
    refresh_runs(ws)
    with ws.connection() as conn:
        rows = conn.execute("SELECT * FROM training_runs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
    return [_record(row) for row in rows]


def get_run(ws: Workspace, run_id: str, refresh: bool = True) -> RunRecord:
    if refresh:
        refresh_runs(ws)
    with ws.connection() as conn:
        row = conn.execute("SELECT * FROM training_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise StudioError(f"There is no training run {run_id} in {ws.root}.")
    return _record(row)


def run_metrics(ws: Workspace, run_id: str) -> list[dict]:
    """Every loss report of a run in iteration order: kind (train/val), iteration, loss, tokens/s, memory."""
    with ws.connection() as conn:
        rows = conn.execute(
            "SELECT kind, iteration, loss, learning_rate, tokens_per_second, iterations_per_second, trained_tokens,"
            " peak_memory_gb, seconds FROM training_metrics WHERE run_id = ? ORDER BY iteration, kind",
            (run_id,),
        ).fetchall()
    return [dict(row) for row in rows]


def stop_run(ws: Workspace, run_id: str) -> RunRecord:
    """Stop a queued, running or evaluating run: mark it stopped, end its process group, keep the tail of its
    log, and say so in the training task's status."""
    from engine.training.launcher import TASK_KIND

    run = get_run(ws, run_id, refresh=False)
    if not run.active:
        raise StudioError(f"Run {run_id} is already {run.status}; only a queued or running run can be stopped.")
    with ws.transaction() as conn:
        conn.execute("UPDATE training_runs SET status='stopped', phase='stopped', finished_at=?, error=? WHERE id=?"
                     " AND status IN ('queued', 'running', 'evaluating')", (zulu_now(), "Stopped by the user.", run_id))
    with ws.connection() as conn:
        started = conn.execute("SELECT pid_started FROM training_runs WHERE id=?", (run_id,)).fetchone()[0]
    if run.pid and process_alive(run.pid, started):  # never signal a pid the system gave to another process
        terminate_process_group(run.pid, started)
    end_task(ws.root, TASK_KIND, run.pid, "Stopped by the user.")
    with ws.transaction() as conn:
        conn.execute("UPDATE training_runs SET log_tail=? WHERE id=?",
                     (read_log_tail(ws.path("runs", run_id, "train.log")), run_id))
    return get_run(ws, run_id, refresh=False)


def wait_for_run(ws: Workspace, run_id: str, timeout: float | None = None, poll_seconds: float = 0.5,
                 on_metrics=None, on_phase=None) -> RunRecord:
    """Block until the run is no longer active (or timeout); `on_metrics(new_rows)` sees reports as they come,
    `on_phase(run)` each new phase."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    phase = None
    while True:
        run = get_run(ws, run_id)
        if on_phase is not None and run.phase != phase and run.active:
            phase = run.phase
            on_phase(run)
        if on_metrics is not None:
            rows = run_metrics(ws, run_id)
            if len(rows) > seen:
                on_metrics(rows[seen:])
                seen = len(rows)
        if not run.active:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise StudioError(f"Run {run_id} is still {run.status} after {timeout:.0f} s.")
        time.sleep(poll_seconds)


def list_data_folders(ws: Workspace) -> list[Path]:
    """MLX data folders in the workspace: datasets/<name>/ (and one level below) holding train.jsonl."""
    root = ws.path("datasets")
    if not root.is_dir():
        return []
    found = {file.parent for pattern in ("*/train.jsonl", "*/*/train.jsonl") for file in root.glob(pattern)}
    return sorted(found)
