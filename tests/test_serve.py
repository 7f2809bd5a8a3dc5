"""`python -m engine serve`: loopback by default, refuses to open the studio to the network without logins, and the
server process it becomes has OpenBLAS loaded (what makes Compare fast on Linux)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from engine.training.launcher import openblas_library
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serving_off_loopback_without_logins_is_refused_in_one_sentence():
    done = subprocess.run([sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
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
