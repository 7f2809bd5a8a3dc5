"""What the Widgets page shows, gathered in one place so the page does no file I/O of its own: the manifest with
each widget's download, analysis, prompt and strategy state; the strategy table; the datasets built so far."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from engine.records import SPLITS
from engine.uebersicht import WidgetPaths
from engine.uebersicht.apple_format import validate_jsonl
from engine.uebersicht.budget import load_strategy
from engine.uebersicht.download import is_downloaded, read_download_log
from engine.uebersicht.manifest import load_manifest
from engine.uebersicht.prompts import is_hand_edited, prompt_path
from engine.uebersicht.report import read_report


@dataclass
class WidgetOverview:
    rows: list[dict]  # one per manifest widget, ready for a table
    manifest_skipped: list[tuple[str, str]]
    has_report: bool
    strategy: dict | None
    jsx_ids: list[str] = field(default_factory=list)

    def count(self, column: str, value: object) -> int:
        return sum(row[column] == value for row in self.rows)


def widget_overview(paths: WidgetPaths) -> WidgetOverview:
    """Status per manifest widget; raises ManifestError when the manifest is missing or malformed."""
    manifest = load_manifest(paths.manifest)
    log = read_download_log(paths.download_log)
    report = {row["OS_id"]: row for row in read_report(paths.csv)} if paths.csv.exists() else {}
    strategy = load_strategy(paths.strategy)
    entries = strategy["strategy"] if strategy else {}
    rows = []
    for widget in manifest.widgets:
        downloaded = is_downloaded(paths.downloads, widget.id)
        failure = log.get(widget.id, {})
        row = report.get(widget.id, {})
        if downloaded:
            download = "downloaded"
        elif failure.get("status") == "failed":
            download = "failed: " + failure.get("reason", "")
        else:
            download = "not yet"
        has_prompt = prompt_path(paths.prompts, widget.id).exists()
        entry = entries.get(widget.id, {})
        rows.append({
            "widget": widget.id,
            "name": widget.name,
            "download": download,
            "kind": _kind(row) if row else "",
            "prompt": ("hand-edited" if is_hand_edited(paths.prompts, widget.id) else "drafted") if has_prompt else "",
            "total tokens": entry.get("current_total_tokens"),
            "action": entry.get("action", ""),
        })
    jsx = [row["widget"] for row in rows if row["kind"] == "JSX" and row["download"] == "downloaded"]
    return WidgetOverview(rows, manifest.skipped, bool(report), strategy, jsx)


def _kind(row: dict[str, str]) -> str:
    if row.get("PS_isJSX") == "Y":
        return "JSX"
    if row.get("PS_iscoffee") == "Y":
        return "CoffeeScript"
    return "no widget file" if row.get("PS_downloaded") == "Y" else ""


def strategy_rows(strategy: dict) -> list[dict]:
    """The strategy as editor rows, sorted by widget id: tokens, action, and why."""
    limit = strategy["max_sequence_length"]
    rows = []
    for widget_id, entry in sorted(strategy["strategy"].items()):
        total = entry.get("current_total_tokens", 0)
        if entry["action"] == "exclude":
            note = entry.get("reason", "")
        elif entry["action"] == "trim":
            note = f"{entry.get('trimmed_total_tokens')} tokens after dropping {', '.join(entry.get('dropped', []))}"
        else:
            note = "fits" if total <= limit else f"over the limit by {total - limit}"
        rows.append({
            "widget": widget_id,
            "total tokens": total,
            "widget tokens": entry.get("current_widget_tokens", 0),
            "action": entry["action"],
            "note": note,
        })
    return rows


@dataclass
class DatasetSummary:
    name: str
    counts: dict[str, int]
    problems: list[str]  # validator findings, "file:line: problem"
    info: dict


def list_datasets(paths: WidgetPaths) -> list[DatasetSummary]:
    """Every dataset folder under datasets/, with line counts and a fresh validation of every line."""
    if not paths.datasets.is_dir():
        return []
    found = []
    for folder in sorted(p for p in paths.datasets.iterdir() if p.is_dir() and (p / "train.jsonl").exists()):
        counts, problems = {}, []
        for name in SPLITS:
            path = folder / f"{name}.jsonl"
            if not path.exists():
                counts[name] = 0
                continue
            counts[name] = len(path.read_text(encoding="utf-8").splitlines())
            problems += [f"{name}.jsonl:{line}: {problem}" for line, problem in validate_jsonl(path)]
        try:
            info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        found.append(DatasetSummary(folder.name, counts, problems, info))
    return found

