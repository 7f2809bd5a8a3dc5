"""The studio's REST API (FastAPI): collection stats, the scheduler's jobs, training runs and readiness.

`create_app(config_path, workspace_path, token=None)` builds the app; `python -m engine api` serves it with
uvicorn. Every endpoint calls the same engine functions as the CLI and the pages (engine.ops.stats,
engine.ops.scheduler, engine.training.*), so the numbers agree everywhere. One router per resource:
`collection` (/api/training/stats, daily, sources), `scheduling` (/api/scheduler/*), `training` (/api/training,
/api/train, /api/self); `answers` holds the envelope and the error sentences, `guards` the token, Host, write and
body-size checks, `deps` what a route is given (the one Workspace, the config file, the training lock).

Answers are `{"success": true, "data": ...}`. Every error is `{"success": false, "error": "<one sentence>"}` with a
4xx status and changes nothing: the body is validated with pydantic before any engine call, and the engine's
writes are transactions. An unexpected exception gives 500 with a sentence; its traceback goes to the server log,
never into the body. Endpoints are plain `def` functions, so FastAPI runs the blocking engine calls in its thread
pool and the server keeps answering while a job runs.

Status codes: 400 invalid JSON or a domain error the user can fix (StudioError), 401 a missing or wrong token,
403 a write from another web origin (`Origin` or `Sec-Fetch-Site`), 404 an unknown job or path, 409 the state
forbids it now (job already running, training running, not enough examples), 413 a body over 64 KB (refused
unread), 415 a write that is not `Content-Type: application/json`, 422 a well-formed body with a wrong or unknown
field (or none where one is needed: `POST /api/train` takes `{}` for the defaults), 500 an unexpected error.
A value from the request that a message quotes (a job id, a path) is cut to 80 characters.

Access: with a token, every /api/* request needs `Authorization: Bearer <token>` (compared in constant time).
/openapi.json and /docs stay open: they describe the endpoints and hold no data, and /docs has an Authorize
button to try the API with the token (Swagger UI loads its script from FastAPI's default CDN). Without a token the
server is bound to loopback only and answers only requests whose Host is a loopback name, so a web page cannot
read it through DNS rebinding. Every write (POST, PUT, ...) needs `Content-Type: application/json` and is refused
when it comes from another web origin (its `Origin` is not this host, or `Sec-Fetch-Site` is not same-origin or
none), so no page a user visits can start a training run or change a job, token or not.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from engine import __version__
from engine.config import PipelineConfig
from engine.ops.api import collection, scheduling, training
from engine.ops.api.answers import install_error_handlers
from engine.ops.api.guards import install_guards, token_check
from engine.store import Workspace


def create_app(config_path: str | Path, workspace_path: str | Path, token: str | None = None) -> FastAPI:
    """The API over one config and workspace. The config is loaded now (a broken one fails here, before serving)
    and again per request, so edits to it are seen without a restart. With `token`, /api/* needs it as a bearer
    token."""
    config_path = Path(config_path).expanduser()
    PipelineConfig.load(config_path)
    # FastAPIOffline serves Swagger UI and ReDoc from files in the package: /docs works with no internet.
    app = FastAPIOffline(
        title="Training Data Studio API",
        version=__version__,
        description=("Collection stats, scheduled jobs and training for one Training Data Studio workspace. "
                     "Answers are {\"success\": true, \"data\": ...}; errors are {\"success\": false, "
                     "\"error\": \"one sentence\"} with a 4xx status."
                     + (" Every /api request needs `Authorization: Bearer <token>`." if token else "")),
    )
    app.state.config_path = config_path
    app.state.workspace = Workspace.open(workspace_path)
    app.state.train_lock = threading.Lock()  # one "is a run active? start one" at a time within this server
    install_guards(app, token)
    install_error_handlers(app)
    api = APIRouter(prefix="/api", dependencies=[Depends(token_check(token))] if token else [])
    for resource in (collection, scheduling, training):
        api.include_router(resource.router)
    app.include_router(api)
    return app
