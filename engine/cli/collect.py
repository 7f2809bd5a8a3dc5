"""`python -m engine collect --config CFG [--workspace DIR] [--sources commits,docs,...] [--json]`"""

from __future__ import annotations

import argparse
import json

from engine.cli import add_config_arguments, config_and_workspace
from engine.collect import CollectResult, collect
from engine.config import COLLECT_SOURCES
from engine.progress import TqdmProgress
from engine.records import TIERS

MAX_DETAILS = 3


HELP = "turn commits, docs, conversation logs and linked pairs into tagged training examples"
DESCRIPTION = """Collect training examples from what the workspace holds (run extract first; link for linked
    pairs) and from collect.conversation_logs. Each example is stored once with its source, format, quality tier
    and token count; a second run adds only what is new."""


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--sources", help=f"comma-separated, from {','.join(COLLECT_SOURCES)} "
                        "(default: the config's collect.sources)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def format_report(result: CollectResult) -> str:
    lines = [f"Collected into {result.workspace} in {result.seconds:.1f} s (run {result.run_id})", "",
             f"  {'source':<16} {'read':>8} {'new':>8} {'dupes':>8} {'filtered':>9}"]
    for name, tally in result.sources.items():
        lines.append(f"  {name:<16} {tally.read:>8,} {tally.new:>8,} {tally.duplicates:>8,} "
                     f"{sum(tally.filtered.values()):>9,}")
        for reason, count in tally.filtered.most_common():
            lines.append(f"      filtered {count:>5,}  {reason}")
            for detail in tally.filtered_details.get(reason, [])[:MAX_DETAILS]:
                lines.append(f"                      {detail}")
    lines.append("")
    by_tier = result.to_dict()["new_by_tier"]
    lines.append(f"New examples: {result.total_new:,} ("
                 + ", ".join(f"{tier} {by_tier[tier]:,}" for tier in TIERS) + ")")
    stored = result.workspace_examples
    lines.append(f"Workspace examples: {sum(stored.values()):,} ("
                 + ", ".join(f"{name} {count:,}" for name, count in stored.items()) + ")")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config, workspace = config_and_workspace(args)
    progress = TqdmProgress(enabled=not args.json, min_total=200)
    try:
        result = collect(config, workspace, sources=args.sources, progress=progress)
    finally:
        progress.close()
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_report(result))
    return 0
