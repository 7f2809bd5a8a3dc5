"""CLI verbs: each module defines `register(subparsers)` and sets `func` on its parser (see engine/__main__.py)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config (required) and --workspace, as every verb that works on a pipeline config takes them."""
    parser.add_argument("--config", required=True, help="pipeline_config.json (the seeds' format)")
    parser.add_argument("--workspace", help="workspace folder (default: $STUDIO_WORKSPACE, the config's "
                        "studio.workspace, or data/workspace)")


def config_and_workspace(args: argparse.Namespace):
    """The loaded config and the workspace folder: --workspace, else $STUDIO_WORKSPACE, else the config's
    studio.workspace, else data/workspace."""
    from engine.config import PipelineConfig
    from engine.store import resolve_workspace

    config = PipelineConfig.load(args.config)
    workspace: Path = resolve_workspace(args.workspace, str(config.workspace) if config.workspace else None)
    return config, workspace


def number_in(low: float | None = None, high: float | None = None, *, whole: bool = False,
              above: bool = False) -> Callable[[str], float | int]:
    """An argparse `type` for a finite number in [low, high] (or (low, high] with `above`): NaN, infinity and
    out-of-range values are a usage error naming the flag, not a traceback later."""
    def parse(text: str) -> float | int:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if whole else 'number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = low is not None and (value <= low if above else value < low)
        if too_low or (high is not None and value > high):
            floor = "" if low is None else (f"above {low:g}" if above else f"at least {low:g}")
            ceiling = "" if high is None else f"at most {high:g}"
            bounds = " and ".join(part for part in (floor, ceiling) if part)
            raise argparse.ArgumentTypeError(f"{text} is out of range; give a number {bounds}")
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse
