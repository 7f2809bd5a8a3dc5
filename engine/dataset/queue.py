"""One review queue over every example source: linked pairs validation queued from a training_data.jsonl, the
collected commit / doc / conversation / linked examples, and the widget examples a dataset build held back.

Each item is named by its stable key (a pair's hash, an example's content hash, a widget example's content key):
the answers recorded under that key are what the gate, the tiers and the exports read, so the same pair found as a
line of the JSONL and as a collected linked example is one item with one status. `load_queue` reads the records and
their findings (scans are cached in the workspace); `attach_statuses` adds what reviewers answered, cheaply, so a
page can re-read only that after each answer. `filter_queue` applies the filters and the search, and
`review_progress` counts what is done, overall and per reviewer.

Search looks at the texts with every finding masked, so it cannot be used to test whether a secret is there.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import DEFAULT_MIN_CONFIDENCE
from engine.dataset.gate import record_texts, scan_records
from engine.dataset.quality import assess, confidence_of
from engine.dataset.redact import masked_segments, value_at
from engine.dataset.review import RESOLVING, STATES, ItemStatus, item_statuses, queued_datasets
from engine.dataset.sensitive import Finding
from engine.formats import pair_hash, read_jsonl
from engine.store import Workspace

SOURCES = ("pairs", "commits", "docs", "conversations", "linked", "widgets")
SOURCE_LABELS = {"pairs": "linked pairs (JSONL)", "commits": "commit examples", "docs": "doc examples",
                 "conversations": "conversation examples", "linked": "collected linked pairs",
                 "widgets": "widget examples"}
COLLECTED = "collected"  # the dataset name answers on collected examples carry (engine.collect.review)
_BATCH = 2_000


@dataclass
class QueueItem:
    """One thing to review. `record` is exactly what would be trained (the JSONL object, the stored example, the
    widget's message list); `findings` address its texts by path with offsets; `dataset` and `index` are recorded
    with each answer (the JSONL path and 0-based line, "collected" and the example id, the widget set)."""

    key: str
    source: str
    origin: str
    record: object
    findings: list[Finding]
    reason: str  # flagged | sampled | collected | held
    dataset: str
    index: int | None
    tier: str | None = None
    confidence: float | None = None
    also: list[str] = field(default_factory=list)  # the other places the same item sits
    status: ItemStatus | None = None

    @property
    def kinds(self) -> list[str]:
        return sorted({finding.kind for finding in self.findings})

    @property
    def state(self) -> str:
        return self.status.state if self.status else "pending"

    def answer_of(self, reviewer: str) -> str | None:
        return self.status.answer_of(reviewer) if self.status else None

    def fields(self) -> list[tuple[str, str, list[Finding]]]:
        """(path, text, findings in it) for every text a model trains on, in record order, then every other text
        of the record (metadata) that holds a finding."""
        texts, _ = record_texts(self.record)
        by_path: dict[str, list[Finding]] = {}
        for finding in self.findings:
            by_path.setdefault(finding.field, []).append(finding)
        shown = [(path, text, by_path.get(path, [])) for path, text, _ in texts]
        main = {path for path, _, _ in texts}
        for path in sorted(set(by_path) - main):
            value = value_at(self.record, path)
            if isinstance(value, str):
                shown.append((path, value, by_path[path]))
        return shown

    def masked_text(self) -> str:
        """Every text of the record (origin included) with findings masked: what search looks in."""
        texts, (block, _) = record_texts(self.record)
        parts = [self.origin]
        for path, text, _ in texts:
            parts.append("".join(piece for piece, _ in masked_segments(
                text, [f for f in self.findings if f.field == path])))
        if block:
            parts.append(_masked_block(self.record, self.findings))
        return "\n".join(parts)


def _masked_block(record, findings: list[Finding]) -> str:
    """The record's other texts as `path: value` lines, findings masked."""
    _, (_, where) = record_texts(record)
    lines = []
    for _start, _end, path in where:
        value = value_at(record, path)
        if isinstance(value, str):
            lines.append(f"{path}: " + "".join(piece for piece, _ in masked_segments(
                value, [f for f in findings if f.field == path])))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- loading

def _pair_items(workspace: Workspace, dataset: Path, min_confidence: float) -> list[QueueItem]:
    """The queued pairs of one JSONL that are still in it (a pair no longer in the file is not shown)."""
    from engine.dataset.review import review_queue

    queued = {entry.pair_hash: entry for entry in review_queue(workspace, str(dataset))}
    if not queued or not dataset.is_file():
        return []
    found: dict[str, tuple[int, dict]] = {}
    for line in read_jsonl(dataset):
        if isinstance(line.record, dict):
            try:
                key = pair_hash(line.record)
            except (TypeError, AttributeError):
                continue
            if key in queued and key not in found:
                found[key] = (line.pair_index, line.record)
    findings = scan_records(workspace, [(index, record) for index, record in found.values()])
    items = []
    for key, (index, record) in found.items():
        entry = queued[key]
        items.append(QueueItem(key, "pairs", f"{dataset.name} line {index + 1}", record, findings.get(index, []),
                               "flagged" if findings.get(index) else entry.reason, str(dataset), index,
                               assess(record, min_confidence).tier, confidence_of(record)))
    return items


def scanned_examples(workspace: Workspace) -> Iterator[tuple[sqlite3.Row, object, list[Finding]]]:
    """(row, record, findings) for every collected example that is not a marked duplicate, oldest first: the row
    has id, content_hash, source, format, origin and tier. Pages through `examples` a batch at a time and scans
    each batch (scans are cached in the workspace), so memory holds one batch of records whatever the table holds."""
    with workspace.connection() as conn:
        last = 0
        while True:
            rows = conn.execute("SELECT id, content_hash, source, format, origin, record_json, tier FROM examples"
                                " WHERE id > ? AND duplicate_of IS NULL ORDER BY id LIMIT ?", (last, _BATCH)).fetchall()
            if not rows:
                return
            last = rows[-1]["id"]
            records = {row["id"]: json.loads(row["record_json"]) for row in rows}
            found = scan_records(workspace, list(records.items()))
            for row in rows:
                yield row, records[row["id"]], found.get(row["id"], [])


def _example_items(workspace: Workspace) -> list[QueueItem]:
    """Every collected example that is not a marked duplicate."""
    items = []
    for row, record, findings in scanned_examples(workspace):
        metadata = record.get("metadata") if isinstance(record, dict) else None
        confidence = metadata.get("confidence") if isinstance(metadata, dict) else None
        items.append(QueueItem(
            row["content_hash"], row["source"], f"{row['source']} example {row['id']} · {row['origin']}",
            record, findings, "flagged" if findings else "collected", COLLECTED, row["id"], row["tier"],
            float(confidence) if isinstance(confidence, (int, float)) and not isinstance(confidence, bool) else None))
    return items


def _widget_filename(path: str) -> str:
    return "widget.jsx" if path.startswith("[") and path.endswith("].content") else "capture.txt"


def _widget_items(workspace: Workspace) -> list[QueueItem]:
    """The widget examples a dataset build held for review (engine.uebersicht.dataset keeps them in the workspace)."""
    with workspace.connection() as conn:
        rows = conn.execute("SELECT key, dataset, origin, record_json FROM held_records WHERE source = 'widgets'"
                            " ORDER BY held_at, key").fetchall()
    records = [json.loads(row["record_json"]) for row in rows]
    found = scan_records(workspace, list(enumerate(records)), filename_of=lambda record: _widget_filename)
    return [QueueItem(row["key"], "widgets", f"{Path(row['dataset'].removeprefix('widgets:')).name}: {row['origin']}",
                      record, found.get(index, []), "held", row["dataset"], None)
            for index, (row, record) in enumerate(zip(rows, records, strict=True))]


def load_queue(workspace: Workspace, pair_files: Iterable[str | Path] | None = None,
               min_confidence: float = DEFAULT_MIN_CONFIDENCE, collected: bool = True) -> list[QueueItem]:
    """Every item waiting for (or given) a review, flagged ones first, each key once. `pair_files` are the JSONL
    files whose queued pairs to include (default: every file validation queued pairs from that still exists);
    `collected` False leaves out the collected examples and held widgets (one file's review). Statuses are
    attached (see `attach_statuses`)."""
    files = [Path(path).expanduser().resolve() for path in pair_files] if pair_files is not None \
        else [Path(path) for path in queued_datasets(workspace)]
    loaded: list[QueueItem] = []
    for dataset in dict.fromkeys(files):
        loaded += _pair_items(workspace, dataset, min_confidence)
    if collected:
        loaded += _example_items(workspace)
        loaded += _widget_items(workspace)
    by_key: dict[str, QueueItem] = {}
    for item in loaded:
        first = by_key.get(item.key)
        if first is None:
            by_key[item.key] = item
        else:
            first.also.append(item.origin)
    items = sorted(by_key.values(), key=lambda item: (not item.findings, SOURCES.index(item.source)))
    return attach_statuses(workspace, items, min_confidence)


def attach_statuses(workspace: Workspace, items: list[QueueItem],
                    min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[QueueItem]:
    """Set each item's status from the answers recorded now (a pair's tier follows it: only good makes gold)."""
    statuses = item_statuses(workspace, [item.key for item in items])
    for item in items:
        item.status = statuses.get(item.key)
        if item.source == "pairs" and isinstance(item.record, dict):
            item.tier = assess(item.record, min_confidence, item.status.decision if item.status else None).tier
    return items


# ----------------------------------------------------------------------------------------------------- filtering

@dataclass
class QueueFilter:
    """Empty means "any". `states` are STATES plus "mine" (items the given reviewer has not answered yet);
    `answered_by` keeps items that reviewer answered; confidence bounds leave out items without a confidence."""

    sources: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    tiers: set[str] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    answered_by: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    search: str = ""
    flagged_only: bool = False


def filter_queue(items: list[QueueItem], wanted: QueueFilter, reviewer: str | None = None) -> list[QueueItem]:
    """The items that pass every filter, in queue order. Unknown state names are refused by the caller's widget."""
    needle = wanted.search.strip().casefold()
    kept = []
    for item in items:
        if wanted.sources and item.source not in wanted.sources:
            continue
        if wanted.kinds and not wanted.kinds & set(item.kinds):
            continue
        if wanted.flagged_only and not item.findings:
            continue
        if wanted.tiers and item.tier not in wanted.tiers:
            continue
        if wanted.states:
            mine = "mine" in wanted.states and reviewer is not None and not _answered(item, reviewer)
            if not (mine or item.state in wanted.states):
                continue
        if wanted.answered_by and not _answered(item, wanted.answered_by):
            continue
        if wanted.min_confidence is not None and (item.confidence is None or item.confidence < wanted.min_confidence):
            continue
        if wanted.max_confidence is not None and (item.confidence is None or item.confidence > wanted.max_confidence):
            continue
        if needle and needle not in item.masked_text().casefold():
            continue
        kept.append(item)
    return kept


def _answered(item: QueueItem, reviewer: str) -> bool:
    answer = item.answer_of(reviewer)
    return answer is not None and answer != "skip"


def reviewers_of(items: Iterable[QueueItem]) -> list[str]:
    """Everyone who answered any of the items (settling answers included), sorted."""
    names = set()
    for item in items:
        if item.status:
            names.update(answer.reviewer for answer in item.status.answers.values())
    return sorted(names)


@dataclass
class ReviewProgress:
    total: int
    resolved: int  # good, bad or redact by the rule
    by_state: dict[str, int]
    by_reviewer: dict[str, int]  # items each reviewer answered (not skipped)

    @property
    def percent(self) -> float:
        return 100 * self.resolved / self.total if self.total else 100.0


def review_progress(items: list[QueueItem], reviewers: Iterable[str] = ()) -> ReviewProgress:
    """What is done among `items`: resolved items overall, and per reviewer the items they answered."""
    states = Counter(item.state for item in items)
    names = list(dict.fromkeys([*reviewers, *reviewers_of(items)]))
    by_reviewer = {name: sum(_answered(item, name) for item in items) for name in names}
    return ReviewProgress(len(items), sum(states[state] for state in RESOLVING),
                          {state: states.get(state, 0) for state in STATES}, by_reviewer)


# ------------------------------------------------------------------------------------------------------ deciding

def decide(workspace: Workspace, item: QueueItem, decision: str, reviewer: str, *, settles: bool = False,
           note: str | None = None):
    """Record `reviewer`'s answer on `item` under its key (what the gate, tiers and exports read)."""
    from engine.dataset.review import record_decision

    return record_decision(workspace, item.key, decision, reviewer, dataset=item.dataset, pair_index=item.index,
                           note=note, settles=settles)


def decide_all(workspace: Workspace, items: list[QueueItem], decision: str, reviewer: str) -> int:
    """The same answer on every item (a filtered set): one action, which one undo takes back."""
    from engine.dataset.review import record_bulk

    return record_bulk(workspace, [(item.key, item.dataset, item.index) for item in items], decision, reviewer)


def queue_fingerprint(workspace: Workspace, pair_files: Iterable[str | Path] | None = None) -> str:
    """Changes whenever `load_queue` would read something else (examples collected or re-checked, widgets held,
    pairs queued, a JSONL rewritten, new detector rules), and not when someone answers: a page caches the
    loaded queue under it and attaches statuses afresh on every run."""
    from engine.dataset.sensitive import DETECTOR_VERSION

    parts = [DETECTOR_VERSION]
    with workspace.connection() as conn:
        for query in ("SELECT COUNT(*), MAX(id), MAX(checked_at), SUM(duplicate_of IS NOT NULL) FROM examples",
                      "SELECT COUNT(*), MAX(held_at) FROM held_records",
                      "SELECT COUNT(*), MAX(added_at) FROM review_queue"):
            parts.append(json.dumps(list(conn.execute(query).fetchone())))
    files = [Path(path).expanduser().resolve() for path in pair_files] if pair_files is not None \
        else [Path(path) for path in queued_datasets(workspace)]
    for path in files:
        try:
            info = path.stat()
            parts.append(f"{path}:{info.st_mtime_ns}:{info.st_size}")
        except OSError:
            parts.append(f"{path}:missing")
    return "|".join(parts)
