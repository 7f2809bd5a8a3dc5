"""`python -m engine probe --version V | --adapter DIR [--data DIR] [--n N]`: base beside fine-tuned on real pairs."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from engine.cli import add_config_arguments, workspace_of
from engine.errors import StudioError
from engine.processes import current_task
from engine.store import Workspace

HELP = "answer training and held-out pairs with the base and the fine-tuned model, scored vs the code"
DESCRIPTION = """The seed's test_model.py: n training pairs (should work well) and n held-out pairs (show
    overfitting) answered by the base model and by base + adapter side by side, each answer scored against the
    real one with chrF and line overlap."""


def arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", metavar="V", help="a deployed version: v3, 3, or current")
    which.add_argument("--adapter", metavar="DIR", help="an adapter folder mlx-lm wrote")
    parser.add_argument("--data", help="MLX data folder to draw pairs from (default: the adapter's training data)")
    parser.add_argument("--model", help="base model (default: the one the adapter was trained on)")
    parser.add_argument("--n", type=int, default=5, help="pairs from training and from held-out data (default 5)")
    parser.add_argument("--max-tokens", type=int, default=128, help="most tokens per answer (default 128)")
    add_config_arguments(parser)
    parser.add_argument("--label", help="the fine-tuned model's name in the report (default: its version or folder)")
    parser.add_argument("--base-label", help="the base model's name in the report (default: base <model>)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")


def run(args: argparse.Namespace) -> int:
    from engine.chat.generate import GenerationSettings
    from engine.chat.models import adapter_choice, load_chat_model, reexec_with_openblas, version_choice
    from engine.chat.probe import probe

    reexec_with_openblas()
    if args.version:
        tuned = version_choice(Workspace.open(workspace_of(args)), args.version)
        if args.model:
            tuned = replace(tuned, model=args.model)
    else:
        tuned = adapter_choice(args.adapter, args.model)
    if args.data:
        tuned = replace(tuned, data_dir=Path(args.data).expanduser())
    if tuned.data_dir is None:
        raise StudioError(f"The training data of {tuned.name} is unknown; say which pairs to probe with --data DIR.")
    settings = GenerationSettings(max_tokens=args.max_tokens).validated()
    task = current_task()  # the Compare page runs the probe in the background and polls it

    def on_row(row, done: int, total: int) -> None:
        if task:
            task("answering and scoring pairs", done, total)
        if not args.json:
            _progress(row, done, total)

    if args.label:
        tuned = replace(tuned, label=args.label)
    base = replace(tuned.base(), label=args.base_label) if args.base_label else tuned.base()
    if task:
        task("loading the base model and the adapter", 0, 2)
    base_model = load_chat_model(base)
    if task:
        task("loading the base model and the adapter", 1, 2)
    tuned_model = load_chat_model(tuned)
    if task:
        task("answering and scoring pairs", 0, None)
    report = probe([base_model, tuned_model], tuned.data_dir, args.n, settings, on_row=on_row)
    if task:
        task.finish(report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(format_report(report))
    return 0


def _progress(row, done: int, total: int) -> None:
    print(f"probed {done}/{total}", file=sys.stderr, flush=True)


def _block(text: str, width: int) -> list[str]:
    lines = []
    for line in (text or "(nothing)").splitlines() or [""]:
        lines += textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False) or [""]
    return lines[:12] + (["..."] if len(lines) > 12 else [])


def format_report(report) -> str:
    """Each pair with the base and fine-tuned answers side by side, their scores, then the means and a verdict."""
    first, second = report.labels[0], report.labels[-1]
    width = 48
    out = [f"Probed {len(report.rows)} pairs from {report.data_dir} in {report.seconds:.1f} s", ""]
    for row in report.rows:
        title = next((line for line in row.prompt.splitlines() if line.strip()), "")[:100]
        out.append(f"== {row.split} #{row.index + 1}: {title}")
        out.append(f"   {first[:width]:<{width}} | {second[:width]}")
        left, right = _block(row.answers[first], width), _block(row.answers[second], width)
        for index in range(max(len(left), len(right))):
            a = left[index] if index < len(left) else ""
            b = right[index] if index < len(right) else ""
            out.append(f"   {a:<{width}} | {b}")
        scores = [f"chrF {row.chrf[label]:5.1f}  lines {row.line_overlap[label]:5.1f}" for label in (first, second)]
        out.append(f"   {scores[0]:<{width}} | {scores[1]}")
        out.append("")
    out.append(f"  {'pairs':<10} {'model':<40} {'chrF':>7} {'lines':>7}")
    for name, held in (("training", False), ("held-out", True)):
        for label, means in report.means(held_out=held).items():
            out.append(f"  {name:<10} {label[:40]:<40} {means['chrf']:>7.1f} {means['line_overlap']:>7.1f}")
    out += ["", report.verdict()]
    return "\n".join(out)
