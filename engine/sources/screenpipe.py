"""Read screenpipe's database strictly read-only: frame text (every schema era), audio transcripts, and the
legacy ui_monitoring / accessibility text where those tables still exist.

Every era since screenpipe's first migration (2024-07) reads the same way: the reader asks the database which tables
and columns it has and builds its queries from them (app and window names on ocr_text until 2025-02 and on frames
after; audio without a device before 2024-09; audio ids that were not a primary key from 2024-12-07 to 2024-12-10,
read by rowid, which is what screenpipe numbered them with when it repaired the table; snapshot frames with
accessibility text, OCR text or both from 2026-02; frames.full_text from 2026-03). ui_events (clicks, keys and
typed text, from 2026-02) is never read: typed keystrokes are private and are not training material.

Reading never changes anything beside the database. It goes through a `file:...?mode=ro` URI in short read
transactions (one per batch), so screenpipe keeps writing (WAL) while we read and we never hold a write lock. A
WAL-mode database that no process has open (screenpipe stopped: no `-wal`/`-shm` beside it) would get those two
files from a read-only connection, created by us and left behind; so it is read as an immutable file instead, and
every batch is checked afterwards: if the file, its header's change counter or its side files changed while the
batch was read, the batch is thrown away and read again through a normal read-only connection (which then uses the
`-wal`/`-shm` screenpipe itself created). A side file a read-only connection has to create anyway (one of the two
is missing, as a crash can leave them) gets the database file's permissions, and its owner when we run as root:
SQLite's unix layer does both, so screenpipe can use it as its own.

A row that cannot be used is skipped and counted with its reason, never a crash: text that is not valid UTF-8, a
timestamp that does not parse, no text yet. Its content never goes into a message. Reading is incremental: a run
reads rows with ids above the watermarks it is given and returns new watermarks.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from engine.clock import iso_utc
from engine.errors import SourceError
from engine.files import file_kind
from engine.records import Knowledge
from engine.sources.report import SourceReport

BATCH_ROWS = 5000
# A frame whose text has not arrived yet (screenpipe writes the frame, then its OCR) is re-read next time
# if it is this close to the newest frame.
PENDING_WINDOW = timedelta(minutes=2)
# How long a read waits for screenpipe to release a write lock (rollback-journal databases) before giving up.
BUSY_TIMEOUT_SECONDS = 30.0
# A screen text longer than this is cut to it when read: no screen shows a 10 MB text worth training on, and
# every later stage (storage, embedding, pairs) pays for each character.
MAX_TEXT_CHARS = 100_000
MAX_LABEL_CHARS = 1_000  # app, window, device names and URLs
_SQLITE_MAGIC = b"SQLite format 3\x00"
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as surrogateescape keeps them
_NOT_UTF8 = "text is not valid UTF-8"

# Columns without which a table cannot be read at all (any other column is optional).
_REQUIRED = {
    "frames": ("id", "timestamp"),
    "ocr_text": ("frame_id", "text"),
    "audio_transcriptions": ("timestamp", "transcription"),
    "ui_monitoring": ("id", "timestamp", "text_output"),
    "accessibility": ("id", "timestamp", "text_content"),
}


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
    # Glob patterns (fnmatch, case-insensitive); empty means no filter on that side.
    apps_include: Sequence[str] = ()
    apps_exclude: Sequence[str] = ()
    windows_include: Sequence[str] = ()
    windows_exclude: Sequence[str] = ()
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


# -- values as they come out of the database ---------------------------------------------------------------------
def _decode(data: bytes) -> str:
    """The text factory of a batch that holds bytes that are not UTF-8: they survive as lone surrogates, so the bad
    row can be recognized and skipped instead of failing the whole batch."""
    return data.decode("utf-8", "surrogateescape")


def _text(value: object, lossy: bool = True) -> tuple[str | None, str | None]:
    """(text, None), or (None, reason to skip the row). A BLOB holding UTF-8 text is accepted as text. `lossy`
    says the batch was read keeping undecodable bytes; otherwise a str is valid UTF-8 already."""
    if type(value) is str:
        return (None, _NOT_UTF8) if lossy and _UNDECODABLE.search(value) else (value, None)
    if value is None:
        return None, None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, _NOT_UTF8
    return _text(str(value))


def _label(value: object, lossy: bool = True) -> str | None:
    """An app, window, device name or URL: never fails; undecodable bytes become U+FFFD; capped in length."""
    if type(value) is str:
        if lossy and _UNDECODABLE.search(value):
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value if len(value) <= MAX_LABEL_CHARS else value[:MAX_LABEL_CHARS]
    if value is None:
        return None
    if isinstance(value, bytes):
        return _label(value.decode("utf-8", "replace"))
    return _label(str(value))


def _speaker(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_busy(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc) or "busy" in str(exc)


def safe_sqlite_message(exc: BaseException) -> str:
    """An SQLite error's message without any row content (a decode error quotes the text it could not decode)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.split(r" with text '", text, maxsplit=1)[0]
    return text[:200]


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


class _Session:
    """One read of the database: an immutable read when nobody has the WAL database open (so nothing is created
    beside it), checked after every query; otherwise a normal read-only connection."""

    def __init__(self, reader: ScreenpipeReader):
        self.reader = reader
        self.conn: sqlite3.Connection | None = None
        self.signature: tuple | None = None
        self.lossy = False  # the last batch held bytes that are not UTF-8 (read with _decode)
        self._open(immutable=reader.wal_mode and not any(reader.side_files().values()))

    def _open(self, immutable: bool) -> None:
        self.immutable = immutable
        self.conn = self.reader._raw_connection(immutable)
        self.signature = self.reader.signature() if immutable else None

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """All rows of one query, read consistently; SourceError (one sentence, no row content) on failure."""
        self.lossy = False
        try:
            try:
                rows = self.conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith("Could not decode to UTF-8"):
                    raise
                # Some value in this batch is not UTF-8: read the batch again keeping undecodable bytes (as lone
                # surrogates) so that the row can be recognized and skipped. Batches without one stay fast.
                self.conn.text_factory, self.lossy = _decode, True
                try:
                    rows = self.conn.execute(sql, params).fetchall()
                finally:
                    self.conn.text_factory = str
        except sqlite3.DatabaseError as exc:
            if self.immutable and self.reader.signature() != self.signature:
                return self._again(sql, params)
            raise self.reader.error(exc) from None
        if self.immutable and self.reader.signature() != self.signature:
            return self._again(sql, params)  # the file changed under the immutable read: these rows may be torn
        return rows

    def _again(self, sql: str, params: tuple) -> list[tuple]:
        self.conn.close()
        self._open(immutable=False)
        return self.rows(sql, params)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class ScreenpipeReader:
    """A read-only view of one screenpipe database. Construction checks that it really is one and finds which
    tables and columns this database's era has."""

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
        self.path = self.path.resolve()
        try:
            mode = os.stat(self.path).st_mode
        except OSError as exc:
            raise SourceError(f"`paths.screenpipe_db`: {self.path} cannot be read ({exc.strerror}).") from None
        if not stat.S_ISREG(mode):
            raise SourceError(
                f"`paths.screenpipe_db`: {self.path} is not a regular file (it is a {file_kind(mode)}); point it at "
                "screenpipe's db.sqlite."
            )
        header = self._header()
        if len(header) and not header.startswith(_SQLITE_MAGIC):
            raise SourceError(
                f"`paths.screenpipe_db`: {self.path} is not an SQLite database (it does not start with SQLite's "
                "header); point it at screenpipe's db.sqlite."
            )
        self.wal_mode = len(header) >= 20 and header[18] == 2 and header[19] == 2
        with self.session() as session:
            self.tables = {row[0] for row in session.rows(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
            if "frames" not in self.tables and "audio_transcriptions" not in self.tables:
                raise SourceError(
                    f"`paths.screenpipe_db`: {self.path} is an SQLite database but has no screenpipe tables "
                    "(frames, audio_transcriptions); point it at screenpipe's db.sqlite."
                )
            self.columns = {
                table: {row[1] for row in session.rows(f"SELECT * FROM pragma_table_info('{table}')")}
                for table in _REQUIRED if table in self.tables
            }
            for table, required in _REQUIRED.items():
                missing = [column for column in required if table in self.columns and column not in self.columns[table]]
                if missing:
                    raise SourceError(
                        f"`paths.screenpipe_db`: the {table} table in {self.path} has no {missing[0]} column, so it "
                        "cannot be read; this is not a screenpipe database the studio knows (update the studio if "
                        "screenpipe changed its schema)."
                    )
            # Audio ids were a plain column (NULL for new rows) from 2024-12-07 to 2024-12-10; rowid is the number
            # screenpipe itself returned for those rows and gave them as ids when it repaired the table.
            self.audio_key = "rowid"
            if "audio_transcriptions" in self.tables and not self._has_rowid(session, "audio_transcriptions"):
                raise SourceError(
                    f"`paths.screenpipe_db`: the audio_transcriptions table in {self.path} has no row numbers "
                    "(WITHOUT ROWID), so it cannot be read incrementally; this is not screenpipe's layout."
                )
            self.audio_ids_are_keys = "audio_transcriptions" in self.tables and any(
                row[1] == "id" and row[5] == 1 and (row[2] or "").upper() == "INTEGER"
                for row in session.rows("SELECT * FROM pragma_table_info('audio_transcriptions')"))

    # -- opening ------------------------------------------------------------------------------------------------
    def _header(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                return handle.read(100)
        except OSError as exc:
            raise SourceError(f"`paths.screenpipe_db`: {self.path} cannot be read ({exc.strerror}).") from None

    @staticmethod
    def _has_rowid(session: _Session, table: str) -> bool:
        try:
            session.conn.execute(f"SELECT rowid FROM {table} LIMIT 0")
        except sqlite3.OperationalError:
            return False
        return True

    def side_files(self) -> dict[str, bool]:
        """Which of screenpipe's side files (-wal, -shm) exist beside the database now."""
        return {suffix: Path(f"{self.path}{suffix}").exists() for suffix in ("-wal", "-shm")}

    def signature(self) -> tuple:
        """What changes when anyone writes the database: the file's identity, size and time, the header's change
        counter, and which side files (-wal, -shm, -journal) exist."""
        try:
            info = os.stat(self.path)
            with open(self.path, "rb") as handle:
                handle.seek(24)
                counter = handle.read(4)
        except OSError:
            return ("gone",)
        sides = tuple(Path(f"{self.path}{suffix}").exists() for suffix in ("-wal", "-shm", "-journal"))
        return info.st_ino, info.st_size, info.st_mtime_ns, counter, sides

    def _raw_connection(self, immutable: bool) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        return conn

    def connect(self) -> sqlite3.Connection:
        """A read-only connection (URI mode=ro, immutable when nobody has the WAL database open): it cannot write,
        whatever code runs on it. Reading through `session()` is safer: it checks what an immutable read saw."""
        return self._raw_connection(self.wal_mode and not any(self.side_files().values()))

    @contextlib.contextmanager
    def session(self) -> Iterator[_Session]:
        session = _Session(self)
        try:
            yield session
        finally:
            session.close()

    def error(self, exc: sqlite3.Error) -> SourceError:
        """One sentence for an SQLite error on this database, without any row content."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        if _is_busy(exc):
            return SourceError(
                f"`paths.screenpipe_db`: {self.path} is busy: another program (screenpipe) has held a write lock on "
                f"it for more than {BUSY_TIMEOUT_SECONDS:g} s; try again in a moment."
            )
        if name == "SQLITE_NOTADB" or "not a database" in str(exc):
            return SourceError(f"`paths.screenpipe_db`: {self.path} is not an SQLite database; point it at "
                               "screenpipe's db.sqlite.")
        if name.startswith("SQLITE_CORRUPT") or "malformed" in str(exc):
            return SourceError(f"`paths.screenpipe_db`: {self.path} is damaged (SQLite reports a malformed database "
                               "file); let screenpipe repair it, or read a backup copy.")
        return SourceError(f"`paths.screenpipe_db`: reading {self.path} failed ({safe_sqlite_message(exc)}).")

    def max_key(self, table: str) -> int:
        """The highest row key of a table (0 when empty or absent): the end of what a run reads."""
        if table not in self.tables:
            return 0
        key = self.audio_key if table == "audio_transcriptions" else "id"
        with self.session() as session:
            value = session.rows(f"SELECT MAX({key}) FROM {table}")[0][0]
        return value if isinstance(value, int) else 0

    # -- what it is -----------------------------------------------------------------------------------------------
    @property
    def era(self) -> str:
        """Which of screenpipe's layouts this is, told by its columns (a month and what marks it)."""
        frames = self.columns.get("frames", set())
        ocr = self.columns.get("ocr_text", set())
        audio = self.columns.get("audio_transcriptions", set())
        if "full_text" in frames:
            label = "2026-03 (frames.full_text)"
        elif "snapshot_path" in frames:
            label = "2026-02 (snapshot frames with accessibility text)"
        elif "window_name" in frames:
            label = "2025-02 (app and window on frames, 2025-02-26 to 2026-02-20)"
        elif "app_name" in frames:
            label = "2024-08 (app on frames and ocr_text, no window names, 2024-08-02 to 2024-08-15)"
        elif "window_name" in ocr:
            label = "2024-08 (app and window on ocr_text, 2024-08-15 to 2025-02-26)"
        elif "frames" in self.tables:
            label = "2024-07 (no app or window names)"
        else:
            label = "audio only"
        if "audio_transcriptions" in self.tables:
            if not self.audio_ids_are_keys:
                label += "; audio ids without a primary key (2024-12-07 to 2024-12-10)"
            elif "device" not in audio:
                label += "; audio without devices (before 2024-09-17)"
        return label

    def info(self) -> ScreenpipeInfo:
        notes = []
        for storage in (self.path.parent / "storage.json", self.path.parent.parent / "storage.json"):
            if storage.exists():
                notes.append(f"compressed storage mode is on ({storage}); text in the database is read as usual")
                break
        with self.session() as session:
            frames = session.rows("SELECT COUNT(*) FROM frames")[0][0] if "frames" in self.tables else 0
            audio = (session.rows("SELECT COUNT(*) FROM audio_transcriptions")[0][0]
                     if "audio_transcriptions" in self.tables else 0)
            legacy = {table: session.rows(f"SELECT COUNT(*) FROM {table}")[0][0]
                      for table in ("ui_monitoring", "accessibility") if table in self.tables}
            stamps = []
            if frames:
                stamps += [row[0] for row in session.rows(
                    "SELECT timestamp FROM frames"
                    " WHERE id IN ((SELECT MIN(id) FROM frames), (SELECT MAX(id) FROM frames))")]
            if audio:
                key = self.audio_key
                stamps += [row[0] for row in session.rows(
                    f"SELECT timestamp FROM audio_transcriptions WHERE {key} IN"
                    f" ((SELECT MIN({key}) FROM audio_transcriptions), (SELECT MAX({key}) FROM audio_transcriptions))")]
            top_apps = []
            if frames:
                app_expr, _ = self._app_window_exprs()
                join = "LEFT JOIN ocr_text o ON o.frame_id = f.id" if "ocr_text" in self.tables else ""
                top_apps = [
                    (_label(row[0]) or "(unknown)", row[1])
                    for row in session.rows(
                        f"SELECT {app_expr} AS app, COUNT(*) FROM frames f {join}"
                        " GROUP BY app ORDER BY COUNT(*) DESC LIMIT 8")
                ] if app_expr != "NULL" else []
        moments = sorted(m for m in (parse_screenpipe_timestamp(s) for s in stamps) if m)
        return ScreenpipeInfo(
            path=self.path, era=self.era, tables=sorted(self.tables), frames=frames, audio=audio, legacy_ui=legacy,
            first_timestamp=iso_utc(moments[0]) if moments else None,
            last_timestamp=iso_utc(moments[-1]) if moments else None, top_apps=top_apps, notes=notes,
        )

    # -- frames ---------------------------------------------------------------------------------------------
    def _app_window_exprs(self) -> tuple[str, str]:
        frames = self.columns.get("frames", set())
        ocr = self.columns.get("ocr_text", set()) if "ocr_text" in self.tables else set()

        def pick(column: str) -> str:
            parts = []
            if column in frames:
                parts.append(f"NULLIF(f.{column}, '')")
            if column in ocr:
                parts.append(f"NULLIF(o.{column}, '')")
            if not parts:
                return "NULL"
            return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"

        return pick("app_name"), pick("window_name")

    def _frame_query(self) -> str:
        frames = self.columns["frames"]
        has_ocr = "ocr_text" in self.tables

        def column(name: str) -> str:
            return f"f.{name}" if name in frames else "NULL"

        wanted = ["id", "timestamp"] + [name for name in ("full_text", "accessibility_text", "text_source",
                                                          "app_name", "window_name", "browser_url") if name in frames]
        app, window = self._app_window_exprs()
        ocr = "o.text" if has_ocr else "NULL"
        accessibility = column("accessibility_text")
        if "full_text" in frames:  # when full_text holds the frame's text, the other texts are not even fetched
            ocr = f"CASE WHEN TRIM(f.full_text) <> '' THEN NULL ELSE {ocr} END"
            accessibility = f"CASE WHEN TRIM(f.full_text) <> '' THEN NULL ELSE {accessibility} END"
        join = "LEFT JOIN ocr_text o ON o.frame_id = f.id" if has_ocr else ""
        # Bound the batch by frames, not joined rows, so a frame with several ocr_text rows is never split.
        return (
            f"SELECT f.id, f.timestamp, {column('full_text')}, {accessibility}, "
            f"{column('text_source')}, {ocr}, {app}, {window}, {column('browser_url')} "
            f"FROM (SELECT {', '.join(wanted)} FROM frames WHERE id > ? AND id <= ? ORDER BY id LIMIT ?) f "
            f"{join} ORDER BY f.id"
        )

    def read_frames(
        self, after_id: int, filters: ScreenpipeFilters, report: SourceReport
    ) -> Iterator[tuple[list[Knowledge], int]]:
        """Yield (kept records, new watermark) per batch of frames with id > after_id.

        A frame's text is, as screenpipe itself defines it: frames.full_text (2026-03 on); else, for a hybrid
        snapshot frame, its accessibility text and its OCR text joined; else its accessibility text or its OCR
        text. The watermark never passes a recent frame whose text has not been written yet, so that frame is read
        again next time instead of being lost."""
        if "frames" not in self.tables:
            return
        query = self._frame_query()
        with self.session() as session:
            top = session.rows("SELECT MAX(id) FROM frames")[0][0]
            top = top if isinstance(top, int) else 0
            newest = session.rows("SELECT timestamp FROM frames WHERE id = ?", (top,))
            newest_moment = parse_screenpipe_timestamp(newest[0][0]) if newest else None
            cursor_id, pending_from = after_id, None
            while cursor_id < top:
                rows = session.rows(query, (cursor_id, top, BATCH_ROWS))
                if not rows:
                    break
                kept: list[Knowledge] = []
                lossy = session.lossy
                for frame_id, stamp, full_text, accessibility, source, ocr, app, window, url in _frames_of(rows):
                    report.rows_read += 1
                    source_id = f"ocr:{frame_id}"
                    moment = parse_screenpipe_timestamp(stamp)
                    text, problem = _frame_text(full_text, accessibility, source, ocr, lossy)
                    if problem:
                        report.skip(problem, source_id)
                        continue
                    if not text or not text.strip():
                        recent = moment and newest_moment and newest_moment - moment < PENDING_WINDOW
                        if pending_from is None and recent:
                            pending_from = frame_id
                        report.skip("no text", source_id)
                        continue
                    record = Knowledge(
                        source_id=source_id, knowledge_type="ocr", text=_capped(text, report),
                        timestamp=iso_utc(moment) if moment else None, app_name=_label(app, lossy),
                        window_name=_label(window, lossy), browser_url=_label(url, lossy),
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
        _note_cut(report)

    # -- audio and legacy UI text -----------------------------------------------------------------------------
    def read_audio(
        self, after_id: int, filters: ScreenpipeFilters, report: SourceReport
    ) -> Iterator[tuple[list[Knowledge], int]]:
        """Yield (kept transcripts, new watermark) per batch of audio_transcriptions with id > after_id.
        The recording device is the record's window name; the speaker id (from 2024-12) is kept with it."""
        if "audio_transcriptions" not in self.tables:
            return
        columns = self.columns["audio_transcriptions"]
        key = self.audio_key
        device = "NULLIF(device, '')" if "device" in columns else "NULL"
        speaker = "speaker_id" if "speaker_id" in columns else "NULL"
        yield from self._read_simple(
            f"SELECT {key}, timestamp, transcription, NULL, {device}, NULL, {speaker} FROM audio_transcriptions "
            f"WHERE {key} > ? AND {key} <= ? ORDER BY {key} LIMIT ?",
            "audio_transcriptions", "audio", "audio:{}", after_id, filters, report,
        )

    def read_legacy_ui(
        self, table: str, after_id: int, filters: ScreenpipeFilters, report: SourceReport
    ) -> Iterator[tuple[list[Knowledge], int]]:
        """ui_monitoring (2024-11 .. 2026-03) or accessibility (2026-02 .. 2026-03) text, where present."""
        if table not in self.tables:
            return
        columns = self.columns[table]

        def optional(name: str) -> str:
            return name if name in columns else "NULL"

        if table == "ui_monitoring":
            query = (f"SELECT id, timestamp, text_output, {optional('app')}, {optional('window')}, NULL, NULL "
                     "FROM ui_monitoring WHERE id > ? AND id <= ? ORDER BY id LIMIT ?")
        else:
            query = (f"SELECT id, timestamp, text_content, {optional('app_name')}, {optional('window_name')}, "
                     f"{optional('browser_url')}, NULL FROM accessibility WHERE id > ? AND id <= ? ORDER BY id LIMIT ?")
        yield from self._read_simple(query, table, "ui", f"ui:{table}:{{}}", after_id, filters, report)

    def _read_simple(
        self, query: str, table: str, knowledge_type: str, id_format: str, after_id: int,
        filters: ScreenpipeFilters, report: SourceReport,
    ) -> Iterator[tuple[list[Knowledge], int]]:
        key = self.audio_key if table == "audio_transcriptions" else "id"
        with self.session() as session:
            top = session.rows(f"SELECT MAX({key}) FROM {table}")[0][0]
            top = top if isinstance(top, int) else 0
            cursor_id = after_id
            while cursor_id < top:
                rows = session.rows(query, (cursor_id, top, BATCH_ROWS))
                if not rows:
                    break
                kept = []
                lossy = session.lossy
                for row_id, stamp, raw_text, app, window, url, speaker in rows:
                    report.rows_read += 1
                    source_id = id_format.format(row_id)
                    text, problem = _text(raw_text, lossy)
                    if problem:
                        report.skip(problem, source_id)
                        continue
                    if not text or not text.strip():
                        report.skip("no text", source_id)
                        continue
                    moment = parse_screenpipe_timestamp(stamp)
                    record = Knowledge(
                        source_id=source_id, knowledge_type=knowledge_type, text=_capped(text, report),
                        timestamp=iso_utc(moment) if moment else None, app_name=_label(app, lossy),
                        window_name=_label(window, lossy), browser_url=_label(url, lossy),
                        speaker_id=_speaker(speaker),
                    )
                    reason = filters.reject_reason(record, moment)
                    if reason:
                        report.skip(reason, source_id)
                        continue
                    report.kept += 1
                    kept.append(record)
                cursor_id = rows[-1][0]
                yield kept, cursor_id
        _note_cut(report)


def _frames_of(rows: list[tuple]) -> Iterator[tuple]:
    """Joined rows (a frame once per ocr_text row, normally one) folded into one row per frame, its OCR texts
    joined by newlines: (id, timestamp, full_text, accessibility_text, text_source, ocr, app, window, url)."""
    previous = None
    for row in rows:
        if previous is not None and row[0] == previous[0]:
            ocr = row[5]
            if ocr and (not previous[5] or ocr not in previous[5].split("\n")):
                previous = (*previous[:5], f"{previous[5]}\n{ocr}" if previous[5] else ocr, previous[6] or row[6],
                            previous[7] or row[7], previous[8])
            continue
        if previous is not None:
            yield previous
        previous = row
    if previous is not None:
        yield previous


def _frame_text(full_text: object, accessibility: object, source: object, ocr: object,
                lossy: bool = True) -> tuple[str | None, str | None]:
    """A frame's text as screenpipe defines it, or the reason the row is skipped."""
    if type(full_text) is str and full_text.strip():
        return _text(full_text, lossy)
    texts = []
    for value in (full_text, accessibility, ocr):
        text, problem = _text(value, lossy)
        if problem:
            return None, problem
        texts.append(text if text and text.strip() else None)
    _, accessibility, ocr = texts
    if source == "hybrid" and accessibility and ocr:
        return f"{accessibility}\n{ocr}", None
    return accessibility or ocr, None


def _capped(text: str, report: SourceReport) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    report.cut += 1
    return text[:MAX_TEXT_CHARS]


def _note_cut(report: SourceReport) -> None:
    if report.cut:
        report.notes.append(f"{report.cut:,} texts longer than {MAX_TEXT_CHARS:,} characters were cut to that length")
