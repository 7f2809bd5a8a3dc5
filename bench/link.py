"""`python -m bench link [--commits 166] [--frames 10000] [--audio 500]`: linking at the seed's scale.

Builds (once, cached in bench/out/link-world-*) the labelled world of tests/linking_fixtures.py at the seed's scale:
a screenpipe database with 10,000 OCR frames (screens captured many times in a row, some with a ticking clock),
500 audio rows, design docs, and a git repository of 166 commits whose true knowledge is known. Then, in one process:
- cold: extract + link (`best`) into a fresh workspace, model import and load included;
- warm re-run after 100 new frames: extract (incremental) + link again, the model already loaded;
- the same re-run in a fresh `python -m engine link` process (imports paid again, for honesty);
- threshold change: re-filter >= 100,000 stored scored links at a new min_confidence (what the page's slider does);
- quality: precision and recall of semantic / hybrid / best at their defaults against the ground truth.
Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).parent / "out"


def _world(commits: int, frames: int, audio: int):
    from tests.linking_fixtures import build_labelled_world

    root = OUT / f"link-world-{commits}-{frames}-{audio}"
    marker = root / "ground_truth.json"
    if not marker.exists():
        if root.exists():
            shutil.rmtree(root)
        build_labelled_world(root, commits=commits, seed=7, target_frames=frames, audio_rows=audio)
    return root


def _add_frames(db: Path, count: int, batch: int) -> None:
    """`count` new frames after the last one: ten captures each of count / 10 new screens (new text per batch)."""
    import sqlite3

    from engine.demo.screenpipe_builder import ScreenpipeWriter
    from engine.sources.screenpipe import parse_screenpipe_timestamp

    with sqlite3.connect(db) as conn:
        last = parse_screenpipe_timestamp(conn.execute("SELECT MAX(timestamp) FROM frames").fetchone()[0])
    with ScreenpipeWriter(db) as writer:
        for index in range(count):
            moment = last + timedelta(seconds=2 * (index + 1))
            screen = batch * 1000 + index // 10
            writer.add_frame(moment, f"Terminal ~/code/api pytest -q run {screen}: 212 passed, 3 skipped in "
                                     f"{40 + screen}.2s, coverage 91 percent, ready to push branch fix-{screen}",
                             "iTerm2", f"pytest — api — run {screen}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench link")
    parser.add_argument("--commits", type=int, default=166)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--audio", type=int, default=500)
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    root = _world(args.commits, args.frames, args.audio)
    print(f"world: {root} (built or reused in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    work = OUT / "link-run"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(root, work, ignore=shutil.ignore_patterns("workspace", "output"))
    config_path = work / "pipeline_config.json"

    cold_started = time.perf_counter()
    cpu_started = time.process_time()
    from engine.config import PipelineConfig
    from engine.extract import extract
    from engine.linking.accuracy import evaluate_run, load_truth
    from engine.linking.embedder import load_embedder
    from engine.linking.link import filter_links, link_counts, load_run_tables
    from engine.pipeline import link_and_write

    config = PipelineConfig.load(config_path)
    workspace = work / "workspace"
    extracted = extract(config, workspace)
    extract_seconds = time.perf_counter() - cold_started
    embedder = load_embedder(config.get("linking.model"))
    import_started = time.perf_counter()
    runtime = embedder.prepare(10**6)  # the runtime a bulk job uses, loaded and timed on its own
    if runtime == "onnx":
        embedder.onnx_model  # noqa: B018
    else:
        embedder.model  # noqa: B018  (imports torch + sentence-transformers)
    load_seconds = time.perf_counter() - import_started
    cold = link_and_write(config, workspace, "best", embedder=embedder)
    cold_seconds = time.perf_counter() - cold_started
    cold_cpu = time.process_time() - cpu_started

    import sqlite3

    with sqlite3.connect(work / "screenpipe.sqlite") as conn:
        frames_total = conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        audio_total = conn.execute("SELECT COUNT(*) FROM audio_transcriptions").fetchone()[0]

    _add_frames(work / "screenpipe.sqlite", 100, batch=1)
    warm_started = time.perf_counter()
    extract(config, workspace)
    warm = link_and_write(config, workspace, "best", embedder=embedder)
    warm_seconds = time.perf_counter() - warm_started

    _add_frames(work / "screenpipe.sqlite", 100, batch=2)
    fresh_started = time.perf_counter()
    fresh = json.loads(subprocess.run(
        [sys.executable, "-m", "engine", "link", "--config", str(config_path), "--json"], check=True,
        capture_output=True, text=True, cwd=Path(__file__).parent.parent).stdout)["link"]
    fresh_seconds = time.perf_counter() - fresh_started

    truth = load_truth(work / "ground_truth.json")
    quality = {}
    for mode in ("semantic", "hybrid", "best"):
        result = link_and_write(config, workspace, mode, embedder=embedder, write_outputs=False)
        quality[mode] = evaluate_run(workspace, result.run_id, truth, result.min_confidence, result.top_k)

    many = link_and_write(config, workspace, "best", embedder=embedder, candidates=-(-100_000 // cold.commits),
                write_outputs=False)
    tables = load_run_tables(workspace, many.run_id)
    timings = []
    for step in range(40):
        threshold = 0.3 + 0.01 * step
        began = time.perf_counter()
        filter_links(tables.links, threshold, 3)
        counts = link_counts(tables, threshold, 3)
        timings.append((time.perf_counter() - began) * 1000)

    load_now = os.getloadavg()[0]
    link_total = sum(cold.seconds.values())
    link_parts = ", ".join(f"{name} {value:.1f}" for name, value in cold.seconds.items())
    ocr = extracted.knowledge.get("ocr", {})
    print(f"""### Linking (`python -m bench link`, {time.strftime('%Y-%m-%d %H:%M')})

World: {frames_total:,} OCR frames, {audio_total:,} audio rows, {cold.commits} commits (tests/linking_fixtures.py).
Machine: {os.cpu_count()} cores; load average {load_at_start:.1f} at start, {load_now:.1f} at the end (other jobs).

| step | time |
|---|---|
| cold: extract | {extract_seconds:.1f} s |
| cold: load the embedding model ({runtime} runtime) | {load_seconds:.1f} s |
| cold: link `best` (group, embed, match, store, pairs) | {link_total:.1f} s ({link_parts}) |
| **cold total** (extract + import + link + pairs + MLX folder) | **{cold_seconds:.1f} s** |
| cold total, CPU time of this process (all threads; on 2 idle cores wall is between CPU/2 and CPU) \
| {cold_cpu:.1f} s |
| re-run after 100 new frames, same process (extract + link) | {warm_seconds:.2f} s |
| re-run after 100 new frames, fresh `python -m engine link` process ({fresh['embedded_texts']} new texts, \
{fresh['embedding_runtime'] or 'no'} runtime) | {fresh_seconds:.1f} s |
| threshold change over {len(tables.links):,} stored links (filter + counts), median of 40 \
| {statistics.median(timings):.1f} ms (max {max(timings):.1f} ms) |

Texts: {ocr.get('sources', 0):,} OCR rows -> {ocr.get('items', 0):,} distinct texts;
all knowledge {cold.knowledge_items:,} items -> {cold.representatives:,} after near-duplicate collapse
({cold.near_duplicates_merged:,} merged); embedded {cold.embedded_texts:,} unique texts (knowledge + 2 queries per
commit) of {frames_total + audio_total:,} source rows, {cold.chunked_texts:,} long texts chunked. Re-run: embedded
{warm.embedded_texts:,} new texts, {warm.cached_texts:,} from the cache.
Pairs written: {cold.pairs:,} from {cold.linked_commits} linked commits (threshold 0.69: {counts['links']:,} links).

| mode (defaults: min_confidence 0.6, top_k 3) | links | precision | recall | commits with a correct link |
|---|---|---|---|---|""")
    for mode, q in quality.items():
        print(f"| {mode} | {q.links} | {q.precision:.3f} | {q.recall:.3f} | "
              f"{q.commits_with_correct_link}/{q.commits} |")
    return 0
