"""Background tasks the pages start: a real `python -m engine` process, its status polled from a file, one at a time
per kind, failures and deaths reported in one sentence, never left 'running'."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine.processes import TaskBusy, TaskReporter, start_task, status_path, task_status


def _wait(workspace, kind: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = task_status(workspace, kind)
        if status is not None and not status.running:
            return status
        time.sleep(0.2)
    raise AssertionError(f"the {kind} task did not finish")


def test_a_verb_runs_as_a_task_and_reports_its_failure_in_one_sentence(tmp_path):
    status = start_task(tmp_path, "link", ["link", "--config", str(tmp_path / "missing.json"), "--workspace",
                                           str(tmp_path / "ws")])
    assert status.running and status.pid
    finished = _wait(tmp_path, "link")
    assert finished.state == "failed"
    assert "missing.json" in finished.error and "does not exist" in finished.error
    assert "Traceback" not in finished.error


def test_a_second_start_while_one_runs_is_refused(tmp_path):
    reporter = TaskReporter(status_path(tmp_path, "link"))  # this very process plays the running task
    reporter("embedding", 5, 50)
    with pytest.raises(TaskBusy, match="already runs .* embedding 5 of 50"):
        start_task(tmp_path, "link", ["--version"])
    reporter.finish(None)
    started = start_task(tmp_path, "link", ["--version"])  # once it is done, a new one may start
    assert _wait(tmp_path, "link").state == "done" and started.pid


def test_a_task_whose_process_dies_is_reported_failed_not_running_forever(tmp_path):
    record = status_path(tmp_path, "ghost")
    reporter = TaskReporter(record)
    reporter("embedding", 10, 100)
    record.write_text(record.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    ghost = task_status(tmp_path, "ghost")
    assert ghost.state == "failed" and "stopped without finishing" in ghost.error
    assert task_status(tmp_path, "ghost").state == "failed"  # recorded, not only reported


def test_progress_phase_counts_and_estimate(tmp_path):
    reporter = TaskReporter(status_path(tmp_path, "link"))
    reporter("embedding", 0, 200)
    time.sleep(0.6)  # the status file is written at most every half second, and at each phase change
    reporter("embedding", 100, 200)
    status = task_status(tmp_path, "link")
    assert status.running and status.phase == "embedding" and (status.done, status.total) == (100, 200)
    assert status.eta_seconds is not None and status.eta_seconds > 0
    assert "embedding 100 of 200" in status.describe() and "left" in status.describe()
    reporter.finish({"pairs": 3})
    done = task_status(tmp_path, "link")
    assert done.state == "done" and done.result == {"pairs": 3} and done.eta_seconds is None


def test_a_killed_task_is_reaped_and_reported_failed(tmp_path):
    status = start_task(tmp_path, "demo", ["demo", "--dir", str(tmp_path / "demo")])
    time.sleep(0.5)
    os.killpg(status.pid, signal.SIGKILL)
    finished = _wait(tmp_path, "demo")
    assert finished.state == "failed" and "stopped without finishing" in finished.error
