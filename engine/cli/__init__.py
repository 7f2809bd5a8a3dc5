"""CLI verbs: each module defines `register(subparsers)` and sets `func` on its parser (see engine/__main__.py).

Every verb finds its config and workspace the same way the pages do (engine/settings.py): `--config`, else
$STUDIO_CONFIG, else the studio's active config, else the demo; `--workspace`, else $STUDIO_WORKSPACE, else the
config's studio.workspace, else data/workspace.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

CONFIG_HELP = ("pipeline_config.json (default: $STUDIO_CONFIG, else data/workspace/pipeline_config.json, else the "
               "demo's data/demo/pipeline_config.json)")
WORKSPACE_HELP = ("workspace folder (default: $STUDIO_WORKSPACE, else the config's studio.workspace, else "
                  "data/workspace)")


def add_verb(subparsers: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int] | None, *,
             help: str, description: str) -> argparse.ArgumentParser:
    """The parser of one verb: `help` is its line in `python -m engine -h`, `description` heads `<verb> -h`, and
    `run(args)` is what the verb does (its exit code; None when the verb's steps set their own). The caller adds
    the verb's own arguments to the parser."""
    parser = subparsers.add_parser(name, help=help, description=description)
    if run is not None:
        parser.set_defaults(func=run)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str = CONFIG_HELP) -> None:
    """--config and --workspace, both optional, as every verb takes them."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--workspace", help=WORKSPACE_HELP)


def config_and_workspace(args: argparse.Namespace):
    """The loaded pipeline config and the workspace folder (see the module docstring for the order)."""
    from engine.settings import load_active_config
    from engine.store import resolve_workspace

    config = load_active_config(getattr(args, "config", None))
    configured = str(config.workspace) if config.workspace else None
    workspace: Path = resolve_workspace(getattr(args, "workspace", None), configured)
    return config, workspace


def workspace_of(args: argparse.Namespace) -> Path:
    """The workspace folder for a verb that needs no config of its own: the same one the pages show. An explicit
    --config that cannot be loaded is an error; a broken active config leaves the choice to the next candidate."""
    from engine.settings import active_config_path, active_workspace

    flag = getattr(args, "config", None)
    if flag and not getattr(args, "workspace", None):
        from engine.config import PipelineConfig

        PipelineConfig.load(Path(flag).expanduser())  # raises the config's problem in one sentence
    return active_workspace(active_config_path(flag), getattr(args, "workspace", None))


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
