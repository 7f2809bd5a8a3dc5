"""`python -m bench extract [--frames N]`: read-and-store speed of `extract` on a big screenpipe database.

Builds (once, cached in bench/out/) a database in the current screenpipe schema with screenpipe-like repetition:
each screen is captured many times in a row, some with a changing clock. Then, in the same run:
- reference: the seed's Stage 1 query (frames JOIN ocr_text, LENGTH(text) > 100) fetched into Python dicts,
  with no deduplication and nothing stored;
- studio: `extract` into a fresh workspace (read, filter, parse timestamps, deduplicate, store with source ids);
- incremental: 1,000 new frames, then `extract` again.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from engine.config import PipelineConfig
from engine.demo.screenpipe_builder import ScreenpipeWriter
from engine.extract import extract

OUT = Path(__file__).parent / "out"
APPS = [("Google Chrome", "Issue #{n} · acme/api"), ("Code", "handler_{n}.py — api"), ("iTerm2", "pytest — api"),
        ("Slack", "#api-dev"), ("zoom.us", "Standup"), ("Notion", "Design doc {n}")]
WORDS = ("retry backoff cache invalidation timeout handler request response queue worker deploy rollback "
         "migration schema index latency token session refresh config flag metric alert trace span").split()


def build_database(path: Path, frames: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    with ScreenpipeWriter(path) as writer:
        index = 0
        while index < frames:
            app, window = rng.choice(APPS)
            screen = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
            window = window.format(n=rng.randint(1, 400))
            repeats = rng.randint(1, 30)  # the same screen captured every few seconds
            clock = rng.random() < 0.3  # near-duplicates: a clock in the menu bar changes
            for _ in range(min(repeats, frames - index)):
                moment = start + timedelta(seconds=2 * index, microseconds=rng.randint(0, 999_999))
                text = f"{screen} {moment:%H:%M}" if clock else screen
                writer.add_frame(moment, text, app, window)
                index += 1
                if index % 10_000 == 0:
                    writer.commit()


def reference_seed_query(db: Path) -> int:
    """The seed's extract_ocr_knowledge(): one JOIN, LENGTH(text) > 100, rows into dicts."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = conn.execute(
        "SELECT o.text, f.timestamp, f.app_name, f.window_name FROM ocr_text o JOIN frames f ON o.frame_id = f.id "
        "WHERE LENGTH(o.text) > 100 ORDER BY f.timestamp DESC"
    ).fetchall()
    entries = [{"text": t, "timestamp": ts, "app_name": a, "window_name": w} for t, ts, a, w in rows]
    conn.close()
    return len(entries)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench extract")
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    cached = OUT / f"screenpipe-{args.frames}.sqlite"
    if not cached.exists():
        began = time.perf_counter()
        build_database(cached.with_suffix(".tmp"), args.frames)
        cached.with_suffix(".tmp").rename(cached)
        print(f"built {cached} ({args.frames:,} frames) in {time.perf_counter() - began:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db.sqlite"
        shutil.copy(cached, db)
        repo = Path(tmp) / "repo"
        import subprocess

        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / "a.py").write_text("\n".join(f"x{i} = {i}" for i in range(10)))
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init"],
                       check=True)
        config = PipelineConfig(raw={"paths": {"screenpipe_db": str(db), "git_repo": str(repo)}}, base_dir=Path(tmp))

        began = time.perf_counter()
        reference_rows = reference_seed_query(db)
        reference_seconds = time.perf_counter() - began

        began = time.perf_counter()
        result = extract(config, Path(tmp) / "workspace")
        studio_seconds = time.perf_counter() - began
        frames = result.reports[0]

        with ScreenpipeWriter(db) as writer:
            moment = datetime(2026, 4, 1, tzinfo=timezone.utc)
            for i in range(1000):
                writer.add_frame(moment + timedelta(seconds=i), " ".join(WORDS) + f" new screen {i // 10}",
                                 "Code", "new.py")
        began = time.perf_counter()
        again = extract(config, Path(tmp) / "workspace")
        incremental_seconds = time.perf_counter() - began
        with contextlib.suppress(Exception):
            db.unlink()

    dup_ratio = frames.duplicates / max(1, frames.kept)
    print(f"frames in database:              {frames.rows_read:,}")
    print(f"kept (>= min_knowledge_length):  {frames.kept:,}")
    print(f"distinct texts stored:           {frames.new_items:,}")
    print(f"duplicate ratio:                 {dup_ratio:.3f} (kept frames whose text was already stored)")
    print(f"reference (seed query, no store): {reference_seconds:6.2f} s  {reference_rows / reference_seconds:>10,.0f}"
          " rows/s")
    print(f"studio extract (read + store):    {studio_seconds:6.2f} s  {frames.rows_read / studio_seconds:>10,.0f}"
          " frames/s")
    print(f"ratio studio/reference time:      {studio_seconds / reference_seconds:6.2f}x")
    print(f"incremental, 1,000 new frames:    {incremental_seconds:6.2f} s  (rows read: "
          f"{again.reports[0].rows_read:,})")
    return 0
