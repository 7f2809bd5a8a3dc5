"""Read screenpipe's database strictly read-only: frame text (every schema era), audio transcripts, and the
legacy ui_monitoring / accessibility text where those tables still exist.

The database is opened through a `file:...?mode=ro` URI in short read transactions, one per batch, so screenpipe
keeps writing (WAL) while we read and we never hold a write lock. Reading is incremental: a run reads rows with
ids above the watermarks it is given and returns new watermarks.
"""

from __future__ import annotations

import contextlib
import fnmatch
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from engine.errors import SourceError
from engine.records import Knowledge, iso_utc
from engine.sources.report import SourceReport

BATCH_ROWS = 5000
# A frame whose text has not arrived yet (screenpipe writes the frame, then its OCR) is re-read next time
# if it is this close to the newest frame.
PENDING_WINDOW = timedelta(minutes=2)


def parse_screenpipe_timestamp(value: object) -> datetime | None:
    """Every shape screenpipe writes: RFC 3339 with 0/3/6/9 fraction digits and +00:00 or Z, and
    'YYYY-MM-DD HH:MM:SS' (column defaults, UTC). Returns an aware UTC datetime, or None if unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def locate_database(path: Path) -> Path:
    """The configured path, or the other place screenpipe keeps its database (~/.screenpipe[/data]/db.sqlite)."""
    if path.exists():
        return path
    alternatives = [path.parent / "data" / path.name]
    if path.parent.name == "data":
        alternatives.append(path.parent.parent / path.name)
    for alternative in alternatives:
        if alternative.is_file():
            return alternative
    return path


@dataclass
class ScreenpipeFilters:
    min_length: int = 100
    apps_include: list[str] = field(default_factory=list)
    apps_exclude: list[str] = field(default_factory=list)
    windows_include: list[str] = field(default_factory=list)
    windows_exclude: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    def reject_reason(self, record: Knowledge, moment: datetime | None) -> str | None:
        """None to keep the record, else why it is skipped."""
        if moment is None:
            return "unreadable timestamp"
        if (self.since and moment < self.since) or (self.until and moment > self.until):
            return "outside the time range"
        if len(record.text.strip()) < self.min_length:
            return f"shorter than min_knowledge_length ({self.min_length})"
        if record.knowledge_type == "audio":
            return None
        app, window = record.app_name or "", record.window_name or ""
        if self.apps_include and not _matches(app, self.apps_include):
            return "app not in apps_include"
        if self.apps_exclude and _matches(app, self.apps_exclude):
            return "app in apps_exclude"
        if self.windows_include and not _matches(window, self.windows_include):
            return "window not in windows_include"
        if self.windows_exclude and _matches(window, self.windows_exclude):
            return "window in windows_exclude"
        return None


def _matches(value: str, patterns: list[str]) -> bool:
    """Case-insensitive: a plain name matches exactly, a pattern with * or ? as a glob."""
    value = value.casefold()
    return any(fnmatch.fnmatchcase(value, pattern.casefold()) for pattern in patterns)


@dataclass
class ScreenpipeInfo:
    """What a check of the database found (for the Sources page and `extract`)."""

    path: Path
    era: str
    tables: list[str]
    frames: int
    audio: int
    legacy_ui: dict[str, int]
    first_timestamp: str | None
    last_timestamp: str | None
    top_apps: list[tuple[str, int]]
    notes: list[str]


class ScreenpipeReader:
    """A read-only view of one screenpipe database. Construction checks that it really is one."""

    def __init__(self, path: str | Path):
        configured = Path(path).expanduser()
        self.path = locate_database(configured)
        if not self.path.exists():
            raise SourceError(
                f"`paths.screenpipe_db`: no screenpipe database at {configured}; point it at your screenpipe "
                "db.sqlite (usually ~/.screenpipe/db.sqlite)."
            )
        if self.path.is_dir():
            raise SourceError(f"`paths.screenpipe_db`: {self.path} is a folder; point it at the db.sqlite file inside.")
        with contextlib.closing(self.connect()) as conn:
            try:
                rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
            except sqlite3.DatabaseError as exc:
                raise SourceError(
                    f"`paths.screenpipe_db`: {self.path} is not an SQLite database ({exc}); point it at screenpipe's "
                    "db.sqlite."
                ) from None
            self.tables = {row[0] for row in rows}
            if "frames" not in self.tables and "audio_transcriptions" not in self.tables:
                raise SourceError(
                    f"`paths.screenpipe_db`: {self.path} is an SQLite database but has no screenpipe tables "
                    "(frames, audio_transcriptions); point it at screenpipe's db.sqlite."
                )
            self.columns = {
                table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for table in ("frames", "ocr_text", "audio_transcriptions", "ui_monitoring", "accessibility")
                if table in self.tables
            }

    def connect(self) -> sqlite3.Connection:
        """A read-only connection (URI mode=ro): it cannot write, whatever code runs on it."""
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise SourceError(f"`paths.screenpipe_db`: {self.path} cannot be opened read-only ({exc}).") from None
        return conn

    @property
    def era(self) -> str:
        frames = self.columns.get("frames", set())
        if "full_text" in frames:
            return "2026-03 (frames.full_text)"
        if "app_name" in frames:
            return "2025-02 (frames.app_name)"
        if "frames" in self.tables:
            return "2024 (ocr_text.app_name)"
        return "audio only"

    # -- checks ---------------------------------------------------------------------------------------------
    def info(self) -> ScreenpipeInfo:
        notes = []
        for storage in (self.path.parent / "storage.json", self.path.parent.parent / "storage.json"):
            if storage.exists():
                notes.append(f"compressed storage mode is on ({storage}); text in the database is read as usual")
                break
        with contextlib.closing(self.connect()) as conn:
            frames = conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] if "frames" in self.tables else 0
            audio = (
                conn.execute("SELECT COUNT(*) FROM audio_transcriptions").fetchone()[0]
                if "audio_transcriptions" in self.tables else 0
            )
            legacy = {
                table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("ui_monitoring", "accessibility") if table in self.tables
            }
            stamps = []
            if frames:
                stamps += [row[0] for row in conn.execute(
                    "SELECT timestamp FROM frames"
                    " WHERE id IN ((SELECT MIN(id) FROM frames), (SELECT MAX(id) FROM frames))"
                )]
            if audio:
                stamps += [row[0] for row in conn.execute(
                    "SELECT timestamp FROM audio_transcriptions WHERE id IN"
                    " ((SELECT MIN(id) FROM audio_transcriptions), (SELECT MAX(id) FROM audio_transcriptions))"
                )]
            top_apps = []
            if frames:
                app_expr, _ = self._app_window_exprs()
                top_apps = [
                    (row[0] or "(unknown)", row[1])
                    for row in conn.execute(
                        f"SELECT {app_expr} AS app, COUNT(*) FROM frames f LEFT JOIN ocr_text o ON o.frame_id = f.id"
                        " GROUP BY app ORDER BY COUNT(*) DESC LIMIT 8"
                    )
                ] if "ocr_text" in self.tables or "app_name" in self.columns["frames"] else []
        moments = sorted(m for m in (parse_screenpipe_timestamp(s) for s in stamps) if m)
        return ScreenpipeInfo(
            path=self.path, era=self.era, tables=sorted(self.tables), frames=frames, audio=audio, legacy_ui=legacy,
            first_timestamp=iso_utc(moments[0]) if moments else None,
            last_timestamp=iso_utc(moments[-1]) if moments else None, top_apps=top_apps, notes=notes,
        )

    # -- frames ---------------------------------------------------------------------------------------------
    def _app_window_exprs(self) -> tuple[str, str]:
        frames = self.columns.get("frames", set())
        ocr = self.columns.get("ocr_text", set())

        def pick(frame_column: str, ocr_column: str) -> str:
            parts = []
            if frame_column in frames:
                parts.append(f"NULLIF(f.{frame_column}, '')")
            if ocr_column in ocr:
                parts.append(f"NULLIF(o.{ocr_column}, '')")
            if not parts:
                return "NULL"
            return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"

        return pick("app_name", "app_name"), pick("window_name", "window_name")

    def _frame_query(self) -> str:
        frames = self.columns["frames"]
        has_ocr = "ocr_text" in self.tables
        text_parts = []
        if "full_text" in frames:
            text_parts.append("NULLIF(f.full_text, '')")
        if has_ocr:
            text_parts.append("NULLIF(o.text, '')")
        if "accessibility_text" in frames:
            text_parts.append("NULLIF(f.accessibility_text, '')")
        if len(text_parts) > 1:
            text = f"COALESCE({', '.join(text_parts)})"
        else:
            text = text_parts[0] if text_parts else "NULL"
        app, window = self._app_window_exprs()
        url = "f.browser_url" if "browser_url" in frames else "NULL"
        join = "LEFT JOIN ocr_text o ON o.frame_id = f.id" if has_ocr else ""
        # Bound the batch by frames, not joined rows, so a frame with several ocr_text rows is never split.
        return (
            f"SELECT f.id, f.timestamp, {text}, {app}, {window}, {url} "
            "FROM (SELECT * FROM frames WHERE id > ? AND id <= ? ORDER BY id LIMIT ?) f "
            f"{join} ORDER BY f.id"
        )

    def read_frames(
        self, after_id: int, filters: ScreenpipeFilters, report: SourceReport
    ) -> Iterator[tuple[list[Knowledge], int]]:
        """Yield (kept records, new watermark) per batch of frames with id > after_id.

        The watermark never passes a recent frame whose text has not been written yet, so that frame is read
        again next time instead of being lost."""
        if "frames" not in self.tables:
            return
        query = self._frame_query()
        with contextlib.closing(self.connect()) as conn:
            top = conn.execute("SELECT MAX(id) FROM frames").fetchone()[0] or 0
            newest = conn.execute("SELECT timestamp FROM frames WHERE id = ?", (top,)).fetchone()
            newest_moment = parse_screenpipe_timestamp(newest[0]) if newest else None
            cursor_id, pending_from = after_id, None
            while cursor_id < top:
                rows = conn.execute(query, (cursor_id, top, BATCH_ROWS)).fetchall()
                if not rows:
                    break
                kept: list[Knowledge] = []
                by_frame: dict[int, list] = {}
                for row in rows:
                    seen = by_frame.get(row[0])
                    if seen is None:
                        by_frame[row[0]] = list(row)
                    elif row[2] and row[2] not in (seen[2] or ""):
                        seen[2] = f"{seen[2]}\n{row[2]}" if seen[2] else row[2]
                for frame_id, stamp, text, app, window, url in by_frame.values():
                    report.rows_read += 1
                    moment = parse_screenpipe_timestamp(stamp)
                    if not text or not text.strip():
                        recent = moment and newest_moment and newest_moment - moment < PENDING_WINDOW
                        if pending_from is None and recent:
                            pending_from = frame_id
                        report.skip("no text", f"ocr:{frame_id}")
                        continue
                    record = Knowledge(
                        source_id=f"ocr:{frame_id}", knowledge_type="ocr", text=text,
                        timestamp=iso_utc(moment) if moment else None, app_name=app, window_name=window,
                        browser_url=url,
                    )
                    reason = filters.reject_reason(record, moment)
                    if reason:
                        report.skip(reason, record.source_id)
                        continue
                    report.kept += 1
                    kept.append(record)
                cursor_id = rows[-1][0]
                watermark = cursor_id if pending_from is None else min(cursor_id, pending_from - 1)
                yield kept, watermark
        if pending_from is not None:
            report.notes.append(
                f"frames from ocr:{pending_from} on have no text yet (screenpipe is still writing); they are read "
                "again next time"
            )

    # -- audio and legacy UI text -----------------------------------------------------------------------------
    def read_audio(
        self, after_id: int, filters: ScreenpipeFilters, report: SourceReport
    ) -> Iterator[tuple[list[Knowledge], int]]:
        """Yield (kept transcripts, new watermark) per batch of audio_transcriptions with id > after_id."""
        if "audio_transcriptions" not in self.tables:
            return
        yield from self._read_simple(
            "SELECT id, timestamp, transcription, NULL, device, NULL FROM audio_transcriptions "
            "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            "audio_transcriptions", "audio", "audio:{}", after_id, filters, report,
        )

    def read_legacy_ui(
        self, table: str, after_id: int, filters: ScreenpipeFilters, report: SourceReport
    ) -> Iterator[tuple[list[Knowledge], int]]:
        """ui_monitoring (2024-11 .. 2026-03) or accessibility (2026-02 .. 2026-03) text, where present."""
        if table not in self.tables:
            return
        if table == "ui_monitoring":
            query = ("SELECT id, timestamp, text_output, app, window, NULL FROM ui_monitoring "
                     "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?")
        else:
            url = "browser_url" if "browser_url" in self.columns.get("accessibility", set()) else "NULL"
            query = (f"SELECT id, timestamp, text_content, app_name, window_name, {url} FROM accessibility "
                     "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?")
        yield from self._read_simple(query, table, "ui", f"ui:{table}:{{}}", after_id, filters, report)

    def _read_simple(
        self, query: str, table: str, knowledge_type: str, id_format: str, after_id: int,
        filters: ScreenpipeFilters, report: SourceReport,
    ) -> Iterator[tuple[list[Knowledge], int]]:
        with contextlib.closing(self.connect()) as conn:
            top = conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0
            cursor_id = after_id
            while cursor_id < top:
                rows = conn.execute(query, (cursor_id, top, BATCH_ROWS)).fetchall()
                if not rows:
                    break
                kept = []
                for row_id, stamp, text, app, window, url in rows:
                    report.rows_read += 1
                    source_id = id_format.format(row_id)
                    if not text or not text.strip():
                        report.skip("no text", source_id)
                        continue
                    moment = parse_screenpipe_timestamp(stamp)
                    record = Knowledge(
                        source_id=source_id, knowledge_type=knowledge_type, text=text,
                        timestamp=iso_utc(moment) if moment else None, app_name=app, window_name=window,
                        browser_url=url,
                    )
                    reason = filters.reject_reason(record, moment)
                    if reason:
                        report.skip(reason, source_id)
                        continue
                    report.kept += 1
                    kept.append(record)
                cursor_id = rows[-1][0]
                yield kept, cursor_id
