"""`python -m engine demo [--dir data/demo] [--force]`"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="build the demo workspace (screenpipe db, git repo, docs, config) and print its config path",
        description="Build a small, deterministic demo world to try the studio on; prints the config path.",
    )
    parser.add_argument("--dir", default="data/demo", help="where to build it (default: data/demo)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.demo import build_demo

    print(build_demo(Path(args.dir), force=args.force))
    return 0
