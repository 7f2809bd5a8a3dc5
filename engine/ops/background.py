"""Start and stop the scheduler from the app: the same `python -m engine scheduler start` a terminal runs, as a
process of its own that outlives the page (and the Streamlit server), so closing the browser never stops it.

Its output goes to `<workspace>/logs/scheduler-process.log`; it is "running" by the same heartbeat test as one
started by hand, and stopping sends SIGTERM, which finishes (or rolls back) the job in progress and clears the
heartbeat, exactly as Ctrl-C does in a terminal.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from engine.config import PipelineConfig
from engine.ops.scheduler import SchedulerError, scheduler_status
from engine.processes import spawn_detached
from engine.store import Workspace

PROCESS_LOG = ("logs", "scheduler-process.log")


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " / ".join(lines[-count:])


def start_scheduler_process(config_path: str | os.PathLike, workspace_path: str | os.PathLike,
                            timeout: float = 30.0) -> int:
    """Start a scheduler for this config and workspace; return its pid once its heartbeat says it runs."""
    config_path = Path(config_path).expanduser().resolve()
    config = PipelineConfig.load(config_path)
    workspace = Workspace.open(workspace_path)
    status = scheduler_status(config, workspace.root)
    if status["running"]:
        raise SchedulerError(f"A scheduler already runs for this workspace (pid {status['pid']}); stop it first.")
    log = workspace.path(*PROCESS_LOG)
    log.parent.mkdir(parents=True, exist_ok=True)
    process = spawn_detached([sys.executable, "-m", "engine", "scheduler", "start", "--config", str(config_path),
                              "--workspace", str(workspace.root)], log=log, what="scheduler")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SchedulerError(f"The scheduler stopped as it started (exit {process.returncode}): "
                                 f"{_last_lines(log) or 'no output'}; its log is {log}.")
        status = scheduler_status(config, workspace.root)
        if status["running"] and status["pid"] == process.pid:
            return process.pid
        time.sleep(0.2)
    process.terminate()
    raise SchedulerError(f"The scheduler did not report itself running within {timeout:.0f} s; see {log}.")


def stop_scheduler_process(config: PipelineConfig, workspace_path: str | os.PathLike,
                           timeout: float = 60.0) -> int | None:
    """Stop the scheduler running for this workspace (whoever started it); return its pid, or None if none ran.
    Waits for a job in progress to finish, up to `timeout`."""
    status = scheduler_status(config, workspace_path)
    if not status["running"]:
        return None
    pid = status["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    except PermissionError as exc:
        raise SchedulerError(f"The scheduler (pid {pid}) belongs to another user; stop it there.") from exc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not scheduler_status(config, workspace_path)["running"]:
            return pid
        time.sleep(0.2)
    raise SchedulerError(f"The scheduler (pid {pid}) is still finishing a job after {timeout:.0f} s; it stops when "
                         "the job ends, or stop it with `kill` if the job hangs.")
