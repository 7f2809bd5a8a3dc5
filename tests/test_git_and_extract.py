"""Git reader, documents, and `python -m engine extract` end to end, including every bad input."""

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine.sources.documents import read_documents
from engine.sources.git_log import read_commits
from engine.sources.report import SourceReport
from engine.store import Workspace
from tests.conftest import BASE_TIME, GIT_ENV, sample_frames, write_screenpipe

ROOT = Path(__file__).resolve().parent.parent
EMPTY_SHA1 = hashlib.sha1(b"").hexdigest()
CODE = [".py", ".ts"]


def code(lines: int, name: str = "x") -> str:
    return "\n".join(f"{name}_{i} = compute({i})" for i in range(lines)) + "\n"


@pytest.fixture
def history(git_repo):
    repo = git_repo("project")
    shas = [
        repo.commit("Add forecast client", {"client.py": code(8), "README.md": "# weatherly\n"}, BASE_TIME),
        repo.commit("Add logo", {"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)},
                    BASE_TIME + timedelta(hours=1)),
        repo.commit("Tweak one line", {"client.py": code(8).replace("_3 ", "_33 ")}, BASE_TIME + timedelta(hours=2)),
        repo.commit("Add cache with TTL", {"cache.py": code(12, "cache"), "web/app.ts": code(6, "ui")},
                    BASE_TIME + timedelta(hours=3)),
    ]
    repo.git("mv", "cache.py", "forecast_cache.py")
    (repo.path / "forecast_cache.py").write_text(code(12, "cache") + code(6, "extra"))
    repo.git("add", "forecast_cache.py")
    repo.git("commit", "-q", "-m", "Rename cache module and add expiry", when=BASE_TIME + timedelta(hours=4))
    shas.append(repo.git("rev-parse", "HEAD"))
    return repo, shas


def test_commits_files_renames_binaries_and_reasons(history):
    repo, shas = history
    report = SourceReport("git")
    commits = list(read_commits(repo.path, CODE, 5, 500, None, report))
    assert [c.sha for c in commits] == [shas[4], shas[3], shas[0]]  # newest first; binary-only and tiny skipped
    assert all(len(c.sha) == 40 for c in commits)
    renamed = commits[0].files[0]
    assert (renamed.path, renamed.old_path, renamed.change_type) == ("forecast_cache.py", "cache.py", "R")
    assert renamed.added_lines == 6 and "extra_0 = compute(0)" in renamed.added_code
    assert {f.path for f in commits[1].files} == {"cache.py", "web/app.ts"}
    first = commits[2].files[0]
    assert first.change_type == "A" and first.added_lines == 8 and first.diff.startswith("@@")
    assert report.rows_read == 5 and report.kept == 3
    assert report.skipped["file: binary"] == 1
    assert report.skipped["file: not a code file (code_extensions)"] == 1
    assert report.skipped["file: fewer than min_code_lines (5) added lines"] == 1


def test_max_commits_and_incremental_by_last_seen_commit(history):
    repo, shas = history
    report = SourceReport("git")
    assert [c.sha for c in read_commits(repo.path, CODE, 5, 2, None, report)] == [shas[4], shas[3]]
    # max_commits counts commits with code changes: the logo and one-line commits do not use up the budget
    report = SourceReport("git")
    assert [c.sha for c in read_commits(repo.path, CODE, 5, 3, None, report)] == [shas[4], shas[3], shas[0]]
    assert report.rows_read == 5 and report.kept == 3
    repo.commit("Add retry", {"retry.py": code(9, "retry")}, BASE_TIME + timedelta(hours=5))
    report = SourceReport("git")
    newer = list(read_commits(repo.path, CODE, 5, 500, shas[4], report))
    assert [c.message for c in newer] == ["Add retry"] and report.rows_read == 1


def test_odd_file_names_renames_deletions_and_messages_come_through_git_log(git_repo):
    """One `git log -p` stream is parsed: names with spaces (git ends them with a tab), non-ASCII and C-quoted names
    (a tab inside), a rename of such a file, a deletion and a mode change, a message holding the control characters
    the stream is cut at, and a root commit."""
    repo = git_repo("odd")
    root = repo.commit("Add the first module\n\nBody line one.\nBody line two.",
                       {"my file.py": code(6, "spaced"), "naïve.py": code(5, "naive"), "tab\tname.py": code(7, "tab")},
                       BASE_TIME)
    (repo.path / "run.py").write_text(code(6, "run"))
    repo.git("add", "run.py")
    repo.git("commit", "-q", "-m", "Add a runner\x1eS0000\x1e\x1f fake", when=BASE_TIME + timedelta(hours=1))
    repo.git("mv", "my file.py", "renamed file.py")
    (repo.path / "renamed file.py").write_text(code(6, "spaced") + code(5, "more"))
    repo.git("add", "renamed file.py")
    repo.git("rm", "-q", "naïve.py")
    repo.git("update-index", "--chmod=+x", "run.py")
    repo.git("commit", "-q", "-m", "Rename with a space, drop the naive module", when=BASE_TIME + timedelta(hours=2))
    report = SourceReport("git")
    commits = list(read_commits(repo.path, CODE, 5, 500, None, report))
    assert [c.message.split("\n")[0] for c in commits] == [
        "Rename with a space, drop the naive module", "Add a runner\x1eS0000\x1e\x1f fake", "Add the first module"]
    assert commits[2].sha == root and commits[2].message == "Add the first module\n\nBody line one.\nBody line two."
    assert {f.path for f in commits[2].files} == {"my file.py", "naïve.py", "tab\tname.py"}
    assert all(f.change_type == "A" and f.diff.startswith("@@") for f in commits[2].files)
    (renamed,) = commits[0].files
    assert (renamed.path, renamed.old_path, renamed.change_type, renamed.added_lines) == (
        "renamed file.py", "my file.py", "R", 5)
    assert report.skipped["file: deleted"] == 1
    assert report.skipped["file: fewer than min_code_lines (5) added lines"] == 1  # the mode change of run.py
    assert commits[1].timestamp.startswith("2026-03-02T10:00:00")


def test_a_commit_is_dated_when_it_was_written_not_when_it_was_rebased(git_repo):
    repo = git_repo("rebased")
    env = {"GIT_AUTHOR_DATE": "2026-03-02T09:00:00+0000", "GIT_COMMITTER_DATE": "2026-06-30T18:00:00+0000"}
    (repo.path / "late.py").write_text(code(6, "late"))
    repo.git("add", "late.py")
    subprocess.run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "Rebased months later"], cwd=repo.path,
                   env={**os.environ, **GIT_ENV, **env}, check=True)
    (commit,) = read_commits(repo.path, CODE, 5, 500, None, SourceReport("git"))
    assert commit.timestamp.startswith("2026-03-02T09:00:00")


def test_merge_commits_are_left_out(git_repo):
    repo = git_repo("merges")
    repo.commit("Base", {"a.py": code(6)}, BASE_TIME)
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("Feature work", {"b.py": code(6, "b")}, BASE_TIME + timedelta(hours=1))
    repo.git("checkout", "-q", "main")
    repo.commit("Main work", {"c.py": code(6, "c")}, BASE_TIME + timedelta(hours=2))
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "Merge branch 'feature'", when=BASE_TIME + timedelta(hours=3))
    messages = [c.message for c in read_commits(repo.path, CODE, 5, 500, None, SourceReport("git"))]
    assert sorted(messages) == ["Base", "Feature work", "Main work"]


def test_documents_with_path_and_mtime(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "retry.md").write_text("# Retry policy\n" + "Retry 503 responses with exponential backoff. " * 5)
    (docs / "sub" / "notes.txt").write_text("short")
    (docs / "image.png").write_bytes(b"\x89PNG")
    os.utime(docs / "retry.md", (1_772_000_000, 1_772_000_000))
    report = SourceReport("documents")
    found = list(read_documents([docs], [".md", ".txt"], 100, report))
    assert [d.source_id for d in found] == ["doc:docs/retry.md"]
    assert found[0].timestamp.startswith("2026-02-25T")
    assert report.skipped == {"shorter than min_knowledge_length (100)": 1}


# -- the CLI, end to end -----------------------------------------------------------------------------------------
def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def world(tmp_path, history):
    repo, _ = history
    db = write_screenpipe(tmp_path / "screenpipe" / "db.sqlite", sample_frames(200))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "api.md").write_text("# Forecast API\n" + "GET /forecast?city= returns hourly data. " * 6)
    config = {"paths": {"screenpipe_db": str(db), "git_repo": str(repo.path), "output_file": "out/data.jsonl"},
              "document_sources": {"directories": [str(docs)], "extensions": [".md"]},
              "studio": {"workspace": str(tmp_path / "workspace")}}
    path = tmp_path / "pipeline_config.json"
    path.write_text(json.dumps(config))
    return path, config


def test_extract_prints_per_source_counts_and_json(world, tmp_path):
    path, _ = world
    done = run_cli("extract", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "screenpipe frames" in done.stdout and "git project" in done.stdout and "documents" in done.stdout
    assert "skipped" in done.stdout and "shorter than min_knowledge_length (100)" in done.stdout
    again = run_cli("extract", "--config", str(path), "--json")
    report = json.loads(again.stdout)
    assert [s["rows_read"] for s in report["sources"]][:2] == [0, 0]
    assert report["commits"] == 3 and report["knowledge"]["ocr"]["sources"] == 160


def test_source_checks_cover_every_configured_source(world, tmp_path):
    from engine.config import PipelineConfig
    from engine.extract import inspect_sources

    path, raw = world
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text('{"messages": []}\n')
    (logs / "b.jsonl").write_text('{"messages": []}\n')
    config = PipelineConfig(raw={**raw, "collect": {"conversation_logs": [str(logs)]}}, base_dir=tmp_path)
    statuses = inspect_sources(config)
    assert [(status.kind, status.ok) for status in statuses] == [
        ("screenpipe", True), ("git", True), ("documents", True), ("conversations", True)]
    assert statuses[0].details["frames"] == 200 and statuses[3].details["files"] == 2
    missing = config.with_values({"collect.conversation_logs": [str(tmp_path / "gone.jsonl")]})
    broken = inspect_sources(missing)[3]
    assert broken.kind == "conversations" and not broken.ok and "gone.jsonl does not exist" in broken.message
    assert [status.kind for status in inspect_sources(PipelineConfig(raw=raw, base_dir=tmp_path))] == [
        "screenpipe", "git", "documents"]  # no conversation logs configured: no row for them


def test_help_lists_every_verb():
    done = run_cli("--help")
    assert done.returncode == 0
    listed = set(re.findall(r"^    (\w+)\s", done.stdout, re.MULTILINE))
    assert listed >= {"demo", "extract", "link", "validate", "review", "export", "widgets", "train", "deploy",
                      "generate", "probe", "collect", "stats", "scheduler", "api"}


def test_a_reader_that_leaves_early_is_not_a_traceback(world):
    # `python -m engine stats daily ... | head -1`: the pipe closes while the CLI still prints (~250 kB here).
    path, _ = world
    shell = subprocess.run(f"{sys.executable} -m engine stats daily --days 3650 --config {path} | head -1",
                           shell=True, cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert shell.stdout.startswith("Examples collected per day")
    assert shell.stderr == ""

def folder_digest(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def break_db_missing(config, tmp_path):
    config["paths"]["screenpipe_db"] = str(tmp_path / "nowhere" / "db.sqlite")


def break_db_not_sqlite(config, tmp_path):
    (tmp_path / "fake.sqlite").write_text("not a database at all " * 50)
    config["paths"]["screenpipe_db"] = str(tmp_path / "fake.sqlite")


def break_db_no_tables(config, tmp_path):
    import sqlite3

    conn = sqlite3.connect(tmp_path / "app.sqlite")
    conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()
    config["paths"]["screenpipe_db"] = str(tmp_path / "app.sqlite")


def break_repo_not_git(config, tmp_path):
    (tmp_path / "plain").mkdir()
    config["paths"]["git_repo"] = str(tmp_path / "plain")


def break_repo_empty(config, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    config["paths"]["git_repo"] = str(tmp_path / "empty")


def break_doc_dir(config, tmp_path):
    config["document_sources"]["directories"].append(str(tmp_path / "no-docs"))


@pytest.mark.parametrize(
    ("breaker", "sentence"),
    [
        (break_db_missing, "no screenpipe database at"),
        (break_db_not_sqlite, "is not an SQLite database"),
        (break_db_no_tables, "has no screenpipe tables"),
        (break_repo_not_git, "is not a git repository"),
        (break_repo_empty, "has no commits yet"),
        (break_doc_dir, "does not exist"),
        (None, "is not valid JSON"),
    ],
)
@pytest.mark.parametrize("workspace_state", ["fresh", "existing"])
def test_bad_inputs_end_with_one_sentence_and_leave_the_workspace_as_it_was(world, tmp_path, breaker, sentence,
                                                                            workspace_state):
    path, config = world
    workspace = Path(config["studio"]["workspace"])
    if workspace_state == "existing":
        assert run_cli("extract", "--config", str(path)).returncode == 0
    before = folder_digest(workspace)
    if breaker is None:
        path.write_text(json.dumps(config)[:-5])
    else:
        breaker(config, tmp_path)
        path.write_text(json.dumps(config))
    done = run_cli("extract", "--config", str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and sentence in lines[0]
    assert folder_digest(workspace) == before


def test_extract_never_writes_to_the_sources(world, tmp_path):
    path, config = world
    db = Path(config["paths"]["screenpipe_db"])
    repo = Path(config["paths"]["git_repo"])
    before = (folder_digest(db.parent), folder_digest(repo))
    assert run_cli("extract", "--config", str(path)).returncode == 0
    after = (folder_digest(db.parent), folder_digest(repo))
    # The database bytes are untouched. SQLite itself may leave the WAL bookkeeping files any reader of a WAL
    # database needs (an empty -wal and the -shm index); screenpipe has them open anyway while it runs.
    assert after[0]["db.sqlite"] == before[0]["db.sqlite"]
    assert after[0].get("db.sqlite-wal", EMPTY_SHA1) == EMPTY_SHA1
    assert set(after[0]) <= {"db.sqlite", "db.sqlite-wal", "db.sqlite-shm"}
    assert {k: v for k, v in after[1].items() if not k.startswith(".git/index")} == {
        k: v for k, v in before[1].items() if not k.startswith(".git/index")}


def test_workspace_migrations_are_recorded_once(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    version = workspace.schema_version()
    assert version >= 1
    assert Workspace.open(tmp_path / "ws").migrate() == []
    conn = workspace.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
