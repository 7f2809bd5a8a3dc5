"""`python -m engine api --config CFG [--workspace W] [--host 127.0.0.1] [--port 8765] [--token T]`

Serves the REST API (engine/ops/api/) with uvicorn until Ctrl-C or SIGTERM. Bound to loopback by default, where
a token is optional; any other address exposes the API to the network, so it refuses to start without a token
(--token or $STUDIO_API_TOKEN). The socket is bound here, before uvicorn starts, so a port in use is one plain
sentence and --port 0 picks a free port (the URL printed on start shows which).
"""

from __future__ import annotations

import argparse
import os
import socket

from engine.cli import add_config_arguments, config_and_workspace
from engine.errors import StudioError

LOCALHOST_NAMES = {"localhost", "localhost.localdomain"}


HELP = "serve the REST API (stats, scheduler jobs, training) over HTTP"
DESCRIPTION = """Serve the REST API for one config and workspace; OpenAPI docs at /docs. Loopback by default;
    binding to another address needs a token, which every /api request must then send as `Authorization: Bearer
    <token>`."""


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--token", default=None, help="bearer token required on every /api request; needed when "
                        "--host is not a loopback address (prefer $STUDIO_API_TOKEN: a flag shows in `ps`)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn's log level (info logs every request)")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or a StudioError saying why not."""
    if not 0 <= port <= 65535:
        raise StudioError(f"--port must be between 0 and 65535, not {port}.")
    host = "127.0.0.1" if host.lower() in LOCALHOST_NAMES else host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise StudioError(f"Cannot bind to {host}: it is not an address of this machine ({exc.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == 98 or "in use" in str(exc.strerror).lower():
            raise StudioError(f"Port {port} on {host} is already in use; stop what uses it or pass --port N "
                              "(0 picks a free port).") from None
        raise StudioError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    sock.set_inheritable(True)
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn are imported here, so other verbs do not pay for them.
    import uvicorn

    from engine.ops.api import create_app
    from engine.ops.api.guards import is_loopback_name

    token = args.token if args.token is not None else os.environ.get("STUDIO_API_TOKEN")
    token = token or None  # an empty token is no token
    if token is None and not is_loopback_name(args.host):
        raise StudioError(f"Binding to {args.host} exposes the API to the network; pass --token or set "
                          "STUDIO_API_TOKEN.")
    from engine.settings import active_config_path

    config, workspace = config_and_workspace(args)
    app = create_app(active_config_path(args.config), workspace, token=token)
    sock = bind_socket(args.host, args.port)
    url = url_for(sock)
    access = "every /api request needs the bearer token" if token else "no token (loopback only)"
    print(f"Training Data Studio API on {url} (docs {url}/docs); workspace {workspace}; {access}. "
          "Ctrl-C stops it.", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=10))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
