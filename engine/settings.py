"""Which config and workspace the studio works on: one resolution for every page and every CLI verb.

Config: the `--config` flag, else $STUDIO_CONFIG, else the studio's active config (data/workspace/
pipeline_config.json, your own, once it exists), else the demo's data/demo/pipeline_config.json.
Workspace: the `--workspace` flag, else $STUDIO_WORKSPACE, else that config's `studio.workspace`, else
data/workspace. Relative defaults are taken from the current directory (the repository root when `make run` or a
page runs them), so a verb typed in the clone's root and the app see the same config and the same workspace.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ConfigError
from engine.store import resolve_workspace

DEMO_DIR = Path("data/demo")
DEMO_CONFIG = DEMO_DIR / "pipeline_config.json"
USER_CONFIG = Path("data/workspace/pipeline_config.json")


def active_config_path(flag: str | os.PathLike | None = None) -> Path:
    """The pipeline config a verb or page works on (see the module docstring for the order)."""
    if flag:
        return Path(flag).expanduser()
    if os.environ.get("STUDIO_CONFIG"):
        return Path(os.environ["STUDIO_CONFIG"]).expanduser()
    if USER_CONFIG.exists():
        return USER_CONFIG
    return DEMO_CONFIG


def config_source(flag: str | os.PathLike | None = None) -> str:
    """Where the config came from, in a few words (for messages that say which config was used)."""
    if flag:
        return "--config"
    if os.environ.get("STUDIO_CONFIG"):
        return "$STUDIO_CONFIG"
    return "the studio's active config" if USER_CONFIG.exists() else "the demo"


def load_active_config(flag: str | os.PathLike | None = None):
    """The loaded PipelineConfig; a ConfigError in one sentence when there is none yet or it is broken."""
    from engine.config import PipelineConfig

    path = active_config_path(flag)
    if not flag and not path.exists():
        raise ConfigError(
            f"No pipeline config yet ({path} does not exist): build the demo with `python -m engine demo` "
            "(`make run` does), set STUDIO_CONFIG, or pass --config FILE.")
    return PipelineConfig.load(path)


def active_workspace(config_path: str | os.PathLike | None = None,
                     flag: str | os.PathLike | None = None) -> Path:
    """The workspace folder (see the module docstring for the order). A config that is missing or broken does
    not decide it: the next candidate does, as the pages show it."""
    if flag or os.environ.get("STUDIO_WORKSPACE"):
        return resolve_workspace(flag)
    configured = None
    path = Path(config_path) if config_path else active_config_path()
    if path.exists():
        from engine.config import PipelineConfig

        try:
            configured = PipelineConfig.load(path).workspace
        except (ConfigError, OSError):
            configured = None
    return resolve_workspace(None, str(configured) if configured else None)
