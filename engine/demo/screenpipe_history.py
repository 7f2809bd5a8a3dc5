"""Screenpipe databases as they stood on a given date, filled the way that date's screenpipe filled them.

screenpipe changes its database with sqlx migrations (screenpipe-server/src/migrations/ until 2025-03, then
screenpipe-db/, then crates/screenpipe-db/). A user who kept screenpipe updated has every migration applied in the
order the migrations reached screenpipe's main branch, which is not always their version order (the cloud-sync
columns, version 20250131000000, arrived on 2026-01-31). `ScreenpipeAt(path, date)` replays, in that order, this
module's own statement of each migration that changed a table the reader looks at (frames, ocr_text, video_chunks,
audio_chunks, audio_transcriptions, speakers, ui_monitoring, accessibility, ui_events) and records the versions it
applied in `_sqlx_migrations` as sqlx does. Migrations of tables the reader never reads (full-text indexes, tags,
embeddings, pipes, meetings, memories, elements) are left out. `bench/screenpipe_eras.py` checks these tables
against the real migration files of a fresh screenpipe checkout.

The insert methods write rows the way the insert code in force on that date did (which columns it set, one frame
per captured window from 2024-08-15, snapshot frames from 2026-02-20, hybrid accessibility + OCR frames from
2026-03-09, `full_text` from 2026-03-11). `migrate_to(date)` moves an existing database on, so rows written
before a migration live through it as they did on users' machines: the 2024-12-07 rebuild of
audio_transcriptions (CREATE TABLE ... AS SELECT, which drops the primary key, so rows inserted in the next three
days have NULL ids) and its repair on 2024-12-10 (which numbers every row again).

Dates of interest (see tests/test_screenpipe_eras.py): 2024-08-10, 2024-09-10, 2024-12-09 (no primary key on audio),
2025-03-15, 2026-02-25 (snapshot frames), 2026-03-10 (hybrid frames), 2026-03-15 (today's schema).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import yaml

from engine.demo.screenpipe_builder import screenpipe_timestamp


@dataclass(frozen=True)
class Migration:
    landed: date  # when it reached screenpipe's main branch
    version: int  # sqlx version (the file name's number)
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(date.fromisoformat(row["landed"]), row["version"], row["description"], row["sql"])
    for row in yaml.safe_load(Path(__file__).with_name("screenpipe_history.yaml").read_text(encoding="utf-8")))

FIRST_DATE = MIGRATIONS[0].landed
TODAY = MIGRATIONS[-1].landed  # the newest migration this module knows (the reference schema's, 2026-03)

# When the insert code changed (screenpipe's db.rs and its callers on main).
_FRAMES_CARRY_APP = (date(2024, 8, 2), date(2024, 8, 15))  # frames.app_name written, one frame per capture
_WINDOW_FRAMES = date(2024, 8, 15)  # from here: one frame per captured window, app/window on ocr_text
_FRAME_NAME = date(2025, 1, 18)
_APP_ON_FRAMES = date(2025, 2, 26)
_FRAME_DEVICE = date(2025, 5, 30)
_SNAPSHOTS = date(2026, 2, 20)
_HYBRID = date(2026, 3, 9)
_FULL_TEXT = date(2026, 3, 11)
_AUDIO_DEDUP = date(2026, 1, 26)


def _statements(sql: str) -> list[str]:
    statements, buffer = [], ""
    for line in sql.strip().splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


class ScreenpipeAt:
    """A screenpipe database migrated to `as_of` (a date from 2024-07-03 on); rows inserted as that date's screenpipe
    inserts them. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | Path, as_of: date | str, device: str = "monitor_1", *, migrate: bool = True):
        """`migrate=False` writes into a database someone else migrated (bench/screenpipe_eras.py replays
        screenpipe's own migration files) as the insert code of `as_of` would."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.as_of = FIRST_DATE
        self._video_chunk: tuple[int, int] | None = None  # (id, frames written into it)
        self._audio_chunk: tuple[int, str] | None = None  # (id, the 30 s window it covers)
        if migrate:
            self.migrate_to(as_of)
        else:
            self.as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else as_of

    def __enter__(self) -> ScreenpipeAt:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- schema ------------------------------------------------------------------------------------------------
    def migrate_to(self, as_of: date | str) -> list[int]:
        """Apply, in landing order, every migration that reached main by `as_of` and is not applied yet."""
        as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
        if as_of < FIRST_DATE:
            raise ValueError(f"screenpipe's database starts on {FIRST_DATE}, not {as_of}")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,"
            " installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,"
            " checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)")
        applied = {row[0] for row in self.conn.execute("SELECT version FROM _sqlx_migrations")}
        done = []
        for migration in MIGRATIONS:
            if migration.landed > as_of or migration.version in applied:
                continue
            self.conn.execute("BEGIN")
            for statement in _statements(migration.sql):
                self.conn.execute(statement)
            self.conn.execute(
                "INSERT INTO _sqlx_migrations(version, description, installed_on, success, checksum, execution_time)"
                " VALUES (?, ?, ?, 1, ?, 1000000)",
                (migration.version, migration.description, f"{migration.landed} 12:00:00",
                 hashlib.sha384(migration.sql.encode()).digest()))
            self.conn.execute("COMMIT")
            done.append(migration.version)
        self.as_of = max(self.as_of, as_of)
        return done

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")]

    # -- frames ------------------------------------------------------------------------------------------------
    def _chunk(self) -> tuple[int, int]:
        """The current video chunk and the next offset in it; a new chunk every 60 frames."""
        if self._video_chunk is None or self._video_chunk[1] >= 60:
            count = self.conn.execute("SELECT COUNT(*) FROM video_chunks").fetchone()[0]
            file_path = f"/Users/dev/.screenpipe/data/{self.device}_{count + 1:05d}.mp4"
            if "device_name" in self.columns("video_chunks"):
                chunk = self.conn.execute("INSERT INTO video_chunks (file_path, device_name) VALUES (?, ?)",
                                          (file_path, self.device)).lastrowid
            else:
                chunk = self.conn.execute("INSERT INTO video_chunks (file_path) VALUES (?)", (file_path,)).lastrowid
            self._video_chunk = (chunk, 0)
        chunk, offset = self._video_chunk
        self._video_chunk = (chunk, offset + 1)
        return chunk, offset

    def add_frame(self, moment: datetime, text: str, app_name: str, window_name: str,
                  browser_url: str | None = None, *, focused: bool = True) -> int:
        """One capture of one window with its OCR text, as the video pipeline of `as_of` stores it; its frames.id.
        (Before 2024-08-15 screenpipe kept one frame per screen capture, named by the focused app only.)"""
        if self.as_of >= _SNAPSHOTS:  # event-driven capture: the window's accessibility tree gives the text
            return self.add_snapshot(moment, app_name, window_name, accessibility_text=text, browser_url=browser_url)
        stamp = screenpipe_timestamp(moment)
        chunk, offset = self._chunk()
        text_json = '[{"level":"5","conf":"96.5","text":"' + text.split()[0] + '"}]' if text.split() else "[]"
        self.conn.execute("BEGIN")
        if _FRAMES_CARRY_APP[0] <= self.as_of < _FRAMES_CARRY_APP[1]:
            frame_id = self.conn.execute(
                "INSERT INTO frames (video_chunk_id, offset_index, timestamp, app_name) VALUES (?, ?, ?, ?)",
                (chunk, offset, stamp, app_name)).lastrowid
            self.conn.execute("INSERT INTO ocr_text (frame_id, text, text_json, app_name, ocr_engine)"
                              " VALUES (?, ?, ?, ?, 'AppleNative')", (frame_id, text, text_json, app_name))
        elif self.as_of < _APP_ON_FRAMES:
            if self.as_of >= _FRAME_NAME:
                frame_id = self.conn.execute(
                    "INSERT INTO frames (video_chunk_id, offset_index, timestamp, name) VALUES (?, ?, ?, ?)",
                    (chunk, offset, stamp, self._chunk_path(chunk))).lastrowid
            else:
                frame_id = self.conn.execute(
                    "INSERT INTO frames (video_chunk_id, offset_index, timestamp) VALUES (?, ?, ?)",
                    (chunk, offset, stamp)).lastrowid
            columns = ["frame_id", "text", "text_json", "app_name", "ocr_engine", "window_name", "focused"]
            values = [frame_id, text, text_json, app_name, "AppleNative", window_name, focused]
            if "text_length" in self.columns("ocr_text"):
                columns.append("text_length")
                values.append(len(text))
            self.conn.execute(f"INSERT INTO ocr_text ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})",
                              values)
        else:
            columns = ["video_chunk_id", "offset_index", "timestamp", "name", "browser_url", "app_name",
                       "window_name", "focused"]
            values = [chunk, offset, stamp, self._chunk_path(chunk), browser_url, app_name, window_name, focused]
            if self.as_of >= _FRAME_DEVICE:
                columns.append("device_name")
                values.append(self.device)
            frame_id = self.conn.execute(
                f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})", values).lastrowid
            self.conn.execute("INSERT INTO ocr_text (frame_id, text, text_json, ocr_engine, text_length)"
                              " VALUES (?, ?, ?, 'AppleNative', ?)", (frame_id, text, text_json, len(text)))
        self.conn.execute("COMMIT")
        return frame_id

    def _chunk_path(self, chunk: int) -> str:
        return self.conn.execute("SELECT file_path FROM video_chunks WHERE id = ?", (chunk,)).fetchone()[0]

    def add_snapshot(self, moment: datetime, app_name: str, window_name: str, *, accessibility_text: str | None = None,
                     ocr_text: str | None = None, browser_url: str | None = None,
                     trigger: str = "app_switch") -> int:
        """An event-driven snapshot frame (from 2026-02-20): accessibility text when the tree had some, OCR when
        it had none (then the OCR text is also the frame's accessibility_text, with text_source 'ocr'), and from
        2026-03-09 both when the tree held only window chrome (text_source 'hybrid', OCR in ocr_text)."""
        if self.as_of < _SNAPSHOTS:
            raise ValueError(f"snapshot frames start on {_SNAPSHOTS}; this database is as of {self.as_of}")
        if accessibility_text and ocr_text and self.as_of < _HYBRID:
            raise ValueError(f"hybrid frames start on {_HYBRID}; this database is as of {self.as_of}")
        stamp = screenpipe_timestamp(moment)
        snapshot_path = f"/Users/dev/.screenpipe/data/snapshots/{stamp[:10]}/{stamp[11:23].replace(':', '-')}.jpg"
        if accessibility_text and ocr_text:
            frame_text, source, tree = accessibility_text, "hybrid", '[{"role":"AXButton"}]'
        elif accessibility_text:
            frame_text, source, tree = accessibility_text, "accessibility", '[{"role":"AXStaticText"}]'
        elif ocr_text:
            frame_text, source, tree = ocr_text, "ocr", None
        else:
            frame_text, source, tree = None, None, None
        columns = ["video_chunk_id", "offset_index", "timestamp", "name", "browser_url", "app_name", "window_name",
                   "focused", "device_name", "snapshot_path", "capture_trigger", "accessibility_text", "text_source",
                   "accessibility_tree_json", "content_hash", "simhash"]
        content_hash = int(hashlib.sha1((frame_text or "").encode()).hexdigest()[:15], 16) if tree else None
        values = [None, 0, stamp, snapshot_path, browser_url, app_name, window_name, True, self.device, snapshot_path,
                  trigger, frame_text, source, tree, content_hash, content_hash]
        if self.as_of >= _FULL_TEXT:
            full_text = (f"{accessibility_text}\n{ocr_text}" if source == "hybrid" else frame_text) or None
            columns.append("full_text")
            values.append(full_text)
        self.conn.execute("BEGIN")
        frame_id = self.conn.execute(
            f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})", values).lastrowid
        if ocr_text:
            self.conn.execute("INSERT INTO ocr_text (frame_id, text, text_json, ocr_engine, text_length)"
                              " VALUES (?, ?, '[]', 'AppleNative', ?)", (frame_id, ocr_text, len(ocr_text)))
        self.conn.execute("COMMIT")
        return frame_id

    # -- audio -------------------------------------------------------------------------------------------------
    def add_speaker(self, name: str | None = None) -> int:
        return self.conn.execute("INSERT INTO speakers (name, metadata) VALUES (?, '{}')", (name,)).lastrowid

    def add_audio(self, moment: datetime, transcription: str, device: str = "MacBook Pro Microphone",
                  is_input: bool = True, speaker_id: int | None = None) -> int | None:
        """One transcript, as `as_of`'s insert code writes it (a new 30 s audio chunk when the window changes).
        Returns the row's rowid, which is its id except while the id column had no primary key (2024-12-07 to
        2024-12-10: the id is NULL), or None when the 2026 unique index ignored a duplicate."""
        stamp = screenpipe_timestamp(moment)
        window = stamp[:17] + ("00" if int(stamp[17:19]) < 30 else "30")
        if self._audio_chunk is None or self._audio_chunk[1] != window:
            file_path = f"/Users/dev/.screenpipe/data/{device.replace(' ', '_')}_{window.replace(':', '-')}.mp4"
            if "timestamp" in self.columns("audio_chunks"):
                chunk = self.conn.execute("INSERT INTO audio_chunks (file_path, timestamp) VALUES (?, ?)",
                                          (file_path, stamp)).lastrowid
            else:
                chunk = self.conn.execute("INSERT INTO audio_chunks (file_path) VALUES (?)", (file_path,)).lastrowid
            self._audio_chunk = (chunk, window)
        present = set(self.columns("audio_transcriptions"))
        values = {"audio_chunk_id": self._audio_chunk[0], "transcription": transcription, "offset_index": 0,
                  "timestamp": stamp, "transcription_engine": "WhisperLargeV3Turbo", "device": device,
                  "is_input_device": is_input, "speaker_id": speaker_id, "start_time": 0.0, "end_time": 30.0,
                  "text_length": len(transcription)}
        written = {column: value for column, value in values.items() if column in present}
        verb = "INSERT OR IGNORE" if self.as_of >= _AUDIO_DEDUP else "INSERT"
        cursor = self.conn.execute(
            f"{verb} INTO audio_transcriptions ({', '.join(written)}) VALUES ({', '.join('?' * len(written))})",
            list(written.values()))
        return cursor.lastrowid if cursor.rowcount else None

    # -- legacy UI text and input events -------------------------------------------------------------------------
    def add_ui_text(self, moment: datetime, text: str, app: str, window: str) -> int:
        """A ui_monitoring row (2024-11-06 to 2026-03-06): the macOS UI text of a window."""
        columns = ["text_output", "timestamp", "app", "window"]
        values = [text, moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), app, window]
        if "text_length" in self.columns("ui_monitoring"):
            columns.append("text_length")
            values.append(len(text))
        return self.conn.execute(
            f"INSERT INTO ui_monitoring ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})",
            values).lastrowid

    def add_accessibility(self, moment: datetime, text: str, app: str, window: str,
                          browser_url: str | None = None) -> int:
        """An accessibility row (2026-02-01 to 2026-03-11); screenpipe let the column default set the time."""
        return self.conn.execute(
            "INSERT INTO accessibility (timestamp, app_name, window_name, text_content, browser_url)"
            " VALUES (?, ?, ?, ?, ?)",
            (moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), app, window, text, browser_url)).lastrowid

    def add_ui_event(self, moment: datetime, event_type: str, app: str, window: str, text: str | None = None,
                     key_code: int | None = None) -> int:
        """A ui_events row (from 2026-02-01): clicks, keys, typed text, clipboard, app switches."""
        return self.conn.execute(
            "INSERT INTO ui_events (timestamp, session_id, relative_ms, event_type, key_code, text_content,"
            " text_length, app_name, window_title) VALUES (?, 'session-1', 0, ?, ?, ?, ?, ?, ?)",
            (screenpipe_timestamp(moment), event_type, key_code, text, len(text) if text else None, app,
             window)).lastrowid
