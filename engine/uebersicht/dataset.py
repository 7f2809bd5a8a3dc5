"""Stage 5: `datasets/<set>/{train,valid,test}.jsonl` in the Apple adapter format (formats.md §3).

One example per JSX widget that has a prompt: system prompt and tool definition from the shared training config,
the prompt as the user turn, the widget's code as the assistant turn. The strategy file is applied when present
(exclude skips with its reason, trim drops parts as planned by `evaluate.plan_trim`, keep or absent includes).
The 80/10/10 split orders widgets by a hash of their id, so it is the same on every run and a widget (one example)
is in exactly one split. Every line is checked by the validator before anything is written.

Every example passes the studio's one sensitive-data gate (engine.dataset.gate) before it is written: a widget
whose prompt or code holds a secret or personal data is held back until a reviewer decides (`python -m engine
review --widget-set <folder>`): kept as is (`good`), redacted (typed placeholders) or dropped (`bad`).
dataset_info.json lists what was held, redacted or dropped, with kinds and offsets, never the values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import now_iso, zulu_now
from engine.dataset.gate import content_key, gate_records
from engine.dataset.tokens import get_tokenizer
from engine.errors import StudioError
from engine.files import write_atomic
from engine.records import SPLITS
from engine.store import Workspace
from engine.uebersicht import WidgetPaths
from engine.uebersicht.apple_format import example_problems, serialize_example
from engine.uebersicht.budget import WidgetSource, evaluated_model, load_strategy, load_widget_sources, plan_trim
from engine.uebersicht.code import join_code
from engine.uebersicht.report import read_report
from engine.uebersicht.training_config import TrainingConfig, build_example, load_training_config

_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class DatasetReport:
    folder: Path
    splits: dict[str, list[str]]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (widget id, reason)
    trimmed: dict[str, list[str]] = field(default_factory=dict)  # widget id -> dropped parts
    skipped: list[tuple[str, str]] = field(default_factory=list)  # no prompt, no code, ...
    held: list[tuple[str, list[str]]] = field(default_factory=list)  # (widget id, kinds) awaiting a reviewer
    held_detail: dict[str, dict] = field(default_factory=dict)  # widget id -> {key, kinds, findings}
    redacted: list[str] = field(default_factory=list)  # widget ids written with placeholders
    dropped: list[str] = field(default_factory=list)  # widget ids a reviewer marked bad

    def summary(self) -> str:
        counts = ", ".join(f"{len(self.splits[name])} {name}" for name in SPLITS)
        text = (
            f"{counts}; {len(self.excluded)} excluded by the strategy, {len(self.trimmed)} trimmed, "
            f"{len(self.skipped)} skipped"
        )
        if self.held or self.redacted or self.dropped:
            text += (f"; {len(self.held)} held for sensitive-data review, {len(self.redacted)} redacted, "
                     f"{len(self.dropped)} dropped by a reviewer")
        return text


def split_counts(total: int) -> dict[str, int]:
    """80/10/10, with at least one validation and one test example once there are three or more."""
    valid = round(total * 0.1)
    test = round(total * 0.1)
    if total >= 3:
        valid, test = max(1, valid), max(1, test)
    return {"train": total - valid - test, "valid": valid, "test": test}


def assign_splits(widget_ids: list[str]) -> dict[str, list[str]]:
    """Deterministic: widgets ordered by SHA-256 of their id, then cut 80/10/10."""
    ordered = sorted(set(widget_ids), key=lambda widget_id: hashlib.sha256(widget_id.encode("utf-8")).hexdigest())
    counts = split_counts(len(ordered))
    splits, start = {}, 0
    for name in SPLITS:
        splits[name] = ordered[start : start + counts[name]]
        start += counts[name]
    return splits


def check_set_name(name: str) -> str:
    if not _SET_NAME.match(name or ""):
        raise StudioError(
            f"The dataset name {name!r} is not usable as a folder; use letters, digits, '.', '_' and '-'."
        )
    return name


def _widget_filename(record) -> Callable[[str], str]:
    """The assistant turn is JSX (detect-secrets reads it with JavaScript's keyword rules)."""
    return lambda path: "widget.jsx" if path.startswith("[") and path.endswith("].content") else "capture.txt"


def create_dataset(paths: WidgetPaths, set_name: str, model: str | None = None,
                   workspace: Workspace | None = None) -> DatasetReport:
    """Build and write the set; returns which widget went where and which were left out, with reasons. With a
    `workspace`, reviewers' decisions on flagged widgets are applied (and scans cached); without one, every
    flagged widget is held."""
    folder = paths.datasets / check_set_name(set_name)
    config = load_training_config(paths.training_config)
    strategy_document = load_strategy(paths.strategy)
    strategy = strategy_document["strategy"] if strategy_document else {}
    sources, skipped = load_widget_sources(read_report(paths.csv), paths.downloads, paths.prompts)
    report = DatasetReport(folder=folder, splits={}, skipped=skipped)
    examples: dict[str, list] = {}
    tokenizer = None
    for source in sources:
        entry = strategy.get(source.widget_id, {})
        action = entry.get("action", "keep")
        if action == "exclude":
            report.excluded.append((source.widget_id, entry.get("reason") or "excluded by the strategy"))
            continue
        code = join_code(source.files)
        if action == "trim":
            tokenizer = tokenizer or get_tokenizer(evaluated_model(paths, model))
            plan = plan_trim(source, config, tokenizer, strategy_document["max_sequence_length"])
            if not plan.fits:
                report.excluded.append((source.widget_id, f"still {plan.total_tokens} tokens after trimming"))
                continue
            code = plan.code
            report.trimmed[source.widget_id] = plan.dropped
        examples[source.widget_id] = _example(source, config, code)
    lines = _gate(workspace, examples, report, folder)
    if not lines:
        held = f" ({len(report.held)} held for sensitive-data review: `python -m engine review --widget-set " \
               f"{folder}`)" if report.held else ""
        raise StudioError(
            "No widget is left to put in the dataset: each needs JSX code, a prompt and a strategy action other "
            f"than exclude{held}."
        )
    report_held = [{"id": widget_id, **entry} for widget_id, entry in report.held_detail.items()]
    report.splits = assign_splits(list(lines))
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_atomic(folder / f"{name}.jsonl", "".join(lines[widget_id] + "\n" for widget_id in report.splits[name]))
    info = {
        "set": set_name,
        "format": "apple-foundation-models-adapter",
        "created_at": zulu_now(fraction=False),
        "max_sequence_length": strategy_document["max_sequence_length"] if strategy_document else None,
        "strategy_applied": strategy_document is not None,
        "splits": report.splits,
        "excluded": [{"id": widget_id, "reason": reason} for widget_id, reason in report.excluded],
        "trimmed": [{"id": widget_id, "dropped": dropped} for widget_id, dropped in report.trimmed.items()],
        "skipped": [{"id": widget_id, "reason": reason} for widget_id, reason in report.skipped],
        "held_for_review": report_held,
        "redacted": report.redacted,
        "dropped_by_review": report.dropped,
        "training_config": config.to_json(),
    }
    write_atomic(folder / "dataset_info.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return report


def _example(source: WidgetSource, config: TrainingConfig, code: str) -> list[dict]:
    example = build_example(config, source.prompt, code)
    problems = example_problems(example)
    if problems:
        raise StudioError(f"The example for {source.widget_id} breaks the Apple format: {problems[0]}.")
    return example


def _gate(workspace: Workspace | None, examples: dict[str, list], report: DatasetReport, folder: Path
          ) -> dict[str, str]:
    """The JSONL line of every widget the sensitive-data gate lets through; the report learns what was held,
    redacted or dropped. The review key is the example's content key (engine.dataset.gate.content_key)."""
    ids = list(examples)
    verdicts = gate_records(workspace, [(content_key(examples[widget_id]), examples[widget_id]) for widget_id in ids],
                            filename_of=_widget_filename)
    lines: dict[str, str] = {}
    report.held_detail = {}
    for widget_id, verdict in zip(ids, verdicts, strict=True):
        if verdict.action == "hold":
            report.held.append((widget_id, verdict.kinds))
            report.held_detail[widget_id] = {
                "key": verdict.key, "kinds": verdict.kinds,
                "findings": [{"field": f.field, "kind": f.kind, "start": f.start, "end": f.end} for f in
                             verdict.findings]}
            continue
        if verdict.action == "drop":
            report.dropped.append(widget_id)
            continue
        if verdict.action == "redact":
            report.redacted.append(widget_id)
        lines[widget_id] = serialize_example(verdict.record)
    if workspace is not None and report.held_detail:
        _keep_held(workspace, folder, {widget_id: examples[widget_id] for widget_id in report.held_detail},
                   {widget_id: entry["key"] for widget_id, entry in report.held_detail.items()})
    return lines


def _keep_held(workspace: Workspace, folder: Path, held: dict[str, list], keys: dict[str, str]) -> None:
    """Keep the held examples in the workspace, so the review queue shows the exact text a reviewer decides on
    (dataset_info.json, which travels with the set, only names them)."""
    now = now_iso("seconds")
    dataset = f"widgets:{Path(folder).expanduser().resolve()}"
    with workspace.transaction() as conn:
        conn.executemany(
            "INSERT INTO held_records(key, source, dataset, origin, record_json, held_at) VALUES (?, 'widgets', ?, ?,"
            " ?, ?) ON CONFLICT(key) DO UPDATE SET dataset = excluded.dataset, origin = excluded.origin,"
            " held_at = excluded.held_at",
            [(keys[widget_id], dataset, widget_id, json.dumps(record, ensure_ascii=False), now)
             for widget_id, record in held.items()])


def held_widgets(folder: str | Path) -> list[dict]:
    """The widgets a dataset folder's last create-dataset held for sensitive-data review, from its
    dataset_info.json: [{"id", "key", "kinds", "findings"}] (offsets and kinds, never values)."""
    info_path = Path(folder).expanduser() / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudioError(f"{info_path} cannot be read ({exc.strerror}): run `python -m engine widgets "
                          "create-dataset` for that set first.") from exc
    except ValueError as exc:
        raise StudioError(f"{info_path} is not valid JSON; run `python -m engine widgets create-dataset` again.") \
            from exc
    return list(info.get("held_for_review") or [])


def decide_widget(workspace: Workspace, folder: str | Path, widget_id: str, decision: str, reviewer: str,
                  note: str | None = None):
    """Record a review decision on a widget create-dataset held back (keyed by its example's content); the next
    create-dataset applies it."""
    from engine.dataset.review import record_decision

    held = {entry["id"]: entry for entry in held_widgets(folder)}
    if widget_id not in held:
        raise StudioError(f"{widget_id!r} is not among the widgets held for review in {folder} "
                          f"({', '.join(sorted(held)) or 'none are'}); `python -m engine review --widget-set "
                          f"{folder}` lists them.")
    return record_decision(workspace, held[widget_id]["key"], decision, reviewer,
                           dataset=f"widgets:{Path(folder).expanduser().resolve()}", note=note)
