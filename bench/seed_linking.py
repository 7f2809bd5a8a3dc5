"""`python -m bench seed_linking --config CFG [--mode v1|v2] [--out FILE]`: the seeds' own linking, re-implemented
as they describe it, as the reference the studio is timed and judged against.

Seed 000 (v2, semantic only) and seed 001 (v1, hybrid), from their text:
- Stage 1: OCR knowledge = `ocr_text` JOIN `frames`, LENGTH(text) > min_knowledge_length; audio =
  `audio_transcriptions`, LENGTH(transcription) > min_knowledge_length; commits = non-merge commits with at least
  min_code_lines added lines in code_extensions files, newest first, up to max_commits of them.
- v2: all-MiniLM-L6-v2 (sentence-transformers) embeddings of every commit message and every knowledge text, cosine
  similarity, top_k_matches per commit with confidence >= min_confidence, no time window.
- v1: only knowledge from [commit - time_window_days, commit - commit_offset_hours]; confidence = keyword_weight x
  keyword score + semantic_weight x cosine (keyword score = share of the commit message's technical keywords also in
  the knowledge text), >= min_confidence, the best match only.
- One training pair per changed code file: {instruction, input, output, metadata} with the link's source id and
  confidence, so a labelled set's score.py scores it like the studio's output.
The keyword list is the studio's default (engine.linking.keywords.TECH_KEYWORDS); the seed names the mechanism,
not the list. Nothing here uses the studio's workspace, cache or model runtimes: it is timed as the seed would run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _parse(stamp: str) -> datetime:
    stamp = stamp.replace("Z", "+00:00")
    match = re.match(r"(.*\.\d{6})\d*(.*)", stamp)
    if match:
        stamp = match.group(1) + match.group(2)
    value = datetime.fromisoformat(stamp)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def extract_knowledge(db: Path, min_length: int) -> list[dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    knowledge = [{"source_id": f"ocr:{frame}", "text": text, "timestamp": _parse(stamp)}
                 for frame, text, stamp in conn.execute(
                     "SELECT f.id, o.text, f.timestamp FROM ocr_text o JOIN frames f ON f.id = o.frame_id"
                     " WHERE LENGTH(o.text) > ?", (min_length,))]
    knowledge += [{"source_id": f"audio:{row}", "text": text, "timestamp": _parse(stamp)}
                  for row, text, stamp in conn.execute(
        "SELECT id, transcription, timestamp FROM audio_transcriptions WHERE LENGTH(transcription) > ?",
        (min_length,))]
    conn.close()
    return knowledge


def extract_commits(repo_path: Path, extensions: list[str], min_lines: int, max_commits: int) -> list[dict]:
    import git

    repo = git.Repo(repo_path)
    commits = []
    for commit in repo.iter_commits("HEAD", no_merges=True):
        if len(commits) >= max_commits:
            break
        if commit.parents:
            diffs = commit.parents[0].diff(commit, create_patch=True)
        else:
            diffs = commit.diff(git.NULL_TREE, create_patch=True, R=True)
        files = []
        for diff in diffs:
            path = diff.b_path or diff.a_path
            if not path or Path(path).suffix not in extensions or diff.deleted_file:
                continue
            patch = (diff.diff or b"").decode("utf-8", "replace")
            added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
            if len(added) >= min_lines:
                files.append({"path": path, "code": "\n".join(added)})
        if files:
            commits.append({"sha": commit.hexsha, "message": commit.message.strip(),
                            "timestamp": commit.committed_datetime.astimezone(timezone.utc), "files": files})
    return commits


def link(config_path: Path, mode: str) -> tuple[list[dict], dict]:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from engine.linking.embedder import _resolve_model_location
    from engine.linking.keywords import TECH_KEYWORDS

    config = json.loads(config_path.read_text())
    base = config_path.parent
    paths, filtering = config["paths"], config.get("filtering", {})
    min_confidence = float(config.get("confidence", {}).get("min_confidence", 0.6))
    top_k = int(filtering.get("top_k_matches", 3))
    timings = {}
    began = time.perf_counter()
    knowledge = extract_knowledge(base / paths["screenpipe_db"], int(filtering.get("min_knowledge_length", 100)))
    commits = extract_commits(base / paths["git_repo"], config.get("code_extensions", [".py"]),
                              int(filtering.get("min_code_lines", 5)), int(filtering.get("max_commits", 500)))
    timings["extract"] = time.perf_counter() - began
    began = time.perf_counter()
    model = SentenceTransformer(_resolve_model_location("all-MiniLM-L6-v2"), device="cpu")
    knowledge_vectors = model.encode([item["text"] for item in knowledge], normalize_embeddings=True,
                                     show_progress_bar=False)
    commit_vectors = model.encode([commit["message"] for commit in commits], normalize_embeddings=True,
                                  show_progress_bar=False)
    timings["embed"] = time.perf_counter() - began
    began = time.perf_counter()
    similarity = commit_vectors @ knowledge_vectors.T
    words = set(TECH_KEYWORDS)
    pairs = []
    for row, commit in enumerate(commits):
        if mode == "v2":
            order = np.argsort(-similarity[row])[:top_k]
            chosen = [(int(column), float(similarity[row, column])) for column in order
                      if similarity[row, column] >= min_confidence]
        else:
            start = commit["timestamp"] - timedelta(days=7)
            end = commit["timestamp"] - timedelta(hours=1)
            commit_words = {word for word in re.findall(r"\w+", commit["message"].lower()) if word in words}
            best = None
            for column, item in enumerate(knowledge):
                if not start <= item["timestamp"] <= end:
                    continue
                item_words = set(re.findall(r"\w+", item["text"].lower()))
                keyword = len(commit_words & item_words) / len(commit_words) if commit_words else 0.0
                confidence = 0.3 * keyword + 0.7 * float(similarity[row, column])
                if confidence >= min_confidence and (best is None or confidence > best[1]):
                    best = (column, confidence)
            chosen = [best] if best else []
        for column, confidence in chosen:
            item = knowledge[column]
            for change in commit["files"]:
                pairs.append({"instruction": commit["message"],
                              "input": f"{item['text']}\n\nTask: Modify {change['path']}", "output": change["code"],
                              "metadata": {"commit_sha": commit["sha"], "source_id": item["source_id"],
                                           "confidence": round(confidence, 4)}})
    timings["match"] = time.perf_counter() - began
    return pairs, {"knowledge": len(knowledge), "commits": len(commits), "pairs": len(pairs), "seconds": timings}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench seed_linking")
    parser.add_argument("--config", required=True)
    parser.add_argument("--mode", choices=("v1", "v2"), default="v1")
    parser.add_argument("--out", help="write the pairs here (JSONL)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    pairs, stats = link(Path(args.config).resolve(), args.mode)
    stats["total_seconds"] = time.perf_counter() - began
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    print(json.dumps(stats))
    return 0
