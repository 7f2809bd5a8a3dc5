"""`python -m engine review [--input JSONL | --collected | --widget-set FOLDER] [...] [--decision D --reviewer NAME]`

The one review gate, for every kind of dataset: training pairs in a JSONL (`--input`, queued by validate; decide
with `--line N`), collected examples in the workspace (`--collected`; decide with `--example ID`) and widget
examples a `widgets create-dataset` held back (`--widget-set datasets/<set>`; decide with `--widget ID`).
Without --decision: list what waits for a reviewer, with the kinds of what was found (never the values)."""

from __future__ import annotations

import argparse

from engine.cli.validate import add_input_arguments, resolve_input
from engine.dataset.review import DECISIONS, default_reviewer, record_decision

HELP = "list the review queue, or record a decision on one pair, example or widget"
DESCRIPTION = ("Review flagged and sampled pairs, collected examples and widgets: good (keep), bad (drop), "
    "skip, or redact.")


def arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--collected", action="store_true", help="review the workspace's collected examples")
    target.add_argument("--widget-set", help="review the widgets a create-dataset held back in this dataset folder")
    parser.add_argument("--line", type=int, help="the pair's line number in the JSONL (1-based)")
    parser.add_argument("--example", type=int, help="the collected example's id (from --collected)")
    parser.add_argument("--widget", help="the widget's id (from --widget-set)")
    parser.add_argument("--decision", choices=DECISIONS)
    parser.add_argument("--reviewer", default=None, help="who decides (default: $STUDIO_REVIEWER or your login)")
    parser.add_argument("--note", help="a short note kept with the decision")
    extra = parser.add_mutually_exclusive_group()
    extra.add_argument("--undo", action="store_true", help="take back the reviewer's last answer (a bulk one whole)")
    extra.add_argument("--agreement", action="store_true",
                       help="agreement between reviewers: percent and Cohen's kappa, per pair of reviewers")
    extra.add_argument("--answers-per-item", type=int, metavar="N",
                       help="how many agreeing answers an item needs (1 to 10; kept in the workspace)")


def _workspace(args: argparse.Namespace):
    from engine.cli import workspace_of
    from engine.store import Workspace

    return Workspace.open(workspace_of(args))


def _decided(status) -> str:
    """An item's status by the review rule, with who answered: `good (ana, bo)`, `conflict (good / bad) (ana, bo)`."""
    if status is None:
        return "-"
    who = ", ".join(sorted(answer.reviewer for answer in status.answers.values()))
    return f"{status.label} ({who})" if who else status.label


def run(args: argparse.Namespace) -> int:
    if args.undo or args.agreement or args.answers_per_item is not None:
        return _run_workspace_action(args)
    if args.collected:
        return _run_collected(args)
    if args.widget_set:
        return _run_widgets(args)
    return _run_pairs(args)


def _run_workspace_action(args: argparse.Namespace) -> int:
    from engine.dataset.review import agreement, item_statuses, save_review_settings, undo_last

    workspace = _workspace(args)
    reviewer = args.reviewer or default_reviewer()
    if args.undo:
        keys = undo_last(workspace, reviewer)
        print(f"Undid {reviewer}'s last answer on {len(keys)} item{'s' if len(keys) != 1 else ''}."
              if keys else f"{reviewer} has no answer to undo.")
        return 0
    if args.answers_per_item is not None:
        settings = save_review_settings(workspace, reviewer, answers_per_item=args.answers_per_item)
        print(f"Answers per item: {settings.answers_per_item} (kept in {workspace.root}).")
        return 0
    found = agreement(item_statuses(workspace).values())
    percent = "-" if found.percent is None else f"{found.percent:.1f}%"
    kappa = "-" if found.kappa is None else f"{found.kappa:.3f}"
    print(f"{found.items} items with two or more answers; agreement {percent}; Cohen's kappa {kappa} "
          f"(over {found.two_answer_items} items with exactly two answers)")
    for pair in found.pairs:
        pair_kappa = "-" if pair.kappa is None else f"{pair.kappa:.3f}"
        print(f"  {pair.first} and {pair.second}: {pair.items} items, {pair.percent:.1f}% agree, kappa {pair_kappa}")
    return 0


def _run_pairs(args: argparse.Namespace) -> int:
    from engine.dataset.validate import review_items
    from engine.errors import StudioError

    source, workspace = resolve_input(args)
    items = review_items(source, workspace)
    if args.decision is None:
        if not items:
            print("The review queue is empty: run `python -m engine validate` first.")
            return 0
        print(f"{'line':>6}  {'reason':<8} {'tier':<7} {'decision':<22} findings")
        for item in items:
            kinds = ", ".join(sorted({finding.kind for finding in item.findings})) or "-"
            print(f"{item.pair_index + 1:>6}  {item.reason:<8} {item.tier:<7} {_decided(item.decision)[:22]:<22} "
                  f"{kinds}")
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


def _run_collected(args: argparse.Namespace) -> int:
    from engine.collect.review import decide_example, flagged_examples
    from engine.errors import StudioError

    workspace = _workspace(args)
    if args.decision is None:
        examples = flagged_examples(workspace.root)
        if not examples:
            print("No collected example holds possible sensitive data.")
            return 0
        print(f"{'example':>8}  {'source':<14} {'decision':<22} {'findings':<40} where")
        for example in examples:
            print(f"{example.id:>8}  {example.source:<14} {_decided(example.decision)[:22]:<22} "
                  f"{', '.join(example.kinds)[:40]:<40} {example.origin} ({', '.join(example.fields)})")
        return 0
    if args.example is None:
        raise StudioError("Say which example with --example ID (the number `review --collected` lists).")
    made = decide_example(workspace.root, args.example, args.decision, args.reviewer or default_reviewer(),
                          args.note)
    print(f"example {args.example}: {made.decision} by {made.reviewer} at {made.decided_at}")
    return 0


def _run_widgets(args: argparse.Namespace) -> int:
    from engine.errors import StudioError
    from engine.uebersicht.dataset import decide_widget, held_widgets

    workspace = _workspace(args)
    held = held_widgets(args.widget_set)
    if args.decision is None:
        if not held:
            print(f"No widget in {args.widget_set} is held for sensitive-data review.")
            return 0
        from engine.dataset.review import item_statuses

        decisions = item_statuses(workspace, [entry["key"] for entry in held])
        print(f"{'widget':<30} {'decision':<22} findings")
        for entry in held:
            where = ", ".join(sorted({finding["field"] for finding in entry.get("findings", [])}))
            print(f"{entry['id'][:30]:<30} {_decided(decisions.get(entry['key']))[:22]:<22} "
                  f"{', '.join(entry['kinds'])} ({where})")
        print("Decide with --widget ID --decision good|bad|redact, then run `widgets create-dataset` again.")
        return 0
    if not args.widget:
        raise StudioError("Say which widget with --widget ID (the id `review --widget-set` lists).")
    made = decide_widget(workspace, args.widget_set, args.widget, args.decision, args.reviewer or default_reviewer(),
                         args.note)
    print(f"widget {args.widget}: {made.decision} by {made.reviewer} at {made.decided_at}")
    return 0
