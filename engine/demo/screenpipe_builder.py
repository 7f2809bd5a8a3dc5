"""Build databases in screenpipe's real schema, for the demo workspace, tests and benchmarks.

`ScreenpipeWriter(path, era)` creates a database the way screenpipe of that era leaves it and inserts rows the
way that era's code does:
- "2024":    frames without app/window columns; app_name/window_name live in ocr_text (Aug 2024 - Feb 2025).
- "2025":    frames.app_name/window_name authoritative, ocr_text.app_name '' and window_name NULL, plus the
             legacy ui_monitoring table (Feb 2025 - Feb 2026).
- "current": the schema after the last migration (screenpipe_schema.sql, March 2026): frames.full_text,
             snapshot frames, frames_fts; ui_monitoring and accessibility are gone.
Timestamps are written as screenpipe writes them (RFC 3339 through chrono, with 0, 3, 6 or 9 fraction digits).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

ERAS = ("2024", "2025", "current")

_LEGACY_COMMON = """
CREATE TABLE video_chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, file_path TEXT NOT NULL,
    device_name TEXT NOT NULL DEFAULT '');
CREATE TABLE audio_chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, file_path TEXT NOT NULL, timestamp TIMESTAMP);
CREATE TABLE audio_transcriptions (id INTEGER PRIMARY KEY AUTOINCREMENT, audio_chunk_id INTEGER NOT NULL,
    offset_index INTEGER NOT NULL, timestamp TIMESTAMP NOT NULL, transcription TEXT NOT NULL,
    device TEXT NOT NULL DEFAULT '', is_input_device BOOLEAN NOT NULL DEFAULT TRUE, speaker_id INTEGER,
    transcription_engine TEXT NOT NULL DEFAULT 'Whisper', start_time REAL, end_time REAL,
    FOREIGN KEY (audio_chunk_id) REFERENCES audio_chunks(id));
CREATE TABLE ocr_text (frame_id INTEGER NOT NULL, text TEXT NOT NULL, text_json TEXT,
    app_name TEXT NOT NULL DEFAULT '', ocr_engine TEXT NOT NULL DEFAULT 'unknown', window_name TEXT,
    focused BOOLEAN DEFAULT FALSE, text_length INTEGER);
CREATE INDEX idx_ocr_text_frame_id ON ocr_text(frame_id);
CREATE INDEX idx_audio_transcriptions_timestamp ON audio_transcriptions(timestamp);
CREATE VIRTUAL TABLE ocr_text_fts USING fts5(text, app_name, window_name, frame_id UNINDEXED);
"""

_SCHEMA_2024 = _LEGACY_COMMON + """
CREATE TABLE frames (id INTEGER PRIMARY KEY AUTOINCREMENT, video_chunk_id INTEGER NOT NULL,
    offset_index INTEGER NOT NULL, timestamp TIMESTAMP NOT NULL, name TEXT,
    FOREIGN KEY (video_chunk_id) REFERENCES video_chunks(id));
CREATE INDEX idx_frames_timestamp ON frames(timestamp);
"""

_SCHEMA_2025 = _LEGACY_COMMON + """
CREATE TABLE frames (id INTEGER PRIMARY KEY AUTOINCREMENT, video_chunk_id INTEGER NOT NULL,
    offset_index INTEGER NOT NULL, timestamp TIMESTAMP NOT NULL, name TEXT, app_name TEXT DEFAULT NULL,
    window_name TEXT DEFAULT NULL, focused BOOLEAN DEFAULT NULL, browser_url TEXT DEFAULT NULL,
    device_name TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (video_chunk_id) REFERENCES video_chunks(id));
CREATE INDEX idx_frames_timestamp ON frames(timestamp);
CREATE TABLE ui_monitoring (id INTEGER PRIMARY KEY AUTOINCREMENT, text_output TEXT NOT NULL,
    timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, app TEXT NOT NULL, window TEXT NOT NULL,
    initial_traversal_at DATETIME, text_length INTEGER);
"""


def screenpipe_timestamp(moment: datetime) -> str:
    """RFC 3339 as chrono writes it: the fraction has 0, 3, 6 or 9 digits, whichever is shortest and exact."""
    moment = moment.astimezone(timezone.utc)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros == 0:
        fraction = ""
    elif micros % 1000 == 0:
        fraction = f".{micros // 1000:03d}"
    elif micros % 7 == 0:  # some rows carry nanoseconds, as chrono does on macOS clocks
        fraction = f".{micros:06d}{micros % 1000:03d}"
    else:
        fraction = f".{micros:06d}"
    return f"{base}{fraction}+00:00"


class ScreenpipeWriter:
    """Create (if needed) and fill a screenpipe database of one era. Use as a context manager."""

    def __init__(self, path: str | Path, era: str = "current"):
        if era not in ERAS:
            raise ValueError(f"era must be one of {ERAS}, not {era!r}")
        self.path = Path(path)
        self.era = era
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        if new:
            self.conn.executescript(self._schema())
        self.conn.execute("BEGIN")
        self._video_chunk = None
        self._audio_chunk = None
        self._offset = 0

    def _schema(self) -> str:
        if self.era == "2024":
            return _SCHEMA_2024
        if self.era == "2025":
            return _SCHEMA_2025
        return (Path(__file__).with_name("screenpipe_schema.sql")).read_text(encoding="utf-8")

    def __enter__(self) -> ScreenpipeWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close(commit=exc_info[0] is None)

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN")

    def close(self, commit: bool = True) -> None:
        self.conn.execute("COMMIT" if commit else "ROLLBACK")
        self.conn.close()

    def _chunk(self) -> int:
        if self._video_chunk is None or self._offset >= 300:
            cursor = self.conn.execute(
                "INSERT INTO video_chunks(file_path, device_name) VALUES (?, ?)",
                (f"/Users/dev/.screenpipe/data/monitor_1_{self._offset_chunk_name()}.mp4", "monitor_1"),
            )
            self._video_chunk, self._offset = cursor.lastrowid, 0
        self._offset += 1
        return self._video_chunk

    def _offset_chunk_name(self) -> str:
        count = self.conn.execute("SELECT COUNT(*) FROM video_chunks").fetchone()[0]
        return f"{count + 1:05d}"

    def add_frame(
        self,
        moment: datetime,
        text: str,
        app_name: str,
        window_name: str,
        browser_url: str | None = None,
        *,
        snapshot: bool = False,
    ) -> int:
        """Insert one captured frame with its text, as this era's screenpipe does; returns frames.id."""
        stamp = screenpipe_timestamp(moment)
        if self.era == "current" and snapshot:
            snapshot_path = f"/Users/dev/.screenpipe/data/snapshots/{stamp[:10]}/{stamp[11:19]}.jpg"
            frame_id = self.conn.execute(
                "INSERT INTO frames(video_chunk_id, offset_index, timestamp, name, app_name, window_name, focused,"
                " browser_url, device_name, snapshot_path, accessibility_text, capture_trigger, text_source,"
                " full_text) VALUES (NULL, 0, ?, ?, ?, ?, 1, ?, 'monitor_1', ?, ?, 'app_switch', 'accessibility', ?)",
                (stamp, snapshot_path, app_name, window_name, browser_url, snapshot_path, text, text),
            ).lastrowid
            return frame_id  # accessibility-only snapshots have no ocr_text row
        chunk = self._chunk()
        if self.era == "2024":
            frame_id = self.conn.execute(
                "INSERT INTO frames(video_chunk_id, offset_index, timestamp, name) VALUES (?, ?, ?, NULL)",
                (chunk, self._offset - 1, stamp),
            ).lastrowid
            self.conn.execute(
                "INSERT INTO ocr_text(frame_id, text, text_json, app_name, ocr_engine, window_name, focused,"
                " text_length) VALUES (?, ?, '[]', ?, 'AppleNative', ?, 1, ?)",
                (frame_id, text, app_name, window_name, len(text)),
            )
            return frame_id
        if self.era == "2025":
            frame_id = self.conn.execute(
                "INSERT INTO frames(video_chunk_id, offset_index, timestamp, name, app_name, window_name, focused,"
                " browser_url, device_name) VALUES (?, ?, ?, NULL, ?, ?, 1, ?, 'monitor_1')",
                (chunk, self._offset - 1, stamp, app_name, window_name, browser_url),
            ).lastrowid
        else:
            frame_id = self.conn.execute(
                "INSERT INTO frames(video_chunk_id, offset_index, timestamp, name, app_name, window_name, focused,"
                " browser_url, device_name, capture_trigger, text_source, full_text)"
                " VALUES (?, ?, ?, NULL, ?, ?, 1, ?, 'monitor_1', 'visual_change', 'ocr', ?)",
                (chunk, self._offset - 1, stamp, app_name, window_name, browser_url, text),
            ).lastrowid
        self.conn.execute(
            "INSERT INTO ocr_text(frame_id, text, text_json, app_name, ocr_engine, window_name, focused, text_length)"
            " VALUES (?, ?, '[]', '', 'AppleNative', NULL, 0, ?)",
            (frame_id, text, len(text)),
        )
        return frame_id

    def add_audio(
        self, moment: datetime, transcription: str, device: str = "MacBook Pro Microphone (input)",
        speaker_id: int | None = None,
    ) -> int:
        """Insert one audio transcription (a new 30 s chunk every 30 s of recording); returns its id."""
        stamp = screenpipe_timestamp(moment)
        if self._audio_chunk is None or self._audio_chunk[1] != stamp[:16]:
            cursor = self.conn.execute(
                "INSERT INTO audio_chunks(file_path, timestamp) VALUES (?, ?)",
                (f"/Users/dev/.screenpipe/data/audio_{stamp[:19].replace(':', '-')}.mp4", stamp),
            )
            self._audio_chunk = (cursor.lastrowid, stamp[:16])
        is_input = device.endswith("(input)")
        return self.conn.execute(
            "INSERT INTO audio_transcriptions(audio_chunk_id, offset_index, timestamp, transcription, device,"
            " is_input_device, speaker_id, transcription_engine, start_time, end_time)"
            " VALUES (?, 0, ?, ?, ?, ?, ?, 'WhisperLargeV3Turbo', 0.0, 30.0)",
            (self._audio_chunk[0], stamp, transcription, device, is_input, speaker_id),
        ).lastrowid

    def add_ui_text(self, moment: datetime, text: str, app: str, window: str) -> int:
        """Insert a legacy ui_monitoring row (2025 era only; the table was dropped in 2026)."""
        if self.era != "2025":
            raise ValueError("ui_monitoring exists only in the 2025 era")
        return self.conn.execute(
            "INSERT INTO ui_monitoring(text_output, timestamp, app, window, text_length) VALUES (?, ?, ?, ?, ?)",
            (text, moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), app, window, len(text)),
        ).lastrowid
