"""Stage 5: `datasets/<set>/{train,valid,test}.jsonl` in the Apple adapter format (formats.md §3).

One example per JSX widget that has a prompt: system prompt and tool definition from the shared training config,
the prompt as the user turn, the widget's code as the assistant turn. The strategy file is applied when present
(exclude skips with its reason, trim drops parts as planned by `evaluate.plan_trim`, keep or absent includes).
The 80/10/10 split orders widgets by a hash of their id, so it is the same on every run and a widget (one example)
is in exactly one split. Every line is checked by the validator before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.dataset.tokens import get_tokenizer
from engine.errors import StudioError
from engine.store import write_atomic
from engine.widgets import WidgetPaths
from engine.widgets.apple_format import example_problems, serialize_example
from engine.widgets.code import join_code
from engine.widgets.evaluate import WidgetSource, evaluated_model, load_strategy, load_widget_sources, plan_trim
from engine.widgets.report import read_report
from engine.widgets.training_config import TrainingConfig, build_example, load_training_config

SPLITS = ("train", "valid", "test")
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class DatasetReport:
    folder: Path
    splits: dict[str, list[str]]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (widget id, reason)
    trimmed: dict[str, list[str]] = field(default_factory=dict)  # widget id -> dropped parts
    skipped: list[tuple[str, str]] = field(default_factory=list)  # no prompt, no code, ...

    def summary(self) -> str:
        counts = ", ".join(f"{len(self.splits[name])} {name}" for name in SPLITS)
        return (
            f"{counts}; {len(self.excluded)} excluded by the strategy, {len(self.trimmed)} trimmed, "
            f"{len(self.skipped)} skipped"
        )


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


def create_dataset(paths: WidgetPaths, set_name: str, model: str | None = None) -> DatasetReport:
    """Build and write the set; returns which widget went where and which were left out, with reasons."""
    folder = paths.datasets / check_set_name(set_name)
    config = load_training_config(paths.training_config)
    strategy_document = load_strategy(paths.strategy)
    strategy = strategy_document["strategy"] if strategy_document else {}
    sources, skipped = load_widget_sources(read_report(paths.csv), paths.downloads, paths.prompts)
    report = DatasetReport(folder=folder, splits={}, skipped=skipped)
    lines: dict[str, str] = {}
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
        lines[source.widget_id] = _example_line(source, config, code)
    if not lines:
        raise StudioError(
            "No widget is left to put in the dataset: each needs JSX code, a prompt and a strategy action other "
            "than exclude."
        )
    report.splits = assign_splits(list(lines))
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_atomic(folder / f"{name}.jsonl", "".join(lines[widget_id] + "\n" for widget_id in report.splits[name]))
    info = {
        "set": set_name,
        "format": "apple-foundation-models-adapter",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "max_sequence_length": strategy_document["max_sequence_length"] if strategy_document else None,
        "strategy_applied": strategy_document is not None,
        "splits": report.splits,
        "excluded": [{"id": widget_id, "reason": reason} for widget_id, reason in report.excluded],
        "trimmed": [{"id": widget_id, "dropped": dropped} for widget_id, dropped in report.trimmed.items()],
        "skipped": [{"id": widget_id, "reason": reason} for widget_id, reason in report.skipped],
        "training_config": config.to_json(),
    }
    write_atomic(folder / "dataset_info.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return report


def _example_line(source: WidgetSource, config: TrainingConfig, code: str) -> str:
    example = build_example(config, source.prompt, code)
    problems = example_problems(example)
    if problems:
        raise StudioError(f"The example for {source.widget_id} breaks the Apple format: {problems[0]}.")
    return serialize_example(example)
