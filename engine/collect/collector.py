"""`collect`: turn what the workspace already holds into tagged training examples, incrementally.

Sources (collect.sources): commit messages (engine/collect/commits.py), documentation sections (docs.py),
conversation logs (engine/sources/conversations.py) and the linking stage's pairs (linked.py). Every candidate is
judged once: skipped with a counted reason, already stored (same content hash: a second run adds 0), or scored
(tier, score, tokens, sensitive-data findings) and stored. Inputs are checked before the workspace is opened,
everything is read and scored before anything is written, and all new examples go in with their run record in ONE
transaction: a failing run leaves the workspace as it was.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import now_iso
from engine.collect.commits import project_name, read_commit_examples
from engine.collect.docs import read_doc_examples
from engine.collect.linked import read_linked_examples
from engine.collect.scoring import score_example
from engine.config import COLLECT_SOURCES, PipelineConfig
from engine.dataset.review import clears_findings, item_statuses
from engine.dataset.tokens import get_tokenizer
from engine.errors import CollectError, WorkspaceError
from engine.formats import training_text
from engine.progress import ProgressFn, no_progress
from engine.records import TIERS, Example, Skip
from engine.sources.conversations import conversation_files, read_conversation_examples
from engine.store import Workspace

MAX_EXAMPLES_PER_REASON = 5


@dataclass
class SourceTally:
    """What one source gave in one run: items read, new examples, ones already stored, and skips by reason."""

    source: str
    read: int = 0
    new: int = 0
    duplicates: int = 0  # content already stored (an earlier run, or earlier in this one)
    filtered: Counter = field(default_factory=Counter)  # reason -> count
    filtered_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> where, a few
    filtered_details: dict[str, list[str]] = field(default_factory=dict)  # reason -> the sentences, a few
    new_by_tier: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def skip(self, reason: str, where: str, detail: str | None = None) -> None:
        self.filtered[reason] += 1
        examples = self.filtered_examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES_PER_REASON:
            examples.append(where)
            if detail:
                self.filtered_details.setdefault(reason, []).append(detail)

    def to_dict(self) -> dict:
        return {
            "read": self.read, "new": self.new, "duplicates": self.duplicates,
            "filtered": dict(self.filtered.most_common()), "filtered_total": sum(self.filtered.values()),
            "filtered_examples": self.filtered_examples, "filtered_details": self.filtered_details,
            "new_by_tier": {tier: self.new_by_tier.get(tier, 0) for tier in TIERS},
            "seconds": round(self.seconds, 3),
        }


@dataclass
class CollectResult:
    workspace: Path
    run_id: int | None
    sources: dict[str, SourceTally]
    workspace_examples: dict[str, int]  # source -> examples stored after this run (all runs)
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def total_new(self) -> int:
        return sum(tally.new for tally in self.sources.values())

    def to_dict(self) -> dict:
        return {
            "workspace": str(self.workspace), "run_id": self.run_id, "seconds": round(self.seconds, 3),
            "sources": {name: tally.to_dict() for name, tally in self.sources.items()},
            "total_new": self.total_new,
            "new_by_tier": {tier: sum(t.new_by_tier.get(tier, 0) for t in self.sources.values()) for tier in TIERS},
            "workspace_examples": self.workspace_examples, "notes": self.notes,
        }


def resolve_sources(sources: str | list[str] | tuple[str, ...] | None, config: PipelineConfig) -> list[str]:
    """The sources to read, in the canonical order: the argument (a list or "a,b"), else collect.sources."""
    if sources is None:
        sources = config.get("collect.sources")
    if isinstance(sources, str):
        sources = [part.strip() for part in sources.split(",") if part.strip()]
    unknown = [name for name in sources if name not in COLLECT_SOURCES]
    if unknown:
        raise CollectError(f"Unknown source {unknown[0]!r}; collect reads {', '.join(COLLECT_SOURCES)}.")
    if not sources:
        raise CollectError(f"No source to collect from; name one or more of {', '.join(COLLECT_SOURCES)}.")
    return [name for name in COLLECT_SOURCES if name in sources]


def _sensitive_counts(workspace: Workspace, candidates: list[Example], progress: ProgressFn) -> list[int]:
    """Findings per candidate (secrets, PII) in every text of its record: each chat turn, prompt and answer, and
    its metadata (engine.dataset.gate), with scans cached in the workspace."""
    from engine.dataset.gate import scan_records

    findings = scan_records(workspace, [(index, example.record) for index, example in enumerate(candidates)],
                            progress)
    return [len(findings.get(index, ())) for index in range(len(candidates))]


def _read_source(name: str, conn: sqlite3.Connection, config: PipelineConfig, logs: list[Path],
                 notes: list[str]):
    if name == "commits":
        collected = {row[0] for row in conn.execute("SELECT origin FROM examples WHERE source = 'commits'")}
        if not conn.execute("SELECT 1 FROM commits LIMIT 1").fetchone():
            notes.append("commits: the workspace has no commits yet; run `python -m engine extract` first")
        return read_commit_examples(conn, int(config.get("collect.min_message_chars")), collected, notes)
    if name == "docs":
        if not conn.execute("SELECT 1 FROM knowledge WHERE knowledge_type = 'document' LIMIT 1").fetchone():
            notes.append("docs: the workspace has no documents yet; list folders in document_sources.directories "
                         "and run `python -m engine extract`")
        project = project_name(str(config.git_repos[0])) if config.git_repos else config.base_dir.name
        return read_doc_examples(conn, project)
    if name == "conversations":
        if not config.conversation_logs:
            notes.append("conversations: collect.conversation_logs is empty; list JSONL logs there to collect them")
        elif not logs:
            notes.append("conversations: the folders in collect.conversation_logs hold no .jsonl files yet")
        return read_conversation_examples(logs, config.base_dir, int(config.get("collect.min_message_chars")))
    return read_linked_examples(conn, config, notes)


def collect(config: PipelineConfig, workspace_path: Path, sources: str | list[str] | None = None,
            progress: ProgressFn = no_progress) -> CollectResult:
    """Collect new examples from `sources` (default collect.sources) into the workspace's examples table."""
    started = time.perf_counter()
    wanted = resolve_sources(sources, config)
    logs = conversation_files(config.conversation_logs) if "conversations" in wanted else []
    workspace = Workspace.open(workspace_path)
    with workspace.connection() as conn:
        known = {row[0] for row in conn.execute("SELECT content_hash FROM examples")}
        tallies = {name: SourceTally(name) for name in wanted}
        notes: list[str] = []
        candidates: list[Example] = []
        hashes: list[str] = []
        seen: set[str] = set()
        for name in wanted:
            tally, began = tallies[name], time.perf_counter()
            for item in _read_source(name, conn, config, logs, notes):
                tally.read += 1
                if isinstance(item, str):  # a commit collected by an earlier run
                    tally.duplicates += 1
                elif isinstance(item, Skip):
                    tally.skip(item.reason, item.where, item.detail)
                elif (digest := item.content_hash) in known or digest in seen:
                    tally.duplicates += 1
                else:
                    seen.add(digest)
                    candidates.append(item)
                    hashes.append(digest)
                progress(f"collect {name}", tally.read, None)
            tally.seconds = time.perf_counter() - began

        rows = _score(workspace, config, candidates, hashes, tallies, progress)
        try:
            with workspace.transaction(conn):
                run_id = _store(conn, rows, tallies, wanted)
                totals = {row[0]: row[1] for row in conn.execute(
                    "SELECT source, COUNT(*) FROM examples GROUP BY source")}
                result = CollectResult(workspace.root, run_id, tallies,
                                       {name: totals.get(name, 0) for name in COLLECT_SOURCES},
                                       time.perf_counter() - started, notes)
                conn.execute("UPDATE collect_runs SET finished_at = ?, report_json = ? WHERE id = ?",
                             (now_iso(), json.dumps(result.to_dict()), run_id))
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(f"Storing the collected examples in {workspace.db_path} failed ({exc}); nothing "
                                 "was changed, so running collect again is safe.") from exc
        result.seconds = time.perf_counter() - started
        return result


def _score(workspace: Workspace, config: PipelineConfig, candidates: list[Example], hashes: list[str],
           tallies: dict[str, SourceTally], progress: ProgressFn) -> list[tuple]:
    """Score the new candidates; drop (and count) those the quality rules reject; the rest as table rows."""
    decisions = item_statuses(workspace, hashes) if hashes else {}
    count = get_tokenizer(None).count
    kept: list[tuple[Example, str, object, str | None]] = []
    for example, digest in zip(candidates, hashes, strict=True):
        decision = decisions.get(digest)
        verdict = decision.decision if decision else None
        quality = score_example(example.record, example.format, example.source, verdict, config.min_confidence)
        if quality.dropped:
            tallies[example.source].skip(quality.reasons[0].split(":")[0], example.origin,
                                         f"{example.origin}: {quality.reasons[0]}")
            continue
        kept.append((example, digest, quality, verdict))
    sensitive = _sensitive_counts(workspace, [example for example, *_ in kept], progress)
    now = now_iso()
    rows = []
    for done, ((example, digest, quality, verdict), findings) in enumerate(zip(kept, sensitive, strict=True), 1):
        text = training_text(example.record, example.format)
        rows.append((digest, example.source, example.format, example.origin,
                     json.dumps(example.record, ensure_ascii=False), quality.tier, quality.score,
                     json.dumps(quality.reasons), count(text), len(text), findings, now, example.source_time, now,
                     int(clears_findings(verdict))))
        progress("scoring examples", done, len(kept))
    return rows


def _store(conn: sqlite3.Connection, rows: list[tuple], tallies: dict[str, SourceTally], wanted: list[str]) -> int:
    now = now_iso()
    run_id = conn.execute("INSERT INTO collect_runs(started_at, finished_at, sources_json, report_json)"
                          " VALUES (?, ?, ?, '{}')", (now, now, json.dumps(wanted))).lastrowid
    for row in rows:
        inserted = conn.execute(
            "INSERT OR IGNORE INTO examples(content_hash, source, format, origin, record_json, tier, quality_score,"
            " quality_reasons, tokens, chars, sensitive, created_at, source_time, checked_at, human_reviewed,"
            " collect_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, run_id)).rowcount
        tally = tallies[row[1]]
        if inserted:  # another process may have stored the same example since we read
            tally.new += 1
            tally.new_by_tier[row[5]] += 1
        else:
            tally.duplicates += 1
    return run_id
