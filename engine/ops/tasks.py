"""Long work a page starts runs as a process of its own, and the page only polls its status.

`start_task(workspace, kind, argv)` runs `python -m engine <argv>` detached from the page (its own session, so
closing the browser tab or restarting the page does not stop it) and returns at once. The process reports through
one status file, `<workspace>/tasks/<kind>.json`: state (running, done, failed), phase, done of total, elapsed time,
an estimate of what is left, and at the end its result or a one-sentence error. One task of a kind runs at a time
per workspace: a second start while one runs raises TaskBusy (pages disable their button instead). A process that
died without a word (killed, out of memory) is reported as failed, never as running forever: liveness is checked by
pid and process start time, so a reused pid is not mistaken for it. Finished children of this process are reaped.

Inside the task, `current_task()` gives the reporter the verb writes its progress and result to (engine/__main__.py
records a failure for any verb that stops with an error).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import StudioError
from engine.files import write_atomic

ROOT = Path(__file__).resolve().parents[2]
STATUS_ENV = "STUDIO_TASK_STATUS"
WRITE_EVERY = 0.5  # seconds between progress writes (the first and last of each phase are always written)


class TaskBusy(StudioError):
    """A task of this kind already runs for this workspace."""


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


@dataclass
class TaskStatus:
    kind: str
    state: str  # running | done | failed
    pid: int | None
    started: float
    updated: float
    phase: str = "starting"
    done: int = 0
    total: int | None = None
    phase_started: float = 0.0
    result: dict | None = None
    error: str | None = None
    args: list[str] = field(default_factory=list)
    pid_started: float | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def elapsed(self) -> float:
        return (time.time() if self.running else self.updated) - self.started

    @property
    def eta_seconds(self) -> float | None:
        """What is left of the current phase at its pace so far (None until there is a pace to go by)."""
        if not self.running or not self.total or not self.done or self.done >= self.total:
            return None
        spent = time.time() - self.phase_started
        return spent / self.done * (self.total - self.done)

    def describe(self) -> str:
        """One line for a page or a terminal: phase, counts, elapsed time, estimate."""
        counts = f" {self.done:,} of {self.total:,}" if self.total else (f" {self.done:,}" if self.done else "")
        line = f"{self.phase}{counts} · {self.elapsed:.0f} s"
        eta = self.eta_seconds
        if eta is not None:
            line += f" · about {eta:.0f} s left"
        return line

    def to_dict(self) -> dict:
        return asdict(self)


def status_path(workspace_root: str | os.PathLike, kind: str) -> Path:
    return Path(workspace_root) / "tasks" / f"{kind}.json"


def _read(path: Path) -> TaskStatus | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TaskStatus(**{key: data[key] for key in TaskStatus.__dataclass_fields__ if key in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write(path: Path, status: TaskStatus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(status.to_dict()) + "\n")


_children: dict[int, subprocess.Popen] = {}


def process_alive(pid: int | None, pid_started: float | None = None) -> bool:
    """Is this process still running? Reaps it when it is a finished child of this process, and never mistakes a
    reused pid (another start time) for it."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        import psutil

        process = psutil.Process(pid)
        if pid_started is not None and abs(process.create_time() - pid_started) > 1.0:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except Exception:  # NoSuchProcess, AccessDenied: not a task we can see running
        return False


def _alive(status: TaskStatus) -> bool:
    return process_alive(status.pid, status.pid_started)


def task_status(workspace_root: str | os.PathLike, kind: str) -> TaskStatus | None:
    """The latest task of this kind for the workspace, or None; a 'running' task whose process is gone is
    reported (and recorded) as failed."""
    path = status_path(workspace_root, kind)
    status = _read(path)
    if status is not None and status.running and not _alive(status):
        latest = _read(path)  # it may have finished between the two reads
        if latest is not None and latest.running:
            latest.state, latest.updated = "failed", time.time()
            latest.error = latest.error or "The process stopped without finishing (killed or crashed); start it again."
            with contextlib.suppress(OSError):
                _write(path, latest)
        status = latest
    return status


@contextlib.contextmanager
def _start_lock(workspace_root: Path, kind: str):
    lock = workspace_root / "tasks" / f"{kind}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_task(workspace_root: str | os.PathLike, kind: str, argv: list[str], *, module: str = "engine",
               env: dict[str, str] | None = None, log: str | os.PathLike | None = None,
               cwd: str | os.PathLike | None = None) -> TaskStatus:
    """Start `python -m <module> <argv>` (by default an engine verb) as a task of `kind`; TaskBusy if one of that
    kind runs already. `env` replaces the inherited environment (the status file and the engine's path are added);
    `log` is where its output goes (default tasks/<kind>.log), `cwd` its folder (default the repository)."""
    workspace_root = Path(workspace_root)
    path = status_path(workspace_root, kind)
    with _start_lock(workspace_root, kind):
        current = task_status(workspace_root, kind)
        if current is not None and current.running:
            raise TaskBusy(f"A {kind} task already runs for this workspace (started {_iso(current.started)}, "
                           f"{current.describe()}); wait for it to finish.")
        base = dict(os.environ if env is None else env)
        env = {**base, STATUS_ENV: str(path.resolve()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))}
        started = time.time()
        status = TaskStatus(kind, "running", None, started, started, phase_started=started, args=list(argv))
        _write(path, status)
        with open(Path(log) if log else path.with_suffix(".log"), "ab") as out:
            try:
                process = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=cwd or ROOT, env=env,
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            except OSError as exc:
                status.state, status.error = "failed", f"The {kind} process could not start: {exc.strerror}."
                _write(path, status)
                raise StudioError(status.error) from exc
        _children[process.pid] = process
        # Reap it when it ends, so a finished task never lingers as a zombie.
        threading.Thread(target=process.wait, name=f"reap-{kind}-{process.pid}", daemon=True).start()
        latest = _read(path) or status
        if latest.pid is None:  # the child has not written yet: record who it is
            latest.pid = process.pid
            latest.pid_started = _process_start(process.pid)
            _write(path, latest)
        return latest


def end_task(workspace_root: str | os.PathLike, kind: str, pid: int | None, error: str) -> None:
    """Record that the running task of `kind` (the process `pid`) was ended from outside, e.g. stopped by the
    user, so its status says why instead of "stopped without finishing"."""
    path = status_path(workspace_root, kind)
    with _start_lock(Path(workspace_root), kind):
        status = _read(path)
        if status is not None and status.running and (pid is None or status.pid == pid):
            status.state, status.error, status.updated = "failed", error, time.time()
            _write(path, status)


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


class TaskReporter:
    """What a verb running as a task writes: phases and counts (a ProgressFn), then its result or error."""

    def __init__(self, path: Path):
        self.path = path
        previous = _read(path)
        now = time.time()
        self.status = previous if previous is not None else TaskStatus(path.stem, "running", None, now, now,
                                                                       phase_started=now)
        self.status.state, self.status.pid = "running", os.getpid()
        self.status.pid_started = _process_start(os.getpid())
        self._last_write = 0.0
        self._save()

    def _save(self) -> None:
        self.status.updated = time.time()
        self._last_write = self.status.updated
        with contextlib.suppress(OSError):
            _write(self.path, self.status)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        status = self.status
        new_phase = stage != status.phase
        if new_phase:
            status.phase, status.phase_started = stage, time.time()
        status.done, status.total = done, total
        finished = total is not None and done >= total
        if new_phase or finished or time.time() - self._last_write >= WRITE_EVERY:
            self._save()

    def finish(self, result: dict | None) -> None:
        self.status.state, self.status.result, self.status.phase = "done", result, "done"
        self._save()

    def fail(self, error: str) -> None:
        self.status.state, self.status.error = "failed", error
        self._save()


_reporter: TaskReporter | None = None


def current_task() -> TaskReporter | None:
    """The reporter of the task this process runs as, or None when it was started any other way."""
    global _reporter
    path = os.environ.get(STATUS_ENV)
    if not path:
        return None
    if _reporter is None or str(_reporter.path) != path:
        _reporter = TaskReporter(Path(path))
    return _reporter
