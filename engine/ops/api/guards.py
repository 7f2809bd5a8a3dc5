"""Who may call the API and what it reads: the bearer token, the loopback Host check, the write checks and the
body size cap. Each is one function or middleware here, installed by `install_guards` in the order they must nest.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from engine.ops.api.answers import clip, failure

# Module level: annotations are strings here (PEP 563), which FastAPI resolves against the module's globals.
BEARER = HTTPBearer(auto_error=False, description="The token given to `python -m engine api --token`.")
MAX_BODY_BYTES = 64 * 1024  # every body here is a few fields of JSON; a bigger one is refused unread (413)


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
            await failure(413, _BodyTooLarge().detail)(scope, receive, send)
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


def token_check(token: str):
    """The dependency every /api route takes when the server has a token: 401 without it or with another."""

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if credentials is None:
            raise StarletteHTTPException(401, "This API needs a token: send the header `Authorization: Bearer "
                                              "<token>`.", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode("utf-8"), token.encode("utf-8")):
            raise StarletteHTTPException(401, "The bearer token is wrong; send the token the API was started "
                                              "with.", headers={"WWW-Authenticate": "Bearer"})

    return require_token


def install_guards(app: FastAPI, token: str | None) -> None:
    """The body cap innermost, then (without a token) the loopback Host check, then the write checks outermost."""
    app.add_middleware(BodyCap)

    if token is None:
        # Without a token the server is on loopback only; a page on another site can still reach it through DNS
        # rebinding (its own name resolving to 127.0.0.1), so only loopback names are accepted as the Host.
        @app.middleware("http")
        async def loopback_host_only(request: Request, call_next):
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
            if not is_loopback_name(name):
                return failure(400, f"The Host header {host!r} is not a loopback name; call this API as "
                                    "127.0.0.1, localhost or [::1], or start it with a token.")
            return await call_next(request)

    # writes: JSON only, and only from this origin
    @app.middleware("http")
    async def guard_writes(request: Request, call_next):
        if request.method in SAFE_METHODS or not any(
                route.matches(request.scope)[0] == Match.FULL for route in app.router.routes):
            return await call_next(request)  # reads, and requests no endpoint takes (404 / 405 answer those)
        refused = write_refusal(request.headers)
        if refused is not None:
            return failure(*refused)
        return await call_next(request)
