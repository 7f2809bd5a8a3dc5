"""`python -m engine extract --config CFG [--workspace DIR] [--json] [--executor local|ray [--ray-address ADDR]]`"""

from __future__ import annotations

import argparse
import json

from engine.cli import add_config_arguments, config_and_workspace
from engine.executor import add_executor_arguments, executor_choice, open_executor
from engine.extract import ExtractResult, extract
from engine.progress import TqdmProgress

HELP = "read screenpipe, git and docs into the workspace (incremental)"
DESCRIPTION = "Read every source in the config into the workspace. A second run reads only new rows."


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_executor_arguments(parser)


def format_report(result: ExtractResult) -> str:
    lines = [f"Extracted into {result.workspace} in {result.seconds:.1f} s "
             f"(screenpipe schema: {result.screenpipe_era})",
             "", f"  {'source':<34} {'read':>8} {'kept':>8} {'new':>8} {'dupes':>8} {'skipped':>8}"]
    for report in result.reports:
        lines.append(f"  {report.source[:34]:<34} {report.rows_read:>8,} {report.kept:>8,} {report.new_items:>8,} "
                     f"{report.duplicates:>8,} {report.skipped_total:>8,}")
        for reason, count in report.skipped.most_common():
            lines.append(f"      skipped {count:>6,}  {reason}")
    lines.append("")
    totals = ", ".join(
        f"{kind}: {counts['items']:,} items from {counts['sources']:,} rows"
        for kind, counts in result.knowledge.items()
    )
    lines.append(f"Workspace knowledge: {totals or 'none'}")
    lines.append(f"Workspace commits: {result.commits:,} with {result.file_changes:,} code file changes")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config, workspace = config_and_workspace(args)
    progress = TqdmProgress(enabled=not args.json)
    try:
        with open_executor(*executor_choice(config, args.executor, args.ray_address)) as executor:
            result = extract(config, workspace, progress=progress, executor=executor)
    finally:
        progress.close()
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_report(result))
    return 0
