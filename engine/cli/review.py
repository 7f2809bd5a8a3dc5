"""`python -m engine review [--input JSONL] [--line N --decision good|bad|skip|redact --reviewer NAME]`

Without --decision: list the review queue of the dataset (validate queues flagged and sampled pairs). With it:
record one decision on the pair at line N."""

from __future__ import annotations

import argparse

from engine.cli.validate import add_input_arguments, resolve_input
from engine.dataset.review import DECISIONS, default_reviewer, record_decision
from engine.dataset.validate import review_items


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "review", help="list the review queue, or record a decision on one pair",
        description="Review flagged and sampled pairs: good (keep), bad (drop), skip, or redact.",
    )
    add_input_arguments(parser)
    parser.add_argument("--line", type=int, help="the pair's line number in the JSONL (1-based)")
    parser.add_argument("--decision", choices=DECISIONS)
    parser.add_argument("--reviewer", default=None, help="who decides (default: $STUDIO_REVIEWER or your login)")
    parser.add_argument("--note", help="a short note kept with the decision")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import StudioError

    source, workspace = resolve_input(args)
    items = review_items(source, workspace)
    if args.decision is None:
        if not items:
            print("The review queue is empty: run `python -m engine validate` first.")
            return 0
        print(f"{'line':>6}  {'reason':<8} {'tier':<7} {'decision':<22} findings")
        for item in items:
            decided = f"{item.decision.decision} by {item.decision.reviewer}" if item.decision else "-"
            kinds = ", ".join(sorted({finding.kind for finding in item.findings})) or "-"
            print(f"{item.pair_index + 1:>6}  {item.reason:<8} {item.tier:<7} {decided[:22]:<22} {kinds}")
        return 0
    if args.line is None:
        raise StudioError("Say which pair with --line N (its line number in the JSONL).")
    item = next((item for item in items if item.pair_index == args.line - 1), None)
    if item is None:
        from engine.dataset.validate import pair_at_line

        pair = pair_at_line(source, args.line)
        pair_hash, pair_index = pair.pair_hash, pair.pair_index
    else:
        pair_hash, pair_index = item.pair_hash, item.pair_index
    made = record_decision(workspace, pair_hash, args.decision, args.reviewer or default_reviewer(),
                           dataset=str(source.expanduser().resolve()), pair_index=pair_index, note=args.note)
    print(f"line {args.line}: {made.decision} by {made.reviewer} at {made.decided_at}")
    return 0
