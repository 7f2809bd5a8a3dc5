"""CLI verbs: each module defines `register(subparsers)` and sets `func` on its parser (see engine/__main__.py)."""

from __future__ import annotations

import argparse
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
