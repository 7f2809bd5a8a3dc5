"""The Host allow-list in front of the studio's web app: every HTTP request and websocket upgrade whose Host header
is not an allowed name is refused before Streamlit sees it.

Why: a web page on another site can make its own name resolve to 127.0.0.1 (DNS rebinding) and then talk to a
studio on localhost as if it were the same site; the only thing that still tells the two apart is the Host header
the browser sends, which names the attacker's site. Streamlit's own `server.allowedHosts` checks the websocket
only; this middleware checks every request (pages, uploads, media, the login callback) and is what `python -m engine
serve` always runs, in local mode too.

`allowed_hosts(...)` builds the list (loopback names, the address served on, the host of the login redirect URI,
and names given with --allowed-host); `HostAllowList` is a plain ASGI middleware (no Streamlit import).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ENV_VAR = "STUDIO_ALLOWED_HOSTS"  # comma-separated; set by `serve` for the launcher (asgi.py)
_WILDCARD_ADDRESSES = {"0.0.0.0", "::", ""}


def host_name(header: str | None) -> str | None:
    """The name in a Host header, lower-case, without port or trailing dot; None when the header is malformed
    (credentials, a path, a bad port)."""
    if not header:
        return None
    try:
        parts = urlsplit(f"//{header}")
        name, _port = parts.hostname, parts.port  # .port validates the port
    except ValueError:
        return None
    if name is None or parts.username is not None or parts.password is not None or parts.path or parts.query \
            or parts.fragment:
        return None
    return name.lower().rstrip(".")


def is_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a Host header names one of `allowed` (exact names, or `*.example.com` for its subdomains)."""
    name = host_name(header)
    if name is None:
        return False
    for pattern in allowed:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
        if name == pattern:
            return True
    return False


def normalize(name: str) -> str:
    """An allowed name as a Host header carries it: `[::1]` -> `::1`, `Studio.Example.COM.` -> lower case."""
    return name.strip().strip("[]").lower().rstrip(".")


def allowed_hosts(serve_host: str, redirect_uri: str | None = None, extra: Iterable[str] = ()) -> list[str]:
    """The names a browser may use to reach the studio: loopback names always (the machine's own user), the
    address it is served on unless that is a wildcard, the host of the login redirect URI (the name teammates are
    sent back to, so the one they use) and any names given explicitly."""
    names = list(LOOPBACK_NAMES)
    if normalize(serve_host) not in _WILDCARD_ADDRESSES:
        names.append(normalize(serve_host))
    if redirect_uri:
        try:
            redirect_host = urlsplit(redirect_uri).hostname
        except ValueError:
            redirect_host = None
        if redirect_host:
            names.append(normalize(redirect_host))
    names += [normalize(name) for name in extra if normalize(name)]
    return list(dict.fromkeys(names))


def allowed_from_environment() -> list[str]:
    """The list `serve` handed over in $STUDIO_ALLOWED_HOSTS; loopback names only when it is unset, so the
    launcher started any other way is never open to every name."""
    raw = os.environ.get(ENV_VAR, "")
    names = [normalize(name) for name in raw.split(",") if normalize(name)]
    return names or list(LOOPBACK_NAMES)


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(normalize(name))
    except ValueError:
        return False
    return True


_REFUSAL = ("This studio does not answer to the name {host}; open it by one of its allowed names "
            "(see --allowed-host of `python -m engine serve`).\n")


class HostAllowList:
    """ASGI middleware: requests and websocket upgrades with a Host outside `allowed` get 403 and never reach the
    app."""

    def __init__(self, app, allowed: Iterable[str] | None = None) -> None:
        self.app = app
        self.allowed = list(allowed) if allowed is not None else allowed_from_environment()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope.get("headers") or []:
            if key == b"host":
                header = value.decode("latin-1")
                break
        if is_allowed(header, self.allowed):
            await self.app(scope, receive, send)
            return
        shown = repr((header or "")[:80]) if header else "(no Host header)"
        body = _REFUSAL.format(host=shown).encode("utf-8")
        if scope["type"] == "websocket":
            # Before accept: the server answers the upgrade with 403 (the ASGI websocket denial response).
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
