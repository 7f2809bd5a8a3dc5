"""`python -m bench link_real SET [SET ...] [--rounds 1]`: linking a real history, the studio beside the seeds.

A SET is a labelled variant folder (linking-dev's refs/ or stripped/ after its prepare.py, or one built by
`python -m bench linking_sets`). For each set, in one run and alternating so machine load hits both alike:
- the seed's v1 hybrid re-implemented as the seed describes it (bench/seed_linking.py), cold, in a fresh process;
- the studio, cold: `python -m engine link --config pipeline_config.json --workspace <fresh>` in a fresh process
  (extract, near-duplicate grouping, embedding, scoring, pairs and MLX folder; the model runtime's one-time build
  into the per-user cache is not counted, it happens once per machine);
- the studio again right after, warm (nothing new: what a Relink costs).
Quality comes from the set's own score.py on each output (precision, recall, p@t), plus the studio's calibration
at min_confidence 0 (the set's links binned by confidence). Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(command: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    began = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} failed in {cwd}: {done.stderr.strip()[-800:]}")
    return seconds, done.stdout


def _score(set_dir: Path, pairs: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        _run([sys.executable, "score.py", "--truth", "truth.json", "--pairs", str(pairs), "--json", out.name], set_dir)
        return json.loads(Path(out.name).read_text())


def _calibration(set_dir: Path, workspace: Path) -> dict:
    """p@t and ECE of the studio's links at min_confidence 0 (top_k 3), scored per (commit, source id)."""
    with tempfile.TemporaryDirectory() as scratch:
        config = json.loads((set_dir / "pipeline_config.json").read_text())
        for key in ("screenpipe_db", "git_repo"):
            config["paths"][key] = str((set_dir / config["paths"][key]).resolve())
        config["paths"]["output_file"] = str(Path(scratch) / "all.jsonl")
        config.setdefault("confidence", {})["min_confidence"] = 0.0
        (Path(scratch) / "config.json").write_text(json.dumps(config))
        _run([sys.executable, "-m", "engine", "link", "--config", str(Path(scratch) / "config.json"), "--workspace",
              str(workspace), "--no-extract", "--json"], ROOT)
        truth = {sha: set(ids) for sha, ids in json.loads((set_dir / "truth.json").read_text()).items()}
        meta = json.loads((set_dir / "truth_meta.json").read_text()) if (set_dir / "truth_meta.json").exists() else {}
        related = {sha: set(ids) for sha, ids in meta.get("related", {}).items()}
        links: dict[tuple[str, str], float] = {}
        for line in (Path(scratch) / "all.jsonl").read_text().splitlines():
            metadata = json.loads(line)["metadata"]
            for source in metadata["sources"]:
                for source_id in source["source_ids"]:
                    if source_id.split(":")[0] in ("ocr", "audio"):
                        key = (metadata["commit_sha"], source_id)
                        links[key] = max(links.get(key, 0.0), source["confidence"])
    values = list(links.values())
    right = [source in truth.get(sha, set()) | related.get(sha, set()) for sha, source in links]
    result = {"links": len(values)}
    for threshold in (0.5, 0.6, 0.7, 0.8):
        chosen = [hit for value, hit in zip(values, right, strict=True) if value >= threshold]
        result[f"p@{threshold}"] = sum(chosen) / len(chosen) if chosen else None
    ece = 0.0
    for low in [index / 10 for index in range(10)]:
        chosen = [(value, hit) for value, hit in zip(values, right, strict=True)
                  if low <= value < low + 0.1 or (low == 0.9 and value == 1.0)]
        if chosen:
            mean = sum(value for value, _ in chosen) / len(chosen)
            ece += len(chosen) / len(values) * abs(mean - sum(hit for _, hit in chosen) / len(chosen))
    result["ece"] = ece
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench link_real")
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    load = [os.getloadavg()[0]]
    rows = []
    for set_path in args.sets:
        set_dir = Path(set_path).resolve()
        name = f"{set_dir.parent.name}/{set_dir.name}"
        seed_times, studio_times, warm_times = [], [], []
        scratch = Path(tempfile.mkdtemp(prefix="link-real-"))
        try:
            for round_index in range(args.rounds):
                seed_out = scratch / f"seed-{round_index}.jsonl"
                seconds, _ = _run([sys.executable, "-m", "bench", "seed_linking", "--config",
                                   str(set_dir / "pipeline_config.json"), "--mode", "v1", "--out", str(seed_out)], ROOT)
                seed_times.append(seconds)
                workspace = scratch / f"ws-{round_index}"
                config = json.loads((set_dir / "pipeline_config.json").read_text())
                for key in ("screenpipe_db", "git_repo"):
                    config["paths"][key] = str((set_dir / config["paths"][key]).resolve())
                config["paths"]["output_file"] = str(scratch / f"studio-{round_index}" / "training_data.jsonl")
                (scratch / "config.json").write_text(json.dumps(config))
                seconds, out = _run([sys.executable, "-m", "engine", "link", "--config", str(scratch / "config.json"),
                                     "--workspace", str(workspace), "--json"], ROOT)
                studio_times.append(seconds)
                studio = json.loads(out)
                seconds, _ = _run([sys.executable, "-m", "engine", "link", "--config", str(scratch / "config.json"),
                                   "--workspace", str(workspace), "--json"], ROOT)
                warm_times.append(seconds)
                load.append(os.getloadavg()[0])
            seed_quality = _score(set_dir, seed_out)
            studio_quality = _score(set_dir, Path(config["paths"]["output_file"]))
            calibration = _calibration(set_dir, workspace)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        rows.append((name, min(seed_times), min(studio_times), min(warm_times), studio, seed_quality,
                     studio_quality, calibration))
    print(f"### Linking real histories (`python -m bench link_real`, {time.strftime('%Y-%m-%d %H:%M')})\n")
    print(f"{os.cpu_count()} cores, load average {min(load):.1f}-{max(load):.1f} during the run; each time is a fresh "
          f"process, the best of {args.rounds} round(s); defaults of each set's pipeline_config.json "
          "(min_confidence 0.6, top_k 3).\n")
    print("| set | seed v1, cold | studio, cold | ratio | studio relink | seed v1 P / R | studio P / R | "
          "studio p@0.5 / 0.6 / 0.7 / 0.8 (min_confidence 0) | ECE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, seed, cold, warm, _, seed_q, studio_q, calibration in rows:
        points = " / ".join("-" if calibration[f"p@{t}"] is None else f"{calibration[f'p@{t}']:.2f}"
                            for t in (0.5, 0.6, 0.7, 0.8))
        print(f"| {name} | {seed:.1f} s | **{cold:.1f} s** | {cold / seed:.2f}x | {warm:.1f} s | "
              f"{seed_q['precision']:.3f} / {seed_q['recall']:.3f} | **{studio_q['precision']:.3f} / "
              f"{studio_q['recall']:.3f}** | {points} | {calibration['ece']:.3f} |")
    print()
    for name, _, _, _, studio, _, _, _ in rows:
        link = studio["link"]
        parts = ", ".join(f"{key} {value:.1f} s" for key, value in link["seconds"].items())
        print(f"- {name}: extract {studio['extract']['seconds']:.1f} s; {parts}; embedded {link['embedded_texts']:,} "
              f"texts ({link['embedding_runtime']}), {link['candidate_commits']:,} of {link['commits']:,} commits "
              f"had knowledge in their window, {link['candidates']:,} candidates")
    return 0
