"""The demo workspace builder: deterministic, realistic, and with a ground truth that holds."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import git
import pytest

from engine.demo import CONFIG_NAME, GROUND_TRUTH_NAME, PIPELINE_CONFIG, build_demo, is_complete
from engine.demo import content as story
from engine.errors import StudioError

TABLES = {
    "frames": "id",
    "ocr_text": "frame_id",
    "video_chunks": "id",
    "audio_chunks": "id",
    "audio_transcriptions": "id",
    "frames_fts": "id",
}
CODE_EXTENSIONS = tuple(PIPELINE_CONFIG["code_extensions"])


def _stamp(text: str) -> datetime:
    """Parse screenpipe's RFC 3339 stamps (0, 3, 6 or 9 fraction digits) to the microsecond."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{3,9}))?\+00:00", text)
    assert match, f"not a screenpipe timestamp: {text!r}"
    fraction = (match.group(2) or "").ljust(6, "0")[:6]
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")


def _rows(db: Path, table: str, order: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path, float]:
    first = tmp_path_factory.mktemp("one") / "demo"
    second = tmp_path_factory.mktemp("two") / "demo"
    started = time.perf_counter()
    build_demo(first)
    elapsed = time.perf_counter() - started
    build_demo(second)
    return first, second, elapsed


@pytest.fixture(scope="module")
def demo(builds) -> Path:
    return builds[0]


@pytest.fixture(scope="module")
def truth(demo) -> dict:
    return json.loads((demo / GROUND_TRUTH_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def frames(demo) -> dict[int, dict]:
    with sqlite3.connect(f"file:{demo / 'screenpipe/db.sqlite'}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM frames ORDER BY id").fetchall()
    return {row["id"]: dict(row) for row in rows}


@pytest.fixture(scope="module")
def audio(demo) -> dict[int, dict]:
    with sqlite3.connect(f"file:{demo / 'screenpipe/db.sqlite'}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audio_transcriptions ORDER BY id").fetchall()
    return {row["id"]: dict(row) for row in rows}


@pytest.fixture(scope="module")
def repo(demo) -> git.Repo:
    return git.Repo(demo / "repo")


def test_two_builds_are_identical(builds):
    first, second, _ = builds
    shas = [git.Repo(root / "repo").git.rev_list("--reverse", "main").split() for root in (first, second)]
    assert shas[0] == shas[1]
    for table, order in TABLES.items():
        rows = _rows(first / "screenpipe/db.sqlite", table, order)
        assert rows, table
        assert rows == _rows(second / "screenpipe/db.sqlite", table, order), table
    for name in (CONFIG_NAME, GROUND_TRUTH_NAME, *(f"docs/{doc}" for doc in story.DOCS)):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_build_is_fast(builds):
    assert builds[2] < 5.0


def test_config_is_the_seeds_format_with_relative_paths(demo):
    config = json.loads((demo / CONFIG_NAME).read_text(encoding="utf-8"))
    assert config == PIPELINE_CONFIG
    assert (demo / config["paths"]["screenpipe_db"]).is_file()
    assert (demo / config["paths"]["git_repo"] / ".git").is_dir()
    for directory in config["document_sources"]["directories"]:
        assert sorted(path.name for path in (demo / directory).iterdir()) == sorted(story.DOCS)


def test_screenpipe_database_is_the_current_schema_with_realistic_repetition(demo, frames, audio):
    assert 500 <= len(frames) <= 900
    assert 30 <= len(audio) <= 80
    with sqlite3.connect(f"file:{demo / 'screenpipe/db.sqlite'}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = {row[1] for row in conn.execute("PRAGMA table_info(frames)")}
        assert {"full_text", "snapshot_path", "app_name", "window_name", "browser_url"} <= columns
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "ui_monitoring" not in tables and "frames_fts" in tables
        ocr_frames = {row[0] for row in conn.execute("SELECT frame_id FROM ocr_text")}
    texts = [frame["full_text"] for frame in frames.values()]
    counts = {text: texts.count(text) for text in set(texts)}
    assert max(counts.values()) >= 5, "the same screen is captured many times"
    assert len(counts) < len(texts) / 2, "exact duplicates dominate, as in real screenpipe data"
    assert sum(len(text) < 100 for text in texts) >= 10, "junk frames under 100 characters"
    near = [text for text in counts if "Ln " in text and "Col " in text]
    assert len({re.sub(r"Ln \d+, Col \d+", "", text) for text in near}) < len(near), "near-duplicates (cursor moves)"
    snapshots = [frame for frame in frames.values() if frame["video_chunk_id"] is None]
    assert 10 <= len(snapshots) < len(frames)
    assert all(frame["snapshot_path"] and frame["id"] not in ocr_frames for frame in snapshots)
    assert all(frame["id"] in ocr_frames for frame in frames.values() if frame["video_chunk_id"] is not None)
    apps = {frame["app_name"] for frame in frames.values()}
    assert {"Google Chrome", "Code", "iTerm2", "Slack"} <= apps
    assert any(frame["browser_url"] and "/issues/12" in frame["browser_url"] for frame in frames.values())
    stamps = [_stamp(frame["timestamp"]) for frame in frames.values()]
    assert stamps == sorted(stamps), "frame ids follow capture time"
    assert stamps[0] >= datetime.fromisoformat("2026-10-05T00:00:00+00:00")
    assert stamps[-1] < datetime.fromisoformat("2026-11-14T00:00:00+00:00")
    assert len({stamp.microsecond for stamp in stamps}) > len(stamps) / 2
    transcripts = [row["transcription"] for row in audio.values()]
    assert len(set(transcripts)) < len(transcripts), "Whisper repeats some lines"
    assert {row["device"] for row in audio.values()} == {
        "MacBook Pro Microphone (input)",
        "MacBook Pro Speakers (output)",
    }


def test_repository_history(repo, truth):
    commits = list(repo.iter_commits("main", reverse=True))
    assert 20 <= len(commits) <= 40
    assert all(len(commit.parents) <= 1 for commit in commits), "no merge commits"
    assert not repo.is_dirty(untracked_files=True)
    times = [commit.committed_datetime for commit in commits]
    assert times == sorted(times)
    assert [commit.hexsha for commit in commits] == [entry["sha"] for entry in truth["commits"]]
    renames = binaries = 0
    wide = 0  # feature work touching many code files at once (translations, icons, providers, ...)
    for commit in commits:
        assert commit.author.email.endswith("@skycast.dev")
        diffs = commit.parents[0].diff(commit, M=True) if commit.parents else []
        renames += sum(diff.renamed_file for diff in diffs)
        binaries += sum(bool(diff.b_path and diff.b_path.endswith(".png")) for diff in diffs)
        stats = commit.stats.files
        code = {path: numbers for path, numbers in stats.items() if path.endswith(CODE_EXTENSIONS)}
        touched = [path for path in code if "=>" not in path]
        assert touched, commit.summary
        wide += len(touched) >= 5
        assert all(numbers["insertions"] >= 5 for path, numbers in code.items() if path in touched) or len(
            touched) <= 3, commit.summary  # each file of a wide commit is a training pair of its own
        assert sum(numbers["insertions"] for numbers in code.values()) >= 5, commit.summary
    assert renames >= 1
    assert binaries >= 1
    assert wide >= 5


def test_ground_truth_ids_exist_and_precede_their_commits(demo, truth, frames, audio, repo):
    assert truth["counts"]["frames"] == len(frames)
    assert truth["counts"]["audio"] == len(audio)
    empty = [entry for entry in truth["commits"] if not entry["knowledge"]]
    assert len(empty) == 2, "two commits have no knowledge on this machine"
    for entry in truth["commits"]:
        commit = repo.commit(entry["sha"])
        assert commit.summary == entry["subject"]
        committed = commit.committed_datetime
        for source_id in entry["knowledge"] + entry["hard_distractors"]:
            kind, _, ident = source_id.partition(":")
            if kind == "ocr":
                frame = frames[int(ident)]
                assert _stamp(frame["timestamp"]) < committed, (entry["subject"], source_id)
                assert len(frame["full_text"]) >= PIPELINE_CONFIG["filtering"]["min_knowledge_length"]
            elif kind == "audio":
                row = audio[int(ident)]
                assert _stamp(row["timestamp"]) < committed, (entry["subject"], source_id)
                assert len(row["transcription"]) >= PIPELINE_CONFIG["filtering"]["min_knowledge_length"]
            else:
                assert kind == "doc" and (demo / ident).is_file(), source_id
        assert not set(entry["knowledge"]) & set(entry["hard_distractors"])
        if entry["knowledge"]:
            assert any(source_id.startswith("ocr:") for source_id in entry["knowledge"]), entry["subject"]


def test_ground_truth_is_genuine(truth, frames):
    """Linked screens share what the commit offers: its issue number, or a file it changes."""
    for entry in truth["commits"]:
        texts = [frames[int(i.split(":")[1])] for i in entry["knowledge"] if i.startswith("ocr:")]
        issue = re.search(r"\(#(\d+)\)", entry["subject"])
        if issue:
            assert any(f"#{issue.group(1)}" in frame["full_text"] for frame in texts), entry["subject"]
        if texts:
            names = {Path(path).name for path in entry["files"]} | {Path(path).stem for path in entry["files"]}
            shared = [frame for frame in texts if any(name in frame["full_text"] for name in names)]
            assert shared or issue, entry["subject"]
    hard = {i for entry in truth["commits"] for i in entry["hard_distractors"]}
    assert len(hard) >= 10
    assert all(frames[int(i.split(":")[1])]["app_name"] in {"Google Chrome", "Slack"} for i in hard)


def test_existing_demo_is_reused_and_force_rebuilds(tmp_path):
    root = tmp_path / "demo"
    config = build_demo(root)
    assert config == root / CONFIG_NAME and is_complete(root)
    marker = root / "repo" / "marker"
    marker.write_text("still here")
    started = time.perf_counter()
    assert build_demo(root) == config
    assert time.perf_counter() - started < 0.5
    assert marker.exists()
    build_demo(root, force=True)
    assert not marker.exists() and is_complete(root)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo"], "no staging folders left behind"


def test_refuses_to_replace_a_folder_that_is_not_a_demo(tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(StudioError, match="not a demo workspace"):
        build_demo(precious, force=True)
    assert (precious / "todo.txt").read_text() == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes"]


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    import engine.demo as demo_module

    def broken_repo(*args, **kwargs):
        raise StudioError("git exploded")

    monkeypatch.setattr(demo_module, "_write_repo", broken_repo)
    with pytest.raises(StudioError, match="git exploded"):
        build_demo(tmp_path / "demo")
    assert list(tmp_path.iterdir()) == []
