"""Watch the inputs of incremental mining (watchdog) and say, debounced, when they changed.

What is watched, read-only: the screenpipe database's folder (only the database file and its -wal matter: screenpipe
commits land in the WAL first) and each git repository's .git (HEAD, packed-refs, refs/ and logs/: what a commit,
a pull or a branch switch changes). Everything else in those folders (our own reads opening the files, -shm,
git's *.lock files, objects/, the index) is filtered out, so reading the sources never re-triggers mining.

Screenpipe writes every few seconds while someone works, so "wait until it is quiet" alone would never fire: the
watcher fires `debounce_seconds` after the last change, or `max_wait_seconds` (default 10 x debounce) after the first
one of a burst, whichever comes first.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git
from watchdog.events import (
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

# Content changes only. Reading a WAL database opens db-wal read-write, so every read (our own extract's) ends in a
# close-write event, and the first read of an idle database creates db-wal: neither means new data, so "closed" and
# "created" are not subscribed to. git writes refs and HEAD to a *.lock file and renames it: a move.
WRITE_EVENTS = [FileModifiedEvent, FileMovedEvent]
GIT_NAMES = ("HEAD", "packed-refs")
GIT_FOLDERS = ("refs", "logs")


@dataclass(frozen=True)
class WatchTarget:
    """One folder to observe and the test that tells a relevant path in it."""

    label: str  # what a person recognises: the database file or the repository
    folder: Path
    recursive: bool
    relevant: Callable[[Path], bool]


def screenpipe_target(db_path: Path) -> WatchTarget | None:
    """The database's folder, non-recursively (screenpipe keeps its videos in a subfolder), for db and db-wal."""
    db_path = db_path.expanduser().resolve()
    if not db_path.parent.is_dir():
        return None
    names = {db_path.name, f"{db_path.name}-wal"}
    return WatchTarget(str(db_path), db_path.parent, False, lambda path: path.name in names)


def git_targets(repo_path: Path) -> list[WatchTarget]:
    """The repository's git folder(s): HEAD and packed-refs at the top, refs/ and logs/ recursively."""
    try:
        repo = git.Repo(repo_path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return []
    folders = {Path(repo.git_dir).resolve(), Path(repo.common_dir).resolve()}
    label = str(Path(repo.working_tree_dir or repo_path).resolve())
    targets = []
    for folder in sorted(folders):
        def relevant(path: Path, folder: Path = folder) -> bool:
            if path.name.endswith(".lock"):
                return False
            try:
                parts = path.relative_to(folder).parts
            except ValueError:
                return False
            return (len(parts) == 1 and parts[0] in GIT_NAMES) or (len(parts) > 1 and parts[0] in GIT_FOLDERS)

        targets.append(WatchTarget(label, folder, False, relevant))
        targets += [WatchTarget(label, folder / name, True, relevant) for name in GIT_FOLDERS
                    if (folder / name).is_dir()]
    return targets


class _Handler(FileSystemEventHandler):
    def __init__(self, target: WatchTarget, changed: Callable[[str], None]):
        self.target = target
        self.changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw and self.target.relevant(Path(os.fsdecode(raw))):
                self.changed(self.target.label)
                return


class ChangeWatcher:
    """Observe the screenpipe database and git repositories; call `on_change(labels)` once a burst of changes
    settles. `labels` are the database / repository paths that changed. Never writes to what it watches."""

    def __init__(self, screenpipe_db: Path | None, git_repos: list[Path], debounce_seconds: float,
                 on_change: Callable[[list[str]], None], max_wait_seconds: float | None = None):
        self.debounce_seconds = float(debounce_seconds)
        self.max_wait_seconds = float(max_wait_seconds if max_wait_seconds is not None else 10 * debounce_seconds)
        self.on_change = on_change
        self.targets: list[WatchTarget] = []
        self.notes: list[str] = []
        if screenpipe_db is not None:
            target = screenpipe_target(screenpipe_db)
            if target:
                self.targets.append(target)
            else:
                self.notes.append(f"not watching {screenpipe_db}: its folder does not exist")
        for repo in git_repos:
            found = git_targets(repo)
            if found:
                self.targets += found
            else:
                self.notes.append(f"not watching {repo}: it is not a git repository")
        self.events = 0  # relevant changes seen, for status and tests
        self._observer = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._first: float | None = None
        self._last = 0.0
        self._labels: set[str] = set()

    @property
    def watching(self) -> list[str]:
        """The database and repository paths observed, each once."""
        return list(dict.fromkeys(target.label for target in self.targets))

    def start(self) -> None:
        if not self.targets:
            return
        self._observer = Observer()
        for target in self.targets:
            self._observer.schedule(_Handler(target, self._changed), str(target.folder), recursive=target.recursive,
                                    event_filter=WRITE_EVENTS)
        self._observer.start()

    def stop(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._timer, self._first = None, None
            self._labels.clear()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    def _changed(self, label: str) -> None:
        with self._lock:
            now = time.monotonic()
            self.events += 1
            if self._first is None:
                self._first = now
            self._last = now
            self._labels.add(label)
            due = min(self._last + self.debounce_seconds, self._first + self.max_wait_seconds)
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(max(0.0, due - now), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._first is None:
                return
            labels = sorted(self._labels)
            self._timer, self._first = None, None
            self._labels.clear()
        self.on_change(labels)
