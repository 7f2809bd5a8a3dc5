"""Processes that outlive the page or command that starts them, in one place: starting one detached, telling
whether it still runs, ending its process group, the environment it needs, and the workspace tasks built on them.

`spawn_detached(argv, log=...)` runs a process in its own session (closing the browser tab, restarting the page or
the Streamlit server never stops it), with its output in a log file, and reaps it when it ends so it never lingers
as a zombie that looks alive. `process_alive(pid, started)` answers for our own children and for any pid, and never
mistakes a reused pid (another start time) for the process. `terminate_process_group` ends a worker and whatever it
started. `engine_environment` makes the engine importable from the child; `preload_openblas` adds OpenBLAS on Linux
(mlx binds its BLAS when it loads, so only a new process can switch; 20-30x faster training on CPU).

Workspace tasks: `start_task(workspace, kind, argv)` runs `python -m engine <argv>` detached and returns at once.
The process reports through one status file, `<workspace>/tasks/<kind>.json`: state (running, done, failed), phase,
done of total, elapsed time, an estimate of what is left, and at the end its result or a one-sentence error. One
task of a kind runs at a time per workspace: a second start while one runs raises TaskBusy (pages disable their
button instead). A process that died without a word (killed, out of memory) is reported as failed, never as running
forever. Inside the task, `current_task()` gives the reporter the verb writes its progress and result to
(engine/__main__.py records a failure for any verb that stops with an error).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import StudioError
from engine.files import write_atomic

ROOT = Path(__file__).resolve().parents[1]  # the repository: what a child needs on its path to import the engine
OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
)
STATUS_ENV = "STUDIO_TASK_STATUS"
WRITE_EVERY = 0.5  # seconds between progress writes (the first and last of each phase are always written)


_children: dict[int, subprocess.Popen] = {}


def engine_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) in which `python -m engine...` imports this engine."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def openblas_library() -> str | None:
    """The OpenBLAS library to preload into mlx on Linux, or None (macOS uses Metal/Accelerate). STUDIO_OPENBLAS
    names another one, or (empty) none."""
    if not sys.platform.startswith("linux"):
        return None
    override = os.environ.get("STUDIO_OPENBLAS")
    if override is not None:
        return override if override and Path(override).exists() else None
    return next((path for path in OPENBLAS_CANDIDATES if Path(path).exists()), None)


def preload_openblas(env: dict[str, str]) -> str | None:
    """Put OpenBLAS first in `env`'s LD_PRELOAD when it is installed (and not there yet); return the library, or
    None when there is none to preload."""
    library = openblas_library()
    if library and library not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = os.pathsep.join(filter(None, [library, env.get("LD_PRELOAD")]))
    return library


def spawn_detached(argv: list[str], *, log: str | os.PathLike, env: dict[str, str] | None = None,
                   cwd: str | os.PathLike | None = None, what: str = "background") -> subprocess.Popen:
    """Start `argv` in a session of its own with its output appended to `log` (default environment: this one with
    the engine importable; default folder: the repository). A process that cannot start is one sentence naming
    `what` it was."""
    with open(log, "ab") as out:
        try:
            process = subprocess.Popen(argv, cwd=cwd or ROOT, env=engine_environment() if env is None else env,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        except OSError as exc:
            raise StudioError(f"The {what} process could not start: {exc.strerror}.") from exc
    _children[process.pid] = process
    # Reap it when it ends, so a finished process never lingers as a zombie that looks alive.
    threading.Thread(target=process.wait, name=f"reap-{what}-{process.pid}", daemon=True).start()
    return process


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
    except Exception:  # NoSuchProcess, AccessDenied: not a process we can see running
        return False


def process_start_time(pid: int) -> float | None:
    """When the process started (what tells it from a later process given the same pid), or None if it is gone."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def terminate_process_group(pid: int, started: float | None, grace_seconds: float = 5.0) -> None:
    """SIGTERM the process group `pid` leads, then SIGKILL whatever is left after the grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not process_alive(pid, started):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while process_alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.1)


# Workspace tasks: a detached engine verb and its status file.


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
        env = {**engine_environment(env), STATUS_ENV: str(path.resolve())}
        started = time.time()
        status = TaskStatus(kind, "running", None, started, started, phase_started=started, args=list(argv))
        _write(path, status)
        try:
            process = spawn_detached([sys.executable, "-m", module, *argv], log=log or path.with_suffix(".log"),
                                     env=env, cwd=cwd, what=kind)
        except StudioError as exc:
            status.state, status.error = "failed", str(exc)
            _write(path, status)
            raise
        latest = _read(path) or status
        if latest.pid is None:  # the child has not written yet: record who it is
            latest.pid = process.pid
            latest.pid_started = process_start_time(process.pid)
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


class TaskReporter:
    """What a verb running as a task writes: phases and counts (a ProgressFn), then its result or error."""

    def __init__(self, path: Path):
        self.path = path
        previous = _read(path)
        now = time.time()
        self.status = previous if previous is not None else TaskStatus(path.stem, "running", None, now, now,
                                                                       phase_started=now)
        self.status.state, self.status.pid = "running", os.getpid()
        self.status.pid_started = process_start_time(os.getpid())
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
