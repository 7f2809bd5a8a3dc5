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

from engine.demo.screenpipe_builder import screenpipe_timestamp


@dataclass(frozen=True)
class Migration:
    landed: date  # when it reached screenpipe's main branch
    version: int  # sqlx version (the file name's number)
    description: str
    sql: str


def _m(landed: str, version: int, description: str, sql: str) -> Migration:
    return Migration(date.fromisoformat(landed), version, description, sql)


MIGRATIONS: tuple[Migration, ...] = (
    _m("2024-07-03", 20240703111257, "screenpipe", """
        CREATE TABLE video_chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, file_path TEXT NOT NULL);
        CREATE TABLE frames (id INTEGER PRIMARY KEY AUTOINCREMENT, video_chunk_id INTEGER NOT NULL,
            offset_index INTEGER NOT NULL, timestamp TIMESTAMP NOT NULL,
            FOREIGN KEY (video_chunk_id) REFERENCES video_chunks(id));
        CREATE TABLE ocr_text (frame_id INTEGER NOT NULL, text TEXT NOT NULL);
        CREATE TABLE audio_chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, file_path TEXT NOT NULL);
        CREATE TABLE audio_transcriptions (id INTEGER PRIMARY KEY AUTOINCREMENT, audio_chunk_id INTEGER NOT NULL,
            offset_index INTEGER NOT NULL, timestamp TIMESTAMP NOT NULL, transcription TEXT NOT NULL,
            FOREIGN KEY (audio_chunk_id) REFERENCES audio_chunks(id));
        CREATE INDEX idx_frames_video_chunk_id ON frames(video_chunk_id);
        CREATE INDEX idx_ocr_text_frame_id ON ocr_text(frame_id);
        CREATE INDEX idx_audio_transcriptions_audio_chunk_id ON audio_transcriptions(audio_chunk_id);
    """),
    _m("2024-07-15", 20240715121444, "indexes", """
        CREATE INDEX idx_frames_timestamp ON frames(timestamp);
        CREATE INDEX idx_audio_transcriptions_timestamp ON audio_transcriptions(timestamp);
    """),
    _m("2024-07-19", 20240716120000, "add fields to ocr text", """
        ALTER TABLE ocr_text ADD COLUMN Tesseract_TSV_object TEXT;
        ALTER TABLE ocr_text ADD COLUMN unique_text_lines_24hr TEXT;
        ALTER TABLE ocr_text ADD COLUMN unique_text_lines_1hr TEXT;
        ALTER TABLE ocr_text ADD COLUMN unique_text_lines_1m TEXT;
        ALTER TABLE ocr_text ADD COLUMN diff_vs_previous_frame_by_line TEXT;
    """),
    _m("2024-07-22", 20240716120001, "update ocr text table", """
        ALTER TABLE ocr_text ADD COLUMN text_json TEXT;
        ALTER TABLE ocr_text ADD COLUMN new_text_json_vs_previous_frame TEXT;
        ALTER TABLE ocr_text ADD COLUMN raw_data_output_from_OCR TEXT;
        ALTER TABLE ocr_text DROP COLUMN Tesseract_TSV_object;
        ALTER TABLE ocr_text DROP COLUMN diff_vs_previous_frame_by_line;
    """),
    _m("2024-07-23", 20240716120002, "snake case", """
        ALTER TABLE ocr_text RENAME COLUMN raw_data_output_from_OCR TO raw_data_output_from_ocr;
    """),
    _m("2024-08-01", 20240716120003, "add timestampt to audio chunks", """
        ALTER TABLE audio_chunks ADD COLUMN timestamp TIMESTAMP;
    """),
    _m("2024-08-02", 20240716120004, "app name", """
        ALTER TABLE frames ADD COLUMN app_name TEXT NOT NULL DEFAULT '';
        ALTER TABLE ocr_text ADD COLUMN app_name TEXT NOT NULL DEFAULT '';
    """),
    _m("2024-08-07", 20240805120005, "V2 create inverted index table", """
        ALTER TABLE ocr_text ADD COLUMN ocr_engine TEXT NOT NULL DEFAULT 'unknown';
    """),
    _m("2024-08-07", 20240808120006, "V2 add transcription engine", """
        ALTER TABLE audio_transcriptions ADD COLUMN transcription_engine TEXT NOT NULL DEFAULT 'Whisper';
    """),
    # ocr_text rebuilt with only the columns still in use (the 2024-07 experiments are gone).
    _m("2024-08-09", 20240808120009, "remove columns from ocr text", """
        CREATE TABLE ocr_text_slim (frame_id INTEGER NOT NULL, text TEXT NOT NULL, text_json TEXT,
            app_name TEXT NOT NULL DEFAULT '', ocr_engine TEXT NOT NULL DEFAULT 'unknown');
        INSERT INTO ocr_text_slim SELECT frame_id, text, text_json, app_name, ocr_engine FROM ocr_text;
        DROP TABLE ocr_text;
        ALTER TABLE ocr_text_slim RENAME TO ocr_text;
    """),
    _m("2024-08-15", 20240815201445, "add window name to ocr text", """
        ALTER TABLE ocr_text ADD COLUMN window_name TEXT;
    """),
    _m("2024-08-15", 20240815214646, "remove app name from frames", """
        ALTER TABLE frames DROP COLUMN app_name;
    """),
    _m("2024-08-15", 20240815215557, "add focused to ocr text", """
        ALTER TABLE ocr_text ADD COLUMN focused BOOLEAN DEFAULT FALSE;
    """),
    _m("2024-09-17", 20240917213422, "add device info to audio transcriptions", """
        ALTER TABLE audio_transcriptions ADD COLUMN device TEXT NOT NULL DEFAULT '';
        ALTER TABLE audio_transcriptions ADD COLUMN is_input_device BOOLEAN NOT NULL DEFAULT TRUE;
    """),
    _m("2024-10-25", 20241024181218, "add device name to chunks", """
        ALTER TABLE video_chunks ADD COLUMN device_name TEXT NOT NULL DEFAULT '';
    """),
    _m("2024-11-06", 20241106031800, "create ui monitoring", """
        CREATE TABLE ui_monitoring (id INTEGER PRIMARY KEY AUTOINCREMENT, text_output TEXT NOT NULL,
            timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, app TEXT NOT NULL, window TEXT NOT NULL,
            initial_traversal_at DATETIME);
    """),
    _m("2024-11-18", 20241108202826, "create speaker table", """
        CREATE TABLE speakers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, metadata JSON);
    """),
    # speaker_id arrives through CREATE TABLE ... AS SELECT, which keeps column names and loose types but no
    # constraint: id is a plain INT column, so rows inserted from now on (id not given) have id NULL.
    _m("2024-12-07", 20241127172038, "create speaker id col final", """
        CREATE TABLE audio_transcriptions_with_speaker AS
            SELECT audio_transcriptions.*, NULL AS speaker_id FROM audio_transcriptions LIMIT 0;
        INSERT INTO audio_transcriptions_with_speaker
            SELECT audio_transcriptions.*, NULL FROM audio_transcriptions ORDER BY rowid;
        DROP TABLE audio_transcriptions;
        ALTER TABLE audio_transcriptions_with_speaker RENAME TO audio_transcriptions;
    """),
    _m("2024-12-07", 20241127220428, "add hallucination column", """
        ALTER TABLE speakers ADD COLUMN hallucination BOOLEAN DEFAULT FALSE;
    """),
    # The repair: a primary key again, every row numbered anew in table order.
    _m("2024-12-10", 20241210205142, "fix audio transcriptions", """
        CREATE TABLE audio_transcriptions_keyed (id INTEGER PRIMARY KEY AUTOINCREMENT,
            audio_chunk_id INTEGER NOT NULL, offset_index INTEGER NOT NULL, timestamp TIMESTAMP NOT NULL,
            transcription TEXT NOT NULL, device TEXT NOT NULL DEFAULT '',
            is_input_device BOOLEAN NOT NULL DEFAULT TRUE, speaker_id INTEGER,
            transcription_engine TEXT NOT NULL DEFAULT 'Whisper',
            FOREIGN KEY (audio_chunk_id) REFERENCES audio_chunks(id));
        INSERT INTO audio_transcriptions_keyed (audio_chunk_id, offset_index, timestamp, transcription,
            transcription_engine, device, is_input_device, speaker_id)
            SELECT audio_chunk_id, offset_index, timestamp, transcription, transcription_engine, device,
                is_input_device, speaker_id FROM audio_transcriptions ORDER BY rowid;
        DROP TABLE audio_transcriptions;
        ALTER TABLE audio_transcriptions_keyed RENAME TO audio_transcriptions;
        CREATE INDEX idx_audio_transcriptions_timestamp ON audio_transcriptions(timestamp);
    """),
    _m("2024-12-18", 20241213220649, "create segment start time and end time columns", """
        ALTER TABLE audio_transcriptions ADD COLUMN start_time REAL;
        ALTER TABLE audio_transcriptions ADD COLUMN end_time REAL;
    """),
    _m("2025-01-18", 20250117180530, "add frame names", """
        ALTER TABLE frames ADD COLUMN name TEXT;
    """),
    _m("2025-02-07", 20250130101751, "add text length columns", """
        ALTER TABLE ocr_text ADD COLUMN text_length INTEGER;
        ALTER TABLE audio_transcriptions ADD COLUMN text_length INTEGER;
        ALTER TABLE ui_monitoring ADD COLUMN text_length INTEGER;
    """),
    _m("2025-02-19", 20250219212616, "add-browser url-column", """
        ALTER TABLE frames ADD COLUMN browser_url TEXT DEFAULT NULL;
    """),
    # From here app and window live on frames; ocr_text keeps its columns but new rows leave them empty.
    _m("2025-02-26", 20250223204844, "browser url fts and move window app to frames", """
        ALTER TABLE frames ADD COLUMN app_name TEXT DEFAULT NULL;
        ALTER TABLE frames ADD COLUMN window_name TEXT DEFAULT NULL;
        ALTER TABLE frames ADD COLUMN focused BOOLEAN DEFAULT NULL;
    """),
    _m("2025-05-30", 20250131232938, "add device name to frame", """
        ALTER TABLE frames ADD COLUMN device_name TEXT NOT NULL DEFAULT '';
    """),
    _m("2026-01-26", 20260126200000, "dedupe audio transcriptions", """
        DELETE FROM audio_transcriptions WHERE id NOT IN (
            SELECT MIN(id) FROM audio_transcriptions GROUP BY audio_chunk_id, transcription);
        CREATE UNIQUE INDEX idx_audio_transcription_chunk_text ON audio_transcriptions(audio_chunk_id, transcription);
    """),
    _m("2026-01-31", 20250131000000, "add cloud sync columns", """
        ALTER TABLE frames ADD COLUMN sync_id TEXT;
        ALTER TABLE frames ADD COLUMN machine_id TEXT;
        ALTER TABLE frames ADD COLUMN synced_at DATETIME;
        ALTER TABLE ocr_text ADD COLUMN sync_id TEXT;
        ALTER TABLE ocr_text ADD COLUMN synced_at DATETIME;
        ALTER TABLE audio_chunks ADD COLUMN sync_id TEXT;
        ALTER TABLE audio_chunks ADD COLUMN machine_id TEXT;
        ALTER TABLE audio_chunks ADD COLUMN synced_at DATETIME;
        ALTER TABLE audio_transcriptions ADD COLUMN sync_id TEXT;
        ALTER TABLE audio_transcriptions ADD COLUMN synced_at DATETIME;
        ALTER TABLE video_chunks ADD COLUMN sync_id TEXT;
        ALTER TABLE video_chunks ADD COLUMN machine_id TEXT;
        ALTER TABLE video_chunks ADD COLUMN synced_at DATETIME;
    """),
    _m("2026-02-01", 20250202000000, "add accessibility and input tables", """
        CREATE TABLE accessibility (id INTEGER PRIMARY KEY AUTOINCREMENT,
            timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, app_name TEXT NOT NULL, window_name TEXT NOT NULL,
            text_content TEXT NOT NULL, browser_url TEXT, sync_id TEXT, machine_id TEXT, synced_at DATETIME);
        CREATE TABLE ui_events (id INTEGER PRIMARY KEY AUTOINCREMENT,
            timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, session_id TEXT,
            relative_ms INTEGER NOT NULL DEFAULT 0, event_type TEXT NOT NULL, x INTEGER, y INTEGER,
            delta_x INTEGER, delta_y INTEGER, button INTEGER, click_count INTEGER, key_code INTEGER,
            modifiers INTEGER, text_content TEXT, text_length INTEGER, app_name TEXT, app_pid INTEGER,
            window_title TEXT, browser_url TEXT, element_role TEXT, element_name TEXT, element_value TEXT,
            element_description TEXT, element_automation_id TEXT, element_bounds TEXT, frame_id INTEGER,
            sync_id TEXT, machine_id TEXT, synced_at DATETIME);
    """),
    _m("2026-02-06", 20260206200000, "add fps to video chunks", """
        ALTER TABLE video_chunks ADD COLUMN fps REAL NOT NULL DEFAULT 0.5;
    """),
    _m("2026-02-09", 20260210000000, "speaker centroid", """
        ALTER TABLE speakers ADD COLUMN centroid FLOAT[512];
        ALTER TABLE speakers ADD COLUMN embedding_count INTEGER DEFAULT 0;
    """),
    _m("2026-02-10", 20260210100000, "fix orphaned speaker transcriptions", """
        UPDATE audio_transcriptions SET speaker_id = NULL
        WHERE speaker_id IS NOT NULL AND speaker_id NOT IN (SELECT id FROM speakers);
    """),
    # Event-driven capture: frames rebuilt so snapshot frames can have no video chunk.
    _m("2026-02-20", 20260220000000, "event driven capture", """
        CREATE TABLE frames_event_driven (id INTEGER PRIMARY KEY AUTOINCREMENT, video_chunk_id INTEGER DEFAULT NULL,
            offset_index INTEGER NOT NULL DEFAULT 0, timestamp TIMESTAMP NOT NULL, name TEXT,
            app_name TEXT DEFAULT NULL, window_name TEXT DEFAULT NULL, focused BOOLEAN DEFAULT NULL,
            browser_url TEXT DEFAULT NULL, device_name TEXT NOT NULL DEFAULT '', sync_id TEXT, machine_id TEXT,
            synced_at DATETIME, snapshot_path TEXT DEFAULT NULL, accessibility_text TEXT DEFAULT NULL,
            accessibility_tree_json TEXT DEFAULT NULL, content_hash INTEGER DEFAULT NULL,
            simhash INTEGER DEFAULT NULL, capture_trigger TEXT DEFAULT NULL, text_source TEXT DEFAULT NULL,
            FOREIGN KEY (video_chunk_id) REFERENCES video_chunks(id));
        INSERT INTO frames_event_driven (id, video_chunk_id, offset_index, timestamp, name, app_name, window_name,
            focused, browser_url, device_name, sync_id, machine_id, synced_at)
            SELECT id, video_chunk_id, offset_index, timestamp, name, app_name, window_name, focused, browser_url,
                device_name, sync_id, machine_id, synced_at FROM frames;
        DROP TABLE frames;
        ALTER TABLE frames_event_driven RENAME TO frames;
        CREATE INDEX idx_frames_timestamp ON frames(timestamp);
        CREATE INDEX idx_frames_video_chunk_id ON frames(video_chunk_id);
    """),
    _m("2026-03-06", 20260301200000, "drop ui monitoring", """
        DROP TABLE ui_monitoring;
    """),
    _m("2026-03-06", 20260306000000, "delete empty transcriptions", """
        DELETE FROM audio_transcriptions WHERE transcription IS NULL OR TRIM(transcription) = '';
    """),
    _m("2026-03-09", 20260309000000, "add cloud blob id", """
        ALTER TABLE video_chunks ADD COLUMN cloud_blob_id TEXT DEFAULT NULL;
        ALTER TABLE frames ADD COLUMN cloud_blob_id TEXT DEFAULT NULL;
    """),
    # One searchable text per frame; what existed is filled in: accessibility text, else the OCR text, and both
    # (accessibility first) for hybrid frames. The accessibility table goes.
    _m("2026-03-11", 20260312000000, "consolidate search to frames full text", """
        ALTER TABLE frames ADD COLUMN full_text TEXT DEFAULT NULL;
        UPDATE frames SET full_text = accessibility_text WHERE accessibility_text <> '';
        UPDATE frames SET full_text = (SELECT o.text FROM ocr_text o WHERE o.frame_id = frames.id LIMIT 1)
            WHERE full_text IS NULL AND EXISTS (SELECT 1 FROM ocr_text o WHERE o.frame_id = frames.id);
        UPDATE frames SET full_text = accessibility_text || char(10)
                || (SELECT o.text FROM ocr_text o WHERE o.frame_id = frames.id LIMIT 1)
            WHERE text_source = 'hybrid' AND accessibility_text <> ''
                AND EXISTS (SELECT 1 FROM ocr_text o WHERE o.frame_id = frames.id AND o.text <> '');
        DROP TABLE accessibility;
    """),
)

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
