"""Stage 2: link every commit to the knowledge that explains it, store every scored candidate, write the pairs.

`link(config, workspace_path, mode, min_confidence, top_k, progress)`:
1. groups near-identical knowledge (one representative per screen that only changed its clock), keeping every
   capture time of every member;
2. `best` (the default): candidates from time (knowledge seen in the days before each commit; documents by
   meaning), features of each candidate (engine.linking.features), and the link model's calibrated probability
   that the link is right (engine.linking.model). Only what can change a decision is embedded: commits with no
   knowledge in their window are not, and of a commit message only its first window;
   `semantic` / `hybrid`: the seeds' matchers (engine.linking.matcher), their scores calibrated by the same model;
3. stores the best candidates per commit with their confidence and evidence in one link run (the linking stage's
   own tables in the workspace) and reports what the links at min_confidence / top_k would give.
Linking never writes a dataset: engine.pipeline builds the pairs from the stored run and writes them.
A confidence is a probability: among links at 0.8, about 8 in 10 are right, in every mode. Which links count at a
threshold is decided by `passes`, the one rule the pairs, the counts, the evaluation and the Linking page share; a
threshold or top-k change later is a filter over the stored run: nothing is embedded or scored again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from engine.clock import now_iso
from engine.config import LINK_MODES, PipelineConfig
from engine.errors import StudioError
from engine.linking import features as feature_module
from engine.linking.embedder import EmbedStats, embed_cached, group_near_duplicates, load_embedder, text_hash
from engine.linking.features import FEATURES, CommitSide, ItemSide, page_title, pair_features, window_candidates
from engine.linking.keywords import keyword_set, normalized_keywords, reference_tokens
from engine.linking.matcher import CommitSide as SeedCommitSide
from engine.linking.matcher import KnowledgeSide as SeedKnowledgeSide
from engine.linking.matcher import MatchParams, match
from engine.linking.model import LinkModel, load_model
from engine.linking.threshold import passes
from engine.progress import ProgressFn, no_progress
from engine.store import Workspace

DEFAULT_CANDIDATES = 20
KEPT_RUNS = 10  # link runs kept per workspace (with their scored links); older ones are deleted
SHOWN_FEATURES = ("cos_subject", "cos_message", "cos_title", "word_overlap", "subject_overlap", "title_overlap",
                  "issue_ref", "file_ref", "identifier_ref")


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
    # what engine.pipeline wrote from this run (linking itself writes no dataset)
    output_file: str | None = None
    mlx_folder: str | None = None
    mlx_counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    embedding_runtime: str | None = None  # "numpy" (small jobs, no torch import) or "torch"; None if all cached
    capped_texts: int = 0  # texts longer than the embedding cap: only their beginning was embedded
    candidate_commits: int = 0  # commits with any knowledge in their time window (the others cannot link)
    candidates: int = 0  # (commit, item) pairs scored
    expected_precision: float | None = None  # mean confidence of the kept links: what calibration promises

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


def _sightings(conn, items: list[dict]) -> list[np.ndarray]:
    """Every capture time of each representative's members, sorted (documents: none; their file time says nothing
    about when they were read)."""
    found: dict[int, list[float]] = {}
    for representative, stamp in conn.execute(
        "SELECT g.representative_id, s.timestamp FROM knowledge_groups g"
        " JOIN knowledge_sources s ON s.knowledge_id = g.knowledge_id"
        " JOIN knowledge k ON k.id = g.knowledge_id WHERE s.timestamp IS NOT NULL AND k.knowledge_type != 'document'"
    ):
        found.setdefault(representative, []).append(_epoch(stamp))
    empty = np.zeros(0)
    return [np.sort(np.asarray(found[item["id"]])) if item["id"] in found else empty for item in items]


def _mean_vector(chunks: np.ndarray) -> np.ndarray:
    vector = chunks.mean(axis=0)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _binary_matrix(sets: list[set[str]], vocabulary: dict[str, int]):
    rows, cols = [], []
    for row, tokens in enumerate(sets):
        for token in tokens:
            column = vocabulary.get(token)
            if column is not None:
                rows.append(row)
                cols.append(column)
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(sets), max(1, len(vocabulary))), dtype=np.float32)


def _settings(config: PipelineConfig, mode, min_confidence, top_k) -> tuple[str, float, int]:
    mode = mode or config.get("linking.mode")
    if mode not in LINK_MODES:
        raise LinkingError(f"The linking mode is one of {', '.join(LINK_MODES)}; got {mode!r}.")
    min_confidence = config.min_confidence if min_confidence is None else float(min_confidence)
    if not 0 <= min_confidence <= 1:
        raise LinkingError(f"min_confidence is a number between 0 and 1; got {min_confidence}.")
    top_k = config.top_k if top_k is None else int(top_k)
    if top_k < 1:
        raise LinkingError(f"top_k is a whole number, 1 or more; got {top_k}.")
    return mode, min_confidence, top_k


@dataclass
class Scored:
    """What a mode produced: per stored candidate its commit row, item row, confidence, parts and evidence."""

    rows: np.ndarray
    cols: np.ndarray
    confidence: np.ndarray
    semantic: np.ndarray
    keyword: np.ndarray  # word overlap (best) or the seed's keyword score (hybrid); NaN when unused
    time_score: np.ndarray  # hours between the last sighting and the commit (best); NaN when unused
    reference: np.ndarray
    evidence: list[dict]
    candidate_commits: int = 0
    candidates: int = 0


@dataclass
class CandidateTable:
    """Every candidate of `best` with its features (what the model scores and what it is trained on)."""

    commits: list[dict]
    items: list[dict]
    rows: np.ndarray
    cols: np.ndarray
    hours: np.ndarray
    features: np.ndarray
    references: list[list[str]]


def candidate_table(conn, embedder, commits: list[dict], items: list[dict], window_days: float,
                    progress: ProgressFn = no_progress, stats: EmbedStats | None = None,
                    transaction=None, executor=None) -> CandidateTable:
    """Candidates of every commit (time window, plus timeless items by meaning) and their FEATURES, embedding only
    the commits and items that have a candidate."""
    stats = stats if stats is not None else EmbedStats()
    sightings = _sightings(conn, items)
    commit_times = np.array([_epoch(commit["timestamp"]) for commit in commits])
    titles = [page_title(item["window_name"], item["browser_url"]) for item in items]
    timeless = [index for index, seen in enumerate(sightings) if not len(seen)]
    timed = window_candidates(commit_times, sightings, window_days)
    wanted_commits = sorted(set(timed.rows.tolist()) | (set(range(len(commits))) if timeless else set()))
    wanted_items = sorted(set(timed.cols.tolist()) | set(timeless))
    progress("embedding", 0, None)
    item_vectors = embed_cached(conn, embedder, {items[i]["content_hash"]: items[i]["text"] for i in wanted_items},
                                progress, stats, transaction, executor)
    messages = [commits[row]["message"].strip() for row in wanted_commits]
    # the first window of each message (an embedder without `head` gives its first chunk)
    heads = (embedder.head(messages) if hasattr(embedder, "head")
             else [pieces[0] if pieces else "" for pieces in embedder.chunk(messages)]) if messages else []
    subjects = {row: feature_module.commit_subject(commits[row]["message"]) for row in wanted_commits}
    codes = {row: feature_module.commit_code_text([path for path, _ in commits[row]["files"]],
                                                  [code for _, code in commits[row]["files"]])
             for row in wanted_commits}
    short_texts = [*heads, *subjects.values(), *(titles[i] for i in wanted_items if titles[i])]
    short_vectors = embed_cached(conn, embedder, {text_hash(text): text for text in short_texts if text}, progress,
                                 stats, transaction, executor)
    dim = next(iter(item_vectors.values())).shape[1] if item_vectors else 384

    def vector(text: str) -> np.ndarray:
        return _mean_vector(short_vectors[text_hash(text)]) if text else np.zeros(dim, np.float32)

    zeros = np.zeros(dim, np.float32)
    head_of = dict(zip(wanted_commits, heads, strict=True))
    commit_side = CommitSide(
        times=commit_times,
        subject_vectors=np.stack([vector(subjects[row]) if row in subjects else zeros for row in range(len(commits))]),
        message_vectors=np.stack([vector(head_of[row]) if row in head_of else zeros for row in range(len(commits))]),
        texts=[f"{commit['message']}\n{codes.get(row, '')}" if row in subjects else ""
               for row, commit in enumerate(commits)],
        subjects=[subjects.get(row, "") for row in range(len(commits))],
        references=[feature_module.commit_references_of(commit["message"], [path for path, _ in commit["files"]],
                                                        [code for _, code in commit["files"]])
                    if row in subjects else {} for row, commit in enumerate(commits)],
    )
    wanted = set(wanted_items)
    chunk_arrays = [item_vectors[item["content_hash"]] if index in wanted else zeros[None, :]
                    for index, item in enumerate(items)]
    starts = np.cumsum([0] + [len(array) for array in chunk_arrays[:-1]]).astype(np.int64)
    item_side = ItemSide(
        sightings=sightings, chunk_vectors=np.concatenate(chunk_arrays).astype(np.float32), chunk_starts=starts,
        title_vectors=np.stack([vector(title) if (index in wanted and title) else zeros
                                for index, title in enumerate(titles)]),
        texts=[" ".join(filter(None, (item["text"], item["window_name"], item["browser_url"]))) for item in items],
        titles=titles, kinds=[item["knowledge_type"] for item in items],
        has_url=np.array([bool(item["browser_url"]) for item in items]),
        tracker=np.array([feature_module.is_tracker_page(item["window_name"], item["browser_url"]) for item in items]),
    )
    timeless_scores = None
    if timeless:
        ends = np.append(item_side.chunk_starts[1:], len(item_side.chunk_vectors))
        chunks = item_side.chunk_vectors
        timeless_scores = np.stack([(commit_side.message_vectors @ chunks[item_side.chunk_starts[i]:ends[i]].T).max(1)
                                    for i in timeless], axis=1)
    candidates = window_candidates(commit_times, sightings, window_days, timeless_scores)
    progress("scoring", 0, len(candidates))
    features = pair_features(commit_side, item_side, candidates)
    references: list[list[str]] = []
    item_references: dict[int, set[str]] = {}
    if len(candidates):
        for row, col in zip(candidates.rows, candidates.cols, strict=True):
            if col not in item_references:
                item_references[col] = reference_tokens(item_side.texts[col])
            references.append(sorted(commit_side.references[row].keys() & item_references[col]))
    return CandidateTable(commits, items, candidates.rows, candidates.cols, candidates.hours, features, references)


def best_links(table: CandidateTable, model: LinkModel, keep: int) -> Scored:
    """The `keep` most probable candidates per commit, with their evidence."""
    probability, _ = model.predict(table.rows, table.cols, table.features)
    order = np.lexsort((-probability, table.rows))
    rows = table.rows[order]
    rank = np.zeros(len(order), dtype=np.int64)
    if len(order):
        starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    chosen = order[rank < keep]
    index = {name: FEATURES.index(name) for name in FEATURES}
    evidence = []
    for position in chosen:
        values = table.features[position]
        found = {"features": {name: round(float(values[index[name]]), 4) for name in SHOWN_FEATURES}}
        if table.references[position]:
            found["references"] = table.references[position]
        if not np.isnan(table.hours[position]):
            found["hours_before_commit"] = round(float(table.hours[position]), 2)
        evidence.append(found)
    features = table.features[chosen]
    semantic = np.maximum(features[:, index["cos_subject"]], features[:, index["cos_message"]]) if len(chosen) else \
        np.zeros(0)
    return Scored(
        rows=table.rows[chosen], cols=table.cols[chosen], confidence=probability[chosen], semantic=semantic,
        keyword=features[:, index["word_overlap"]] if len(chosen) else np.zeros(0),
        time_score=table.hours[chosen],
        reference=np.minimum(features[:, index["issue_ref"]] + features[:, index["file_ref"]]
                             + features[:, index["identifier_ref"]], 1.0) if len(chosen) else np.zeros(0),
        evidence=evidence, candidate_commits=len(np.unique(table.rows)), candidates=len(table.rows),
    )


def seed_links(conn, embedder, config: PipelineConfig, mode: str, commits: list[dict], items: list[dict],
               model: LinkModel | None, keep: int, progress: ProgressFn = no_progress, stats: EmbedStats | None = None,
               transaction=None, executor=None) -> Scored:
    """The seeds' semantic or hybrid matcher; confidences calibrated by `model` (None: the raw seed scores)."""
    stats = stats if stats is not None else EmbedStats()
    knowledge_vectors = embed_cached(conn, embedder, {item["content_hash"]: item["text"] for item in items},
                                     progress, stats, transaction, executor)
    messages = [commit["message"].strip() for commit in commits]
    message_vectors = embed_cached(conn, embedder, {text_hash(text): text for text in messages}, progress, stats,
                                   transaction, executor)
    keywords = normalized_keywords(config.get("linking.keywords"))
    vocabulary = {word: index for index, word in enumerate(sorted(keywords))}
    commit_keywords = [keyword_set(commit["message"], keywords) for commit in commits]
    item_keywords = [keyword_set(item["text"], keywords) for item in items]
    commit_side = SeedCommitSide(
        shas=[commit["sha"] for commit in commits], times=np.array([_epoch(c["timestamp"]) for c in commits]),
        message_vectors=np.stack([_mean_vector(message_vectors[text_hash(text)]) for text in messages]),
        keywords=_binary_matrix(commit_keywords, vocabulary))
    chunk_arrays = [knowledge_vectors[item["content_hash"]] for item in items]
    knowledge_side = SeedKnowledgeSide(
        ids=np.array([item["id"] for item in items]),
        first_times=np.array([_epoch(item["first_seen"]) for item in items]),
        last_times=np.array([_epoch(item["last_seen"]) for item in items]),
        chunk_vectors=np.concatenate(chunk_arrays).astype(np.float32),
        chunk_starts=np.cumsum([0] + [len(array) for array in chunk_arrays[:-1]]).astype(np.int64),
        keywords=_binary_matrix(item_keywords, vocabulary))
    params = MatchParams(mode=mode, candidates=keep, time_window_days=float(config.get("linking.time_window_days")),
                         commit_offset_hours=float(config.get("linking.commit_offset_hours")),
                         keyword_weight=float(config.get("linking.keyword_weight")),
                         semantic_weight=float(config.get("linking.semantic_weight")))
    progress("scoring", 0, None)
    found = match(commit_side, knowledge_side, params)
    rows, columns = np.nonzero(found.items >= 0)
    raw = found.confidence[rows, columns].astype(float)
    evidence = []
    for row, column in zip(rows, columns, strict=True):
        item = int(found.items[row, column])
        found_evidence: dict = {"raw_score": round(float(found.confidence[row, column]), 4)}
        if mode == "hybrid":
            found_evidence["keywords"] = sorted(commit_keywords[row] & item_keywords[item])
        first = knowledge_side.first_times[item]
        if not np.isnan(first) and items[item]["knowledge_type"] != "document":
            found_evidence["hours_before_commit"] = round((commit_side.times[row] - first) / 3600, 2)
        evidence.append(found_evidence)
    nan = np.full(len(rows), np.nan)
    confidence = model.calibrate_mode(mode, raw) if model is not None else raw
    return Scored(rows=rows, cols=found.items[rows, columns], confidence=confidence,
                  semantic=found.semantic[rows, columns].astype(float),
                  keyword=found.keyword[rows, columns].astype(float),
                  time_score=nan, reference=nan, evidence=evidence, candidate_commits=len(commits),
                  candidates=len(rows))


def link(
    config: PipelineConfig, workspace_path: Path, mode: str | None = None, min_confidence: float | None = None,
    top_k: int | None = None, progress: ProgressFn = no_progress, *, embedder=None,
    candidates: int = DEFAULT_CANDIDATES, model: LinkModel | None = None, executor=None,
) -> LinkResult:
    """Link the workspace's commits to its knowledge and store the run (no dataset is written: engine.pipeline
    does that); `pairs` counts the pairs the links at min_confidence / top_k give. `embedder` overrides the
    configured model (tests pass a fake); `candidates` is how many scored links are kept per commit; `model` the
    link model (default: the shipped one); `executor` (engine.executor, default local) computes the near-duplicate
    signatures and the embeddings, while every write stays here."""
    mode, min_confidence, top_k = _settings(config, mode, min_confidence, top_k)
    candidates = max(candidates, top_k)
    model = model or load_model()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        commits = _commit_rows(conn)
        if not commits:
            raise LinkingError("The workspace has no commits with code changes yet; run extract on a config whose "
                               "git_repo has commits touching code_extensions files.")
        progress("grouping near-duplicate screens", 0, None)
        with workspace.transaction(conn):
            group_near_duplicates(conn, executor=executor)
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
        if mode == "best":
            table = candidate_table(conn, embedder, commits, items, float(config.get("linking.time_window_days")),
                                    progress, stats, workspace.transaction, executor)
            scored = best_links(table, model, candidates)
            seconds["embed"] = stats.seconds
            seconds["score"] = time.perf_counter() - clock - stats.seconds
        else:
            scored = seed_links(conn, embedder, config, mode, commits, items, model, candidates, progress, stats,
                                 workspace.transaction, executor)
            seconds["embed"] = stats.seconds
            seconds["score"] = time.perf_counter() - clock - stats.seconds

        clock = time.perf_counter()
        progress("storing links", 0, None)
        run_id, stored = _store_run(workspace, conn, mode, candidates, config, embedder.model_id, commits, items,
                                    scored, model)
        seconds["store"] = time.perf_counter() - clock

        kept = filter_links(load_links(conn, run_id), min_confidence, top_k)
        confidences = kept["confidence"].to_numpy()
        files = {commit["sha"]: len(commit["files"]) for commit in commits}
        pairs = sum(files.get(sha, 0) for sha in kept["commit_sha"].unique())  # one per (commit, code file)
        result = LinkResult(
            run_id=run_id, mode=mode, model=embedder.model_id, min_confidence=min_confidence, top_k=top_k,
            commits=len(commits), knowledge_items=conn.execute("SELECT COUNT(*) FROM knowledge").fetchone()[0],
            knowledge_sources=conn.execute("SELECT COUNT(*) FROM knowledge_sources").fetchone()[0],
            representatives=len(items), near_duplicates_merged=merged_total, embedded_texts=stats.embedded_texts,
            cached_texts=stats.cached, chunked_texts=stats.chunked_texts, stored_links=stored,
            kept_links=len(kept), linked_commits=int(kept["commit_sha"].nunique()), pairs=pairs,
            confidence_mean=float(confidences.mean()) if len(confidences) else None,
            confidence_min=float(confidences.min()) if len(confidences) else None,
            confidence_max=float(confidences.max()) if len(confidences) else None,
            seconds={name: round(value, 3) for name, value in seconds.items()}, embedding_runtime=stats.runtime,
            capped_texts=stats.capped_texts, candidate_commits=scored.candidate_commits,
            candidates=scored.candidates,
            expected_precision=float(confidences.mean()) if len(confidences) else None,
        )
        conn.execute("UPDATE link_runs SET stats_json = ? WHERE id = ?", (json.dumps(result.to_dict()), run_id))
        return result


def save_run_stats(workspace_path: Path, result: LinkResult) -> None:
    """Store `result` as its run's stats (what the pipeline adds after writing the pairs: their count, files,
    MLX counts and time), so the run's record says what it produced."""
    with Workspace.open(workspace_path).connection() as conn:
        conn.execute("UPDATE link_runs SET stats_json = ? WHERE id = ?", (json.dumps(result.to_dict()), result.run_id))


def _store_run(workspace, conn, mode, candidates, config, embedding_model, commits, items, scored: Scored,
               model: LinkModel) -> tuple[int, int]:
    now = now_iso("seconds")
    settings = {"mode": mode, "candidates": candidates,
                "time_window_days": float(config.get("linking.time_window_days")),
                "link_model": model.info.get("name", "link_model.json")}
    if mode == "hybrid":
        settings.update(commit_offset_hours=float(config.get("linking.commit_offset_hours")),
                        keyword_weight=float(config.get("linking.keyword_weight")),
                        semantic_weight=float(config.get("linking.semantic_weight")))

    def number(value):
        return None if value is None or np.isnan(value) else round(float(value), 6)

    order = np.lexsort((-scored.confidence, scored.rows))
    rows = []
    rank, previous = 0, None
    for position in order:
        row = int(scored.rows[position])
        rank = rank + 1 if row == previous else 1
        previous = row
        rows.append((commits[row]["sha"], int(items[int(scored.cols[position])]["id"]), rank,
                     round(float(scored.confidence[position]), 6), round(float(scored.semantic[position]), 6),
                     number(scored.keyword[position]), number(scored.time_score[position]),
                     number(scored.reference[position]), json.dumps(scored.evidence[position])))
    with workspace.transaction(conn):
        run_id = conn.execute(
            "INSERT INTO link_runs(mode, model, params_json, started_at, finished_at, status) VALUES"
            " (?, ?, ?, ?, ?, 'ok')", (mode, embedding_model, json.dumps(settings), now, now)).lastrowid
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
    """The links a pair would use (`passes`: a mask over the stored run, no recomputation)."""
    return links[passes(links["rank"].to_numpy(), links["confidence"].to_numpy(), min_confidence, top_k)]


def latest_run(workspace_path: Path) -> dict | None:
    """The newest finished link run of a workspace (id, mode, model, params, stats), or None."""
    if not (Path(workspace_path) / "studio.db").exists():
        return None
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        row = conn.execute("SELECT * FROM link_runs WHERE status = 'ok' ORDER BY id DESC LIMIT 1").fetchone()
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
    knowledge: pd.DataFrame | None = None  # id -> label (window title or the start of the text) of linked items


def load_run_tables(workspace_path: Path, run_id: int) -> RunTables:
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        links = load_links(conn, run_id)
        if links.empty and not conn.execute("SELECT 1 FROM link_runs WHERE id = ?", (run_id,)).fetchone():
            raise LinkingError(f"There is no link run {run_id} in {workspace_path}; run link first.")
        commits = pd.read_sql_query(
            "SELECT c.sha, c.message, c.timestamp, COUNT(f.path) AS files FROM commits c"
            " JOIN file_changes f ON f.commit_sha = c.sha GROUP BY c.sha ORDER BY c.timestamp", conn)
        knowledge = pd.read_sql_query(
            "SELECT id, knowledge_type, COALESCE(NULLIF(window_name, ''), substr(text, 1, 100)) AS label"
            " FROM knowledge WHERE id IN (SELECT knowledge_id FROM links WHERE run_id = ?)", conn, params=(run_id,))
    return RunTables(run_id, links, commits, knowledge.set_index("id"))


def link_counts(tables: RunTables, min_confidence: float, top_k: int) -> dict[str, int]:
    """Counts at a threshold: kept links, commits linked, knowledge items used, training pairs (code files)."""
    kept = filter_links(tables.links, min_confidence, top_k)
    linked = kept["commit_sha"].unique()
    files = tables.commits.set_index("sha")["files"]
    confidence = kept["confidence"].to_numpy(dtype=np.float64)
    return {"links": len(kept), "linked_commits": len(linked), "commits": len(tables.commits),
            "knowledge_items": int(kept["knowledge_id"].nunique()),
            "pairs": int(files.reindex(linked).fillna(0).sum()),
            # calibrated confidences: their mean is the share of kept links expected to be right
            "expected_precision": float(confidence.mean()) if len(confidence) else None}


def threshold_neighbours(tables: RunTables, min_confidence: float, top_k: int, count: int = 5
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `count` links just above (kept) and just below (dropped) min_confidence among each commit's top_k,
    with the commit's subject and the item's label: what a small slider move adds or drops."""
    ranked = tables.links[tables.links["rank"] <= top_k]
    kept = passes(ranked["rank"].to_numpy(), ranked["confidence"].to_numpy(), min_confidence, top_k)
    above = ranked[kept].nsmallest(count, "confidence")
    below = ranked[~kept].nlargest(count, "confidence")
    subjects = tables.commits.set_index("sha")["message"].map(lambda text: text.strip().split("\n", 1)[0][:80])
    labels = tables.knowledge["label"] if tables.knowledge is not None else pd.Series(dtype=str)

    def described(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "confidence": frame["confidence"].astype(float).round(3).to_numpy(),
            "commit": [f"{sha[:8]} {subjects.get(sha, '')}" for sha in frame["commit_sha"]],
            "knowledge": [str(labels.get(item, ""))[:90] for item in frame["knowledge_id"]],
        })

    return described(above), described(below)


def commit_detail(workspace_path: Path, sha: str) -> dict:
    """One commit with its code files (path, change type, added code) for the pair browser."""
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        commit = conn.execute("SELECT sha, repo, message, author, timestamp FROM commits WHERE sha = ?",
                              (sha,)).fetchone()
        if commit is None:
            raise LinkingError(f"The commit {sha[:12]} is not in the workspace.")
        files = [dict(row) for row in conn.execute(
            "SELECT path, change_type, added_lines, added_code FROM file_changes WHERE commit_sha = ? ORDER BY path",
            (sha,))]
    return {**dict(commit), "files": files}


def evidence_for(workspace_path: Path, run_id: int, sha: str) -> list[dict]:
    """The stored candidates of one commit, best first, with their text and where and when they were seen."""
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        rows = conn.execute(
            "SELECT l.rank, l.confidence, l.semantic, l.keyword, l.time_score, l.reference, l.evidence_json,"
            " k.id, k.knowledge_type, k.text, k.app_name, k.window_name, k.browser_url, k.timestamp"
            " FROM links l JOIN knowledge k ON k.id = l.knowledge_id WHERE l.run_id = ? AND l.commit_sha = ?"
            " ORDER BY l.rank", (run_id, sha)).fetchall()
    return [{**{key: row[key] for key in row.keys() if key != "evidence_json"},
             "evidence": json.loads(row["evidence_json"] or "{}")} for row in rows]
