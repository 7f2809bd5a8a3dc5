"""`python -m bench screenpipe_eras --repo GIT_DIR [--out DIR]`: check the era builders and the reader against
screenpipe's own migration files.

Needs a fresh clone (or bare mirror) of github.com/screenpipe/screenpipe. For each date the tests use, it builds
two databases outside this repository (default /work/corpora/screenpipe-eras/):
- real: every migration file on screenpipe's main branch at that date, applied in the order the files reached
  main (then version order), each read from the commit where it first appeared, as an updated install got them;
- ours: engine.demo.screenpipe_history.ScreenpipeAt(path, date).
It compares the tables the reader uses (columns, order, types, NOT NULL, defaults, primary keys), then writes the
same rows into both with ScreenpipeAt's insert methods (into the real one without migrating it) and checks that
`extract` stores the same knowledge, source ids and speaker ids from both. Exit status 1 on any difference.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from engine.config import PipelineConfig
from engine.demo.screenpipe_history import ScreenpipeAt
from engine.extract import extract

DATES = ["2024-08-10", "2024-09-10", "2024-12-09", "2025-03-15", "2026-02-25", "2026-03-10", "2026-03-15"]
TABLES = ["video_chunks", "frames", "ocr_text", "audio_chunks", "audio_transcriptions", "speakers", "ui_monitoring",
          "accessibility", "ui_events"]
MIGRATION_DIRS = ["screenpipe-server/src/migrations", "screenpipe-db/src/migrations",
                  "crates/screenpipe-db/src/migrations"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def migration_history(repo: Path) -> list[tuple[str, str, str]]:
    """(first day on main, commit, path) per migration file, oldest first."""
    log = git(repo, "log", "--first-parent", "--reverse", "--format=C %H %cs", "--name-status", "--diff-filter=AR",
              "HEAD", "--", *MIGRATION_DIRS)
    seen, history, commit, day = set(), [], "", ""
    for line in log.splitlines():
        if line.startswith("C "):
            _, commit, day = line.split()
            continue
        if not line.strip():
            continue
        path = line.split("\t")[-1]
        if path not in seen:
            seen.add(path)
            history.append((day, commit, path))
    return history


def files_at(repo: Path, moment: str) -> tuple[str, list[str]]:
    commit = git(repo, "log", "--first-parent", "-1", "--format=%H", f"--before={moment}T23:59:59", "HEAD").strip()
    paths = []
    for directory in MIGRATION_DIRS:
        listing = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "--name-only", commit, f"{directory}/"],
                                 capture_output=True, text=True).stdout
        paths += [path for path in listing.splitlines() if path.endswith(".sql")]
    return commit, paths


def version_of(path: str) -> int:
    return int(Path(path).name.split("_")[0].replace(" ", ""))


def build_real(repo: Path, moment: str, target: Path) -> list[str]:
    """Apply the migration files present on main at `moment`, each in the order (first day on main, version)."""
    first_day: dict[int, str] = {}
    for day, _, path in migration_history(repo):
        first_day.setdefault(version_of(path), day)
    commit, paths = files_at(repo, moment)
    problems = []
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.create_function("vec_length", 1, lambda blob: len(blob) // 4)  # sqlite-vec, which screenpipe loads
    for path in sorted(paths, key=lambda item: (first_day.get(version_of(item), "9999"), version_of(item))):
        sql = git(repo, "show", f"{commit}:{path}")
        try:
            conn.executescript(sql)
        except sqlite3.Error as exc:
            problems.append(f"{Path(path).name}: {exc}")
    conn.close()
    return problems


def table_shape(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        return {table: [tuple(row[1:]) for row in conn.execute(f"PRAGMA table_info({table})")] for table in TABLES}
    finally:
        conn.close()


def fill(db: Path, moment: str, migrate: bool) -> None:
    """The same rows, in `moment`'s insert style: frames of three windows, audio with a speaker, legacy UI text."""
    day = date.fromisoformat(moment)
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=9)
    with ScreenpipeAt(db, day, migrate=migrate) as writer:
        for index in range(12):
            app, window = [("Code", "client.py - weatherly"), ("Google Chrome", "Issue #42 - acme/weatherly"),
                           ("iTerm2", "pytest")][index % 3]
            writer.add_frame(start + timedelta(seconds=2 * index, microseconds=index * 1500),
                             f"{window}: the forecast client retries 503 answers with backoff, attempt {index // 3} "
                             "of the retry loop in fetch_forecast, see the TTL cache notes", app, window)
        speaker = writer.add_speaker("Dana") if "speakers" in _tables(writer.conn) else None
        for index in range(4):
            writer.add_audio(start + timedelta(seconds=31 * index),
                             f"standup: we retry the forecast call with backoff, item {index % 2}", speaker_id=speaker)
        if "ui_monitoring" in _tables(writer.conn):
            writer.add_ui_text(start, "Preferences - Retry policy: max attempts 3, base delay 500 ms, jitter on, "
                               "applies to every forecast request", "Code", "settings.json")
        if day >= date(2026, 3, 9):
            writer.add_snapshot(start + timedelta(minutes=5), "Google Chrome", "Design - Google Docs",
                                accessibility_text="File Edit View Insert Format Tools Extensions Help Share",
                                ocr_text="Retry design: every forecast request retries 503 with exponential backoff "
                                         "and jitter, at most three attempts, then the cached forecast is served")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def extracted(db: Path, workspace: Path) -> tuple[dict, list]:
    (workspace.parent / "docs").mkdir(parents=True, exist_ok=True)
    repo = workspace.parent / "repo"
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        env = ["-c", "user.name=b", "-c", "user.email=b@example.com", "-c", "commit.gpgsign=false"]
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / "a.py").write_text("x = 1\n" * 8)
        subprocess.run(["git", *env, "-C", str(repo), "add", "a.py"], check=True)
        subprocess.run(["git", *env, "-C", str(repo), "commit", "-q", "-m", "Add a"], check=True)
    config = PipelineConfig(raw={"paths": {"screenpipe_db": str(db), "git_repo": str(repo)},
                                 "document_sources": {"directories": [str(workspace.parent / "docs")]},
                                 "filtering": {"min_knowledge_length": 20}}, base_dir=workspace.parent)
    result = extract(config, workspace)
    conn = sqlite3.connect(workspace / "studio.db")
    rows = sorted(tuple(row) for row in conn.execute(
        "SELECT s.source_id, k.knowledge_type, k.text, s.timestamp, s.app_name, s.window_name, s.speaker_id"
        " FROM knowledge_sources s JOIN knowledge k ON k.id = s.knowledge_id WHERE k.knowledge_type != 'document'"))
    conn.close()
    return {"era": result.screenpipe_era}, rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench screenpipe_eras", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="a clone's .git folder (or a bare mirror) of screenpipe")
    parser.add_argument("--out", default="/work/corpora/screenpipe-eras", help="where the databases go")
    args = parser.parse_args(argv)
    repo, out = Path(args.repo), Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    failures = 0
    for moment in DATES:
        folder = out / moment
        folder.mkdir()
        real, ours = folder / "real.sqlite", folder / "ours.sqlite"
        problems = build_real(repo, moment, real)
        ScreenpipeAt(ours, moment).close()
        real_shape, our_shape = table_shape(real), table_shape(ours)
        differences = [table for table in TABLES if real_shape[table] != our_shape[table]]
        fill(real, moment, migrate=False)
        fill(ours, moment, migrate=True)
        real_era, real_rows = extracted(real, folder / "ws-real")
        our_era, our_rows = extracted(ours, folder / "ws-ours")
        same = real_rows == our_rows and real_era == our_era
        failures += bool(differences) + (not same)
        print(f"{moment}: schema {'same' if not differences else 'DIFFERS in ' + ', '.join(differences)}; "
              f"extract {'same' if same else 'DIFFERS'} ({len(our_rows)} source rows, era {our_era['era']!r})"
              + (f"; real migrations that failed: {'; '.join(problems)}" if problems else ""))
        for table in differences:
            print(f"  {table}\n    real: {real_shape[table]}\n    ours: {our_shape[table]}")
        if not same:
            print(f"  real: {real_rows}\n  ours: {our_rows}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
