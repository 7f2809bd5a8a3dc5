"""The studio's REST API (FastAPI): collection stats, the scheduler's jobs, training runs and readiness.

`create_app(config_path, workspace_path, token=None)` builds the app; `python -m engine api` serves it with
uvicorn. Every endpoint calls the same engine functions as the CLI and the pages (engine.ops.stats,
engine.ops.scheduler, engine.training.*), so the numbers agree everywhere.

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

import hmac
import ipaddress
import math
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from engine import __version__
from engine.config import PipelineConfig
from engine.errors import StudioError
from engine.ops.scheduler import MAX_INTERVAL_MINUTES, JobBusyError, SchedulerError
from engine.store import Workspace
from engine.training.launcher import DEFAULT_PRESET, PARAMETER_HELP, PRESETS

COLLECTED_FOLDER = ("datasets", "collected")
# Module level: annotations are strings here (PEP 563), which FastAPI resolves against the module's globals.
BEARER = HTTPBearer(auto_error=False, description="The token given to `python -m engine api --token`.")
RECENT_RUNS = 20
MAX_BODY_BYTES = 64 * 1024  # every body here is a few fields of JSON; a bigger one is refused unread (413)


# -- errors ----------------------------------------------------------------------------------------------------
class ApiError(StudioError):
    """A request the API refuses; `status_code` is the HTTP status it answers with."""

    status_code = 400


class NotFoundError(ApiError):
    status_code = 404


class ConflictError(ApiError):
    """The request is valid but the workspace's state does not allow it now (busy, not ready)."""

    status_code = 409


class InvalidValueError(ApiError):
    status_code = 422


def _status_for(exc: StudioError) -> int:
    """The HTTP status for a domain error: the API's own carry it; a busy job is a conflict; a bad job setting is
    unprocessable; anything else the user can fix (a broken config, a bad data folder) is a bad request."""
    if isinstance(exc, ApiError):
        return exc.status_code
    if isinstance(exc, JobBusyError):
        return 409
    if isinstance(exc, SchedulerError):
        return 422
    return 400


def _failure(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


def _json_safe(value: Any) -> Any:
    """JSON cannot carry NaN or infinity (a diverged loss): send null instead of failing the whole answer."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def ok(data: Any, status_code: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse(_json_safe({"success": True, "data": data, **extra}), status_code=status_code)


_FIELD_HINTS = {
    "job_id": "a job id such as mining_code",
    "wait": "true or false",
    "enabled": "true or false",
    "interval_minutes": "a number of minutes above 0",
    "force": "true or false",
    "days": "a whole number of days from 1 to 3650",
}


def validation_sentence(errors: list[dict], body_fields: list[str] | None = None) -> tuple[int, str]:
    """One sentence (and a status) for pydantic's list of errors: the first error, naming the field and what is
    expected. Invalid JSON is 400; a well-formed body with a wrong value is 422."""
    error = errors[0]
    kind, loc = error.get("type", ""), [str(part) for part in error.get("loc", ())]
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "it cannot be decoded")
        return 400, f"The request body is not valid JSON ({reason} at character {loc[-1]}); send a JSON object."
    place, name = (loc[0] if loc else "body"), ".".join(loc[1:])
    expected = f"fields {', '.join(body_fields)}" if body_fields else "the documented fields"
    if place == "body" and not name:
        if isinstance(error.get("input"), bytes):
            return 422, "The request body must be JSON sent with the header `Content-Type: application/json`."
        if kind == "missing":
            return 422, f"This request needs a JSON object body with the {expected}."
        return 422, f"The request body must be a JSON object with the {expected}, not {_describe(error.get('input'))}."
    label = f"The query parameter {name}" if place == "query" else f"The field {name}"
    if kind == "missing":
        hint = _FIELD_HINTS.get(loc[-1])
        return 422, f"{label} is required" + (f"; give {hint}." if hint else ".")
    if kind == "extra_forbidden":
        return 422, f"{label} is not known here; this request takes the {expected}."
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Input ").split(", unable to")[0]
    hint = _FIELD_HINTS.get(loc[-1])
    sentence = f"{label} {message[0].lower() + message[1:]}, not {_describe(error.get('input'))}"
    return 422, sentence + (f"; give {hint}." if hint and hint not in sentence else ".")


def clip(text: str, limit: int = 80) -> str:
    """A value from the request, cut for a message (an id can be megabytes long)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_loopback_name(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: names and addresses no other machine can reach."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"The request body is larger than {MAX_BODY_BYTES // 1024} KB; this API takes small "
                              "JSON objects.")


class BodyCap:
    """Bodies are read only up to MAX_BODY_BYTES: a larger declared Content-Length is refused before reading, and a
    chunked body is refused as soon as it passes the cap (413, one sentence, as every other error)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await _failure(413, _BodyTooLarge().detail)(scope, receive, send)
            return
        received = 0

        async def capped() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _BodyTooLarge  # FastAPI lets an HTTPException from the body through to the handlers
            return message

        await self.app(scope, capped, send)


# -- writes ----------------------------------------------------------------------------------------------------
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def write_refusal(headers) -> tuple[int, str] | None:
    """Why a state-changing request must be refused, as (status, sentence), or None. A web page the user visits can
    send a POST to this API without asking (a form, or fetch without a preflight when the type is text/plain or a
    form type); such a request always carries the page's Origin and, in current browsers, `Sec-Fetch-Site:
    cross-site`. So a write must come from no browser page or this origin, and be `application/json`, which a
    page on another site cannot send without a CORS preflight that this API never grants."""
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return 403, (f"This request came from another site (Sec-Fetch-Site: {clip(site, 20)}); the API takes "
                     "changes only from its own origin or from programs such as curl.")
    origin = headers.get("origin")
    if origin is not None:
        from urllib.parse import urlsplit

        try:
            origin_host = urlsplit(origin).netloc.lower()
        except ValueError:
            origin_host = ""
        if not origin_host or origin_host != headers.get("host", "").lower():
            return 403, (f"This request came from the web page {clip(origin, 60)!r}, another origin than this API's; "
                         "the API takes changes only from its own origin or from programs such as curl.")
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        shown = f"Content-Type {clip(content_type, 40)!r}" if content_type else "no Content-Type"
        return 415, (f"This request has {shown}; send a JSON object with the header `Content-Type: "
                     "application/json`.")
    return None


# -- request bodies --------------------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RunJobRequest(_Body):
    job_id: StrictStr = Field(description="mining_code, quality_check, dedup_cleanup or export_training")
    wait: StrictBool = Field(False, description="true: run now and answer with the finished run (200); "
                                                "false: start it in the background and answer with its run id (202)")


class ConfigureJobRequest(_Body):
    job_id: StrictStr
    enabled: StrictBool | None = None
    interval_minutes: StrictFloat | None = Field(None, gt=0, le=MAX_INTERVAL_MINUTES,
                                                 description="how often the job runs, in minutes (at most a year)")


class TrainRequest(_Body):
    """The `train` verb's options (engine/cli/train.py), as JSON; unset ones take the preset's values."""

    force: StrictBool = Field(False, description="train even below collect.min_examples_for_training")
    data: StrictStr | None = Field(None, description="an MLX data folder on the server (absolute path); default "
                                                     "<workspace>/datasets/collected, written by export_training")
    model: StrictStr | None = Field(None, description="hub id or local model folder; default the offline default")
    preset: Literal[tuple(PRESETS)] = Field(DEFAULT_PRESET, description="the launcher's presets")  # type: ignore
    iters: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["iters"])
    batch_size: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["batch_size"])
    learning_rate: StrictFloat | None = Field(None, gt=0, description=PARAMETER_HELP["learning_rate"])
    num_layers: StrictInt | None = Field(None, description=PARAMETER_HELP["num_layers"])
    max_seq_length: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["max_seq_length"])
    lora_rank: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["lora_rank"])
    lora_scale: StrictFloat | None = Field(None, description=PARAMETER_HELP["lora_scale"])
    grad_accumulation_steps: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["grad_accumulation_steps"])
    steps_per_report: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["steps_per_report"])
    steps_per_eval: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["steps_per_eval"])
    seed: StrictInt | None = Field(None, description="random seed of the run")
    grad_checkpoint: StrictBool | None = Field(None, description=PARAMETER_HELP["grad_checkpoint"])
    mask_prompt: StrictBool | None = Field(None, description=PARAMETER_HELP["mask_prompt"])
    evaluate: StrictBool | None = Field(None, description="compare with the base model and check generation after "
                                                         "training (default true)")


_TRAIN_OVERRIDES = ("iters", "batch_size", "learning_rate", "num_layers", "max_seq_length", "lora_rank",
                    "lora_scale", "grad_accumulation_steps", "steps_per_report", "steps_per_eval", "seed",
                    "grad_checkpoint", "mask_prompt", "evaluate")
_BODY_MODELS = {"/api/scheduler/run": RunJobRequest, "/api/scheduler/job": ConfigureJobRequest,
                "/api/train": TrainRequest}


# -- readiness and summaries (shared by /api/training, /api/train and /api/self) -------------------------------
def data_readiness(config: PipelineConfig, ws: Workspace, data_dir: str | None = None) -> dict:
    """Whether a data folder (default: the exported collected folder) holds enough examples to train on.

    The count is every example in the folder (train + valid + test lines), as collect.min_examples_for_training
    counts the examples before they are split; a collected folder not exported yet counts 0. A given folder that
    cannot be read raises the launcher's StudioError naming the problem.
    """
    from engine.training.launcher import inspect_data_folder

    folder = Path(data_dir).expanduser() if data_dir else ws.path(*COLLECTED_FOLDER)
    needed = int(config.get("collect.min_examples_for_training"))
    counts = {"train": 0, "valid": 0, "test": 0}
    exists = (folder / "train.jsonl").is_file()
    if data_dir or exists:
        data = inspect_data_folder(folder)
        counts = {"train": data.train, "valid": data.valid, "test": data.test}
        folder = data.path
    examples = sum(counts.values())
    return {"data_folder": str(folder), "exists": exists, **counts, "examples": examples,
            "min_for_training": needed, "ready_to_train": examples >= needed}


def training_readiness(config: PipelineConfig, ws: Workspace) -> dict:
    """Seed 003's readiness: the collected examples export_training would write (engine.ops.stats), plus what the
    exported folder holds now, which is what POST /api/train trains on."""
    from engine.ops import stats

    readiness = stats.training_readiness(config, ws.root)
    try:
        exported = data_readiness(config, ws)
    except StudioError as exc:  # a broken exported folder (not UTF-8, not JSON) is part of the answer, not a 500
        exported = {"data_folder": str(ws.path(*COLLECTED_FOLDER)), "exists": True, "train": 0, "valid": 0,
                    "test": 0, "examples": 0, "min_for_training": readiness["min_for_training"],
                    "ready_to_train": False, "problem": str(exc)}
    return {**readiness, "exported": exported}


def _not_ready(config: PipelineConfig, ws: Workspace, readiness: dict, given: bool) -> str:
    have, needed, folder = readiness["examples"], readiness["min_for_training"], readiness["data_folder"]
    sentence = (f"Not ready to train: {folder} holds {have} examples and {needed} are needed "
                "(collect.min_examples_for_training)")
    if given:
        return sentence + "; add examples or send \"force\": true."
    from engine.ops import stats

    collected = stats.training_readiness(config, ws.root)["total_samples"]
    if collected > have:
        return (sentence + f"; {collected} collected examples can be exported, so run the export_training job "
                "(POST /api/scheduler/run), or send \"force\": true.")
    return sentence + "; collect more (the mining_code job) and export them, or send \"force\": true."


def run_summary(run) -> dict:
    """The fields of a training run a client lists (the full record is in the workspace and `train --show`)."""
    return {
        "run_id": run.id, "status": run.status, "base_model": run.base_model, "preset": run.preset,
        "data_dir": run.data_dir, "train_samples": run.train_samples, "valid_samples": run.valid_samples,
        "test_samples": run.test_samples, "iterations_done": run.iterations_done, "iters": run.iters,
        "final_train_loss": run.final_train_loss, "final_val_loss": run.final_val_loss,
        "tokens_per_second": run.tokens_per_second, "peak_memory_gb": run.peak_memory_gb,
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
        "error": run.error,
    }


def deployment_summary(ws: Workspace) -> dict:
    """Seed 003's deployment block plus the counts `deploy stats` shows."""
    from engine.training.deploy import current_version, deployment_stats

    stats = deployment_stats(ws)
    current = current_version(ws)
    return {
        "model_version": current.name if current else None,
        "deployed_at": current.deployed_at if current else None,
        "total_versions": stats["versions"],
        "rollback_available": stats["rollback_available"],
        "canary_active": stats["canary_version"] is not None,
        "canary_version": f"v{stats['canary_version']}" if stats["canary_version"] else None,
        "canary_share": stats["canary_share"],
        "versions_by_status": stats["versions_by_status"],
        "last_event": stats["last_event"],
    }


# -- the app ---------------------------------------------------------------------------------------------------
def create_app(config_path: str | Path, workspace_path: str | Path, token: str | None = None) -> FastAPI:
    """The API over one config and workspace. The config is loaded now (a broken one fails here, before serving)
    and again per request, so edits to it are seen without a restart. With `token`, /api/* needs it as a bearer
    token."""
    config_path = Path(config_path).expanduser()
    PipelineConfig.load(config_path)
    ws = Workspace.open(workspace_path)
    train_lock = threading.Lock()  # one "is a run active? start one" at a time within this server

    def load_config() -> PipelineConfig:
        return PipelineConfig.load(config_path)

    # FastAPIOffline serves Swagger UI and ReDoc from files in the package: /docs works with no internet.
    app = FastAPIOffline(
        title="Training Data Studio API",
        version=__version__,
        description=("Collection stats, scheduled jobs and training for one Training Data Studio workspace. "
                     "Answers are {\"success\": true, \"data\": ...}; errors are {\"success\": false, "
                     "\"error\": \"one sentence\"} with a 4xx status."
                     + (" Every /api request needs `Authorization: Bearer <token>`." if token else "")),
    )
    app.add_middleware(BodyCap)
    app.state.config_path = config_path
    app.state.workspace = ws

    # -- error handlers: every failure is one sentence in the same envelope --
    @app.exception_handler(StudioError)
    def studio_error(request: Request, exc: StudioError) -> JSONResponse:
        return _failure(_status_for(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        model = _BODY_MODELS.get(request.url.path)
        status, message = validation_sentence(list(exc.errors()), list(model.model_fields) if model else None)
        return _failure(status, message)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"There is no endpoint {clip(request.url.path)}; /docs lists the endpoints."
        elif exc.status_code == 405:
            message = f"{clip(request.url.path)} does not take {request.method}; /docs lists what it takes."
        else:
            message = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        return _failure(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so uvicorn logs its traceback on the server.
        return _failure(500, f"The server hit an unexpected {type(exc).__name__} while answering "
                             f"{request.method} {request.url.path}; the server log has the details.")

    # -- auth --
    if token is None:
        # Without a token the server is on loopback only; a page on another site can still reach it through DNS
        # rebinding (its own name resolving to 127.0.0.1), so only loopback names are accepted as the Host.
        @app.middleware("http")
        async def loopback_host_only(request: Request, call_next):
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
            if not is_loopback_name(name):
                return _failure(400, f"The Host header {host!r} is not a loopback name; call this API as "
                                     "127.0.0.1, localhost or [::1], or start it with a token.")
            return await call_next(request)

    # -- writes: JSON only, and only from this origin --
    @app.middleware("http")
    async def guard_writes(request: Request, call_next):
        if request.method in SAFE_METHODS or not any(
                route.matches(request.scope)[0] == Match.FULL for route in app.router.routes):
            return await call_next(request)  # reads, and requests no endpoint takes (404 / 405 answer those)
        refused = write_refusal(request.headers)
        if refused is not None:
            return _failure(*refused)
        return await call_next(request)

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if credentials is None:
            raise StarletteHTTPException(401, "This API needs a token: send the header `Authorization: Bearer "
                                              "<token>`.", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode("utf-8"), token.encode("utf-8")):
            raise StarletteHTTPException(401, "The bearer token is wrong; send the token the API was started "
                                              "with.", headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)] if token else [])

    # -- collection stats (engine.ops.stats) --
    @api.get("/training/stats", summary="Examples by source, format and tier; tokens; storage")
    def training_stats() -> JSONResponse:
        from engine.ops import stats

        return ok(stats.summary(ws.root))

    @api.get("/training/daily", summary="Examples collected per day, oldest first")
    def training_daily(days: Annotated[int, Query(ge=1, le=3650, description="how many days back")] = 30,
                       ) -> JSONResponse:
        from engine.ops import stats

        return ok(stats.daily(ws.root, days=days), days=days)

    @api.get("/training/sources", summary="Health of each example source")
    def training_sources() -> JSONResponse:
        from engine.ops import stats

        return ok(stats.sources(ws.root))

    # -- the scheduler (engine.ops.scheduler) --
    def known_job(job_id: str) -> None:
        """404 for an id that is not a job, before anything reads or writes the workspace."""
        from engine.ops.jobs import JOB_IDS

        if job_id not in JOB_IDS:
            raise NotFoundError(f"There is no job {clip(job_id)!r}; the jobs are {', '.join(JOB_IDS)}.")

    @api.get("/scheduler/status", summary="Whether a scheduler runs for this workspace, and every job")
    def scheduler_status() -> JSONResponse:
        from engine.ops import scheduler

        return ok(scheduler.scheduler_status(load_config(), ws.root))

    @api.post("/scheduler/run", summary="Run a job now", status_code=202,
              responses={200: {"description": "wait: the finished run"}, 404: {"description": "no such job"},
                         409: {"description": "the job is already running"}})
    def scheduler_run(body: RunJobRequest) -> JSONResponse:
        from engine.ops import scheduler

        config = load_config()
        known_job(body.job_id)
        if body.wait:
            return ok(scheduler.run_job(config, ws.root, body.job_id, trigger="manual"))
        run_id = scheduler.submit_job(config, ws.root, body.job_id, trigger="manual")
        return ok({"run_id": run_id, "job_id": body.job_id, "status": "running"}, status_code=202)

    @api.put("/scheduler/job", summary="Enable, disable or re-time a job (kept in the workspace)",
             responses={404: {"description": "no such job"}, 422: {"description": "a bad value"}})
    def scheduler_job(body: ConfigureJobRequest) -> JSONResponse:
        from engine.ops import scheduler

        if body.enabled is None and body.interval_minutes is None:
            raise InvalidValueError("Say what to change: give enabled (true or false), interval_minutes, or both.")
        config = load_config()
        known_job(body.job_id)
        minutes = body.interval_minutes
        if minutes is not None and minutes.is_integer():
            minutes = int(minutes)  # 360, not 360.0, in the stored override and the answer
        return ok(scheduler.configure_job(config, ws.root, body.job_id, enabled=body.enabled,
                                          interval_minutes=minutes))

    # -- training (engine.training.*) --
    @api.get("/training", summary="Training runs, readiness and deployment")
    def training(limit: Annotated[int, Query(ge=1, le=200, description="how many recent runs")] = RECENT_RUNS,
                 ) -> JSONResponse:
        from engine.training.runs import list_runs

        config = load_config()
        runs = list_runs(ws, limit=limit)
        active = next((run.id for run in runs if run.active), None)
        return ok({"runs": [run_summary(run) for run in runs], "active_run": active,
                   "readiness": training_readiness(config, ws), "deployment": deployment_summary(ws)})

    @api.post("/train", summary="Start a LoRA training run", status_code=202,
              responses={409: {"description": "not enough examples, or a run is already active"}})
    def train(body: TrainRequest) -> JSONResponse:
        from engine.training.launcher import plan_run, start_run
        from engine.training.runs import list_runs

        config = load_config()
        with train_lock:
            active = [run for run in list_runs(ws) if run.active]
            if active:
                raise ConflictError(f"Training run {active[0].id} is still {active[0].status}; wait for it to "
                                    f"finish or stop it with `python -m engine train --workspace {ws.root} "
                                    f"--stop {active[0].id}`.")
            readiness = data_readiness(config, ws, body.data)
            if not readiness["ready_to_train"] and not body.force:
                raise ConflictError(_not_ready(config, ws, readiness, given=bool(body.data)))
            overrides = {key: getattr(body, key) for key in _TRAIN_OVERRIDES}
            overrides["min_samples"] = readiness["min_for_training"]
            # The readiness check above is the gate (examples in the folder, before any split); the launcher's own
            # check counts only train.jsonl, so it is told the run was decided on, and still warns on thin data.
            plan = plan_run(readiness["data_folder"], body.model, body.preset, None, overrides, force=True)
            run_id = start_run(ws, plan)
        return ok({"run_id": run_id, "data_dir": str(plan.data.path), "train_samples": plan.data.train,
                   "valid_samples": plan.data.valid, "test_samples": plan.data.test, "model": plan.model.label,
                   "iters": plan.config["iters"], "warnings": plan.warnings,
                   "log": str(ws.path("runs", run_id, "train.log"))}, status_code=202)

    @api.get("/self", summary="What this studio is and its training state (seed 003's training_stats)")
    def self_status() -> JSONResponse:
        from engine.training.runs import list_runs

        config = load_config()
        runs = list_runs(ws, limit=1)
        last = runs[0] if runs else None
        deployment = deployment_summary(ws)
        readiness = training_readiness(config, ws)
        return ok({
            "name": "Training Data Studio",
            "version": __version__,
            "explanation": ("I turn screen captures, git history, docs and conversations into fine-tuning data, "
                            "train LoRA adapters on it and serve the deployed version."),
            "workspace": str(ws.root),
            "config": str(config_path),
            "training_stats": {
                "model_version": deployment["model_version"],
                "deployed_at": deployment["deployed_at"],
                "last_training": {"run_id": last.id, "samples_count": last.train_samples, "status": last.status,
                                  "created_at": last.created_at, "finished_at": last.finished_at} if last else None,
                "training_data": {"total_samples": readiness["total_samples"],
                                  "min_for_training": readiness["min_for_training"],
                                  "ready_to_train": readiness["ready_to_train"],
                                  "exported_samples": readiness["exported"]["examples"],
                                  "held_for_review": readiness["held_for_review"]},
                "deployment": {key: deployment[key] for key in ("total_versions", "rollback_available",
                                                                "canary_active")},
            },
        })

    app.include_router(api)
    return app
