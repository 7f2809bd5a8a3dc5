"""Every screenpipe era from 2024-08 to today, in databases migrated the way screenpipe migrated them and filled
the way that era's insert code filled them (engine.demo.screenpipe_history; bench/screenpipe_eras.py checks
those builders against screenpipe's own migration files). Each era extracts with the right rows, times, apps,
windows, speaker ids and source ids."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone

import pytest

from engine.clock import iso_utc
from engine.config import PipelineConfig
from engine.demo.screenpipe_history import ScreenpipeAt
from engine.extract import extract
from engine.sources.screenpipe import ScreenpipeReader

START = datetime(2024, 8, 10, 9, 0, 0, tzinfo=timezone.utc)
WINDOWS = [("Code", "client.py — weatherly"), ("Google Chrome", "Issue #42 · retry on 503 · acme/weatherly"),
           ("iTerm2", "pytest — weatherly")]


def screen(index: int) -> str:
    app, window = WINDOWS[index % 3]
    return (f"{window}: fetch_forecast retries a 503 answer with exponential backoff and jitter; attempt "
            f"{index} of the retry loop, the TTL cache is computed in UTC ({app})")


def transcript(index: int) -> str:
    return (f"standup {index}: we should retry the forecast call with backoff and jitter when the weather API is "
            "overloaded, and cache the answers for ten minutes")


def moment_of(day: date, index: int) -> datetime:
    # 0, 3, 6 and 9 fraction digits, as chrono writes them
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(
        hours=9, seconds=3 * index, microseconds=[0, 250_000, 123_456, 700_007][index % 4])


def config_for(tmp_path, db, **filtering) -> PipelineConfig:
    (tmp_path / "docs").mkdir(exist_ok=True)
    return PipelineConfig(raw={"paths": {"screenpipe_db": str(db), "git_repo": str(tmp_path / "repo")},
                               "document_sources": {"directories": [str(tmp_path / "docs")]},
                               "filtering": filtering}, base_dir=tmp_path)


@pytest.fixture
def repo(git_repo):
    builder = git_repo("repo")
    builder.commit("Add client", {"client.py": "\n".join(f"x{i} = {i}" for i in range(8))}, START)
    return builder


def sources(workspace) -> dict[str, tuple]:
    """source id -> (type, text, source timestamp, app, window, speaker id) as the workspace stores them."""
    conn = sqlite3.connect(workspace / "studio.db")
    try:
        return {row[0]: tuple(row[1:]) for row in conn.execute(
            "SELECT s.source_id, k.knowledge_type, k.text, s.timestamp, s.app_name, s.window_name, s.speaker_id"
            " FROM knowledge_sources s JOIN knowledge k ON k.id = s.knowledge_id"
            " WHERE k.knowledge_type != 'document'")}
    finally:
        conn.close()


# day, era label prefix, frames keep their window name, audio has a device, speakers exist, ui_monitoring exists
ERAS = [
    ("2024-08-10", "2024-08 (app on frames", False, False, False, False),
    ("2024-09-10", "2024-08 (app and window on ocr_text", True, False, False, False),
    ("2024-12-09", "2024-08 (app and window on ocr_text", True, True, True, True),
    ("2025-03-15", "2025-02", True, True, True, True),
    ("2026-02-25", "2026-02", True, True, True, True),
    ("2026-03-15", "2026-03", True, True, True, False),
]


@pytest.mark.parametrize(("day", "era", "windows", "devices", "speakers", "ui_monitoring"), ERAS,
                         ids=[era[0] for era in ERAS])
def test_each_era_extracts_rows_times_apps_windows_speakers_and_source_ids(
        tmp_path, repo, day, era, windows, devices, speakers, ui_monitoring):
    day = date.fromisoformat(day)
    db = tmp_path / "screenpipe" / "db.sqlite"
    with ScreenpipeAt(db, day) as writer:
        frame_ids = [writer.add_frame(moment_of(day, index), screen(index), *WINDOWS[index % 3])
                     for index in range(6)]
        speaker = writer.add_speaker("Dana") if speakers else None
        audio_ids = [writer.add_audio(moment_of(day, 10 + 11 * index), transcript(index), speaker_id=speaker)
                     for index in range(3)]
        if ui_monitoring:
            writer.add_ui_text(moment_of(day, 40), "Preferences — Retry policy: max attempts 3, base delay 500 ms, "
                               "jitter on, applies to every forecast request", "Code", "settings.json")
    assert frame_ids == [1, 2, 3, 4, 5, 6]
    assert audio_ids == [1, 2, 3]

    result = extract(config_for(tmp_path, db), tmp_path / "ws")
    assert result.screenpipe_era.startswith(era)
    stored = sources(tmp_path / "ws")
    expected_ocr = {f"ocr:{index + 1}": ("ocr", screen(index), iso_utc(moment_of(day, index)), WINDOWS[index % 3][0],
                                         WINDOWS[index % 3][1] if windows else None, None) for index in range(6)}
    expected_audio = {f"audio:{index + 1}": ("audio", transcript(index), iso_utc(moment_of(day, 10 + 11 * index)),
                                             None, "MacBook Pro Microphone" if devices else None,
                                             1 if speakers else None) for index in range(3)}
    expected_ui = {"ui:ui_monitoring:1": (
        "ui", "Preferences — Retry policy: max attempts 3, base delay 500 ms, jitter on, applies to every forecast "
        "request", iso_utc(moment_of(day, 40).replace(microsecond=0)), "Code", "settings.json", None)} \
        if ui_monitoring else {}
    assert stored == {**expected_ocr, **expected_audio, **expected_ui}
    counts = {report.source: (report.rows_read, report.kept) for report in result.reports}
    assert counts["screenpipe frames"] == (6, 6)
    assert counts["screenpipe audio"] == (3, 3)


def test_audio_rows_live_through_the_late_2024_rebuild_without_a_primary_key_and_its_repair(tmp_path, repo):
    """2024-12-07: audio_transcriptions rebuilt by CREATE TABLE AS (no primary key; new rows have id NULL);
    2024-12-10: rebuilt again with a primary key, every row numbered in table order. Nothing is read twice or lost,
    and the source ids the studio gave the keyless rows are the ids screenpipe gives them afterwards."""
    db = tmp_path / "db.sqlite"
    config, workspace = config_for(tmp_path, db), tmp_path / "ws"
    day = date(2024, 12, 6)
    with ScreenpipeAt(db, day) as writer:
        writer.add_frame(moment_of(day, 0), screen(0), *WINDOWS[0])
        speaker = writer.add_speaker("Maria")
        for index in range(3):
            writer.add_audio(moment_of(day, 40 * index), transcript(index))
    assert ScreenpipeReader(db).audio_ids_are_keys
    assert extract(config, workspace).reports[1].rows_read == 3

    with ScreenpipeAt(db, day) as writer:
        writer.migrate_to("2024-12-09")
        keyless = [writer.add_audio(moment_of(date(2024, 12, 9), 40 * index), transcript(3 + index),
                                    speaker_id=speaker) for index in range(2)]
        assert writer.conn.execute("SELECT COUNT(*) FROM audio_transcriptions WHERE id IS NULL").fetchone()[0] == 2
    assert keyless == [4, 5]
    reader = ScreenpipeReader(db)
    assert not reader.audio_ids_are_keys
    assert "without a primary key" in reader.era
    second = extract(config, workspace)
    assert second.reports[1].rows_read == 2

    with ScreenpipeAt(db, "2024-12-09") as writer:
        writer.migrate_to("2024-12-18")
        repaired = dict(writer.conn.execute("SELECT id, transcription FROM audio_transcriptions"))
        latest = writer.add_audio(moment_of(date(2024, 12, 18), 0), transcript(6), speaker_id=speaker)
    assert repaired == {index + 1: transcript(index) for index in range(5)}
    assert latest == 6
    third = extract(config, workspace)
    assert third.reports[1].rows_read == 1
    stored = sources(workspace)
    assert {key: value[1] for key, value in stored.items() if key.startswith("audio:")} == {
        **{f"audio:{index + 1}": transcript(index) for index in range(5)}, "audio:6": transcript(6)}
    assert [stored[f"audio:{index}"][5] for index in range(1, 7)] == [None, None, None, 1, 1, 1]


HYBRID_CHROME = "File Edit View Insert Format Tools Extensions Help Share Comments Meet Editing Outline"
HYBRID_OCR = ("Retry design (draft). Every forecast request retries a 503 answer with exponential backoff and "
              "jitter, at most three attempts; after that the cached forecast is served and a warning is logged. "
              "The TTL of the cache is computed in UTC, not local time, so midnight no longer serves stale data.")


def test_snapshot_frames_give_accessibility_ocr_and_hybrid_text_whole_before_and_after_full_text(tmp_path, repo):
    """2026-02-20 on: event-driven snapshot frames carry accessibility text, OCR text (a terminal), or from
    2026-03-09 both (text_source 'hybrid': the accessibility tree saw only the window chrome of a canvas app). The
    hybrid text is both parts, as screenpipe's own full_text (2026-03-11) joins them."""
    db = tmp_path / "db.sqlite"
    day = date(2026, 3, 10)
    with ScreenpipeAt(db, day) as writer:
        accessible = writer.add_snapshot(moment_of(day, 0), "Safari", "Retry-After — MDN",
                                         accessibility_text=screen(1), browser_url="https://developer.mozilla.org/")
        terminal = writer.add_snapshot(moment_of(day, 1), "iTerm2", "pytest", ocr_text=screen(2))
        hybrid = writer.add_snapshot(moment_of(day, 2), "Google Chrome", "Retry design - Google Docs",
                                     accessibility_text=HYBRID_CHROME, ocr_text=HYBRID_OCR)
        video = writer.conn.execute("SELECT COUNT(*) FROM frames WHERE video_chunk_id IS NOT NULL").fetchone()[0]
    assert video == 0
    result = extract(config_for(tmp_path, db), tmp_path / "before")
    assert result.screenpipe_era.startswith("2026-02")
    before = sources(tmp_path / "before")
    assert before[f"ocr:{accessible}"][1] == screen(1)
    assert before[f"ocr:{terminal}"][1] == screen(2)
    assert before[f"ocr:{hybrid}"][1] == f"{HYBRID_CHROME}\n{HYBRID_OCR}"
    assert len(before[f"ocr:{hybrid}"][1]) == len(HYBRID_CHROME) + 1 + len(HYBRID_OCR)
    assert before[f"ocr:{hybrid}"][3:5] == ("Google Chrome", "Retry design - Google Docs")

    with ScreenpipeAt(db, day) as writer:
        writer.migrate_to("2026-03-15")
        backfilled = writer.conn.execute("SELECT full_text FROM frames WHERE id = ?", (hybrid,)).fetchone()[0]
    assert backfilled == f"{HYBRID_CHROME}\n{HYBRID_OCR}"
    extract(config_for(tmp_path, db), tmp_path / "after")
    assert sources(tmp_path / "after") == before


def test_one_database_kept_up_to_date_from_2024_08_to_today_extracts_every_row_once(tmp_path, repo):
    """A user who installed screenpipe in August 2024 and updated it ever since: rows of every era in one file,
    read incrementally after each update and once from scratch; both give every row once with its own era's
    app, window and speaker."""
    db = tmp_path / "db.sqlite"
    config = config_for(tmp_path, db)
    incremental, expected_frames, expected_audio = tmp_path / "incremental", {}, {}
    days = ["2024-08-10", "2024-09-10", "2024-11-20", "2024-12-09", "2024-12-20", "2025-03-15", "2025-07-01",
            "2026-02-05", "2026-02-25", "2026-03-10", "2026-03-15"]
    writer = ScreenpipeAt(db, days[0])
    try:
        for step, day in enumerate(days):
            writer.migrate_to(day)
            when = date.fromisoformat(day)
            for index in range(3):
                number = 3 * step + index
                frame = writer.add_frame(moment_of(when, index), screen(number), *WINDOWS[number % 3])
                expected_frames[f"ocr:{frame}"] = screen(number)
            # speakers exist from 2024-11-18, audio_transcriptions.speaker_id from 2024-12-07
            speaker = writer.add_speaker(f"speaker {step}") if when >= date(2024, 11, 18) else None
            row = writer.add_audio(moment_of(when, 30), transcript(100 + step), speaker_id=speaker)
            expected_audio[f"audio:{row}"] = (transcript(100 + step), speaker if when >= date(2024, 12, 7) else None)
            writer.conn.commit()
            extract(config, incremental)
    finally:
        writer.close()
    from_scratch = tmp_path / "from-scratch"
    result = extract(config, from_scratch)
    assert result.screenpipe_era.startswith("2026-03")
    for workspace in (incremental, from_scratch):
        stored = sources(workspace)
        assert {key: value[1] for key, value in stored.items() if key.startswith("ocr:")} == expected_frames
        assert {key: (value[1], value[5]) for key, value in stored.items() if key.startswith("audio:")} == \
            expected_audio
    assert len(expected_frames) == 3 * len(days) and len(expected_audio) == len(days)
    assert sources(incremental) == sources(from_scratch)


def test_typed_keystrokes_in_ui_events_are_never_read(tmp_path, repo):
    """ui_events (2026-02 on) records clicks, keys and typed text: private, and not training material."""
    db = tmp_path / "db.sqlite"
    day = date(2026, 2, 25)
    typed = "hunter2-typed-into-the-login-form"
    with ScreenpipeAt(db, day) as writer:
        writer.add_frame(moment_of(day, 0), screen(0), *WINDOWS[0])
        for index, key in enumerate(typed):
            writer.add_ui_event(moment_of(day, 1) + timedelta(milliseconds=90 * index), "key", "Safari", "Sign in",
                                key_code=ord(key))
        writer.add_ui_event(moment_of(day, 2), "text", "Safari", "Sign in", text=typed * 5)
        writer.add_ui_event(moment_of(day, 3), "clipboard", "Safari", "Sign in", text=typed * 5)
    result = extract(config_for(tmp_path, db, min_knowledge_length=5), tmp_path / "ws")
    assert [report.source for report in result.reports if report.source.startswith("screenpipe")] == [
        "screenpipe frames", "screenpipe audio", "screenpipe ui_monitoring (legacy)",
        "screenpipe accessibility (legacy)"]
    assert list(sources(tmp_path / "ws")) == ["ocr:1"]
    for path in (tmp_path / "ws").rglob("*"):
        if path.is_file():
            assert typed.encode() not in path.read_bytes(), path
