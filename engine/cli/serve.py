"""`python -m engine serve [--host H] [--port P]`: the studio's web app, the way `make run` starts it.

It replaces itself with `streamlit run app.py` (so Ctrl-C and signals reach the server directly), with what the app
needs set up first: OpenBLAS preloaded on Linux (the Compare page runs mlx in the server process, about 10x faster
with it; preloading only works before the process starts), and no file watcher (a developer's edits to views/ are
picked up on the next page load with `--watch`; without it the server watches nothing, so a large data/ folder
never floods the terminal with inotify messages). It answers on loopback unless told otherwise; off loopback the
studio would be open to anyone on the network, so it refuses to start until logins are configured.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from engine.errors import StudioError

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="start the studio's web app (what `make run` runs)",
                                   description="Start the web app on http://HOST:PORT (default localhost:8501).")
    parser.add_argument("--host", default="localhost", help="address to listen on (default: localhost)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    parser.add_argument("--watch", action="store_true", help="reload pages when their source files change")
    parser.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def logins_configured(root: Path = ROOT) -> bool:
    """Streamlit's own OIDC logins: an [auth] section in .streamlit/secrets.toml."""
    secrets = root / ".streamlit" / "secrets.toml"
    if not secrets.is_file():
        return False
    import tomllib

    try:
        return bool(tomllib.loads(secrets.read_text(encoding="utf-8")).get("auth"))
    except (OSError, ValueError):
        return False


def server_command(host: str, port: int, watch: bool) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "auto" if watch else "none", "--server.runOnSave", "false"]


def server_environment() -> dict[str, str]:
    from engine.training.launcher import openblas_library

    env = dict(os.environ)
    blas = openblas_library()
    if blas and blas not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = os.pathsep.join(filter(None, [blas, env.get("LD_PRELOAD")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise StudioError(f"--port must be between 1 and 65535; got {args.port}.")
    if not is_loopback(args.host) and not logins_configured():
        raise StudioError(
            f"Serving on {args.host} would open the studio to anyone who can reach this machine; configure logins "
            "first (an [auth] section in .streamlit/secrets.toml, see the README's team mode), or serve on localhost.")
    print(f"Training Data Studio on http://{args.host}:{args.port}", flush=True)
    os.execve(sys.executable, server_command(args.host, args.port, args.watch), server_environment())
    return 0  # not reached
