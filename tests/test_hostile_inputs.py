"""Hostile and faulty inputs (issue 15): every one gives one sentence and a non-zero exit, or a documented skip
count; never a traceback; nothing written outside the workspace; the workspace still passes PRAGMA
integrity_check with its counts intact. Devices and FIFOs are nodes each test makes in its own temp folder.

The screenpipe eras themselves are in tests/test_screenpipe_eras.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.demo.screenpipe_builder import ScreenpipeWriter
from engine.sources import screenpipe as screenpipe_module
from engine.sources.screenpipe import ScreenpipeReader
from tests.conftest import BASE_TIME, sample_frames

SECRET = "AKIAQWERTYUIOPASDF7Z"  # an AWS access key id shape: findable by grep, flagged by the sensitive scanner


# -- the world every case starts from --------------------------------------------------------------------------
class Studio:
    """A screenpipe database, a git repository, docs, a config and an extracted workspace under one temp folder."""

    def __init__(self, root: Path, git_repo):
        self.root = root
        self.db = root / "screenpipe" / "db.sqlite"
        with ScreenpipeWriter(self.db) as writer:
            for frame in sample_frames(40):
                writer.add_frame(frame["moment"], frame["text"], frame["app"], frame["window"], frame.get("url"))
        repo = git_repo("repo")
        repo.commit("Add forecast client with retries",
                    {"client.py": "".join(f"value_{i} = compute({i})\n" for i in range(8))}, BASE_TIME)
        self.repo = repo
        (root / "docs").mkdir()
        (root / "docs" / "retry.md").write_text("# Retries\n\n" + "Retry 503 answers with backoff and jitter. " * 5)
        self.workspace = root / "ws"
        self.config_path = root / "pipeline_config.json"
        self.write_config()
        assert main(["extract", "--config", str(self.config_path)]) == 0

    def write_config(self, **paths) -> Path:
        raw = {"paths": {"screenpipe_db": str(self.db), "git_repo": str(self.repo.path),
                         "output_file": str(self.root / "output" / "training_data.jsonl"), **paths},
               "document_sources": {"directories": [str(self.root / "docs")]},
               "studio": {"workspace": str(self.workspace)}}
        self.config_path.write_text(json.dumps(raw), encoding="utf-8")
        return self.config_path

    def state(self) -> dict:
        """integrity_check and the row count of every table of the workspace database."""
        conn = sqlite3.connect(self.workspace / "studio.db")
        try:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {"integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
                    **{table: conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}}
        finally:
            conn.close()

    def outside(self) -> dict[str, tuple]:
        """Every path under the temp folder but outside the workspace, with its kind, size and mtime."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            if path == self.workspace or self.workspace in path.parents:
                continue
            info = path.lstat()
            found[str(path.relative_to(self.root))] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)
        return found


@pytest.fixture
def studio(tmp_path, git_repo) -> Studio:
    return Studio(tmp_path, git_repo)


def one_sentence(capsys, code: int, *needles: str) -> str:
    """Assert a non-zero exit with exactly one `error:` line on stderr (containing every needle) and no
    traceback anywhere; return the sentence."""
    out, err = capsys.readouterr()
    assert code != 0, out + err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def unchanged(studio: Studio, before_state: dict, before_outside: dict) -> None:
    assert studio.state() == before_state
    assert before_state["integrity"] == "ok"
    assert studio.outside() == before_outside


def screenpipe_rows(db: Path, sql: str, params=()) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


# -- screenpipe ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["text", "blob"])
def test_a_screenpipe_row_that_is_not_utf8_is_skipped_and_counted_and_the_watermark_passes_it(
        studio, capsys, kind):
    """Defect 2: one undecodable row stopped extraction for good and printed its text in a traceback."""
    raw = b"login page: the key is " + SECRET.encode() + b" \xff\xfe\xfa and more text " + b"x" * 100
    value = f"CAST(X'{raw.hex()}' AS TEXT)" if kind == "text" else f"X'{raw.hex()}'"
    screenpipe_rows(studio.db, "INSERT INTO frames(video_chunk_id, offset_index, timestamp, app_name, window_name,"
                               " device_name) VALUES (1, 500, '2026-03-02T09:05:00+00:00', 'Safari', 'Sign in', 'm')")
    screenpipe_rows(studio.db, f"INSERT INTO ocr_text(frame_id, text, app_name, ocr_engine)"
                               f" VALUES ((SELECT MAX(id) FROM frames), {value}, '', 'AppleNative')")
    with ScreenpipeWriter(studio.db) as writer:  # a good frame after the bad one must still be read
        writer.add_frame(BASE_TIME + timedelta(minutes=6), "After the broken row: fetch_forecast retries 503 with "
                         "backoff, the cache TTL is computed in UTC, see client.py and cache.py", "Code", "cache.py")
    assert main(["extract", "--config", str(studio.config_path), "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)["sources"][0]
    assert report["skipped"]["text is not valid UTF-8"] == 1
    assert report["skipped_examples"]["text is not valid UTF-8"] == ["ocr:41"]
    assert report["rows_read"] == 2 and report["new_items"] == 1
    assert SECRET not in out + err and "Traceback" not in err
    assert main(["extract", "--config", str(studio.config_path), "--json"]) == 0
    again = json.loads(capsys.readouterr()[0])["sources"][0]
    assert again["rows_read"] == 0  # the watermark went past the bad row: no run is stuck on it
    assert studio.state()["integrity"] == "ok"


def test_a_10_mb_screen_text_is_stored_cut_to_the_cap(studio, capsys):
    """Defect 6 (the extract-time guard; capping what linking embeds is the linking rewrite's part)."""
    huge = ("stack trace line in worker.py retrying the forecast call with backoff " * 150_000)[:10_000_000]
    with ScreenpipeWriter(studio.db) as writer:
        writer.add_frame(BASE_TIME + timedelta(minutes=7), huge, "iTerm2", "tail -f worker.log")
    assert main(["extract", "--config", str(studio.config_path), "--json"]) == 0
    report = json.loads(capsys.readouterr()[0])["sources"][0]
    assert report["cut"] == 1
    assert any("cut to that length" in note for note in report["notes"])
    conn = sqlite3.connect(studio.workspace / "studio.db")
    longest = conn.execute("SELECT MAX(LENGTH(text)) FROM knowledge").fetchone()[0]
    conn.close()
    assert longest == screenpipe_module.MAX_TEXT_CHARS


@pytest.mark.parametrize(("table", "schema", "column"), [
    ("frames", "CREATE TABLE frames (id INTEGER PRIMARY KEY, captured_at TEXT, app_name TEXT)", "timestamp"),
    ("ocr_text", "CREATE TABLE frames (id INTEGER PRIMARY KEY, timestamp TEXT);"
                 " CREATE TABLE ocr_text (frame_id INTEGER, content TEXT)", "text"),
    ("audio_transcriptions", "CREATE TABLE audio_transcriptions (id INTEGER PRIMARY KEY, timestamp TEXT,"
                             " words TEXT)", "transcription"),
])
def test_a_screenpipe_database_with_missing_columns_is_one_sentence_naming_table_and_column(
        studio, capsys, table, schema, column):
    """Defect 9."""
    odd = studio.root / "odd" / "db.sqlite"
    odd.parent.mkdir()
    conn = sqlite3.connect(odd)
    conn.executescript(schema)
    conn.close()
    studio.write_config(screenpipe_db=str(odd))
    before, outside = studio.state(), studio.outside()
    code = main(["extract", "--config", str(studio.config_path)])
    one_sentence(capsys, code, f"the {table} table", f"no {column} column")
    unchanged(studio, before, outside)


def test_a_busy_rollback_journal_database_is_reported_busy_not_as_a_non_database(studio, capsys, monkeypatch):
    """Defect 11: screenpipe holding a write lock on a rollback-journal database."""
    monkeypatch.setattr(screenpipe_module, "BUSY_TIMEOUT_SECONDS", 0.3)
    legacy = studio.root / "legacy" / "db.sqlite"
    legacy.parent.mkdir()
    conn = sqlite3.connect(legacy, isolation_level=None)
    conn.execute("CREATE TABLE frames (id INTEGER PRIMARY KEY, timestamp TEXT)")
    studio.write_config(screenpipe_db=str(legacy))
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("INSERT INTO frames(timestamp) VALUES ('2026-03-02T09:00:00+00:00')")
    try:
        before, outside = studio.state(), studio.outside()
        code = main(["extract", "--config", str(studio.config_path)])
        sentence = one_sentence(capsys, code, "is busy", "try again")
        assert "not an SQLite database" not in sentence
        unchanged(studio, before, outside)
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def make_node(path: Path, kind: str) -> Path:
    """A FIFO, or a character device with /dev/zero's numbers, in the test's own folder."""
    if kind == "fifo":
        os.mkfifo(path)
    else:
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_as_the_screenpipe_database_is_refused_without_waiting(studio, capsys, kind):
    """Defect 12: a FIFO blocked forever on open; a /dev/zero-like device looped forever."""
    node = make_node(studio.root / f"{kind}.sqlite", kind)
    studio.write_config(screenpipe_db=str(node))
    before, outside = studio.state(), studio.outside()
    code = main(["extract", "--config", str(studio.config_path)])
    one_sentence(capsys, code, "is not a regular file")
    unchanged(studio, before, outside)


def test_reading_a_wal_database_screenpipe_has_closed_creates_nothing_beside_it(studio, capsys):
    """Defect 16: a read-only connection used to leave -wal and -shm (ours, not screenpipe's) in its folder."""
    folder = studio.db.parent
    with ScreenpipeWriter(studio.db) as writer:
        writer.add_frame(BASE_TIME + timedelta(minutes=9), "New after the first extract: the retry budget is "
                         "three attempts with jitter, then the cached forecast is served", "Code", "retry.py")
    assert sorted(path.name for path in folder.iterdir()) == ["db.sqlite"]  # screenpipe stopped: no side files
    listing = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert main(["extract", "--config", str(studio.config_path), "--json"]) == 0
    assert json.loads(capsys.readouterr()[0])["sources"][0]["new_items"] == 1
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == listing


def test_an_immutable_read_that_sees_screenpipe_start_writing_reads_the_batch_again(studio):
    """The immutable read is only trusted while nothing touches the file: a writer appearing mid-read (its -wal
    appears, a checkpoint changes the file) makes the reader re-read through a normal connection."""
    reader = ScreenpipeReader(studio.db)
    with reader.session() as session:
        assert session.immutable
        before = session.rows("SELECT COUNT(*) FROM frames")[0][0]
        writer = sqlite3.connect(studio.db)  # screenpipe starts and writes one frame; its -wal stays open
        writer.execute("INSERT INTO frames(video_chunk_id, offset_index, timestamp, device_name)"
                       " VALUES (1, 900, '2026-03-02T10:00:00+00:00', 'monitor_1')")
        writer.commit()
        try:
            assert session.rows("SELECT COUNT(*) FROM frames")[0][0] == before + 1
            assert not session.immutable
        finally:
            writer.close()


def test_side_files_a_read_must_create_get_the_database_owner_and_mode(studio):
    """When a -wal is left from a crash but its -shm is gone, a read-only connection has to create the -shm:
    it gets screenpipe's owner and permissions, not ours (SQLite's unix layer does this; the reader relies on it,
    as its docstring says, and this pins it)."""
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    crashed = studio.root / "crashed"
    crashed.mkdir()
    writer = sqlite3.connect(studio.db)
    writer.execute("INSERT INTO frames(video_chunk_id, offset_index, timestamp, device_name)"
                   " VALUES (1, 901, '2026-03-02T10:01:00+00:00', 'monitor_1')")
    writer.commit()
    for suffix in ("", "-wal"):  # copy the database and its live WAL, as a crash leaves them, without the -shm
        (crashed / f"db.sqlite{suffix}").write_bytes(Path(f"{studio.db}{suffix}").read_bytes())
    writer.close()
    db = crashed / "db.sqlite"
    for path in (db, Path(f"{db}-wal")):
        os.chown(path, 4321, 4321)
        os.chmod(path, 0o640)
    reader = ScreenpipeReader(db)
    assert reader.max_key("frames") == 41  # the WAL's frame is seen
    shm = Path(f"{db}-shm")
    assert shm.exists()
    info = shm.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4321, 0o640)


# -- the secret in a broken row (issue 13, the screenpipe reader's part) ----------------------------------------
def test_a_secret_in_a_row_that_fails_to_decode_reaches_no_output_history_log_or_api(studio, capsys):
    """The row is skipped, so its content goes nowhere: not into extract's or collect's output, the job history,
    the run logs, GET /api/scheduler/status, nor any file of the workspace."""
    from tests.test_api import ApiServer

    raw = b"Sign in - aws_access_key_id = " + SECRET.encode() + b" \xc3\x28 " + b"secret material " * 10
    screenpipe_rows(studio.db, "INSERT INTO frames(video_chunk_id, offset_index, timestamp, app_name, window_name,"
                               " device_name) VALUES (1, 501, '2026-03-02T09:05:00+00:00', 'Safari', ?, 'm')",
                    ("AWS console " + SECRET,))
    screenpipe_rows(studio.db, f"INSERT INTO ocr_text(frame_id, text, app_name, ocr_engine)"
                               f" VALUES ((SELECT MAX(id) FROM frames), CAST(X'{raw.hex()}' AS TEXT), '', 'x')")
    # the window name is readable and holds the key too: the row is skipped for its text, so that goes nowhere either
    outputs = []
    for argv in (["extract", "--config", str(studio.config_path)],
                 ["collect", "--config", str(studio.config_path)],
                 ["scheduler", "run", "--job", "mining_code", "--config", str(studio.config_path)],
                 ["scheduler", "status", "--config", str(studio.config_path)],
                 ["scheduler", "list", "--job", "mining_code", "--config", str(studio.config_path)]):
        assert main(argv) == 0, argv
        outputs.append("".join(capsys.readouterr()))
    conn = sqlite3.connect(studio.workspace / "studio.db")
    run_ids = [row[0] for row in conn.execute("SELECT id FROM job_runs")]
    conn.close()
    assert run_ids
    for run_id in run_ids:
        assert main(["scheduler", "log", "--run", str(run_id), "--config", str(studio.config_path)]) == 0
        outputs.append("".join(capsys.readouterr()))
    server = ApiServer(studio.config_path, studio.workspace, studio.root / "api.log")
    try:
        status, body = server.call("GET", "/api/scheduler/status")
    finally:
        server.stop()
    assert status == 200
    outputs.append(json.dumps(body))
    outputs.append((studio.root / "api.log").read_text())
    for output in outputs:
        assert SECRET not in output
    for path in studio.workspace.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

# -- outputs: what a path names is never replaced unless it is a regular file ---------------------------------------
@pytest.fixture
def pairs_file(studio) -> Path:
    """A training_data.jsonl of clean pairs (the seeds' shape) beside the studio."""
    from tests.data_sensitive import write_training_jsonl

    path = studio.root / "pairs" / "training_data.jsonl"
    path.parent.mkdir()
    write_training_jsonl(path, pairs=12, secrets=False)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "link-to-device"])
def test_validate_refuses_report_paths_that_are_not_regular_files_before_any_work(studio, capsys, pairs_file, kind):
    """Defect 1: a device, FIFO, folder (or a link to one) at --report/--json/--findings became a 0600 file."""
    target = studio.root / "report.txt"
    if kind == "folder":
        target.mkdir()
    elif kind == "link-to-device":
        target.symlink_to(make_node(studio.root / "zero", "device"))
    else:
        make_node(target, kind)
    before_mode = target.lstat().st_mode
    for flag in ("--report", "--json", "--findings"):
        before, outside = studio.state(), studio.outside()
        code = main(["validate", "--input", str(pairs_file), "--workspace", str(studio.workspace), flag, str(target)])
        one_sentence(capsys, code, str(target), "not a regular file")
        assert target.lstat().st_mode == before_mode  # still the node, the folder or the link it was
        unchanged(studio, before, outside)


def test_a_report_path_that_is_a_symlink_to_a_file_is_written_through(studio, capsys, pairs_file):
    real = studio.root / "reports" / "latest.txt"
    real.parent.mkdir()
    real.write_text("old report\n")
    link = studio.root / "report.txt"
    link.symlink_to(real)
    assert main(["validate", "--input", str(pairs_file), "--workspace", str(studio.workspace),
                 "--report", str(link)]) == 0
    capsys.readouterr()
    assert link.is_symlink() and link.resolve() == real
    assert "old report" not in real.read_text() and real.read_text().strip()


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_an_output_file_that_is_not_a_regular_file_is_refused_when_the_config_loads(studio, capsys, kind):
    """Defects 1 and 13: `link` replaced a device at paths.output_file (as root: /dev/null itself) and created
    data/ beside it; a folder gave a traceback."""
    node = studio.root / "sink" / "training_data.jsonl"
    node.parent.mkdir()
    if kind == "folder":
        node.mkdir()
    else:
        make_node(node, kind)
    studio.write_config(output_file=str(node))
    before, outside = studio.state(), studio.outside()
    for verb in (["link", "--no-extract"], ["extract"], ["validate"]):
        code = main([*verb, "--config", str(studio.config_path)])
        one_sentence(capsys, code, "`paths.output_file`", "not a regular file")
    assert sorted(path.name for path in node.parent.iterdir()) == ["training_data.jsonl"]  # no data/ beside it
    unchanged(studio, before, outside)


def test_write_atomic_refuses_devices_and_folders_on_the_way(tmp_path):
    from engine.errors import StudioError
    from engine.files import write_atomic

    device = make_node(tmp_path / "null", "device")
    with pytest.raises(StudioError, match="is a device, not a regular file"):
        write_atomic(device, "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StudioError, match="file is a regular file, not a folder"):
        write_atomic(tmp_path / "file" / "inside" / "out.json", "x")
    assert stat.S_ISCHR(device.lstat().st_mode) and (tmp_path / "file").read_text() == "x"


def test_exports_and_reports_follow_the_umask_and_a_replaced_file_keeps_its_mode(studio, capsys, pairs_file):
    """Defect 17: every file was created 0600, so teammates could not read an export or a report."""
    previous = os.umask(0o022)
    try:
        kept = studio.root / "kept.txt"
        kept.write_text("x")
        os.chmod(kept, 0o600)
        report = studio.root / "team" / "report.txt"
        assert main(["validate", "--input", str(pairs_file), "--workspace", str(studio.workspace),
                     "--report", str(report), "--json", str(kept)]) == 0
        assert main(["export", "--input", str(pairs_file), "--workspace", str(studio.workspace),
                     "--out", str(studio.root / "export")]) == 0
        capsys.readouterr()
        assert stat.S_IMODE(report.stat().st_mode) == 0o644
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        exported = sorted((studio.root / "export").iterdir())
        assert exported and all(stat.S_IMODE(path.stat().st_mode) == 0o644 for path in exported)
        os.umask(0o002)
        assert main(["validate", "--input", str(pairs_file), "--workspace", str(studio.workspace),
                     "--report", str(studio.root / "team" / "group.txt")]) == 0
        capsys.readouterr()
        assert stat.S_IMODE((studio.root / "team" / "group.txt").stat().st_mode) == 0o664
    finally:
        os.umask(previous)

# -- the workspace is busy, not broken --------------------------------------------------------------------------------
def test_a_workspace_busy_longer_than_the_timeout_is_reported_busy_and_left_intact(studio, capsys, monkeypatch):
    """Defect 8: the advice was to "move it away", which would throw away every review and run."""
    from engine import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_SECONDS", 0.3)
    with ScreenpipeWriter(studio.db) as writer:  # something new to store, so extract has to write
        writer.add_frame(BASE_TIME + timedelta(minutes=30), "A new screen: the retry budget dashboard shows three "
                         "attempts per forecast request and the cache hit rate", "Grafana", "Retries")
    before, outside = studio.state(), studio.outside()
    holder = sqlite3.connect(studio.workspace / "studio.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    try:
        for argv in (["extract", "--config", str(studio.config_path)],
                     ["scheduler", "run", "--job", "mining_code", "--config", str(studio.config_path)]):
            code = main(argv)
            sentence = one_sentence(capsys, code, "is busy", "try again")
            assert "move it away" not in sentence
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    unchanged(studio, before, outside)
    assert main(["extract", "--config", str(studio.config_path)]) == 0  # once free, the same run goes through
    capsys.readouterr()

# -- config values that used to crash later ----------------------------------------------------------------------------
@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("scheduler", "debounce_seconds", "Infinity", "a number of seconds from 0"),
    ("scheduler", "retry_delay_seconds", "1e300", "a number of seconds from 0"),
    ("filtering", "top_k_matches", "1000000000", "a whole number from 1 to 1000"),
    ("filtering", "top_k_matches", "1e9", "a whole number from 1 to 1000"),
    ("linking", "time_window_days", "Infinity", "a number of days above 0"),
    ("linking", "commit_offset_hours", "NaN", "a number of hours from 0"),
    ("confidence", "min_confidence", "NaN", "a number between 0 and 1"),
])
def test_config_numbers_that_crashed_later_are_refused_when_it_loads(studio, capsys, section, key, value, expected):
    """Defect 13: Infinity stopped the file watcher silently, 1e9 links per commit tried to allocate 89 GiB."""
    text = json.dumps(json.loads(studio.config_path.read_text()) | {section: {key: "PLACEHOLDER"}})
    studio.config_path.write_text(text.replace('"PLACEHOLDER"', value))
    before, outside = studio.state(), studio.outside()
    code = main(["extract", "--config", str(studio.config_path)])
    one_sentence(capsys, code, f"`{section}.{key}`", expected)
    unchanged(studio, before, outside)


def test_link_flags_out_of_range_are_a_usage_error(studio, capsys):
    for flag, value in (("--top-k", "1000000000"), ("--min-confidence", "nan")):
        with pytest.raises(SystemExit) as exit_info:
            main(["link", "--config", str(studio.config_path), flag, value])
        assert exit_info.value.code == 2
        assert f"error: argument {flag}" in capsys.readouterr()[1]

# -- the CLI's help --------------------------------------------------------------------------------------------------
def test_train_help_prints_its_text_not_a_dict(capsys):
    """Defect 18: an unescaped % in --grad-checkpoint's help made argparse print its own dict."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr()[0]
    assert "about 30% slower" in " ".join(out.split())
    assert "{'" not in out and "'option_strings'" not in out

# -- inputs: pipes and devices are never opened ----------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_validate_input_that_is_a_fifo_or_device_is_refused_without_waiting(studio, capsys, kind):
    """Defect 12: `validate --input` on a FIFO waited forever; on a /dev/zero-like device it looped."""
    node = make_node(studio.root / "pairs.jsonl", kind)
    before, outside = studio.state(), studio.outside()
    code = main(["validate", "--input", str(node), "--workspace", str(studio.workspace)])
    one_sentence(capsys, code, "is not a regular file")
    unchanged(studio, before, outside)

# -- JSON with lone surrogates -----------------------------------------------------------------------------------------
def test_a_lone_surrogate_in_a_conversation_log_is_a_skipped_line_not_a_crash(studio, capsys):
    """Defect 4: `"\\ud800"` is valid JSON but half a character: collect crashed (and every scheduled run after)."""
    log = studio.root / "conversations" / "chat.jsonl"
    log.parent.mkdir()
    good = {"messages": [{"role": "user", "content": "How do I retry a 503 answer with backoff?"},
                         {"role": "assistant", "content": "Wrap the call in a loop with exponential backoff and "
                                                          "jitter, and give up after three attempts."}]}
    bad = json.dumps(good).replace("How do I", "How do I \\ud800")
    log.write_text(json.dumps(good) + "\n" + bad + "\n", encoding="utf-8")
    raw = json.loads(studio.config_path.read_text())
    raw["collect"] = {"conversation_logs": [str(log)]}
    studio.config_path.write_text(json.dumps(raw))
    assert main(["collect", "--config", str(studio.config_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["total_new"] >= 1
    assert "lone surrogate" in json.dumps(result)
    assert main(["collect", "--config", str(studio.config_path)]) == 0  # and the next run too
    capsys.readouterr()
    assert studio.state()["integrity"] == "ok"


def test_a_lone_surrogate_in_a_pairs_file_is_an_unreadable_line_and_export_writes_a_whole_folder(
        studio, capsys, pairs_file):
    """Defect 4: export crashed after writing train.jsonl, leaving a half-written folder."""
    lines = pairs_file.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[3])
    record["output"] += "\ud800"
    lines[3] = json.dumps(record)  # ensure_ascii escapes it: "\ud800", valid JSON
    assert "\\ud800" in lines[3]
    pairs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_dir = studio.root / "export"
    assert main(["export", "--input", str(pairs_file), "--workspace", str(studio.workspace), "--out", str(out_dir),
                 "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["excluded"]["unreadable line"] == 1
    written = sorted(path.name for path in out_dir.iterdir())
    assert written == sorted(["export.json"] + [f"{name}.jsonl" for name, count in result["counts"].items() if count])
    assert sum(len((out_dir / f"{name}.jsonl").read_text().splitlines())
               for name, count in result["counts"].items() if count) == sum(result["counts"].values())
    assert main(["validate", "--input", str(pairs_file), "--workspace", str(studio.workspace), "--json",
                 str(studio.root / "report.json")]) == 0
    capsys.readouterr()
    bad = json.loads((studio.root / "report.json").read_text())["bad_lines"]
    assert [line["line"] for line in bad] == [4] and "lone surrogate" in bad[0]["error"]

# -- git ---------------------------------------------------------------------------------------------------------------
def test_a_shallow_clone_extracts_with_its_boundary_commit_read_as_a_root(studio, capsys):
    """Defect 3: `git clone --depth N` crashed extract with `bad object` on the boundary commit's parent."""
    for index in range(4):
        studio.repo.commit(f"Add the retry module part {index}",
                           {f"retry_{index}.py": "".join(f"step_{i} = backoff({i})\n" for i in range(7))},
                           BASE_TIME + timedelta(hours=index + 1))
    shallow = studio.root / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{studio.repo.path}", str(shallow)], check=True,
                   capture_output=True)
    assert (shallow / ".git" / "shallow").exists()
    studio.write_config(git_repo=str(shallow))
    assert main(["extract", "--config", str(studio.config_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    git_report = next(report for report in json.loads(out)["sources"] if report["source"] == "git shallow")
    assert git_report["rows_read"] == 2 and git_report["kept"] == 2
    assert any("shallow clone" in note for note in git_report["notes"])
    assert studio.state()["integrity"] == "ok"

# -- widget archives and manifests ------------------------------------------------------------------------------------
def write_zip(path: Path, members: dict[str, str]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def widgets_folder(root: Path, entries: list[dict]) -> Path:
    folder = root / "widgets"
    folder.mkdir(exist_ok=True)
    (folder / "widget_list.json").write_text(json.dumps({"widgets": entries}))
    return folder


def test_an_archive_member_2000_folders_deep_fails_that_widget_alone_and_the_log_is_written(tmp_path, capsys):
    """Defect 5: one such member aborted the whole download with a RecursionError and no download log."""
    folder = widgets_folder(tmp_path, [{"id": "deep", "downloadUrl": "gallery/deep.zip"},
                                       {"id": "clock", "downloadUrl": "gallery/clock.zip"}])
    write_zip(folder / "gallery" / "deep.zip", {"Deep.widget/index.jsx": "export const render = () => 1",
                                                "a/" * 2000 + "index.jsx": "x"})
    write_zip(folder / "gallery" / "clock.zip", {"Clock.widget/index.jsx": "export const render = () => 2"})
    code = main(["widgets", "download", "--manifest", str(folder / "widget_list.json"),
                 "--downloads", str(folder / "downloads")])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err and "RecursionError" not in err
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and "2,001 folders deep" in failed[0] and len(failed[0]) < 400
    log = json.loads((folder / "downloads" / ".download_log.json").read_text())
    assert log["deep"]["status"] == "failed" and log["clock"]["status"] == "downloaded"
    assert not (folder / "downloads" / "deep").exists()


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "http://10.1.2.3/w.zip",
    "http://192.168.0.10/w.zip", "http://127.0.0.1:9/w.zip", "http://localhost:9/w.zip", "http://[::1]:9/w.zip",
    "http://[fd00::1]/w.zip", "http://0.0.0.0/w.zip", "file:///etc/passwd", "/etc/passwd", "../../secret.zip",
    "~/secret.zip", "ftp://example.com/w.zip",
])
def test_a_strangers_manifest_cannot_make_the_downloader_fetch_private_or_local_things(tmp_path, capsys, url):
    """Defect 7: only http(s) to public hosts (loopback when asked for), no local paths outside the manifest."""
    folder = widgets_folder(tmp_path, [{"id": "w", "downloadUrl": url}])
    code = main(["widgets", "download", "--manifest", str(folder / "widget_list.json"),
                 "--downloads", str(folder / "downloads"), "--retries", "0", "--timeout", "2"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    reason = next(line for line in err.splitlines() if line.startswith("failed: w: "))
    assert any(words in reason for words in ("private, loopback or link-local", "outside the manifest's folder",
                                             "only http(s) URLs")), reason
    assert not any(path.name == "w" for path in (folder / "downloads").iterdir())


class Redirector:
    """A loopback server: /same redirects within the host, /cross to the same machine by another name."""

    def __init__(self, archive: bytes):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                if self.path == "/same":
                    self.send_response(302)
                    self.send_header("Location", "/files/w.zip")
                elif self.path == "/cross":
                    self.send_response(302)
                    self.send_header("Location", f"http://localhost:{outer.port}/files/w.zip")
                elif self.path == "/files/w.zip":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(archive)))
                else:
                    self.send_response(404)
                self.end_headers()
                if self.path == "/files/w.zip":
                    self.wfile.write(archive)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_redirects_are_followed_within_the_host_only(tmp_path):
    from engine.uebersicht.download import DownloadLimits, download_widgets
    from engine.uebersicht.manifest import parse_manifest

    archive = write_zip(tmp_path / "w.zip", {"W.widget/index.jsx": "export const render = () => 1"}).read_bytes()
    server = Redirector(archive)
    try:
        manifest = parse_manifest({"widgets": [
            {"id": "same", "downloadUrl": f"http://127.0.0.1:{server.port}/same"},
            {"id": "cross", "downloadUrl": f"http://127.0.0.1:{server.port}/cross"}]})
        limits = DownloadLimits(timeout=5, retries=0, allow_loopback=True)
        report = download_widgets(manifest.widgets, tmp_path / "downloads", limits)
    finally:
        server.close()
    by_id = {result.widget_id: result for result in report.results}
    assert by_id["same"].status == "downloaded"
    assert by_id["cross"].status == "failed" and "redirects to another host (localhost)" in by_id["cross"].reason


@pytest.mark.parametrize(("flag", "value"), [("--timeout", "-1"), ("--timeout", "nan"), ("--max-expanded-mb", "nan"),
                                             ("--max-expanded-mb", "inf"), ("--retries", "-3"), ("--workers", "0")])
def test_widget_download_flags_out_of_range_are_a_usage_error(tmp_path, capsys, flag, value):
    """Defect 14: `--timeout -1` and `--max-expanded-mb nan` gave tracebacks."""
    with pytest.raises(SystemExit) as exit_info:
        main(["widgets", "download", "--manifest", str(tmp_path / "none.json"), flag, value])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert f"error: argument {flag}: " in err.splitlines()[-1]

# -- training data -------------------------------------------------------------------------------------------------
def test_a_train_jsonl_that_is_not_utf8_is_one_sentence_in_the_cli_and_not_a_500_in_the_api(studio, capsys):
    """Defect 10: a traceback in the CLI; HTTP 500 from GET /api/training and GET /api/self."""
    from tests.test_api import ApiServer

    collected = studio.workspace / "datasets" / "collected"
    collected.mkdir(parents=True)
    (collected / "train.jsonl").write_bytes(b'{"text": "caf\xe9 and more"}\n' * 3)
    (collected / "valid.jsonl").write_bytes(b'{"text": "fine"}\n')
    before, outside = studio.state(), studio.outside()
    code = main(["train", "--workspace", str(studio.workspace), "--data", str(collected)])
    one_sentence(capsys, code, "train.jsonl line 1 is not UTF-8")
    unchanged(studio, before, outside)
    server = ApiServer(studio.config_path, studio.workspace, studio.root / "api.log")
    try:
        for path in ("/api/training", "/api/self"):
            status, body = server.call("GET", path)
            assert status == 200, (path, body)
        status, body = server.call("GET", "/api/training")
        assert "is not UTF-8" in body["data"]["readiness"]["exported"]["problem"]
        # defect 15: bodies are capped, and an id is cut when a message names it
        for chunked in (False, True):
            status, body = post_huge(server.base, "/api/scheduler/run", 50_000_000, chunked)
            assert status == 413 and "larger than 64 KB" in body["error"], chunked
        status, body = server.call("POST", "/api/scheduler/run", {"job_id": "y" * 60_000})
        assert status == 404 and len(body["error"]) < 300 and "yyyy…" in body["error"]
        status, body = server.call("GET", "/api/" + "z" * 5000)
        assert status == 404 and len(body["error"]) < 300
    finally:
        server.stop()
    log = (studio.root / "api.log").read_text()
    assert "Traceback" not in log


def post_huge(base: str, path: str, size: int, chunked: bool = False) -> tuple[int, dict]:
    """Send a `size`-byte JSON body (announced, or chunked), as far as the server takes it, and read the answer: a
    server that refuses the body answers before reading it all."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    body = b'{"job_id": "' + b"x" * (size - 16) + b'"}'
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"{framing}\r\nConnection: close\r\n\r\n".encode())
        try:
            for start in range(0, len(body), 1 << 20):
                piece = body[start:start + (1 << 20)]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        except OSError:
            pass  # the server answered and closed before taking it all
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    head, _, text = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(text[text.index(b"{"):text.rindex(b"}") + 1])


@pytest.mark.timeout(300)
def test_training_without_valid_jsonl_completes(tmp_path):
    """Defect 10: the launcher said a missing valid.jsonl only means no validation loss, then the run crashed."""
    from engine.store import Workspace
    from engine.training.launcher import plan_run
    from tests.tiny_model import build_tiny_model, train_tiny, write_data_folder

    model = build_tiny_model(tmp_path / "model")
    data = write_data_folder(tmp_path / "data", valid=0, test=0)
    plan = plan_run(data, str(model), preset="quick", force=True)
    assert plan.data.valid == 0 and any("no valid.jsonl" in warning for warning in plan.warnings)
    run = train_tiny(Workspace.open(tmp_path / "ws"), data, model)
    assert run.status == "completed"
    assert run.evaluation["generation"]["samples"]  # prompts came from train.jsonl, there being no held-out split
