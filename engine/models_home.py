"""Where converted and downloaded models live on this machine: one per-user folder, outside every clone and workspace.

Both the training stage (the converted default base model) and the linker (its ONNX embedding export) keep their
models here, so the rule for the folder is decided once: STUDIO_MODEL_CACHE when set, else the XDG cache folder
(~/.cache by default) under training-data-studio/models.
"""

from __future__ import annotations

import os
from pathlib import Path


def model_cache_dir() -> Path:
    """The per-user folder holding converted base models and exported encoders (never inside a clone or
    workspace)."""
    if os.environ.get("STUDIO_MODEL_CACHE"):
        return Path(os.environ["STUDIO_MODEL_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "training-data-studio" / "models"
