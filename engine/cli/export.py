"""`python -m engine export [--input JSONL] [--name NAME | --out DIR] [--min-tier bronze]`

Write the cleaned dataset as an mlx-lm data folder (train/valid/test.jsonl). Pairs with sensitive data that no
reviewer has kept or redacted are left out and counted."""

from __future__ import annotations

import argparse
import json

from engine.cli import number_in
from engine.cli.validate import add_input_arguments, resolve_input
from engine.dataset.export import export_dataset
from engine.progress import TqdmProgress
from engine.records import TIERS

HELP = "write the cleaned dataset as an mlx-lm folder (train/valid/test.jsonl)"
DESCRIPTION = "Export usable, reviewed pairs as prompt/completion lines for mlx_lm.lora --data."


def arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--name", default="default", help="dataset name: writes <workspace>/datasets/NAME/")
    parser.add_argument("--out", help="write to this folder instead")
    parser.add_argument("--min-tier", choices=TIERS, default="bronze", help="lowest quality tier kept")
    parser.add_argument("--min-confidence", type=number_in(0, 1),
                        help="default: the config's confidence.min_confidence")
    parser.add_argument("--valid-fraction", type=number_in(0, 1), default=0.1)
    parser.add_argument("--test-fraction", type=number_in(0, 1), default=0.1)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    source, workspace = resolve_input(args)
    progress = TqdmProgress(enabled=not args.json)
    try:
        result = export_dataset(source, workspace, name=args.name, out_dir=args.out, min_tier=args.min_tier,
                                min_confidence=args.min_confidence, valid_fraction=args.valid_fraction,
                                test_fraction=args.test_fraction, progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    counts = result.counts
    print(f"Exported to {result.folder}: train {counts['train']}, valid {counts['valid']}, test {counts['test']}"
          f" ({result.redacted_pairs} redacted)")
    for reason, count in result.excluded.items():
        print(f"  left out {count:>5}  {reason}")
    return 0
