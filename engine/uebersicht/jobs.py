"""Downloads in the background for the page: `start_download_job` runs `python -m engine widgets download` as its
own process (the gallery's ~400 archives take minutes over a real network) and that process reports through a
small JSON progress file in downloads/, which the page polls. The CLI writes the same file with --progress-file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudioError
from engine.files import write_atomic
from engine.processes import process_alive, spawn_detached
from engine.uebersicht import WidgetPaths

PROGRESS_NAME = ".download_progress.json"
LOG_NAME = ".download_job.log"


def progress_path(paths: WidgetPaths) -> Path:
    return paths.downloads / PROGRESS_NAME


class FileProgress:
    """A ProgressFn that keeps `{"done", "total", "pid", "finished", "summary"}` in a JSON file, at most every
    `interval` seconds (and always for the last item), so a poller sees steady progress at little cost."""

    def __init__(self, path: Path, interval: float = 0.5):
        self.path = Path(path)
        self.interval = interval
        self.last_write = 0.0
        self.state = {"pid": os.getpid(), "done": 0, "total": None, "finished": False, "summary": None,
                      "started_at": time.time()}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        self.state.update(done=done, total=total)
        now = time.monotonic()
        if now - self.last_write >= self.interval or (total is not None and done >= total):
            self._write()
            self.last_write = now

    def finish(self, summary: str) -> None:
        self.state.update(finished=True, summary=summary)
        self._write()

    def _write(self) -> None:
        write_atomic(self.path, json.dumps(self.state) + "\n")


@dataclass
class DownloadJob:
    done: int
    total: int | None
    running: bool
    finished: bool
    summary: str | None
    problem: str | None  # set when the process ended without finishing


def download_job(paths: WidgetPaths) -> DownloadJob | None:
    """The last background download's state, or None when there never was one."""
    try:
        state = json.loads(progress_path(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    finished = bool(state.get("finished"))
    running = not finished and process_alive(int(state.get("pid") or 0))
    problem = None
    if not finished and not running:
        problem = f"The download process stopped before finishing; see {paths.downloads / LOG_NAME}."
        try:
            last = [line for line in (paths.downloads / LOG_NAME).read_text(errors="replace").splitlines() if line]
        except OSError:
            last = []
        if last and last[-1].startswith("error: "):
            problem = f"The download process stopped: {last[-1].removeprefix('error: ')}"
    return DownloadJob(int(state.get("done") or 0), state.get("total"), running, finished, state.get("summary"),
                       problem)


def start_download_job(paths: WidgetPaths) -> int:
    """Start downloading every manifest widget in a separate process; returns its pid at once."""
    current = download_job(paths)
    if current is not None and current.running:
        raise StudioError("A widget download is already running; wait for it to finish.")
    if not paths.manifest.exists():
        raise StudioError(f"The widget manifest {paths.manifest} does not exist; upload it first.")
    paths.downloads.mkdir(parents=True, exist_ok=True)
    progress = progress_path(paths)
    progress.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "engine", "widgets", "download",
        "--manifest", str(paths.manifest.resolve()), "--downloads", str(paths.downloads.resolve()),
        "--progress-file", str(progress.resolve()),
    ]
    process = spawn_detached(command, log=paths.downloads / LOG_NAME, what="download")
    # Written here too, so a poll right after the start already sees a running job.
    write_atomic(progress, json.dumps({"pid": process.pid, "done": 0, "total": None, "finished": False,
                                       "summary": None, "started_at": time.time()}) + "\n")
    return process.pid
