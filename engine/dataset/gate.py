"""One sensitive-data scan and one review gate for every record that can reach training or an export: linked pairs
(`{instruction, input, output, metadata}`), collected examples of every source and format (chat `messages`,
completion `prompt`/`completion`), widget examples (Apple adapter format: a list of messages) and their metadata.

- `record_texts(record)` names every text in a record by its path: the main fields one by one (`output`,
  `messages[2].content`, `[1].content`), everything else (metadata, tool schemas, names) as one block of
  `path: value` lines, so a secret in `metadata.sources[0].window_name` is found with its key as context.
- `scan_records(workspace, items)` finds sensitive spans in all of them, cached in the workspace by content hash
  and detector version (re-validating costs only what changed).
- redaction (engine.dataset.redact) replaces each finding with a typed placeholder (`<GITHUB_TOKEN_1>`).
- `gate_records(workspace, keyed)` applies reviewers' decisions: a record without findings passes; with findings it
  passes only once a reviewer kept it (`good`), is redacted on `redact`, dropped on `bad`, held otherwise.

Findings carry offsets and kinds, never the value, so reports, logs and job results cannot leak what they flag.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.dataset.redact import redact_record
from engine.dataset.sensitive import DETECTOR_VERSION, Finding, Span, detect_sensitive
from engine.formats import training_texts
from engine.progress import ProgressFn, no_progress

_BLOCK = "metadata"  # the pseudo-field of the `path: value` block (its findings are re-addressed to each path)
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"



def _leaves(value, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        if value:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, _join(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, _join(path, index))


def _main_texts(record, filename_of) -> tuple[list[tuple[str, str, str]], set[str]]:
    """(path, text, filename) of the texts a model trains on (engine.formats names them), and their paths."""
    texts = [(path, text, filename_of(path)) for path, text in training_texts(record)]
    return texts, {path for path, _, _ in texts}


def _block(record, skip: set[str]) -> tuple[str, list[tuple[int, int, str]]]:
    """Every other string of the record as `path: value` lines, with where each value sits in the block."""
    pieces, where, length = [], [], 0
    for path, value in _leaves(record, ""):
        if path in skip:
            continue
        line = f"{path}: "
        start = length + len(line)
        pieces.append(line + value + "\n")
        where.append((start, start + len(value), path))
        length += len(line) + len(value) + 1
    return "".join(pieces), where


def default_filename(record) -> Callable[[str], str]:
    """path -> the file name detect-secrets assumes: the changed file for a pair's code output, text otherwise."""
    def filename_of(path: str) -> str:
        if path == "output" and isinstance(record, dict):
            metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
            file_path = metadata.get("file_path")
            if isinstance(file_path, str) and file_path:
                return file_path.rsplit("/", 1)[-1]
        return "capture.txt"
    return filename_of


def record_texts(record, filename_of=None) -> tuple[list[tuple[str, str, str]], tuple[str, list]]:
    """The record's main texts as (path, text, filename), and the block of its other strings with the position of
    each value in it."""
    texts, skip = _main_texts(record, filename_of or default_filename(record))
    return texts, _block(record, skip)


def _scan_key(filename: str, text: str) -> str:
    return hashlib.sha1(f"{filename}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _readdress(block_spans: list[Span], where: list[tuple[int, int, str]]) -> list[tuple[str, Span]]:
    """Block spans as (path, span with offsets inside that path's value)."""
    out = []
    for span in block_spans:
        for start, end, path in where:
            if span.start < end and start < span.end:
                out.append((path, Span(span.kind, max(span.start, start) - start, min(span.end, end) - start,
                                       span.source)))
    return out


def detect_many(texts: list[tuple[str, str]]) -> list[list[Span]]:
    """`detect_sensitive` over (text, filename) items: the step an executor maps over the texts not yet scanned."""
    return [detect_sensitive(text, filename) for text, filename in texts]


SCAN_BATCH = 64  # texts per mapped batch: small enough to report progress, large enough to amortize a Ray task


def scan_records(workspace, items: list[tuple[int, object]], progress: ProgressFn = no_progress,
                 filename_of=None, executor=None) -> dict[int, list[Finding]]:
    """Findings per index for (index, record) items. With a workspace, scans are cached in `sensitive_scans` by
    content hash and detector version. `filename_of(record)` may give a path -> filename function; `executor`
    (engine.executor, default local) runs the scans of the texts not yet in the cache."""
    wanted: dict[str, tuple[str, str]] = {}
    plan: list[tuple[int, str, str, list | None]] = []  # (index, path, key, block positions)
    for index, record in items:
        texts, (block, where) = record_texts(record, filename_of(record) if filename_of else None)
        for path, text, filename in texts:
            if text:
                key = _scan_key(filename, text)
                wanted.setdefault(key, (text, filename))
                plan.append((index, path, key, None))
        if block:
            key = _scan_key("metadata.txt", block)
            wanted.setdefault(key, (block, "metadata.txt"))
            plan.append((index, _BLOCK, key, where))
    cached = _cached_scans(workspace, list(wanted))
    missing = [key for key in wanted if key not in cached]
    from engine.executor import LOCAL

    done = 0
    for spans_of_batch in (executor or LOCAL).imap_batches(detect_many, [wanted[key] for key in missing],
                                                          SCAN_BATCH):
        for spans in spans_of_batch:
            cached[missing[done]] = spans
            done += 1
        progress("sensitive data", done, len(missing))
    if workspace is not None and missing:
        with workspace.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO sensitive_scans(content_hash, detector_version, spans_json) VALUES (?, ?, ?)",
                [(key, DETECTOR_VERSION, json.dumps([[s.kind, s.start, s.end, s.source] for s in cached[key]]))
                 for key in missing])
    findings: dict[int, list[Finding]] = {}
    for index, path, key, where in plan:
        spans = cached[key]
        located = [(path, span) for span in spans] if where is None else _readdress(spans, where)
        for where_path, span in located:
            findings.setdefault(index, []).append(
                Finding(index, where_path, span.kind, span.start, span.end, span.source))
    return findings


def _cached_scans(workspace, keys: list[str]) -> dict[str, list[Span]]:
    cached: dict[str, list[Span]] = {}
    if workspace is None or not keys:
        return cached
    with workspace.connection() as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = conn.execute(
                f"SELECT content_hash, spans_json FROM sensitive_scans WHERE detector_version = ? AND "
                f"content_hash IN ({','.join('?' * len(chunk))})", [DETECTOR_VERSION, *chunk]).fetchall()
            for row in rows:
                cached[row["content_hash"]] = [Span(*span) for span in json.loads(row["spans_json"])]
    return cached


def record_findings(record, index: int = 0, filename_of=None) -> list[Finding]:
    """Findings in every text of one record, uncached."""
    return scan_records(None, [(index, record)], filename_of=filename_of).get(index, [])


# -------------------------------------------------------------------------------------------------------- gate

@dataclass
class GateVerdict:
    """What the gate decided for one record: `action` is clean (no findings), keep (a reviewer kept it), redact,
    drop (a reviewer marked it bad) or hold (findings nobody has settled); `record` is what may be written (the
    redacted copy on redact), None when nothing may be."""

    key: str
    action: str
    findings: list[Finding] = field(default_factory=list)
    decision: str | None = None
    record: object | None = None

    @property
    def kinds(self) -> list[str]:
        return sorted({finding.kind for finding in self.findings})


def gate_records(workspace, keyed: list[tuple[str, object]], progress: ProgressFn = no_progress,
                 filename_of=None) -> list[GateVerdict]:
    """The gate over (content key, record) pairs: the key is what reviewers' decisions are recorded under (a pair's
    pair_hash, an example's content_hash). Without a workspace there are no decisions: flagged records are held."""
    from engine.dataset.review import findings_action, item_statuses

    found = scan_records(workspace, list(enumerate(record for _, record in keyed)), progress, filename_of)
    flagged = [key for index, (key, _) in enumerate(keyed) if found.get(index)]
    decisions = item_statuses(workspace, flagged) if workspace is not None and flagged else {}
    verdicts = []
    for index, (key, record) in enumerate(keyed):
        findings = found.get(index, [])
        if not findings:
            verdicts.append(GateVerdict(key, "clean", [], None, record))
            continue
        decision = decisions.get(key)
        verdict = decision.decision if decision else None
        action = findings_action(verdict)
        written = record if action == "keep" else redact_record(record, findings) if action == "redact" else None
        verdicts.append(GateVerdict(key, action, findings, verdict, written))
    return verdicts


def content_key(record) -> str:
    """The key a reviewer's decision on an arbitrary record is recorded under: sha1 of its texts (metadata
    excluded, as for pairs: the same content found again with other metadata is the same item)."""
    texts, _ = record_texts(record)
    payload = json.dumps([[path, text] for path, text, _ in texts], ensure_ascii=False)
    return hashlib.sha1(payload.encode("utf-8", "surrogatepass")).hexdigest()
