"""`python -m bench link_model {train,evaluate} SET [SET ...]`: fit the link model on labelled sets, or judge it
leave-one-repository-out.

A SET is a folder laid out like ../shared/datasets/linking-dev/refs: `pipeline_config.json` (paths relative to the
folder), `truth.json` ({commit sha: ["ocr:<frame id>", "audio:<id>", ...]}; a generated world's
`ground_truth.json` works too) and optionally `truth_meta.json`
(`related`: other commits whose links to those ids count as right; `repo` / `source_repository`: which repository
the set comes from, so both variants of one repository are held out together). Each set is extracted into its own
workspace `SET/ws-link-model` (embeddings are cached there, so a second run only scores).

- `train SET... [--extra SET...] [--out engine/linking/link_model.json]`: fits stage 1, stage 2 on out-of-fold
  stage-1 scores, and the isotonic calibration on out-of-fold stage-2 probabilities (folds = repositories); the
  seeds' modes get their own calibration maps. `--extra` sets (e.g. generated worlds) are trained on, never judged.
- `evaluate SET... [--extra SET...]`: for each repository, a model trained on all the others judges it: precision,
  recall (target commits with a right link, as the set's score.py counts), p@t, expected calibration error.

Needs scikit-learn (in requirements.txt). Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
SEED_KEEP = 20
WORKSPACE_NAME = "ws-link-model"  # each set's own workspace for this bench (embeddings cached there)


@dataclass
class LabelledSet:
    path: Path
    repository: str
    shas: list[str]
    targets: set[str]
    rows: np.ndarray
    cols: np.ndarray
    features: np.ndarray
    labels: np.ndarray  # candidate is right
    item_sources: list[list[str]]  # per item: its source ids (its own and its near duplicates')
    truth: dict[str, set[str]]
    related: dict[str, set[str]]
    seed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


def load_set(path: Path, seed_modes: bool = True) -> LabelledSet:
    from engine.config import PipelineConfig
    from engine.extract import extract
    from engine.linking.embedder import group_near_duplicates, load_embedder
    from engine.linking.link import _commit_rows, _representatives, candidate_table, seed_links
    from engine.store import Workspace

    config = PipelineConfig.load(path / "pipeline_config.json")
    workspace = Workspace.open(path / WORKSPACE_NAME)
    extract(config, workspace.root)
    conn = workspace.connect()
    try:
        with workspace.transaction(conn):
            group_near_duplicates(conn)
        commits, items = _commit_rows(conn), _representatives(conn)
        embedder = load_embedder(config.get("linking.model"))
        table = candidate_table(conn, embedder, commits, items, float(config.get("linking.time_window_days")),
                                transaction=workspace.transaction)
        members: dict[int, list[str]] = {}
        for representative, source in conn.execute(
                "SELECT g.representative_id, s.source_id FROM knowledge_groups g"
                " JOIN knowledge_sources s ON s.knowledge_id = g.knowledge_id ORDER BY s.source_id"):
            members.setdefault(representative, []).append(source)
        seed = {}
        if seed_modes:
            for mode in ("semantic", "hybrid"):
                found = seed_links(conn, embedder, config, mode, commits, items, None, SEED_KEEP,
                                   transaction=workspace.transaction)
                seed[mode] = (found.rows, found.cols, found.confidence, None)
    finally:
        conn.close()
    from engine.linking.accuracy import load_truth

    truth = load_truth(path / "truth.json" if (path / "truth.json").exists() else path / "ground_truth.json")
    meta_path = path / "truth_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    related = {sha: set(ids) for sha, ids in meta.get("related", {}).items()}
    repository = str(meta.get("source_repository") or meta.get("repo") or path.resolve().parent.name)
    shas = [commit["sha"] for commit in commits]
    item_sources = [members.get(item["id"], []) for item in items]

    def labels_of(rows, cols):
        return np.array([bool(set(item_sources[col]) & (truth.get(shas[row], set()) | related.get(shas[row], set())))
                         for row, col in zip(rows, cols, strict=True)], dtype=bool)

    labelled = LabelledSet(path, repository, shas, set(truth), table.rows, table.cols, table.features,
                           labels_of(table.rows, table.cols), item_sources, truth, related)
    for mode, (rows, cols, raw, _) in seed.items():
        labelled.seed[mode] = (rows, cols, raw, labels_of(rows, cols))
    return labelled


# -- fitting -----------------------------------------------------------------------------------------------------
def _fit_logistic(features: np.ndarray, labels: np.ndarray, c: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    from engine.linking.model import Logistic

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-9] = 1.0
    fitted = LogisticRegression(C=c, max_iter=5000).fit((features - mean) / scale, labels)
    return Logistic(mean, scale, fitted.coef_[0], float(fitted.intercept_[0]))


TREE_SETTINGS = {"max_depth": 4, "max_iter": 100, "learning_rate": 0.05, "l2_regularization": 1.0,
                 "min_samples_leaf": 100, "random_state": 0}


def _fit_trees(features: np.ndarray, labels: np.ndarray):
    """Stage 2: shallow gradient-boosted trees (settings chosen among three tried leave-one-repository-out)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from engine.linking.model import Trees

    fitted = HistGradientBoostingClassifier(**TREE_SETTINGS).fit(features, labels)
    trees = []
    for (predictor,) in fitted._predictors:
        nodes = predictor.nodes
        trees.append({"feature": nodes["feature_idx"].astype(np.int64),
                      "threshold": nodes["num_threshold"].astype(float), "left": nodes["left"].astype(np.int64),
                      "right": nodes["right"].astype(np.int64), "is_leaf": nodes["is_leaf"].astype(bool),
                      "value": nodes["value"].astype(float)})
    return Trees(float(np.ravel(fitted._baseline_prediction)[0]), trees)


def _isotonic(scores: np.ndarray, labels: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    from engine.linking.model import Calibration

    if labels.sum() == 0 or labels.all():
        return Calibration(np.array([0.0, 1.0]), np.array([float(labels.mean())] * 2))
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels.astype(float))
    return Calibration(np.asarray(fitted.X_thresholds_, float), np.asarray(fitted.y_thresholds_, float))


FOLDS_WITHIN_ONE_REPOSITORY = 5


def _folds(sets: list[LabelledSet]) -> np.ndarray:
    """A fold per candidate: its repository; with one repository, its commit's (hashed into 5 folds), so nothing
    is ever judged by a model that saw it."""
    import hashlib

    repositories = sorted({s.repository for s in sets})
    if len(repositories) > 1:
        return np.concatenate([np.full(len(s.labels), repositories.index(s.repository)) for s in sets])
    return np.concatenate([np.array([int(hashlib.sha1(s.shas[row].encode()).hexdigest()[:8], 16)
                                     % FOLDS_WITHIN_ONE_REPOSITORY for row in s.rows], dtype=np.int64)
                           for s in sets])


def fit_model(sets: list[LabelledSet], info: dict | None = None):
    """Stage 1 (logistic) on everything; stage 2 (trees) on features + relative features of out-of-fold stage-1
    scores; isotonic on out-of-fold stage-2 probabilities. Folds are repositories (commits when there is one)."""
    from engine.linking.features import relative_features, sigmoid
    from engine.linking.model import LinkModel

    folds = _folds(sets)
    all_x = np.concatenate([s.features for s in sets])
    all_y = np.concatenate([s.labels for s in sets])
    stage1 = _fit_logistic(all_x, all_y)
    first = np.zeros(len(all_y))
    for fold in np.unique(folds):
        inside = folds == fold
        first[inside] = _fit_logistic(all_x[~inside], all_y[~inside]).score(all_x[inside])
    offsets = np.cumsum([0] + [len(s.labels) for s in sets])
    all_extended = np.concatenate([
        np.column_stack([s.features, relative_features(s.rows, s.cols, first[offsets[i]:offsets[i + 1]])])
        for i, s in enumerate(sets)])
    stage2 = _fit_trees(all_extended, all_y)
    out_of_fold = np.zeros(len(all_y))
    for fold in np.unique(folds):
        inside = folds == fold
        out_of_fold[inside] = sigmoid(_fit_trees(all_extended[~inside], all_y[~inside]).score(all_extended[inside]))
    calibration = _isotonic(out_of_fold, all_y)
    modes = {}
    for mode in ("semantic", "hybrid"):
        with_mode = [s for s in sets if mode in s.seed]
        if with_mode:
            modes[mode] = _isotonic(np.concatenate([s.seed[mode][2] for s in with_mode]),
                                    np.concatenate([s.seed[mode][3] for s in with_mode]))
    return LinkModel(stage1, stage2, calibration, modes, info or {})


# -- judging -----------------------------------------------------------------------------------------------------
def judge(labelled: LabelledSet, rows, cols, confidence, min_confidence=0.6, top_k=3) -> dict:
    """The set's score.py, in process: links are (commit, source id) of the kept items; p@t and ECE over every
    link at min_confidence 0 (top_k kept)."""
    values, hits = link_confidences(labelled, rows, cols, confidence, top_k)
    shas = link_shas(labelled, rows, cols, confidence, top_k)
    kept = values >= min_confidence
    recalled = {sha for sha, hit, keep in zip(shas, hits, kept, strict=True)
                if hit and keep and sha in labelled.targets}
    result = {"links": int(kept.sum()), "precision": float(hits[kept].mean()) if kept.any() else 0.0,
              "recall": len(recalled) / max(1, len(labelled.targets)), "recalled": len(recalled),
              "targets": len(labelled.targets), "commits_with_link": len(set(np.asarray(shas)[kept].tolist()))}
    for threshold in THRESHOLDS:
        chosen = values >= threshold
        result[f"p@{threshold}"] = float(hits[chosen].mean()) if chosen.any() else None
        result[f"n@{threshold}"] = int(chosen.sum())
    ece = 0.0
    for row in reliability(values, hits):
        ece += row["links"] / max(1, len(values)) * abs(row["confidence"] - row["precision"])
    result["ece"] = ece
    result["all_links"] = len(values)
    return result


def link_shas(labelled: LabelledSet, rows, cols, confidence, top_k=3) -> list[str]:
    """The commit of each link, in link_confidences' order."""
    return [sha for sha, _ in _links(labelled, rows, cols, confidence, top_k)]


def _links(labelled: LabelledSet, rows, cols, confidence, top_k=3) -> dict[tuple[str, str], float]:
    """{(commit, source id): highest confidence} of the items among each commit's top_k, as score.py counts them."""
    order = np.lexsort((-confidence, rows))
    links: dict[tuple[str, str], float] = {}
    last, count = None, 0
    for position in order:
        count = count + 1 if rows[position] == last else 1
        last = rows[position]
        if count > top_k:
            continue
        sha = labelled.shas[rows[position]]
        for source in labelled.item_sources[cols[position]]:
            if source.split(":")[0] in ("ocr", "audio"):  # score.py leaves other kinds (doc:) out of precision
                links[(sha, source)] = max(links.get((sha, source), -1.0), float(confidence[position]))
    return links


def link_confidences(labelled: LabelledSet, rows, cols, confidence, top_k=3) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, right) of every (commit, source id) link among each commit's top_k."""
    links = _links(labelled, rows, cols, confidence, top_k)
    right = [source in labelled.truth.get(sha, set()) | labelled.related.get(sha, set()) for sha, source in links]
    return np.array(list(links.values())), np.array(right, dtype=bool)


def reliability(confidences: np.ndarray, right: np.ndarray, bins: int = 10) -> list[dict]:
    """Per confidence bin: the mean confidence, the share right, and how many links (empty bins left out)."""
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        chosen = (confidences >= low) & ((confidences < high) | (high == 1.0))
        if chosen.any():
            rows.append({"confidence": round(float(confidences[chosen].mean()), 4),
                         "precision": round(float(right[chosen].mean()), 4), "links": int(chosen.sum())})
    return rows


def leave_one_out(sets: list[LabelledSet], extra: list[LabelledSet]):
    """For each repository, a model fitted on all the others (and the extra sets) predicts its sets:
    yields (set, model, probabilities)."""
    for repository in sorted({s.repository for s in sets}):
        training = [s for s in sets if s.repository != repository] + extra
        if not training:
            print(f"{repository}: no other repository to train on", file=sys.stderr)
            continue
        model = fit_model(training)
        for s in (s for s in sets if s.repository == repository):
            probability, _ = model.predict(s.rows, s.cols, s.features)
            yield s, model, probability


def _line(name: str, mode: str, r: dict) -> str:
    points = " | ".join(f"{r[f'p@{t}']:.2f} ({r[f'n@{t}']})" if r[f"p@{t}"] is not None else "-" for t in THRESHOLDS)
    return (f"| {name} | {mode} | {r['precision']:.3f} | {r['recall']:.3f} ({r['recalled']}/{r['targets']}) | "
            f"{r['links']} | {points} | {r['ece']:.3f} |")


def _load_all(paths: list[str], seed_modes: bool = True) -> list[LabelledSet]:
    sets = []
    for path in paths:
        began = time.perf_counter()
        labelled = load_set(Path(path), seed_modes)
        print(f"loaded {path}: {len(labelled.shas)} commits, {len(labelled.rows)} candidates, "
              f"{int(labelled.labels.sum())} right ({time.perf_counter() - began:.1f} s)", file=sys.stderr)
        sets.append(labelled)
    return sets


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench link_model")
    parser.add_argument("action", choices=("train", "evaluate"))
    parser.add_argument("sets", nargs="+", help="labelled set folders (pipeline_config.json + truth.json)")
    parser.add_argument("--extra", nargs="*", default=[], help="sets trained on but never judged")
    parser.add_argument("--out", default=str(Path(__file__).parent.parent / "engine" / "linking" / "link_model.json"))
    parser.add_argument("--min-confidence", type=float, default=0.6)
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    from engine.linking.model import LinkModel

    sets = _load_all(args.sets)
    extra = _load_all(args.extra)
    for s in extra:
        s.repository = f"extra:{s.repository}"
    if args.action == "train":
        held_out, pooled_confidence, pooled_right = [], [], []
        for s, _, probability in leave_one_out(sets, extra):
            result = judge(s, s.rows, s.cols, probability, args.min_confidence, args.top_k)
            held_out.append({"set": f"{s.repository.rsplit('/', 1)[-1]} {s.path.name}",
                             **{key: (round(value, 4) if isinstance(value, float) else value)
                                for key, value in result.items()}})
            confidences, right = link_confidences(s, s.rows, s.cols, probability, args.top_k)
            pooled_confidence.append(confidences)
            pooled_right.append(right)
        info = {"name": "link_model.json", "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": "python -m bench link_model train " + " ".join(args.sets),
                "sets": [{"set": f"{s.repository.rsplit('/', 1)[-1]} {s.path.name}", "repository": s.repository,
                          "commits": len(s.shas), "candidates": int(len(s.rows)), "right": int(s.labels.sum())}
                         for s in sets + extra],
                "held_out": held_out,
                "reliability": reliability(np.concatenate(pooled_confidence), np.concatenate(pooled_right))
                if pooled_confidence else []}
        model: LinkModel = fit_model(sets + extra, info)
        model.save(Path(args.out))
        print(f"wrote {args.out}")
        for row in held_out:
            print(f"held out: {row['set']}: precision {row['precision']:.3f}, recall {row['recall']:.3f}, "
                  f"ECE {row['ece']:.3f}")
        return 0
    print(f"### Leave one repository out ({time.strftime('%Y-%m-%d %H:%M')}; min_confidence {args.min_confidence}, "
          f"top_k {args.top_k})\n")
    print("| held-out set | mode | precision | recall | links | " + " | ".join(f"p@{t} (n)" for t in THRESHOLDS)
          + " | ECE |")
    print("|---|---|---|---|---|" + "---|" * len(THRESHOLDS) + "---|")
    for s, model, probability in leave_one_out(sets, extra):
        name = f"{s.repository.rsplit('/', 1)[-1]} {s.path.name}"
        print(_line(name, "best", judge(s, s.rows, s.cols, probability, args.min_confidence, args.top_k)))
        for mode, (rows, cols, raw, _) in s.seed.items():
            if mode in model.modes:
                print(_line(name, mode, judge(s, rows, cols, model.calibrate_mode(mode, raw),
                                              args.min_confidence, args.top_k)))
    return 0
