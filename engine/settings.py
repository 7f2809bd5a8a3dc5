"""Which config and workspace the studio is working on, for pages and CLI alike.

Config: $STUDIO_CONFIG, else data/workspace/pipeline_config.json if it exists, else the demo's
data/demo/pipeline_config.json. Workspace: $STUDIO_WORKSPACE, else the config's `studio.workspace`, else
data/workspace. Paths are relative to the current directory (the repository root when run by `make run`).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.store import resolve_workspace

DEMO_DIR = Path("data/demo")
DEMO_CONFIG = DEMO_DIR / "pipeline_config.json"
USER_CONFIG = Path("data/workspace/pipeline_config.json")


def active_config_path() -> Path:
    """The pipeline config the app edits and runs by default."""
    if os.environ.get("STUDIO_CONFIG"):
        return Path(os.environ["STUDIO_CONFIG"]).expanduser()
    if USER_CONFIG.exists():
        return USER_CONFIG
    return DEMO_CONFIG


def active_workspace(config_path: Path | None = None) -> Path:
    """The workspace folder for the active config (see module docstring for the order)."""
    configured = None
    path = config_path or active_config_path()
    if path.exists():
        from engine.config import PipelineConfig

        try:
            configured = PipelineConfig.load(path).workspace
        except Exception:  # a broken config still has a workspace: the default one
            configured = None
    return resolve_workspace(None, str(configured) if configured else None)
