"""`python -m engine stats {summary,sources} [--json]`, `stats daily [--days N] [--json]`, `stats json [--days N]`"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from engine.cli import add_config_arguments, config_and_workspace
from engine.config import COLLECT_SOURCES
from engine.ops import stats
from engine.records import TIERS
from engine.text import byte_size


def _common(parser: argparse.ArgumentParser, days: bool = False, json_flag: bool = True) -> None:
    add_config_arguments(parser)
    if days:
        parser.add_argument("--days", type=int, default=30, help="how many days back, today included (default 30)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


HELP = "collected examples: totals, examples per day, source health"
DESCRIPTION = """Statistics of the examples `collect` stored: totals by source, format and tier, tokens and
    storage (summary), examples collected per day (daily), each source's health (sources), or all of it as JSON
    (json). Marked duplicates are not counted."""


def arguments(parser: argparse.ArgumentParser) -> None:
    views = parser.add_subparsers(dest="view", metavar="<view>", required=True)
    _common(views.add_parser("summary", help="totals by source, format and tier; readiness to train"))
    _common(views.add_parser("daily", help="examples collected per day"), days=True)
    _common(views.add_parser("sources", help="examples, tiers and health per source"))
    _common(views.add_parser("json", help="everything as one JSON document"), days=True, json_flag=False)


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:5.1f}%" if total else "    –"


def _when(iso: str | None) -> str:
    if not iso:
        return "never"
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def format_summary(data: dict, readiness: dict, workspace) -> str:
    overall, short = data["overall"], data["summary"]
    total = overall["total_examples"]
    lines = [f"Collected examples in {workspace}"]
    if not total:
        lines.append("  none yet: run `python -m engine extract` and then `python -m engine collect` with this config")
    lines.append(f"  {total:,} examples, {overall['total_tokens']:,} tokens ({overall['avg_token_length']:,.1f} per "
                 f"example), {byte_size(overall['storage_bytes'])} stored")
    lines.append(f"  {overall['human_reviewed']:,} human-reviewed, {overall['duplicates']:,} marked as duplicates "
                 f"(not counted); last collected {_when(overall['last_collected_at'])}")
    for title, key in (("source", "by_source"), ("format", "by_format"), ("tier", "by_quality")):
        lines += ["", f"  {title:<16} {'examples':>9} {'share':>7}"]
        for name, count in overall[key].items():
            lines.append(f"  {name:<16} {count:>9,} {_share(count, total):>7}")
    lines.append("")
    lines.append(f"Gold + silver: {short['top_quality_percentage']:.1f}% of examples; {short['healthy_sources']} of "
                 f"{short['sources_with_examples']} sources with examples are healthy (mean score >= "
                 f"{stats.HEALTHY_SCORE})")
    verdict = "yes" if readiness["ready_to_train"] else "not yet"
    lines.append(f"Ready to train: {verdict}, {readiness['total_samples']:,} of {readiness['min_for_training']:,} "
                 f"examples needed (collect.min_examples_for_training) at {readiness['export_min_tier']} tier or "
                 "better" + (f"; {readiness['held_for_review']:,} held for sensitive-data review"
                              if readiness["held_for_review"] else ""))
    return "\n".join(lines)


def format_daily(days: list[dict]) -> str:
    header = f"  {'date':<11} {'total':>6} " + " ".join(f"{name:>13}" for name in COLLECT_SOURCES) + " " + \
        " ".join(f"{tier:>6}" for tier in TIERS)
    lines = [f"Examples collected per day, last {len(days)} days (UTC)", "", header]
    for day in days:
        lines.append(f"  {day['date']:<11} {day['total_examples']:>6,} "
                     + " ".join(f"{day['by_source'].get(name, 0):>13,}" for name in COLLECT_SOURCES) + " "
                     + " ".join(f"{day['by_quality'][tier]:>6,}" for tier in TIERS))
    lines.append(f"  {'total':<11} {sum(day['total_examples'] for day in days):>6,} "
                 + " ".join(f"{sum(day['by_source'].get(name, 0) for day in days):>13,}" for name in COLLECT_SOURCES)
                 + " " + " ".join(f"{sum(day['by_quality'][tier] for day in days):>6,}" for tier in TIERS))
    return "\n".join(lines)


def format_sources(items: list[dict]) -> str:
    lines = ["Example sources (health: mean quality score, 0-1; above 0.6 is healthy)", "",
             f"  {'source':<14} {'examples':>8} {'health':>6} {'24 h':>6} "
             + " ".join(f"{tier:>6}" for tier in TIERS) + f" {'dupes':>6}  last updated"]
    for item in items:
        lines.append(f"  {item['source']:<14} {item['total_examples']:>8,} {item['health_score']:>6.2f} "
                     f"{item['examples_24h']:>6,} "
                     + " ".join(f"{item['quality_distribution'].get(tier, 0):>6,}" for tier in TIERS)
                     + f" {item['duplicates']:>6,}  {_when(item['last_updated'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config, workspace = config_and_workspace(args)
    if args.view == "json":
        document = stats.full(workspace, days=args.days)
        document["readiness"] = stats.training_readiness(config, workspace)
        print(json.dumps(document, indent=2))
        return 0
    if args.view == "summary":
        data, readiness = stats.summary(workspace), stats.training_readiness(config, workspace)
        print(json.dumps({**data, "readiness": readiness}, indent=2) if args.json
              else format_summary(data, readiness, workspace))
    elif args.view == "daily":
        days = stats.daily(workspace, days=args.days)
        print(json.dumps(days, indent=2) if args.json else format_daily(days))
    else:
        items = stats.sources(workspace)
        print(json.dumps(items, indent=2) if args.json else format_sources(items))
    return 0
