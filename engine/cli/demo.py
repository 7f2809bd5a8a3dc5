"""`python -m engine demo [--dir data/demo] [--force] [--prepare]`"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.text import plural

HELP = "build the demo workspace (screenpipe db, git repo, docs, config) and print its config path"
DESCRIPTION = "Build a small, deterministic demo world to try the studio on; prints the config path."


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="data/demo", help="where to build it (default: data/demo)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    parser.add_argument("--prepare", action="store_true",
                        help="also extract, link and collect it and convert the default base model, so every page "
                             "has something to show (what `make run` does); prints a short summary")


def run(args: argparse.Namespace) -> int:
    from engine.demo import build_demo

    started = time.perf_counter()
    config_path = build_demo(Path(args.dir), force=args.force)
    if not args.prepare:
        print(config_path)
        return 0
    for line in prepare_demo(config_path):
        print(line, flush=True)
    print(f"Demo ready in {time.perf_counter() - started:.0f} s: {config_path}")
    return 0


def prepare_demo(config_path: Path) -> list[str]:
    """Extract, link and collect the demo workspace (each only reads what is new, so a second run is quick) and
    convert the default base model once; the summary lines of what the pages will show."""
    from engine.collect.collector import collect
    from engine.config import PipelineConfig
    from engine.pipeline import extract_and_link
    from engine.training.models import default_model_ready, ensure_default_model

    config = PipelineConfig.load(config_path)
    workspace = config.workspace
    extracted, linked = extract_and_link(config, workspace)
    collected = collect(config, workspace)
    knowledge = extracted.knowledge
    held = linked.mlx_counts.get("held_for_review", 0)
    lines = [
        f"  sources: {plural(knowledge.get('ocr', {}).get('items', 0), 'distinct screen')}, "
        f"{plural(knowledge.get('audio', {}).get('items', 0), 'transcript')}, "
        f"{plural(knowledge.get('document', {}).get('items', 0), 'doc')}, {plural(extracted.commits, 'commit')}",
        f"  linking: {plural(linked.pairs, 'training pair')} from {linked.linked_commits} of "
        f"{plural(linked.commits, 'commit')} at min_confidence {linked.min_confidence:g}"
        + (f"; {plural(held, 'pair')} held for review (the demo plants secrets and personal data on purpose)"
           if held else ""),
        f"  collected: {plural(sum(collected.workspace_examples.values()), 'example')} from commits, docs, "
        "conversations and linked pairs",
    ]
    if not default_model_ready():
        converting = time.perf_counter()
        ensure_default_model(log=lambda message: None)
        lines.append(f"  base model: converted the offline default once in {time.perf_counter() - converting:.1f} s")
    return lines
