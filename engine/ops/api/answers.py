"""How the API answers: `{"success": true, "data": ...}`, or one sentence with a 4xx status for every failure.

The API's own errors carry their status; a domain error (StudioError) gets the status of what the user can do about
it; pydantic's list of validation errors becomes one sentence naming the field and what is expected; an unexpected
exception is a 500 whose traceback stays in the server log. Every router and guard answers through here, so a
client sees one envelope whatever refused it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import StudioError
from engine.ops.scheduler import JobBusyError, SchedulerError


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


def failure(status: int, message: str, headers: dict | None = None) -> JSONResponse:
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


class JsonBody(BaseModel):
    """A request body: unknown fields and NaN or infinity are refused (422), never ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _body_fields(request: Request) -> list[str] | None:
    """The fields of the JSON body the matched endpoint takes (for "this request takes the fields ..."), or None."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    params = dependant.body_params if dependant is not None else []
    model = params[0].field_info.annotation if len(params) == 1 else None
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else None


def install_error_handlers(app: FastAPI) -> None:
    """Every failure is one sentence in the same envelope."""

    @app.exception_handler(StudioError)
    def studio_error(request: Request, exc: StudioError) -> JSONResponse:
        return failure(_status_for(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_sentence(list(exc.errors()), _body_fields(request))
        return failure(status, message)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"There is no endpoint {clip(request.url.path)}; /docs lists the endpoints."
        elif exc.status_code == 405:
            message = f"{clip(request.url.path)} does not take {request.method}; /docs lists what it takes."
        else:
            message = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        return failure(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so uvicorn logs its traceback on the server.
        return failure(500, f"The server hit an unexpected {type(exc).__name__} while answering "
                            f"{request.method} {request.url.path}; the server log has the details.")
