"""Precision and recall of a link run against ground truth: for each commit, the source ids that truly explain it.

A kept link (commit, knowledge item) is correct when any source id behind the item (its own rows and its near
duplicates') is in the commit's truth. Recall counts distinct true knowledge items: the items whose sources
intersect the truth, found among the kept links. Exact and near duplicates therefore count once, as a person would.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.linking.link import filter_links, load_links
from engine.store import Workspace


@dataclass
class LinkQuality:
    mode: str
    min_confidence: float
    top_k: int
    links: int
    correct_links: int
    true_items: int
    found_items: int
    commits: int
    commits_with_correct_link: int

    @property
    def precision(self) -> float:
        return self.correct_links / self.links if self.links else 0.0

    @property
    def recall(self) -> float:
        return self.found_items / self.true_items if self.true_items else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4)}


def load_truth(path: str | Path) -> dict[str, set[str]]:
    """A ground_truth.json as {commit sha: source ids}: either that mapping itself, or the demo's shape
    (`{"commits": [{"sha", "knowledge": [...]}, ...]}`)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data.get("commits"), list):
        return {commit["sha"]: set(commit["knowledge"]) for commit in data["commits"]}
    return {sha: set(sources) for sha, sources in data.items()}


def evaluate_run(workspace_path: Path, run_id: int, truth: dict[str, set[str]], min_confidence: float,
                 top_k: int) -> LinkQuality:
    """Score the links of a stored run at a threshold and top-k against `truth`."""
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        mode = conn.execute("SELECT mode FROM link_runs WHERE id = ?", (run_id,)).fetchone()[0]
        kept = filter_links(load_links(conn, run_id), min_confidence, top_k)
        sources_of: dict[int, set[str]] = {}
        for representative, source_id in conn.execute(
            "SELECT g.representative_id, s.source_id FROM knowledge_groups g"
            " JOIN knowledge_sources s ON s.knowledge_id = g.knowledge_id"
        ):
            sources_of.setdefault(representative, set()).add(source_id)
    true_items = {sha: {item for item, sources in sources_of.items() if sources & wanted}
                  for sha, wanted in truth.items()}
    correct = 0
    commits_hit: set[str] = set()
    found_pairs: set[tuple[str, int]] = set()
    for sha, item in zip(kept["commit_sha"], kept["knowledge_id"], strict=True):
        if item in true_items.get(sha, ()):
            correct += 1
            commits_hit.add(sha)
            found_pairs.add((sha, int(item)))
    found = len(found_pairs)
    true_total = sum(len(items) for items in true_items.values())
    return LinkQuality(mode, min_confidence, top_k, len(kept), correct, true_total, found, len(truth),
                       len(commits_hit))
