"""The one place background processes are started, watched and ended (engine/processes.py), and the one rule for
where models are cached (engine/models_home.py): real processes, real files."""

from __future__ import annotations

import os
import sys
import time

import pytest

from engine.errors import StudioError
from engine.models_home import model_cache_dir
from engine.processes import (
    ROOT,
    engine_environment,
    preload_openblas,
    process_alive,
    process_start_time,
    spawn_detached,
    terminate_process_group,
)


def _until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_detached_process_runs_in_its_own_session_logs_and_is_reaped(tmp_path):
    log = tmp_path / "child.log"
    process = spawn_detached([sys.executable, "-c", "import engine, os; print('session', os.getsid(0) == os.getpid())"],
                             log=log, what="probe")
    assert _until(lambda: not process_alive(process.pid)), "a finished child must not look alive"
    assert process.returncode == 0  # reaped: no zombie left behind
    assert log.read_text().strip() == "session True"  # its own session, the engine importable, output in the log


def test_a_process_that_cannot_start_is_one_sentence(tmp_path):
    with pytest.raises(StudioError, match=r"^The probe process could not start: No such file or directory\.$"):
        spawn_detached([sys.executable, "-c", "pass"], log=tmp_path / "child.log", cwd=tmp_path / "gone", what="probe")


def test_a_reused_pid_is_not_mistaken_for_the_process():
    started = process_start_time(os.getpid())
    assert started is not None and process_alive(os.getpid(), started)
    assert not process_alive(os.getpid(), started - 3600)  # same pid, another start time: another process
    assert not process_alive(None) and not process_alive(999_999_999)


def test_terminating_a_group_ends_the_process_and_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
              f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(120)")
    process = spawn_detached([sys.executable, "-c", script], log=tmp_path / "group.log", what="group")
    assert _until(lambda: pid_file.exists() and pid_file.read_text().strip())
    grandchild = int(pid_file.read_text())
    grandchild_started = process_start_time(grandchild)
    terminate_process_group(process.pid, process_start_time(process.pid), grace_seconds=5)
    assert not process_alive(process.pid)
    assert _until(lambda: not process_alive(grandchild, grandchild_started))


def test_the_engine_environment_puts_this_engine_first_on_the_path():
    env = engine_environment({"PYTHONPATH": "/elsewhere", "KEEP": "1"})
    assert env["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/elsewhere"]) and env["KEEP"] == "1"
    assert engine_environment({})["PYTHONPATH"] == str(ROOT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenBLAS is preloaded on Linux only")
def test_openblas_is_preloaded_first_and_once(tmp_path, monkeypatch):
    library = tmp_path / "libopenblas.so.0"
    library.write_bytes(b"")
    monkeypatch.setenv("STUDIO_OPENBLAS", str(library))
    env = {"LD_PRELOAD": "/lib/other.so"}
    assert preload_openblas(env) == str(library)
    assert env["LD_PRELOAD"] == os.pathsep.join([str(library), "/lib/other.so"])
    preload_openblas(env)
    assert env["LD_PRELOAD"].count(str(library)) == 1
    monkeypatch.setenv("STUDIO_OPENBLAS", "")  # explicitly none
    untouched = {}
    assert preload_openblas(untouched) is None and "LD_PRELOAD" not in untouched


def test_models_are_cached_per_user_outside_every_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODEL_CACHE", str(tmp_path / "cache"))
    assert model_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("STUDIO_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_cache_dir() == tmp_path / "xdg" / "training-data-studio" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert model_cache_dir() == tmp_path / "home" / ".cache" / "training-data-studio" / "models"
