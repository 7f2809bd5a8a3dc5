"""`python -m engine serve [--host H] [--port P] [--allowed-host NAME ...] [--secrets FILE]`: the studio's web app,
the way `make run` starts it, alone on a laptop or for a team.

It replaces itself with `streamlit run asgi.py` (so Ctrl-C and signals reach the server directly): the router
app.py behind the Host allow-list (engine/ops/hosts.py), with what the app needs set up first: OpenBLAS preloaded
on Linux (the Compare page runs mlx in the server process, about 10x faster with it; preloading only works before
the process starts), and no file watcher (a developer's edits to views/ are picked up on the next page load with
`--watch`; without it the server watches nothing, so a large data/ folder never floods the terminal).

Local mode (no logins): it answers on loopback only, and the person at the machine owns the studio. Team mode:
logins through any OIDC provider with Streamlit's own `st.login` (an [auth] section in .streamlit/secrets.toml),
roles in the config's `team.roles` (engine.team). Off loopback the studio would be open to anyone on the network,
so it refuses to start until logins are configured. In both modes every request whose Host is not an allowed name
(loopback names, the address served on, the login redirect URI's host, --allowed-host) is refused: a web page
whose own name resolves to this machine (DNS rebinding) gets nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from engine.errors import StudioError

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "asgi.py"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


HELP = "start the studio's web app (what `make run` runs)"
DESCRIPTION = "Start the web app on http://HOST:PORT (default localhost:8501)."


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="localhost", help="address to listen on (default: localhost); another "
                        "address needs logins (an [auth] section in .streamlit/secrets.toml)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a name browsers use to reach the studio (repeatable; `*.example.com` for subdomains); "
                             "loopback names, the --host address and the login redirect URI's host are always "
                             "allowed, every other Host header is refused")
    parser.add_argument("--secrets", help="the secrets.toml holding the [auth] section (default: Streamlit's own "
                        "places: ~/.streamlit/, ./.streamlit/ and the studio's .streamlit/)")
    parser.add_argument("--watch", action="store_true", help="reload pages when their source files change")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secrets_files(given: str | None) -> list[str]:
    """The secrets files Streamlit will read: the one given, else its defaults (global, current folder, and the
    launcher's folder), in its order (later ones win)."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise StudioError(f"--secrets {given}: no such file; give the secrets.toml that holds the [auth] section.")
        return [str(path.resolve())]
    candidates = [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml",
                  ROOT / ".streamlit" / "secrets.toml"]
    return [str(path) for path in dict.fromkeys(candidates)]


def server_command(host: str, port: int, watch: bool, secrets: list[str] | None = None) -> list[str]:
    command = [sys.executable, "-m", "streamlit", "run", str(LAUNCHER), "--server.address", host,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "auto" if watch else "none", "--server.runOnSave", "false"]
    for path in secrets or ():
        command += ["--secrets.files", path]
    return command


def server_environment(allowed: list[str]) -> dict[str, str]:
    from engine.ops.hosts import ENV_VAR
    from engine.processes import engine_environment, preload_openblas

    env = engine_environment()
    preload_openblas(env)
    env[ENV_VAR] = ",".join(allowed)
    return env


def run(args: argparse.Namespace) -> int:
    from engine.ops.hosts import allowed_hosts, is_ip_literal, normalize
    from engine.team import read_login_settings

    if not 0 < args.port < 65536:
        raise StudioError(f"--port must be between 1 and 65535; got {args.port}.")
    for name in args.allowed_host:
        if not normalize(name) or "/" in name or ":" in name.strip("[]") and not is_ip_literal(name):
            raise StudioError(f"--allowed-host {name!r} is not a host name; give a name such as studio.example.com.")
    files = secrets_files(args.secrets)
    logins = read_login_settings(files)
    if not is_loopback(args.host) and logins is None:
        raise StudioError(
            f"Serving on {args.host} would open the studio to anyone who can reach this machine; configure logins "
            "first (an [auth] section in .streamlit/secrets.toml, see the README's team mode), or serve on localhost.")
    allowed = allowed_hosts(args.host, logins.redirect_uri if logins else None, args.allowed_host)
    mode = f"team mode, logins from {logins.source}" if logins else "local mode, no logins"
    print(f"Training Data Studio on http://{args.host}:{args.port} ({mode}); answering to {', '.join(allowed)}",
          flush=True)
    os.execve(sys.executable, server_command(args.host, args.port, args.watch, [files[0]] if args.secrets else None),
              server_environment(allowed))
    return 0  # not reached
