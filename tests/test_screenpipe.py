"""The screenpipe reader on real databases in the real schema of each era."""

import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from engine.demo.screenpipe_builder import ScreenpipeWriter
from engine.errors import SourceError
from engine.extract import extract
from engine.knowledge import content_hash
from engine.sources.screenpipe import ScreenpipeReader, parse_screenpipe_timestamp
from engine.store import Workspace
from tests.conftest import BASE_TIME, sample_frames


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:00:00+00:00", "2026-03-01T10:00:00+00:00"),
        ("2026-03-01T10:00:00.123+00:00", "2026-03-01T10:00:00.123000+00:00"),
        ("2026-03-01T10:00:00.123456+00:00", "2026-03-01T10:00:00.123456+00:00"),
        ("2026-03-01T10:00:00.123456789+00:00", "2026-03-01T10:00:00.123456+00:00"),
        ("2026-03-01 10:00:00", "2026-03-01T10:00:00+00:00"),
        ("2026-03-01T10:00:00.123Z", "2026-03-01T10:00:00.123000+00:00"),
        ("2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00+00:00"),
    ],
)
def test_every_timestamp_shape_screenpipe_writes_parses(text, expected):
    assert parse_screenpipe_timestamp(text).isoformat() == expected


def test_unparseable_timestamps_are_none():
    assert parse_screenpipe_timestamp("yesterday") is None
    assert parse_screenpipe_timestamp(None) is None


def knowledge_of(workspace_path):
    conn = Workspace.open(workspace_path).connect()
    items = {
        (row["knowledge_type"], row["content_hash"]): (row["text"], row["timestamp"], row["app_name"],
                                                       row["window_name"], row["source_count"])
        for row in conn.execute("SELECT * FROM knowledge")
    }
    sources = {row[0]: row[1] for row in conn.execute(
        "SELECT s.source_id, k.content_hash FROM knowledge_sources s JOIN knowledge k ON k.id = s.knowledge_id")}
    conn.close()
    return items, sources


def config_for(tmp_path, db, name, **screenpipe):
    from engine.config import PipelineConfig

    (tmp_path / "docs").mkdir(exist_ok=True)
    return PipelineConfig(raw={"paths": {"screenpipe_db": str(db), "git_repo": str(tmp_path / "repo")},
                               "document_sources": {"directories": [str(tmp_path / "docs")]},
                               "screenpipe": screenpipe}, base_dir=tmp_path), tmp_path / name


@pytest.fixture
def repo(git_repo):
    builder = git_repo("repo")
    builder.commit("Add client", {"client.py": "\n".join(f"x{i} = {i}" for i in range(8))}, BASE_TIME)
    return builder


@pytest.mark.parametrize("legacy_era", ["2024", "2025"])
def test_legacy_and_current_layouts_holding_the_same_frames_give_the_same_knowledge(
    tmp_path, screenpipe_db, repo, legacy_era
):
    frames = sample_frames(150)
    audio = [(BASE_TIME + timedelta(minutes=i), f"standup item {i % 3}: we should retry the forecast call with "
              "backoff when the API is overloaded, and cache results for ten minutes") for i in range(9)]
    results = {}
    for era in ("current", legacy_era):
        config, workspace = config_for(tmp_path, screenpipe_db(frames, era=era, audio=audio), f"ws-{era}")
        extract(config, workspace)
        results[era] = knowledge_of(workspace)
    assert results["current"] == results[legacy_era]
    items, sources = results["current"]
    assert len([key for key in items if key[0] == "ocr"]) > 10
    assert sources["ocr:1"] == content_hash(frames[0]["text"])
    ocr_item = items[("ocr", content_hash(frames[0]["text"]))]
    assert ocr_item[2:4] == ("Google Chrome", "Issue #42 · retry on 503 · acme/weatherly")
    assert len([key for key in items if key[0] == "audio"]) == 3  # 9 transcripts, 3 distinct texts


def test_exact_duplicates_are_stored_once_with_count_and_every_source_id(tmp_path, screenpipe_db, repo):
    text = ("Issue #7 — cache invalidation after midnight UTC returns stale forecasts for every city in the list, "
            "see the TTL code")
    frames = [{"moment": BASE_TIME + timedelta(seconds=2 * i), "text": text + ("  " if i % 2 else ""),
               "app": "Google Chrome", "window": "Issue #7"} for i in range(25)]
    config, workspace = config_for(tmp_path, screenpipe_db(frames), "ws")
    result = extract(config, workspace)
    items, sources = knowledge_of(workspace)
    assert len(items) == 1
    assert next(iter(items.values()))[4] == 25
    assert sorted(sources) == sorted(f"ocr:{i}" for i in range(1, 26))
    frames_report = result.reports[0]
    assert (frames_report.rows_read, frames_report.kept, frames_report.new_items, frames_report.duplicates) == (
        25, 25, 1, 24)


def test_second_extract_reads_only_the_100_new_frames(tmp_path, screenpipe_db, repo):
    db = screenpipe_db(sample_frames(500))
    config, workspace = config_for(tmp_path, db, "ws")
    first = extract(config, workspace)
    assert first.reports[0].rows_read == 500
    with ScreenpipeWriter(db) as writer:
        for frame in sample_frames(100, start=BASE_TIME + timedelta(hours=2), seed=2):
            writer.add_frame(frame["moment"], frame["text"] + " new", frame["app"], frame["window"])
    second = extract(config, workspace)
    assert second.reports[0].rows_read == 100
    assert second.reports[1].rows_read == 0  # no new audio
    third = extract(config, workspace)
    assert third.reports[0].rows_read == 0
    _, sources = knowledge_of(workspace)
    assert len([s for s in sources if s.startswith("ocr:")]) == sum(
        r.kept for r in (first.reports[0], second.reports[0]))


def test_a_frame_whose_text_is_not_written_yet_is_read_again_later(tmp_path, screenpipe_db, repo):
    db = screenpipe_db(sample_frames(40))
    conn = sqlite3.connect(db)
    stamp = "2026-03-02T09:02:30.5+00:00"
    frame_id = conn.execute(
        "INSERT INTO frames(video_chunk_id, offset_index, timestamp, app_name, window_name, device_name)"
        " VALUES (1, 99, ?, 'Code', 'app.py', 'monitor_1')", (stamp,)).lastrowid
    conn.commit()
    config, workspace = config_for(tmp_path, db, "ws")
    first = extract(config, workspace)
    assert first.reports[0].skipped["no text"] == 1
    long_text = "def late_ocr(): return 'the OCR of this frame arrived after the frame row itself' # " * 3
    conn.execute("INSERT INTO ocr_text(frame_id, text, app_name, ocr_engine) VALUES (?, ?, '', 'AppleNative')",
                 (frame_id, long_text))
    conn.commit()
    conn.close()
    second = extract(config, workspace)
    assert second.reports[0].rows_read == 1
    assert f"ocr:{frame_id}" in knowledge_of(workspace)[1]


def test_filters_skip_with_reasons(tmp_path, screenpipe_db, repo):
    db = screenpipe_db(sample_frames(100))
    config, workspace = config_for(
        tmp_path, db, "ws", apps_exclude=["slack"], windows_include=["*acme/weatherly*", "#weatherly-dev"],
        since="2026-03-02T09:01:00+00:00",
    )
    report = extract(config, workspace).reports[0]
    assert report.rows_read == 100
    assert report.skipped["outside the time range"] == 20
    assert report.skipped["app in apps_exclude"] > 0
    assert report.skipped["window not in windows_include"] > 0
    assert report.kept + report.skipped_total == 100
    items, _ = knowledge_of(workspace)
    assert all(value[2] != "Slack" for value in items.values())


def test_reader_never_opens_the_database_writable(screenpipe_db):
    reader = ScreenpipeReader(screenpipe_db())
    conn = reader.connect()
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        conn.execute("CREATE TABLE evil(x)")
    conn.close()


def test_info_reports_era_counts_range_and_top_apps(screenpipe_db):
    info = ScreenpipeReader(screenpipe_db(sample_frames(60))).info()
    assert info.era.startswith("2026-03")
    assert info.frames == 60
    assert info.first_timestamp.startswith("2026-03-02T09:00:00")
    assert info.top_apps[0][1] >= 12


def write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.sqlite", "no screenpipe database at"),
        (lambda p: write_bytes(p / "notes.sqlite", b"hello, this is not a database" * 100),
         "is not an SQLite database"),
        (lambda p: sqlite3.connect(p / "other.sqlite").execute("CREATE TABLE t(x)").connection.commit()
         or p / "other.sqlite", "has no screenpipe tables"),
    ],
)
def test_bad_databases_give_one_sentence(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        ScreenpipeReader(make(tmp_path))


WRITER = """
import sys, time
from datetime import datetime, timedelta, timezone
sys.path.insert(0, {root!r})
from engine.demo.screenpipe_builder import ScreenpipeWriter
start = datetime(2026, 3, 3, tzinfo=timezone.utc)
with ScreenpipeWriter({db!r}) as writer:
    for i in range(400):
        writer.add_frame(start + timedelta(seconds=i), f"live frame {{i}} " + "stack trace line in worker.py " * 5,
                         "iTerm2", "tail -f worker.log")
        writer.commit()
        time.sleep(0.005)
print("writer done")
"""


def test_extract_while_screenpipe_keeps_inserting(tmp_path, screenpipe_db, repo):
    from pathlib import Path

    db = screenpipe_db(sample_frames(300))
    config, workspace = config_for(tmp_path, db, "ws")
    root = str(Path(__file__).resolve().parent.parent)
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=root, db=str(db))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = 0
    try:
        while writer.poll() is None and runs < 50:
            extract(config, workspace)
            runs += 1
            time.sleep(0.05)
    finally:
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert "writer done" in out
    assert runs >= 2
    extract(config, workspace)
    _, sources = knowledge_of(workspace)
    assert len([s for s in sources if s.startswith("ocr:")]) == 400 + sum(
        1 for f in sample_frames(300) if len(f["text"]) >= 100)


def test_legacy_ui_monitoring_and_accessibility_text_is_read_where_present(tmp_path, repo):
    db = tmp_path / "legacy.sqlite"
    long_text = "Preferences — Retry policy: max attempts 3, base delay 500 ms, jitter on, applies to forecast requests"
    with ScreenpipeWriter(db, era="2025") as writer:
        writer.add_frame(BASE_TIME, long_text + " (frame)", "Code", "settings.json")
        for minute in range(3):
            writer.add_ui_text(BASE_TIME + timedelta(minutes=minute), long_text, "Code", "settings.json")
    conn = sqlite3.connect(db)  # the 2026-02 accessibility table, as a database of that month still had it
    conn.execute("CREATE TABLE accessibility (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp DATETIME NOT NULL,"
                 " app_name TEXT NOT NULL, window_name TEXT NOT NULL, text_content TEXT NOT NULL, browser_url TEXT)")
    conn.execute("INSERT INTO accessibility(timestamp, app_name, window_name, text_content, browser_url)"
                 " VALUES ('2026-03-02 09:10:00', 'Safari', 'Docs', ?, 'https://docs.example.com/retry')",
                 ("Accessibility tree text: Retry-After header handling for 429 and 503 responses in the client " * 2,))
    conn.commit()
    conn.close()
    config, workspace = config_for(tmp_path, db, "ws")
    result = extract(config, workspace)
    labels = [report.source for report in result.reports]
    assert "screenpipe ui_monitoring (legacy)" in labels and "screenpipe accessibility (legacy)" in labels
    items, sources = knowledge_of(workspace)
    assert {s for s in sources if s.startswith("ui:")} == {
        "ui:ui_monitoring:1", "ui:ui_monitoring:2", "ui:ui_monitoring:3", "ui:accessibility:1"}
    assert items[("ui", content_hash(long_text))][4] == 3
    assert items[("ui", content_hash(long_text))][1] == "2026-03-02T09:00:00.000000+00:00"
    assert result.screenpipe_era.startswith("2025-02")
