"""Stage 3: training pairs, one per (commit, changed code file), in the seeds' shape.

`{"instruction": commit message, "input": linked context best first + "Task: Modify <file>", "output": the code
added to that file, "metadata": {...}}` where metadata follows ARCHITECTURE.md: commit_sha (40 hex),
commit_timestamp, file_path, knowledge_type / confidence / source_id of the best link, and `sources`, every linked
knowledge item with all the source ids behind it (exact and near duplicates included).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from engine.dataset.mlx import remove_mlx_splits, write_mlx_splits
from engine.dataset.sensitive import scan_record
from engine.files import write_atomic
from engine.formats import dumps_line, pair_hash, to_completion
from engine.linking.threshold import passes

MAX_CONTEXT_CHARS = 2000  # per linked item: enough to explain a change, not a whole screen dump
_HEADERS = {"ocr": "Screen Context from {app} - {window}", "ui": "Screen Context from {app} - {window}",
            "audio": "Discussion (audio, {window})", "document": "Document {window}"}


def _context_block(item: dict, source_id: str | None) -> str:
    window = item["window_name"] or "unknown window"
    if item["knowledge_type"] == "document" and source_id and source_id.startswith("doc:"):
        window = source_id[4:]  # the path relative to the docs folder's parent, not this machine's absolute path
    header = _HEADERS.get(item["knowledge_type"], "Context").format(app=item["app_name"] or "unknown app",
                                                                     window=window)
    text = item["text"].strip()
    if len(text) > MAX_CONTEXT_CHARS:
        text = text[:MAX_CONTEXT_CHARS].rsplit(" ", 1)[0] + " …"
    return f"{header}:\n\n{text}"


def _sources_of(conn: sqlite3.Connection, representative_ids: list[int]) -> dict[int, list[dict]]:
    """Every source row behind each representative (its own and its near-duplicates'), oldest first."""
    found: dict[int, list[dict]] = {}
    for start in range(0, len(representative_ids), 500):
        part = representative_ids[start:start + 500]
        marks = ",".join("?" * len(part))
        for row in conn.execute(
            "SELECT g.representative_id, s.source_id, k.knowledge_type, s.timestamp, s.app_name, s.window_name"
            " FROM knowledge_groups g JOIN knowledge_sources s ON s.knowledge_id = g.knowledge_id"
            f" JOIN knowledge k ON k.id = g.knowledge_id WHERE g.representative_id IN ({marks})"
            " ORDER BY s.timestamp, s.source_id", part,
        ):
            found.setdefault(row[0], []).append(
                {"source_id": row[1], "knowledge_type": row[2], "timestamp": row[3], "app_name": row[4],
                 "window_name": row[5]})
    return found


def _kept_links(conn: sqlite3.Connection, run_id: int, min_confidence: float, top_k: int) -> list[dict]:
    """The run's links that pass the threshold (engine.linking.threshold.passes, the one rule), with their knowledge
    item, ordered by commit and rank."""
    links = conn.execute(
        "SELECT commit_sha, rank, confidence, semantic, keyword, time_score, reference, knowledge_id FROM links"
        " WHERE run_id = ? ORDER BY commit_sha, rank", (run_id,)).fetchall()
    mask = passes(np.array([row["rank"] for row in links], dtype=np.int64),
                  np.array([row["confidence"] for row in links], dtype=np.float64), min_confidence, top_k)
    kept = [row for row, keep in zip(links, mask, strict=True) if keep]
    items: dict[int, dict] = {}
    ids = sorted({row["knowledge_id"] for row in kept})
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        for item in conn.execute("SELECT id, knowledge_type, text, app_name, window_name, timestamp FROM knowledge"
                                 f" WHERE id IN ({','.join('?' * len(part))})", part):
            items[item["id"]] = dict(item)
    return [{key: row[key] for key in ("commit_sha", "confidence", "semantic", "keyword", "time_score", "reference")}
            | items[row["knowledge_id"]] for row in kept]


def build_pairs(conn: sqlite3.Connection, run_id: int, min_confidence: float, top_k: int,
                contexts: list[list[str]] | None = None) -> list[dict]:
    """The pairs of a stored link run at this threshold and top-k, in commit time order. `contexts`, when given,
    receives each pair's context blocks (one per linked item), which `write_mlx_folder` scans once each."""
    links = _kept_links(conn, run_id, min_confidence, top_k)
    by_commit: dict[str, list] = {}
    for row in links:
        by_commit.setdefault(row["commit_sha"], []).append(row)
    if not by_commit:
        return []
    sources = _sources_of(conn, sorted({row["id"] for rows in by_commit.values() for row in rows}))
    run = conn.execute("SELECT mode, model FROM link_runs WHERE id = ?", (run_id,)).fetchone()
    pairs = []
    for commit in conn.execute("SELECT sha, repo, message, timestamp FROM commits ORDER BY timestamp, sha"):
        linked = by_commit.get(commit["sha"])
        if not linked:
            continue
        blocks = [_context_block(item, (sources.get(item["id"]) or [{}])[0].get("source_id")) for item in linked]
        context = "\n\n".join(blocks)
        best = linked[0]
        best_sources = sources.get(best["id"], [])
        listed = []
        for item in linked:
            item_sources = sources.get(item["id"], [])
            listed.append({
                "source_id": item_sources[0]["source_id"] if item_sources else None,
                "knowledge_type": item["knowledge_type"], "confidence": round(item["confidence"], 4),
                "timestamp": item["timestamp"], "app_name": item["app_name"], "window_name": item["window_name"],
                "source_ids": [source["source_id"] for source in item_sources],
            })
        for change in conn.execute(
            "SELECT path, added_code FROM file_changes WHERE commit_sha = ? ORDER BY path", (commit["sha"],)
        ):
            if contexts is not None:
                contexts.append(blocks)
            pairs.append({
                "instruction": commit["message"].strip(),
                "input": f"{context}\n\nTask: Modify {change['path']}",
                "output": change["added_code"],
                "metadata": {
                    "commit_sha": commit["sha"], "commit_timestamp": commit["timestamp"], "repo": commit["repo"],
                    "file_path": change["path"], "knowledge_type": best["knowledge_type"],
                    "confidence": round(best["confidence"], 4),
                    "source_id": best_sources[0]["source_id"] if best_sources else None,
                    "semantic_score": round(best["semantic"], 4),
                    "keyword_score": None if best["keyword"] is None else round(best["keyword"], 4),
                    "time_score": None if best["time_score"] is None else round(best["time_score"], 4),
                    "reference_score": None if best["reference"] is None else round(best["reference"], 4),
                    "link_mode": run["mode"], "embedding_model": run["model"], "link_run": run_id,
                    "sources": listed,
                },
            })
    return pairs


def write_pairs(pairs: list[dict], output_file: Path) -> Path:
    """training_data.jsonl, written atomically (one line per pair)."""
    write_atomic(Path(output_file), "".join(dumps_line(pair) + "\n" for pair in pairs))
    return Path(output_file)


def _flagged(pairs: list[dict], contexts: list[list[str]] | None, workspace) -> list[bool]:
    """Whether each pair holds possible sensitive data. With its context blocks, a pair is scanned in parts (the
    commit message, each linked item's block, the code, the task line, the metadata without the file path), so a
    screen linked to many commits, or the context shared by a commit's files, is scanned once, and with a
    workspace once ever (its scan cache); the gate is the same one validation and export use."""
    from engine.dataset.gate import scan_records

    if contexts is None or len(contexts) != len(pairs):
        return [bool(scan_record(pair, index)) for index, pair in enumerate(pairs)]
    views, names = [], []
    for pair, blocks in zip(pairs, contexts, strict=True):
        metadata = pair.get("metadata") if isinstance(pair.get("metadata"), dict) else {}
        path = str(metadata.get("file_path") or "")
        task = pair["input"][len("\n\n".join(blocks)):] if pair["input"].startswith("\n\n".join(blocks)) \
            else pair["input"]
        views.append({"instruction": pair.get("instruction"), "output": pair.get("output"),
                      "messages": [{"role": "user", "content": text} for text in [*blocks, task]],
                      "metadata": {key: value for key, value in metadata.items() if key != "file_path"}})
        names.append(path.rsplit("/", 1)[-1] or "capture.txt")
    by_view = {id(view): name for view, name in zip(views, names, strict=True)}
    found = scan_records(workspace, list(enumerate(views)),
                         filename_of=lambda view: lambda field: by_view[id(view)] if field == "output" else
                         "capture.txt")
    return [bool(found.get(index)) for index in range(len(pairs))]


def write_mlx_folder(pairs: list[dict], folder: Path, valid_fraction: float = 0.1,
                     contexts: list[list[str]] | None = None, workspace=None) -> tuple[Path | None, dict]:
    """train.jsonl and valid.jsonl of mlx-lm completions lines, through the one MLX writer (engine.dataset.mlx:
    the hash split, so a pair keeps its split across runs). mlx-lm needs both files non-empty, so fewer than two
    pairs write nothing (and remove stale files, which would otherwise be trained on as if current)."""
    folder = Path(folder)
    # Nothing unsafe reaches training: a pair with possible sensitive data waits for review (Validation page,
    # `python -m engine validate`, then `export`) instead of going straight into the MLX folder.
    flagged = _flagged(pairs, contexts, workspace)
    safe = [pair for pair, held in zip(pairs, flagged, strict=True) if not held]
    held = len(pairs) - len(safe)
    if len(safe) < 2:
        remove_mlx_splits(folder)
        return None, {"train": 0, "valid": 0, "held_for_review": held}
    splits = write_mlx_splits(folder, [dumps_line(to_completion(pair)) for pair in safe],
                              [pair_hash(pair) for pair in safe], valid_fraction, 0.0)
    return folder, {"train": len(splits["train"]), "valid": len(splits["valid"]), "held_for_review": held}
