"""Stage 1: read every configured source into the workspace, incrementally.

`extract(config, workspace_path)` checks every source first (a bad path, a file that is not a screenpipe database,
a folder that is not a repository ...) and only then opens the workspace, so bad input never touches it. Each
batch is stored in its own transaction together with the watermark that says how far it got: an interrupted run
loses nothing and the next run continues where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from engine.clock import now_iso
from engine.config import PipelineConfig
from engine.errors import SourceError, StudioError
from engine.executor import LOCAL
from engine.knowledge import knowledge_counts, store_knowledge
from engine.progress import ProgressFn, no_progress
from engine.sources.documents import check_directories, read_documents
from engine.sources.git_log import open_repository, read_commits
from engine.sources.report import SourceReport
from engine.sources.screenpipe import ScreenpipeFilters, ScreenpipeReader, safe_sqlite_message
from engine.store import Workspace


@dataclass
class ExtractResult:
    workspace: Path
    reports: list[SourceReport]
    knowledge: dict[str, dict[str, int]]
    commits: int
    file_changes: int
    seconds: float
    screenpipe_era: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "workspace": str(self.workspace), "seconds": round(self.seconds, 3), "screenpipe_era": self.screenpipe_era,
            "sources": [report.to_dict() for report in self.reports], "knowledge": self.knowledge,
            "commits": self.commits, "file_changes": self.file_changes, "notes": self.notes,
        }


def _filters(config: PipelineConfig) -> ScreenpipeFilters:
    return ScreenpipeFilters(
        min_length=config.min_knowledge_length,
        apps_include=config.get("screenpipe.apps_include"), apps_exclude=config.get("screenpipe.apps_exclude"),
        windows_include=config.get("screenpipe.windows_include"),
        windows_exclude=config.get("screenpipe.windows_exclude"),
        since=config.since, until=config.until,
    )


def _first_of_each(sources: list[tuple[str | None, Path]]) -> list[tuple[str | None, Path]]:
    """Each source once, for the first member that lists it (a team's shared repository is read once)."""
    seen: set[Path] = set()
    kept = []
    for member, path in sources:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            kept.append((member, path))
    return kept


def check_sources(config: PipelineConfig) -> list[tuple[str | None, ScreenpipeReader]]:
    """Open every source read-only and raise SourceError for the first one that cannot be used; returns the
    screenpipe readers with the team member each database belongs to (None: the config's own)."""
    readers = []
    for member, path in _first_of_each(config.screenpipe_sources):
        with _named_for(member, "screenpipe_db"):
            readers.append((member, ScreenpipeReader(path)))
    for member, repo in config.git_sources:
        with _named_for(member, "git_repo"):
            open_repository(repo)
    check_directories(config.doc_directories)
    return readers


@contextmanager
def _named_for(member: str | None, key: str):
    """A team member's unusable source is named by the member's key, not by `paths.<key>`."""
    try:
        yield
    except SourceError as exc:
        if member is None:
            raise
        raise SourceError(str(exc).replace(f"`paths.{key}`", f"`team.members` {member}'s {key}", 1)) from None


@dataclass
class SourceReading:
    """What one reading task gives back: its report and its items (screenpipe: (records, watermark) batches; git:
    commits). Read locally the items are a generator that fills the report as it is consumed; read by a Ray
    worker they are `drained()` into a list there, report complete."""

    report: SourceReport
    items: Iterable

    def drained(self) -> SourceReading:
        items = list(self.items)
        return SourceReading(self.report, items)


def _tagged(batches, member: str | None):
    """A member's records carry who they came from in their source id: `maya/ocr:12`."""
    for records, watermark in batches:
        if member:
            records = [replace(record, source_id=f"{member}/{record.source_id}") for record in records]
        yield records, watermark


def read_screenpipe_table(path: Path, table: str, start: int, filters: ScreenpipeFilters, member: str | None,
                          label: str) -> SourceReading:
    """The rows of one screenpipe table after the `start` watermark (a pure step: a Ray worker runs the same)."""
    reader = ScreenpipeReader(path)
    report = SourceReport(label)
    if table == "frames":
        batches = reader.read_frames(start, filters, report)
    elif table == "audio_transcriptions":
        batches = reader.read_audio(start, filters, report)
    else:
        batches = reader.read_legacy_ui(table, start, filters, report)
    return SourceReading(report, _tagged(batches, member))


def read_git_history(repo: Path, code_extensions: list[str], min_code_lines: int, max_commits: int,
                     after_sha: str | None, label: str) -> SourceReading:
    """The kept commits of one repository after `after_sha` (a pure step: a Ray worker runs the same)."""
    report = SourceReport(label)
    return SourceReading(report, read_commits(repo, code_extensions, min_code_lines, max_commits, after_sha, report))


def _watermark(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM watermarks WHERE source = ?", (key,)).fetchone()
    return row[0] if row else None


def _set_watermark(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO watermarks(source, value) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET value = excluded.value,"
        " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        (key, value),
    )


def _store_batches(workspace: Workspace, conn, batches, key: str, start: int, top: int, stage: str,
                   report: SourceReport, progress: ProgressFn) -> None:
    for records, watermark in batches:
        with workspace.transaction(conn):
            store_knowledge(conn, records, report)
            _set_watermark(conn, key, str(watermark))
        progress(stage, max(0, watermark - start), max(0, top - start))


def extract(
    config: PipelineConfig, workspace_path: Path, progress: ProgressFn = no_progress, executor=LOCAL,
) -> ExtractResult:
    """Read all sources into the workspace; return per-source reports and the workspace totals. `executor`
    (engine.executor) reads the screenpipe tables and repositories; the driver stores what they give, in order."""
    started = time.perf_counter()
    readers = check_sources(config)
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    now = now_iso("seconds")
    run_id = conn.execute(
        "INSERT INTO extract_runs(started_at, status) VALUES (?, 'running')", (now,)
    ).lastrowid
    reports: list[SourceReport] = []
    reading_path = readers[0][1].path if readers else None
    try:
        filters = _filters(config)
        tables = []  # (key, start, top) per task, in the order their results are stored
        screenpipe_tasks = []
        for member, reader in readers:
            db_key = f"screenpipe:{reader.path.resolve()}"
            prefix = f"{member}: " if member else ""
            sources = [("frames", f"{prefix}screenpipe frames", "frames")]
            if config.get("screenpipe.read_audio"):
                sources.append(("audio", f"{prefix}screenpipe audio", "audio_transcriptions"))
            if config.get("screenpipe.read_legacy_ui"):
                sources += [(table, f"{prefix}screenpipe {table} (legacy)", table)
                            for table in ("ui_monitoring", "accessibility") if table in reader.tables]
            for suffix, label, table in sources:
                key = f"{db_key}:{suffix}"
                start = int(_watermark(conn, key) or 0)
                tables.append((key, start, reader.max_key(table)))
                screenpipe_tasks.append((reader.path, table, start, filters, member, label))
        began = time.perf_counter()
        readings = executor.stream_tasks(read_screenpipe_table, screenpipe_tasks)
        for (key, start, top), task, reading in zip(tables, screenpipe_tasks, readings, strict=True):
            reading_path = task[0]
            report = reading.report
            _store_batches(workspace, conn, reading.items, key, start, top, report.source, report, progress)
            report.seconds = time.perf_counter() - began
            began = time.perf_counter()
            reports.append(report)

        git_tasks, keys = [], []
        for member, repo in _first_of_each(config.git_sources):
            # "git@author-date:": commits are dated by author date since this reader version; a workspace read by
            # an older one reads its history once more and gets its commits' dates corrected below.
            key = f"git@author-date:{repo.resolve()}"
            keys.append((key, open_repository(repo).head.commit.hexsha))
            label = f"git {repo.name}" if member is None else f"{member}: git {repo.name}"
            git_tasks.append((repo, config.code_extensions, config.min_code_lines, config.max_commits,
                              _watermark(conn, key), label))
        began = time.perf_counter()
        for (key, head), reading in zip(keys, executor.stream_tasks(read_git_history, git_tasks), strict=True):
            report = reading.report
            commits = []
            for commit in reading.items:
                commits.append(commit)
                progress(report.source, len(commits), None)
            with workspace.transaction(conn):
                for commit in commits:
                    inserted = conn.execute(
                        "INSERT OR IGNORE INTO commits(sha, repo, message, author, timestamp, files_total)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (commit.sha, commit.repo, commit.message, commit.author, commit.timestamp, len(commit.files)),
                    ).rowcount
                    if not inserted:
                        report.duplicates += 1
                        conn.execute("UPDATE commits SET timestamp = ? WHERE sha = ? AND timestamp != ?",
                                     (commit.timestamp, commit.sha, commit.timestamp))
                        continue
                    report.new_items += 1
                    conn.executemany(
                        "INSERT OR IGNORE INTO file_changes(commit_sha, path, old_path, change_type, added_lines,"
                        " removed_lines, added_code, diff) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(commit.sha, f.path, f.old_path, f.change_type, f.added_lines, f.removed_lines,
                          f.added_code, f.diff) for f in commit.files],
                    )
                _set_watermark(conn, key, head)
            report.seconds = time.perf_counter() - began
            began = time.perf_counter()
            reports.append(report)

        report = SourceReport("documents")
        began = time.perf_counter()
        documents = list(read_documents(config.doc_directories, config.doc_extensions,
                                        config.min_knowledge_length, report))
        with workspace.transaction(conn):
            store_knowledge(conn, documents, report)
        report.seconds = time.perf_counter() - began
        reports.append(report)

        result = ExtractResult(
            workspace=workspace.root, reports=reports, knowledge=knowledge_counts(conn),
            commits=conn.execute("SELECT COUNT(*) FROM commits").fetchone()[0],
            file_changes=conn.execute("SELECT COUNT(*) FROM file_changes").fetchone()[0],
            seconds=time.perf_counter() - started,
            screenpipe_era=", ".join(dict.fromkeys(reader.era for _, reader in readers)),
            notes=[note for report in reports for note in report.notes],
        )
        conn.execute(
            "UPDATE extract_runs SET finished_at = ?, status = 'ok', report_json = ? WHERE id = ?",
            (now_iso("seconds"), json.dumps(result.to_dict()), run_id),
        )
        return result
    except BaseException as exc:
        # The run's record keeps a domain sentence as-is, anything else without what it quotes (an SQLite error
        # can quote row content).
        error = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {safe_sqlite_message(exc)}"
        conn.execute(
            "UPDATE extract_runs SET finished_at = ?, status = 'failed', report_json = ? WHERE id = ?",
            (now_iso("seconds"),
             json.dumps({"error": error, "sources": [r.to_dict() for r in reports]}), run_id),
        )
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            raise SourceError(f"Reading {reading_path} failed: {safe_sqlite_message(exc)}.") from None
        raise
    finally:
        conn.close()


def last_extract(workspace_path: Path) -> dict | None:
    """The report of the newest finished extract run in a workspace, or None if there is none yet."""
    if not (workspace_path / "studio.db").exists():
        return None
    row = Workspace.open(workspace_path).row(
        "SELECT started_at, status, report_json FROM extract_runs WHERE status != 'running' ORDER BY id DESC LIMIT 1")
    if not row:
        return None
    report = json.loads(row["report_json"] or "{}")
    report.update(started_at=row["started_at"], status=row["status"])
    return report


@dataclass
class SourceStatus:
    """One source as the Sources page shows it: usable or not, and what it holds."""

    kind: str  # screenpipe | git | documents
    location: str
    ok: bool
    message: str
    details: dict = field(default_factory=dict)


def _readable_time(iso: str | None) -> str | None:
    """'2026-03-02T09:06:27.673000+00:00' -> '2026-03-02 09:06 UTC' for people."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def inspect_sources(config: PipelineConfig) -> list[SourceStatus]:
    """Check each configured source without reading it all: exists, readable, schema era, counts, date range."""
    statuses = []
    for member, db_path in config.screenpipe_sources:  # a team member's sources are shown as "maya: <path>"
        where = f"{member}: " if member else ""
        try:
            info = ScreenpipeReader(db_path).info()
            statuses.append(SourceStatus(
                "screenpipe", f"{where}{info.path}", True, f"schema era {info.era}",
                {"frames": info.frames, "audio transcriptions": info.audio,
                 **{f"{table} (legacy)": count for table, count in info.legacy_ui.items()},
                 "first capture": _readable_time(info.first_timestamp),
                 "last capture": _readable_time(info.last_timestamp),
                 "top apps": ", ".join(f"{app} ({count})" for app, count in info.top_apps),
                 "notes": "; ".join(info.notes)},
            ))
        except SourceError as exc:
            statuses.append(SourceStatus("screenpipe", f"{where}{db_path}", False, str(exc)))
    for member, repo_path in config.git_sources:
        where = f"{member}: " if member else ""
        try:
            repo = open_repository(repo_path)
            count = int(repo.git.rev_list("--count", "--no-merges", "HEAD"))
            newest = repo.head.commit
            oldest_sha = repo.git.rev_list("--max-parents=0", "HEAD").splitlines()[0]
            oldest = repo.commit(oldest_sha)
            branch = "detached HEAD" if repo.head.is_detached else repo.active_branch.name
            statuses.append(SourceStatus(
                "git", f"{where}{repo_path}", True, f"branch {branch}",
                {"non-merge commits": count, "first commit": _readable_time(oldest.committed_datetime.isoformat()),
                 "last commit": _readable_time(newest.committed_datetime.isoformat()), "head": newest.hexsha[:12]},
            ))
        except SourceError as exc:
            statuses.append(SourceStatus("git", f"{where}{repo_path}", False, str(exc)))
    for directory in config.doc_directories:
        if not directory.is_dir():
            statuses.append(SourceStatus("documents", str(directory), False,
                                         f"{directory} does not exist or is not a folder."))
            continue
        wanted = set(config.doc_extensions)
        files = [path for path in directory.rglob("*") if path.is_file() and path.suffix.lower() in wanted
                 and ".git" not in path.parts]
        statuses.append(SourceStatus(
            "documents", str(directory), True, f"{len(files)} files with {', '.join(sorted(wanted))}",
            {"files": len(files), "bytes": sum(path.stat().st_size for path in files)},
        ))
    if config.conversation_logs:  # read by `collect`, not by extract; checked here so every page shows it
        from engine.sources.conversations import conversation_files

        where = ", ".join(str(path) for path in config.conversation_logs)
        try:
            files = conversation_files(config.conversation_logs)
            statuses.append(SourceStatus("conversations", where, True,
                                         f"{len(files)} JSONL file{'' if len(files) == 1 else 's'}",
                                         {"files": len(files), "bytes": sum(path.stat().st_size for path in files)}))
        except StudioError as exc:
            statuses.append(SourceStatus("conversations", where, False, str(exc)))
    return statuses
