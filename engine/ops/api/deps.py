"""What a route is given: the app's one Workspace, its config file and the training lock, as FastAPI dependencies.

`create_app` opens the workspace once and keeps it on `app.state`; every route takes it as a `Workspace` and hands
that same object to the engine, so no route turns it into a path and opens it again. The config is the file's
path, loaded by the route itself (after the body is validated, so a bad body is a 422 before a broken config is a
400), which is why edits to it are seen without a restart.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from engine.store import Workspace


def _workspace(request: Request) -> Workspace:
    return request.app.state.workspace


def _config_path(request: Request) -> Path:
    return request.app.state.config_path


def _train_lock(request: Request) -> threading.Lock:
    return request.app.state.train_lock


WorkspaceDep = Annotated[Workspace, Depends(_workspace)]
ConfigPathDep = Annotated[Path, Depends(_config_path)]
TrainLockDep = Annotated[threading.Lock, Depends(_train_lock)]

