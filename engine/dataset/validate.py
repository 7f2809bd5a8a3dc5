"""Validation of a training_data.jsonl: integrity, field completeness, confidence distribution, token counts,
duplicates, sensitive data, quality tiers and recommendations (the seed's validate_training_data.py report).

`analyze_dataset` reads and judges every line (the analysis export and the review page share);
`validate_dataset` adds the report, records the run and queues flagged and sampled pairs for review.
Sensitive-data scans are cached in the workspace by content hash, so re-validating costs only what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import now_iso
from engine.config import DEFAULT_MIN_CONFIDENCE
from engine.dataset.dedup import Duplicate, find_duplicates
from engine.dataset.gate import scan_records
from engine.dataset.quality import Quality, assess, confidence_of, metadata_problems
from engine.dataset.review import enqueue, findings_action, item_statuses
from engine.dataset.sensitive import Finding
from engine.formats import format_problems, pair_hash, read_jsonl
from engine.progress import ProgressFn, no_progress
from engine.records import TIERS
from engine.store import Workspace

SAMPLE_SIZE = 10  # the seed reviews 10 random samples
_BAR_WIDTH = 40


@dataclass
class PairAnalysis:
    """One line of the JSONL and everything validation concluded about it."""

    pair_index: int  # 0-based line
    record: dict | None
    error: str | None = None  # the line could not be read as a pair
    pair_hash: str | None = None
    findings: list[Finding] = field(default_factory=list)
    quality: Quality | None = None
    decision: str | None = None
    tokens: int = 0
    duplicate: Duplicate | None = None
    metadata_problems: list[str] = field(default_factory=list)

    @property
    def line_number(self) -> int:
        return self.pair_index + 1

    @property
    def dropped(self) -> bool:
        return self.record is None or (self.quality is not None and self.quality.dropped) or self.duplicate is not None

    @property
    def unresolved(self) -> bool:
        """Sensitive findings that no reviewer has settled (keep as is, redact, or drop)."""
        return bool(self.findings) and not self.dropped and findings_action(self.decision) == "hold"


@dataclass
class DatasetAnalysis:
    path: Path
    pairs: list[PairAnalysis]
    tokenizer: str
    min_confidence: float

    def usable(self) -> list[PairAnalysis]:
        return [pair for pair in self.pairs if not pair.dropped]


def scan_findings(workspace: Workspace | None, items: list[tuple[int, dict]], progress: ProgressFn = no_progress,
                  executor=None) -> dict[int, list[Finding]]:
    """Findings per pair index for (pair_index, record) items, in every text of the record (its metadata too),
    reusing the workspace's scan cache (engine.dataset.gate); `executor` scans what the cache lacks."""
    return scan_records(workspace, items, progress, executor=executor)


def _token_counter(model: str | None):
    from engine.dataset import tokens

    tokenizer = tokens.get_tokenizer(model)
    return tokenizer.name, tokenizer.count


def analyze_dataset(path: str | Path, workspace: Workspace | None = None,
                    min_confidence: float = DEFAULT_MIN_CONFIDENCE, tokenizer_model: str | None = None,
                    progress: ProgressFn = no_progress, executor=None) -> DatasetAnalysis:
    """Read every line of `path` and judge it: format, metadata, sensitive data, review decision, quality,
    duplicates and tokens. Bad lines become PairAnalysis entries with `error` set, never exceptions. `executor`
    (engine.executor, default local) runs the sensitive-data scans of texts not in the scan cache."""
    path = Path(path).expanduser().resolve()
    pairs: list[PairAnalysis] = []
    for line in read_jsonl(path):
        pairs.append(PairAnalysis(line.pair_index, line.record, line.error))
        if len(pairs) % 1000 == 0:
            progress("reading", len(pairs), None)
    candidates = []
    for pair in pairs:
        if pair.record is None:
            continue
        pair.pair_hash = pair_hash(pair.record)
        pair.metadata_problems = metadata_problems(pair.record)
        if not format_problems(pair.record):
            candidates.append(pair)
    decisions = item_statuses(workspace, [p.pair_hash for p in candidates]) if workspace is not None else {}
    for pair in pairs:
        if pair.record is not None:
            decision = decisions.get(pair.pair_hash)
            pair.decision = decision.decision if decision else None
            pair.quality = assess(pair.record, min_confidence, pair.decision)
    scannable = [(pair.pair_index, pair.record) for pair in pairs if pair.quality and not pair.quality.dropped]
    found = scan_findings(workspace, scannable, progress, executor)
    for pair in pairs:
        pair.findings = found.get(pair.pair_index, [])

    records = [pair.record if pair.quality and not pair.quality.dropped else None for pair in pairs]
    for duplicate in find_duplicates(records, better=lambda i: (
            pairs[i].quality.score, confidence_of(pairs[i].record) or 0.0)):
        pairs[duplicate.index].duplicate = duplicate

    tokenizer_name, count = _token_counter(tokenizer_model)
    for done, pair in enumerate(pairs, start=1):
        if pair.quality is not None and not pair.quality.dropped:
            record = pair.record
            pair.tokens = count(f"{record['instruction']}\n{record.get('input') or ''}\n{record['output']}")
        if done % 500 == 0:
            progress("tokens", done, len(pairs))
    return DatasetAnalysis(path, pairs, tokenizer_name, min_confidence)


# ------------------------------------------------------------------------------------------------------ report

@dataclass
class ValidationReport:
    dataset: str
    total_lines: int
    valid_pairs: int
    bad_lines: list[dict]
    usable_pairs: int
    tokenizer: str
    total_tokens: int
    confidence: dict
    distribution: list[dict]
    metadata_problems: dict[str, int]
    duplicates: dict[str, int]
    sensitive: dict
    tiers: dict[str, int]
    reasons: dict[str, int]
    recommendations: list[str]
    findings: list[dict]
    review: dict

    @property
    def unresolved_pairs(self) -> int:
        return self.sensitive["unresolved_pairs"]

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def render_text(self) -> str:
        return render_report(self)


def _distribution(confidences: list[float]) -> list[dict]:
    buckets = Counter(min(int(value * 10), 9) for value in confidences)
    total = len(confidences)
    return [{"bucket": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "pairs": buckets[b],
             "percent": round(100 * buckets[b] / total, 1)} for b in sorted(buckets)]


def _recommendations(report: dict, analysis: DatasetAnalysis) -> list[str]:
    out = []
    usable = report["usable_pairs"]
    confidence = report["confidence"]
    if report["bad_lines"]:
        out.append(f"⚠ {len(report['bad_lines'])} lines could not be read as pairs: fix or remove them "
                   "(mlx-lm stops loading at the first bad line)")
    if usable < 50:
        out.append(f"⚠ Too few pairs ({usable}) for fine-tuning: lower min_confidence (e.g. to "
                   f"{max(0.3, analysis.min_confidence - 0.1):.1f}) or widen time_window_days")
    elif usable >= 100:
        out.append(f"✓ Large dataset ({usable} pairs) - good for training")
    else:
        out.append(f"✓ {usable} pairs - enough for a first adapter; more data will help")
    average = confidence.get("average")
    if average is not None:
        if average >= 0.7:
            out.append("✓ High confidence scores - good quality linkage")
        elif average < 0.6:
            out.append(f"⚠ Low average confidence ({average:.3f}): raise min_confidence to 0.7 or add technical "
                       "keywords; review pairs below 0.6")
        else:
            out.append(f"✓ Average confidence {average:.3f} - acceptable; pairs below 0.6 deserve a review")
    unresolved = report["sensitive"]["unresolved_pairs"]
    if unresolved:
        out.append(f"⚠ {unresolved} pairs may contain sensitive data - manual review required (keep or redact) "
                   "before export")
    elif report["sensitive"]["pairs_with_findings"]:
        out.append("✓ Every pair with sensitive data has a reviewer's decision")
    else:
        out.append("✓ No sensitive data found")
    duplicates = sum(report["duplicates"].values())
    if report["valid_pairs"] and duplicates / report["valid_pairs"] > 0.1:
        out.append(f"⚠ {duplicates} duplicate pairs ({100 * duplicates / report['valid_pairs']:.0f}%): the same "
                   "discussion is linked repeatedly; deduplicate knowledge before linking")
    raw = report["tiers"].get("raw", 0)
    if usable and raw / usable > 0.3:
        out.append(f"⚠ {raw} pairs are raw tier: check the most common reasons below")
    if report["tiers"].get("gold", 0) == 0 and usable:
        out.append("⚠ No gold pairs yet: review a sample (good/bad) to promote verified pairs")
    return out


def build_report(analysis: DatasetAnalysis) -> ValidationReport:
    pairs = analysis.pairs
    valid = [pair for pair in pairs if pair.record is not None]
    usable = analysis.usable()
    bad_lines = [{"line": pair.line_number, "error": pair.error} for pair in pairs if pair.error]
    confidences = [value for pair in usable if (value := confidence_of(pair.record)) is not None]
    confidence = ({"average": round(sum(confidences) / len(confidences), 3), "min": round(min(confidences), 3),
                   "max": round(max(confidences), 3), "pairs_with_confidence": len(confidences)}
                  if confidences else {"average": None, "min": None, "max": None, "pairs_with_confidence": 0})
    metadata = Counter(problem for pair in valid for problem in pair.metadata_problems)
    duplicates = Counter(pair.duplicate.kind for pair in pairs if pair.duplicate)
    with_findings = [pair for pair in pairs if pair.findings and not pair.dropped]
    all_findings = [finding for pair in pairs for finding in pair.findings]
    kinds = Counter(finding.kind for finding in all_findings)
    fields = Counter(finding.field for finding in all_findings)
    tiers = Counter(pair.quality.tier for pair in usable)
    reasons: Counter = Counter()
    for pair in valid:
        reasons.update(pair.quality.reasons)
        if pair.duplicate:
            reasons[f"{pair.duplicate.kind} duplicate"] += 1
    reasons.update("unreadable line" for _ in bad_lines)
    decisions = Counter(pair.decision for pair in valid if pair.decision)
    report = {
        "dataset": str(analysis.path),
        "total_lines": len(pairs),
        "valid_pairs": len(valid),
        "bad_lines": bad_lines,
        "usable_pairs": len(usable),
        "tokenizer": analysis.tokenizer,
        "total_tokens": sum(pair.tokens for pair in usable),
        "confidence": confidence,
        "distribution": _distribution(confidences),
        "metadata_problems": dict(metadata.most_common()),
        "duplicates": {"exact": duplicates.get("exact", 0), "near": duplicates.get("near", 0)},
        "sensitive": {
            "pairs_with_findings": len(with_findings),
            "findings": len(all_findings),
            "by_kind": dict(kinds.most_common()),
            "by_field": dict(fields.most_common()),
            "unresolved_pairs": sum(pair.unresolved for pair in pairs),
        },
        "tiers": {tier: tiers.get(tier, 0) for tier in TIERS},
        "reasons": dict(reasons.most_common()),
        "findings": [finding.to_dict() for finding in all_findings],
        "review": {"decisions": dict(decisions.most_common())},
    }
    report["recommendations"] = _recommendations(report, analysis)
    return ValidationReport(**report)


def render_report(report: ValidationReport) -> str:
    rule, thin = "=" * 80, "-" * 80
    lines = ["Training Data Validation Report", rule, f"File: {report.dataset}", "", "OVERVIEW", thin]
    valid_percent = 100 * report.valid_pairs / report.total_lines if report.total_lines else 0.0
    lines += [f"Total lines: {report.total_lines:,}",
              f"Valid pairs: {report.valid_pairs:,} ({valid_percent:.1f}%)",
              f"Usable pairs (after drops and duplicates): {report.usable_pairs:,}",
              f"Estimated total tokens: {report.total_tokens:,} ({report.tokenizer})"]
    if report.bad_lines:
        lines.append(f"Unreadable lines: {len(report.bad_lines)}")
        lines += [f"  {bad['error']}" for bad in report.bad_lines[:20]]
        if len(report.bad_lines) > 20:
            lines.append(f"  ... and {len(report.bad_lines) - 20} more (see the JSON report)")
    if report.metadata_problems:
        lines += ["", "FIELD COMPLETENESS", thin]
        lines += [f"  {problem}: {count} pairs" for problem, count in report.metadata_problems.items()]
    lines += ["", "CONFIDENCE METRICS", thin]
    confidence = report.confidence
    if confidence["average"] is None:
        lines.append("No pair carries a link confidence.")
    else:
        lines += [f"Average confidence: {confidence['average']:.3f}", f"Min confidence: {confidence['min']:.3f}",
                  f"Max confidence: {confidence['max']:.3f}", "", "Confidence Distribution:"]
        peak = max(bucket["pairs"] for bucket in report.distribution)
        for bucket in report.distribution:
            bar = "█" * max(1, round(_BAR_WIDTH * bucket["pairs"] / peak))
            lines.append(f"  {bucket['bucket']}: {bucket['pairs']:>4} pairs {bar} ({bucket['percent']:.1f}%)")
    lines += ["", "DUPLICATES", thin, f"Exact duplicates dropped: {report.duplicates['exact']}",
              f"Near duplicates dropped: {report.duplicates['near']}"]
    sensitive = report.sensitive
    lines += ["", "SECURITY ANALYSIS", thin,
              f"Pairs with potential sensitive data: {sensitive['pairs_with_findings']}"
              f" ({sensitive['findings']} findings)"]
    lines += [f"  {kind}: {count}" for kind, count in sensitive["by_kind"].items()]
    if sensitive["by_field"]:
        lines.append("  in fields: " + ", ".join(f"{name} {count}" for name, count in sensitive["by_field"].items()))
    lines.append(f"Unresolved (no keep/redact/drop decision yet): {sensitive['unresolved_pairs']}")
    lines += ["", "QUALITY TIERS", thin]
    lines += [f"  {tier:<7} {count:>5}" for tier, count in report.tiers.items()]
    if report.reasons:
        lines += ["", "DROPS AND DEMOTIONS", thin]
        lines += [f"  {reason}: {count}" for reason, count in report.reasons.items()]
    if report.review["decisions"]:
        lines += ["", "REVIEW", thin]
        lines += [f"  {decision}: {count}" for decision, count in report.review["decisions"].items()]
    lines += ["", "RECOMMENDATIONS", thin, *report.recommendations, ""]
    return "\n".join(lines)


def _sample(pairs: list[PairAnalysis], size: int) -> list[PairAnalysis]:
    """A reproducible 'random' sample: the pairs whose hashes sort first (stable as the file grows)."""
    candidates = [pair for pair in pairs if not pair.dropped and not pair.findings]
    return sorted(candidates, key=lambda pair: hashlib.sha1(f"sample:{pair.pair_hash}".encode()).hexdigest())[:size]


def validate_dataset(path: str | Path, workspace: Workspace, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                     sample_size: int = SAMPLE_SIZE, tokenizer_model: str | None = None,
                     progress: ProgressFn = no_progress, record_run: bool = True, executor=None
                     ) -> tuple[ValidationReport, DatasetAnalysis]:
    """Validate `path`, queue its flagged pairs (and a sample) for review and, with `record_run`, record the run
    in the workspace's history (a page re-rendering after each review decision passes False)."""
    started = now_iso("seconds")
    analysis = analyze_dataset(path, workspace, min_confidence, tokenizer_model, progress, executor)
    report = build_report(analysis)
    dataset = str(analysis.path)
    flagged = [(pair.pair_hash, pair.pair_index, "flagged") for pair in analysis.pairs
               if pair.findings and not pair.dropped]
    sampled = [(pair.pair_hash, pair.pair_index, "sampled") for pair in _sample(analysis.pairs, sample_size)]
    enqueue(workspace, dataset, flagged + sampled)
    if not record_run:
        return report, analysis
    with workspace.transaction() as conn:
        conn.execute(
            "INSERT INTO validation_runs(dataset, started_at, finished_at, pairs, unresolved_pairs, report_json)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (dataset, started, now_iso("seconds"), report.valid_pairs,
             report.unresolved_pairs, json.dumps(report.to_dict())))
    return report, analysis


# ------------------------------------------------------------------------------------------------------ review

@dataclass
class ReviewItem:
    """A queued pair with what a reviewer needs beside it: the record, its findings, tier and latest decision."""

    pair_index: int
    pair_hash: str
    reason: str  # flagged | sampled
    record: dict
    findings: list[Finding]
    tier: str
    quality_reasons: list[str]
    decision: object | None  # review.ItemStatus, None while nobody answered


def review_items(path: str | Path, workspace: Workspace, pending_only: bool = False,
                 analysis: DatasetAnalysis | None = None) -> list[ReviewItem]:
    """The dataset's review queue joined with the current file (pass the `analysis` of that file when there is
    one at hand). Queued pairs no longer in the file are left out."""
    from engine.dataset.review import review_queue

    analysis = analysis or analyze_dataset(path, workspace)
    by_hash = {pair.pair_hash: pair for pair in analysis.pairs if pair.pair_hash}
    items = []
    for entry in review_queue(workspace, str(analysis.path), pending_only):
        pair = by_hash.get(entry.pair_hash)
        if pair is None:
            continue
        items.append(ReviewItem(pair.pair_index, pair.pair_hash, entry.reason, pair.record, pair.findings,
                                pair.quality.tier, pair.quality.reasons, entry.decision))
    return items


def pair_at_line(path: str | Path, line_number: int) -> PairAnalysis:
    """The pair on line `line_number` (1-based) of `path`, with its hash; a StudioError if it is not a pair."""
    from engine.errors import StudioError

    for line in read_jsonl(path):
        if line.line_number == line_number:
            if line.record is None:
                raise StudioError(f"Line {line_number} cannot be reviewed: {line.error}.")
            return PairAnalysis(line.pair_index, line.record, None, pair_hash(line.record))
    raise StudioError(f"{path} has no line {line_number}.")


_UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def save_uploaded_dataset(workspace: Workspace, filename: str, data: bytes) -> Path:
    """Keep an uploaded JSONL inside the workspace (uploads/<name>) so it can be validated, reviewed and exported
    like any other file; the name is reduced to safe characters."""
    from engine.errors import StudioError
    from engine.files import write_atomic

    name = _UPLOAD_NAME.sub("_", Path(filename or "upload.jsonl").name).strip("._") or "upload"
    if not name.endswith(".jsonl"):
        name += ".jsonl"
    if not data:
        raise StudioError(f"The uploaded file {filename} is empty.")
    target = workspace.path("uploads", name)
    write_atomic(target, data)
    return target


def training_data_exists(path: str | Path) -> bool:
    """Whether `path` names an existing file (a page shows how to create one when it does not)."""
    return Path(path).expanduser().is_file()
