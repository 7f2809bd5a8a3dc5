"""`python -m engine serve`: loopback by default, refuses to open the studio to the network without logins, answers only
to allowed Host names (a websocket upgrade or request naming another host is refused: DNS rebinding), and the
server process it becomes has OpenBLAS loaded (what makes Compare fast on Linux)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from engine.processes import openblas_library
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serving_off_loopback_without_logins_is_refused_in_one_sentence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "configure logins first" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_the_server_answers_on_loopback_with_openblas_loaded(tmp_path):
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port)], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        blas = openblas_library()
        if blas is None:
            pytest.skip("no OpenBLAS on this machine (make test installs libopenblas0-pthread on Linux)")
        maps = open(f"/proc/{process.pid}/maps").read()  # serve replaced itself with the server: same pid
        assert os.path.realpath(blas) in maps  # maps name the file the symlink points to
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


# -- the Host allow-list (DNS rebinding) and team mode -------------------------------------------------------------
def _upgrade(port: int, host: str) -> str:
    """The status line the studio answers a websocket upgrade of its app stream with, sent with `host`."""
    import base64

    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: streamlit\r\n\r\n").encode())
        return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def _get(port: int, host: str, path: str = "/_stcore/health") -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_a_foreign_host_is_refused_on_the_websocket_and_every_request_in_local_mode(studio_url, tmp_path):
    url = studio_url({"HOME": str(tmp_path)}, ["--allowed-host", "studio.example.lan"])
    port = int(url.rsplit(":", 1)[1])
    assert _upgrade(port, "evil.test").startswith("HTTP/1.1 403")
    assert _upgrade(port, f"evil.test:{port}").startswith("HTTP/1.1 403")
    assert _upgrade(port, f"localhost:{port}").startswith("HTTP/1.1 101")
    assert _upgrade(port, f"127.0.0.1:{port}").startswith("HTTP/1.1 101")
    assert _upgrade(port, f"studio.example.lan:{port}").startswith("HTTP/1.1 101")  # named with --allowed-host
    for path in ("/_stcore/health", "/", "/review", "/_stcore/host-config"):
        status, body = _get(port, f"evil.test:{port}", path)
        assert status == 403 and "does not answer to the name 'evil.test" in body, path
    assert _get(port, f"localhost:{port}")[0] == 200


def _write_auth(path, redirect_uri: str, **overrides) -> None:
    auth = {"redirect_uri": redirect_uri, "cookie_secret": "a-long-random-cookie-secret-for-tests-only",
            "client_id": "studio", "client_secret": "studio-secret",
            "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration", **overrides}
    path.write_text("[auth]\n" + "".join(f'{key} = "{value}"\n' for key, value in auth.items() if value is not None))


@pytest.mark.parametrize("overrides,missing", [
    ({"cookie_secret": None}, "cookie_secret"),
    ({"client_id": None}, "client_id, client_secret and server_metadata_url"),
])
def test_an_incomplete_auth_section_is_named_in_one_sentence(tmp_path, overrides, missing):
    secrets = tmp_path / "secrets.toml"
    _write_auth(secrets, "http://studio.example.lan:8501/oauth2callback", **overrides)
    done = subprocess.run([sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0", "--secrets", str(secrets)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 1 and missing in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_team_mode_answers_to_the_login_redirect_host(studio_url, tmp_path):
    """With logins configured the studio may listen off loopback; the name teammates are sent back to after
    logging in is allowed, other names are not."""
    port = _free_port()
    secrets = tmp_path / "secrets.toml"
    _write_auth(secrets, f"http://studio.example.lan:{port}/oauth2callback")
    url = studio_url({"HOME": str(tmp_path)}, ["--host", "127.0.0.1", "--secrets", str(secrets)], port=port)
    assert _get(port, f"studio.example.lan:{port}")[0] == 200
    assert _upgrade(port, f"studio.example.lan:{port}").startswith("HTTP/1.1 101")
    assert _get(port, f"other.example.lan:{port}")[0] == 403
    log = next(tmp_path.glob("streamlit-*.log")).read_text()
    assert "team mode, logins from" in log and url.endswith(str(port))
