"""Stage 2: link every commit to the knowledge that explains it, store every scored candidate, write the pairs.

`link(config, workspace_path, mode, min_confidence, top_k, progress)`:
1. groups near-identical knowledge (one representative per screen that only changed its clock);
2. embeds each representative and each commit query once per model, ever (the workspace cache);
3. scores commits against knowledge in blocks (matcher.match) and stores the top candidates per commit with every
   part of their scores in one link run;
4. builds one pair per (commit, changed code file) from the links at min_confidence / top_k and writes
   `paths.output_file` plus the mlx-lm folder `data/` beside it.
A threshold or top-k change later is a filter over the stored run (`filter_links`): nothing is embedded again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from engine.config import PipelineConfig
from engine.errors import StudioError
from engine.linking.embedder import EmbedStats, embed_cached, group_near_duplicates, load_embedder, text_hash
from engine.linking.keywords import (
    commit_references,
    identifiers_in_code,
    keyword_set,
    normalized_keywords,
    reference_tokens,
)
from engine.linking.matcher import MODES, BestWeights, CommitSide, KnowledgeSide, MatchParams, match
from engine.progress import ProgressFn, no_progress
from engine.store import Workspace

REFERENCE_WEIGHTS = {"issue": 1.5, "file": 1.0, "identifier": 0.8}
DEFAULT_CANDIDATES = 50
KEPT_RUNS = 10  # link runs kept per workspace (with their scored links); older ones are deleted


class LinkingError(StudioError):
    """Linking cannot run on this workspace as it is."""


@dataclass
class LinkResult:
    run_id: int
    mode: str
    model: str
    min_confidence: float
    top_k: int
    commits: int
    knowledge_items: int
    knowledge_sources: int
    representatives: int
    near_duplicates_merged: int
    embedded_texts: int
    cached_texts: int
    chunked_texts: int
    stored_links: int
    kept_links: int
    linked_commits: int
    pairs: int
    confidence_mean: float | None
    confidence_min: float | None
    confidence_max: float | None
    output_file: str | None
    mlx_folder: str | None
    mlx_counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    embedding_runtime: str | None = None  # "numpy" (small jobs, no torch import) or "torch"; None if all cached

    def to_dict(self) -> dict:
        return asdict(self)


def _epoch(iso: str | None) -> float:
    if not iso:
        return float("nan")
    return datetime.fromisoformat(iso).timestamp()


def _commit_rows(conn) -> list[dict]:
    commits = {row["sha"]: {**dict(row), "files": []} for row in conn.execute(
        "SELECT sha, repo, message, author, timestamp FROM commits"
        " WHERE EXISTS (SELECT 1 FROM file_changes f WHERE f.commit_sha = commits.sha) ORDER BY timestamp, sha")}
    for row in conn.execute("SELECT commit_sha, path, added_code FROM file_changes ORDER BY commit_sha, path"):
        if row["commit_sha"] in commits:
            commits[row["commit_sha"]]["files"].append((row["path"], row["added_code"]))
    return list(commits.values())


def _representatives(conn) -> list[dict]:
    rows = conn.execute(
        "SELECT r.id, r.knowledge_type, r.content_hash, r.text, r.app_name, r.window_name, r.browser_url,"
        " MIN(k.timestamp) AS first_seen, MAX(k.last_timestamp) AS last_seen, SUM(k.source_count) AS sources,"
        " COUNT(*) AS members"
        " FROM knowledge_groups g JOIN knowledge k ON k.id = g.knowledge_id"
        " JOIN knowledge r ON r.id = g.representative_id"
        " GROUP BY r.id ORDER BY r.id"
    ).fetchall()
    return [dict(row) for row in rows]


def commit_query_texts(commit: dict) -> tuple[str, str]:
    """(message text, rich text): the seed modes embed the message; `best` also embeds what the commit touched."""
    message = commit["message"].strip()
    paths = [path for path, _ in commit["files"]]
    identifiers = identifiers_in_code("\n".join(code for _, code in commit["files"]))
    rich = f"{message}\nFiles: {', '.join(paths)}"
    if identifiers:
        rich += f"\nCode: {' '.join(identifiers)}"
    return message, rich


def _mean_vector(chunks: np.ndarray) -> np.ndarray:
    vector = chunks.mean(axis=0)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _binary_matrix(sets: list[set[str]], vocabulary: dict[str, int], weights: np.ndarray | None = None):
    rows, cols, values = [], [], []
    for row, tokens in enumerate(sets):
        for token in tokens:
            column = vocabulary.get(token)
            if column is not None:
                rows.append(row)
                cols.append(column)
                values.append(1.0 if weights is None else float(weights[column]))
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(sets), max(1, len(vocabulary))), dtype=np.float32)


def _best_weights(overrides: dict | None) -> BestWeights:
    """`linking.best` in the config may override any BestWeights field (numbers only)."""
    known = BestWeights.__dataclass_fields__
    for key, value in (overrides or {}).items():
        if key not in known:
            raise LinkingError(f"`linking.best.{key}` is not a setting of the best matcher; "
                               f"known: {', '.join(known)}.")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise LinkingError(f"`linking.best.{key}` must be a number, not {value!r}.")
    return BestWeights(**(overrides or {}))


def _settings(config: PipelineConfig, mode, min_confidence, top_k) -> tuple[str, float, int]:
    mode = mode or config.get("linking.mode")
    if mode not in MODES:
        raise LinkingError(f"The linking mode is one of {', '.join(MODES)}; got {mode!r}.")
    min_confidence = config.min_confidence if min_confidence is None else float(min_confidence)
    if not 0 <= min_confidence <= 1:
        raise LinkingError(f"min_confidence is a number between 0 and 1; got {min_confidence}.")
    top_k = config.top_k if top_k is None else int(top_k)
    if top_k < 1:
        raise LinkingError(f"top_k is a whole number, 1 or more; got {top_k}.")
    return mode, min_confidence, top_k


def link(
    config: PipelineConfig, workspace_path: Path, mode: str | None = None, min_confidence: float | None = None,
    top_k: int | None = None, progress: ProgressFn = no_progress, *, embedder=None,
    candidates: int = DEFAULT_CANDIDATES, write_outputs: bool = True,
) -> LinkResult:
    """Link the workspace's commits to its knowledge; store the run; write the pairs. `embedder` overrides the
    configured model (tests pass a fake); `candidates` is how many scored links are kept per commit."""
    mode, min_confidence, top_k = _settings(config, mode, min_confidence, top_k)
    candidates = max(candidates, top_k)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    try:
        commits = _commit_rows(conn)
        if not commits:
            raise LinkingError("The workspace has no commits with code changes yet; run extract on a config whose "
                               "git_repo has commits touching code_extensions files.")
        with workspace.transaction(conn):
            grouped = group_near_duplicates(conn)
        merged_total = conn.execute(
            "SELECT COUNT(*) FROM knowledge_groups WHERE knowledge_id != representative_id").fetchone()[0]
        items = _representatives(conn)
        if not items:
            raise LinkingError("The workspace has no knowledge yet; run extract on a config with a screenpipe "
                               "database or document folders.")
        seconds["group"] = time.perf_counter() - clock

        clock = time.perf_counter()
        embedder = embedder or load_embedder(config.get("linking.model"))
        stats = EmbedStats()
        knowledge_vectors = embed_cached(conn, embedder, {item["content_hash"]: item["text"] for item in items},
                                         progress, stats, workspace.transaction)
        queries = [commit_query_texts(commit) for commit in commits]
        query_texts = {text_hash(text): text for pair in queries for text in pair}
        query_vectors = embed_cached(conn, embedder, query_texts, progress, stats, workspace.transaction)
        seconds["embed"] = time.perf_counter() - clock

        clock = time.perf_counter()
        keywords = normalized_keywords(config.get("linking.keywords"))
        commit_side, knowledge_side, evidence_sets = _build_sides(
            commits, queries, query_vectors, items, knowledge_vectors, keywords)
        params = MatchParams(
            mode=mode, candidates=candidates, time_window_days=float(config.get("linking.time_window_days")),
            commit_offset_hours=float(config.get("linking.commit_offset_hours")),
            keyword_weight=float(config.get("linking.keyword_weight")),
            semantic_weight=float(config.get("linking.semantic_weight")),
            best=_best_weights(config.get("linking.best")),
        )
        found = match(commit_side, knowledge_side, params)
        seconds["match"] = time.perf_counter() - clock

        clock = time.perf_counter()
        run_id, stored = _store_run(workspace, conn, params, embedder.model_id, commits, items, found,
                                    evidence_sets, commit_side, knowledge_side, stats, grouped)
        seconds["store"] = time.perf_counter() - clock

        clock = time.perf_counter()
        from engine.dataset.pairs import build_pairs, write_mlx_folder, write_pairs

        pairs = build_pairs(conn, run_id, min_confidence, top_k)
        output_file = mlx_folder = None
        mlx_counts: dict[str, int] = {}
        if write_outputs:
            output_file = write_pairs(pairs, config.output_file)
            mlx_folder, mlx_counts = write_mlx_folder(pairs, config.output_file.parent / "data",
                                                       float(config.get("linking.valid_fraction")))
        seconds["pairs"] = time.perf_counter() - clock
        kept = filter_links(load_links(conn, run_id), min_confidence, top_k)
        confidences = kept["confidence"].to_numpy()
        result = LinkResult(
            run_id=run_id, mode=mode, model=embedder.model_id, min_confidence=min_confidence, top_k=top_k,
            commits=len(commits), knowledge_items=conn.execute("SELECT COUNT(*) FROM knowledge").fetchone()[0],
            knowledge_sources=conn.execute("SELECT COUNT(*) FROM knowledge_sources").fetchone()[0],
            representatives=len(items), near_duplicates_merged=merged_total, embedded_texts=stats.embedded_texts,
            cached_texts=stats.cached, chunked_texts=stats.chunked_texts, stored_links=stored,
            kept_links=len(kept), linked_commits=int(kept["commit_sha"].nunique()), pairs=len(pairs),
            confidence_mean=float(confidences.mean()) if len(confidences) else None,
            confidence_min=float(confidences.min()) if len(confidences) else None,
            confidence_max=float(confidences.max()) if len(confidences) else None,
            output_file=str(output_file) if output_file else None,
            mlx_folder=str(mlx_folder) if mlx_folder else None, mlx_counts=mlx_counts,
            seconds={name: round(value, 3) for name, value in seconds.items()}, embedding_runtime=stats.runtime,
        )
        conn.execute("UPDATE link_runs SET stats_json = ? WHERE id = ?", (json.dumps(result.to_dict()), run_id))
        return result
    finally:
        conn.close()


def _build_sides(commits, queries, query_vectors, items, knowledge_vectors, keywords):
    message_vectors = np.stack([_mean_vector(query_vectors[text_hash(message)]) for message, _ in queries])
    rich_vectors = np.stack([_mean_vector(query_vectors[text_hash(rich)]) for _, rich in queries])
    keyword_vocabulary = {word: index for index, word in enumerate(sorted(keywords))}
    commit_keywords = [keyword_set(commit["message"], keywords) for commit in commits]
    references = [commit_references(commit["message"], [path for path, _ in commit["files"]],
                                    [code for _, code in commit["files"]]).tokens() for commit in commits]
    reference_vocabulary: dict[str, int] = {}
    kinds: list[str] = []
    for tokens in references:
        for token, kind in tokens.items():
            if token not in reference_vocabulary:
                reference_vocabulary[token] = len(kinds)
                kinds.append(kind)
    item_texts = [" ".join(filter(None, (item["text"], item["window_name"], item["browser_url"]))) for item in items]
    item_references = [reference_tokens(text) & reference_vocabulary.keys() for text in item_texts]
    item_keywords = [keyword_set(item["text"], keywords) for item in items]
    # A reference seen in many places (a file name on every editor screen) is weaker evidence: 1 / (1 + ln df).
    document_frequency = np.zeros(len(kinds))
    for tokens in item_references:
        for token in tokens:
            document_frequency[reference_vocabulary[token]] += 1
    weights = np.array([REFERENCE_WEIGHTS[kind] for kind in kinds]) / (1 + np.log(np.maximum(document_frequency, 1)))
    commit_side = CommitSide(
        shas=[commit["sha"] for commit in commits],
        times=np.array([_epoch(commit["timestamp"]) for commit in commits]),
        message_vectors=message_vectors, rich_vectors=rich_vectors,
        keywords=_binary_matrix(commit_keywords, keyword_vocabulary),
        references=_binary_matrix([set(tokens) for tokens in references], reference_vocabulary, weights),
    )
    chunk_arrays = [knowledge_vectors[item["content_hash"]] for item in items]
    starts = np.cumsum([0] + [len(array) for array in chunk_arrays[:-1]]).astype(np.int64)
    knowledge_side = KnowledgeSide(
        ids=np.array([item["id"] for item in items]),
        first_times=np.array([_epoch(item["first_seen"]) for item in items]),
        last_times=np.array([_epoch(item["last_seen"]) for item in items]),
        is_document=np.array([item["knowledge_type"] == "document" for item in items]),
        chunk_vectors=np.concatenate(chunk_arrays).astype(np.float32), chunk_starts=starts,
        keywords=_binary_matrix(item_keywords, keyword_vocabulary),
        references=_binary_matrix(item_references, reference_vocabulary),
    )
    evidence_sets = {"commit_keywords": commit_keywords, "item_keywords": item_keywords,
                     "commit_references": references, "item_references": item_references}
    return commit_side, knowledge_side, evidence_sets


def _store_run(workspace, conn, params, model, commits, items, found, evidence_sets, commit_side, knowledge_side,
               stats, grouped) -> tuple[int, int]:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    settings = {"mode": params.mode, "candidates": params.candidates, "time_window_days": params.time_window_days,
                "commit_offset_hours": params.commit_offset_hours, "keyword_weight": params.keyword_weight,
                "semantic_weight": params.semantic_weight, "best": asdict(params.best)}
    rows = []
    for row, commit in enumerate(commits):
        for rank, column in enumerate(np.flatnonzero(found.items[row] >= 0), start=1):
            item_index = int(found.items[row, column])
            evidence: dict = {}
            if params.mode == "hybrid":
                evidence["keywords"] = sorted(evidence_sets["commit_keywords"][row]
                                              & evidence_sets["item_keywords"][item_index])
            if params.mode == "best":
                evidence["references"] = sorted(evidence_sets["commit_references"][row].keys()
                                                & evidence_sets["item_references"][item_index])
            first = knowledge_side.first_times[item_index]
            if not np.isnan(first) and not knowledge_side.is_document[item_index]:
                evidence["hours_before_commit"] = round((commit_side.times[row] - first) / 3600, 2)

            def number(value):
                return None if np.isnan(value) else round(float(value), 6)

            rows.append((commit["sha"], int(knowledge_side.ids[item_index]), rank,
                         round(float(found.confidence[row, column]), 6), round(float(found.semantic[row, column]), 6),
                         number(found.keyword[row, column]), number(found.time_score[row, column]),
                         number(found.reference[row, column]), json.dumps(evidence)))
    with workspace.transaction(conn):
        run_id = conn.execute(
            "INSERT INTO link_runs(mode, model, params_json, started_at, finished_at, status) VALUES"
            " (?, ?, ?, ?, ?, 'ok')", (params.mode, model, json.dumps(settings), now, now)).lastrowid
        conn.executemany(
            f"INSERT INTO links(run_id, commit_sha, knowledge_id, rank, confidence, semantic, keyword, time_score,"
            f" reference, evidence_json) VALUES ({run_id}, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # Older runs are only history: keep the last few so the workspace does not grow with every relink.
        conn.execute("DELETE FROM links WHERE run_id IN (SELECT id FROM link_runs ORDER BY id DESC LIMIT -1 OFFSET ?)",
                     (KEPT_RUNS,))
        conn.execute("DELETE FROM link_runs WHERE id IN (SELECT id FROM link_runs ORDER BY id DESC LIMIT -1 OFFSET ?)",
                     (KEPT_RUNS,))
    return run_id, len(rows)


# -- reading runs back (the page, pairs, evaluation) ---------------------------------------------------------------
LINK_COLUMNS = ["commit_sha", "knowledge_id", "rank", "confidence", "semantic", "keyword", "time_score", "reference"]


def load_links(conn, run_id: int) -> pd.DataFrame:
    """Every stored link of a run as a DataFrame (one row per commit x candidate), ranked per commit."""
    frame = pd.read_sql_query(
        f"SELECT {', '.join(LINK_COLUMNS)} FROM links WHERE run_id = ? ORDER BY commit_sha, rank", conn,
        params=(run_id,))
    return frame.astype({"rank": "int32", "confidence": "float32"})


def filter_links(links: pd.DataFrame, min_confidence: float, top_k: int) -> pd.DataFrame:
    """The links a pair would use: rank <= top_k and confidence >= min_confidence (a mask, no recomputation)."""
    mask = (links["rank"].to_numpy() <= top_k) & (links["confidence"].to_numpy() >= np.float32(min_confidence))
    return links[mask]


def latest_run(workspace_path: Path) -> dict | None:
    """The newest finished link run of a workspace (id, mode, model, params, stats), or None."""
    if not (Path(workspace_path) / "studio.db").exists():
        return None
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    try:
        row = conn.execute("SELECT * FROM link_runs WHERE status = 'ok' ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    if not row:
        return None
    return {"id": row["id"], "mode": row["mode"], "model": row["model"], "started_at": row["started_at"],
            "params": json.loads(row["params_json"]), "stats": json.loads(row["stats_json"] or "{}")}


@dataclass
class RunTables:
    """What the Linking page filters for one run, loaded once: the scored links and the commits (texts are read
    per commit, on demand, by `evidence_for`)."""

    run_id: int
    links: pd.DataFrame
    commits: pd.DataFrame  # sha, message, timestamp, files (count of code files)


def load_run_tables(workspace_path: Path, run_id: int) -> RunTables:
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    try:
        links = load_links(conn, run_id)
        if links.empty and not conn.execute("SELECT 1 FROM link_runs WHERE id = ?", (run_id,)).fetchone():
            raise LinkingError(f"There is no link run {run_id} in {workspace_path}; run link first.")
        commits = pd.read_sql_query(
            "SELECT c.sha, c.message, c.timestamp, COUNT(f.path) AS files FROM commits c"
            " JOIN file_changes f ON f.commit_sha = c.sha GROUP BY c.sha ORDER BY c.timestamp", conn)
    finally:
        conn.close()
    return RunTables(run_id, links, commits)


def link_counts(tables: RunTables, min_confidence: float, top_k: int) -> dict[str, int]:
    """Counts at a threshold: kept links, commits linked, knowledge items used, training pairs (code files)."""
    kept = filter_links(tables.links, min_confidence, top_k)
    linked = kept["commit_sha"].unique()
    files = tables.commits.set_index("sha")["files"]
    return {"links": len(kept), "linked_commits": len(linked), "commits": len(tables.commits),
            "knowledge_items": int(kept["knowledge_id"].nunique()),
            "pairs": int(files.reindex(linked).fillna(0).sum())}


def commit_detail(workspace_path: Path, sha: str) -> dict:
    """One commit with its code files (path, change type, added code) for the pair browser."""
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    try:
        commit = conn.execute("SELECT sha, repo, message, author, timestamp FROM commits WHERE sha = ?",
                              (sha,)).fetchone()
        if commit is None:
            raise LinkingError(f"The commit {sha[:12]} is not in the workspace.")
        files = [dict(row) for row in conn.execute(
            "SELECT path, change_type, added_lines, added_code FROM file_changes WHERE commit_sha = ? ORDER BY path",
            (sha,))]
    finally:
        conn.close()
    return {**dict(commit), "files": files}


def evidence_for(workspace_path: Path, run_id: int, sha: str) -> list[dict]:
    """The stored candidates of one commit, best first, with their text and where and when they were seen."""
    workspace = Workspace.open(workspace_path)
    conn = workspace.connect()
    try:
        rows = conn.execute(
            "SELECT l.rank, l.confidence, l.semantic, l.keyword, l.time_score, l.reference, l.evidence_json,"
            " k.id, k.knowledge_type, k.text, k.app_name, k.window_name, k.browser_url, k.timestamp"
            " FROM links l JOIN knowledge k ON k.id = l.knowledge_id WHERE l.run_id = ? AND l.commit_sha = ?"
            " ORDER BY l.rank", (run_id, sha)).fetchall()
    finally:
        conn.close()
    return [{**{key: row[key] for key in row.keys() if key != "evidence_json"},
             "evidence": json.loads(row["evidence_json"] or "{}")} for row in rows]
