"""The REST API over real HTTP: `python -m engine api` runs as a subprocess on a loopback port against a copy of the
demo world (real screenpipe DB, real git repo, docs), extracted and collected. Every answer is checked against the
engine functions called directly; bad payloads must give one clear sentence with a 4xx and leave the workspace
database byte-for-byte the same; the token check is exercised on a server bound to 0.0.0.0."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engine.config import PipelineConfig
from engine.store import Workspace
from engine.training.launcher import PRESETS
from tests.conftest import ROOT
from tests.tiny_model import build_tiny_model, stop_active_runs, write_data_folder

ENDPOINTS = {
    ("get", "/api/training/stats"), ("get", "/api/training/daily"), ("get", "/api/training/sources"),
    ("get", "/api/scheduler/status"), ("post", "/api/scheduler/run"), ("put", "/api/scheduler/job"),
    ("get", "/api/training"), ("post", "/api/train"), ("get", "/api/self"),
}
JOB_IDS = ["mining_code", "quality_check", "dedup_cleanup", "export_training"]


def _env() -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("STUDIO_API_TOKEN", "STUDIO_WORKSPACE")}
    env["PYTHONPATH"] = str(ROOT)
    return env


class ApiServer:
    """`python -m engine api` in a subprocess on a free port (--port 0; the printed URL says which)."""

    def __init__(self, config: Path, workspace: Path, log: Path, *extra: str, env: dict | None = None):
        self.log_path = log
        self._log = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine", "api", "--config", str(config), "--workspace", str(workspace),
             "--port", "0", "--log-level", "warning", *extra],
            cwd=ROOT, env={**_env(), **(env or {})}, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self.base = self._wait_for_url()
        except BaseException:
            self.stop()
            raise

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"API on http://[^:]+:(\d+)", self.log_path.read_text())
            if found:
                base = f"http://127.0.0.1:{found.group(1)}"  # 0.0.0.0 too answers on loopback
                status, _ = request("GET", base + "/openapi.json")
                assert status == 200
                return base
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited {self.process.returncode}: {self.log_path.read_text()}")
            time.sleep(0.1)
        raise RuntimeError(f"the API did not start within 30 s: {self.log_path.read_text()}")

    def call(self, method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None,
             headers: dict | None = None):
        return request(method, self.base + path, body, token, raw, headers)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._log.close()


def request(method: str, url: str, body=None, token: str | None = None, raw: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict | str]:
    """One HTTP request with the stdlib; returns (status, decoded JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def db_dump(ws: Path) -> str:
    conn = sqlite3.connect(ws / "studio.db")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def assert_one_sentence(answer: dict) -> str:
    assert answer["success"] is False and set(answer) == {"success", "error"}, answer
    message = answer["error"]
    assert isinstance(message, str) and 20 < len(message) < 400, message
    assert "Traceback" not in message and "\n" not in message, message
    return message


def jsonable(value):
    return json.loads(json.dumps(value))


# -- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The demo world in tmp: extracted and collected, as `make demo` then `collect` leaves it."""
    from engine.collect import collect
    from engine.demo import build_demo
    from engine.extract import extract

    root = tmp_path_factory.mktemp("api")
    config_path = Path(build_demo(root / "demo"))
    config = PipelineConfig.load(config_path)
    workspace = root / "workspace"
    Workspace.open(workspace)
    extract(config, workspace)
    collect(config, workspace)
    return {"root": root, "config_path": config_path, "config": config, "workspace": workspace}


@pytest.fixture(scope="module")
def server(world):
    api = ApiServer(world["config_path"], world["workspace"], world["root"] / "api.log")
    yield api
    stop_active_runs(Workspace.open(world["workspace"]))
    api.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_model(root / "model"), write_data_folder(root / "data")


# -- docs --------------------------------------------------------------------------------------------------------
def test_openapi_lists_every_endpoint_and_docs_serve(server):
    status, spec = server.call("GET", "/openapi.json")
    assert status == 200 and spec["info"]["title"] == "Training Data Studio API"
    listed = {(method, path) for path, operations in spec["paths"].items() for method in operations}
    assert listed == ENDPOINTS
    assert set(spec["components"]["schemas"]) >= {"RunJobRequest", "ConfigureJobRequest", "TrainRequest"}
    preset = spec["components"]["schemas"]["TrainRequest"]["properties"]["preset"]
    assert preset["enum"] == list(PRESETS)  # the body accepts exactly the launcher's presets
    status, page = server.call("GET", "/docs")
    assert status == 200 and "swagger-ui" in page and "/openapi.json" in page
    # The docs page works offline: its script and styles come from this server, not a CDN.
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets and all(asset.startswith("/") for asset in assets), assets
    for asset in assets:
        status, body = server.call("GET", asset)
        assert status == 200 and len(body) > 10_000, asset
    status, answer = server.call("GET", "/api/nothing-here")
    assert status == 404 and "/api/nothing-here" in assert_one_sentence(answer)
    status, answer = server.call("DELETE", "/api/train")
    assert status == 405 and "DELETE" in assert_one_sentence(answer)


# -- stats -------------------------------------------------------------------------------------------------------
def test_stats_daily_and_sources_match_the_engine(server, world):
    from engine.ops import stats

    ws = world["workspace"]
    status, answer = server.call("GET", "/api/training/stats")
    assert status == 200 and answer["success"] is True
    assert answer["data"] == jsonable(stats.summary(ws))
    overall = answer["data"]["overall"]
    conn = sqlite3.connect(ws / "studio.db")
    try:
        by_source = dict(conn.execute("SELECT source, COUNT(*) FROM examples WHERE duplicate_of IS NULL"
                                      " GROUP BY source").fetchall())
    finally:
        conn.close()
    assert overall["total_examples"] == sum(by_source.values()) > 0
    assert {source: count for source, count in overall["by_source"].items() if count} == by_source

    status, answer = server.call("GET", "/api/training/daily?days=7")
    assert status == 200 and answer["days"] == 7
    assert answer["data"] == jsonable(stats.daily(ws, days=7)) and len(answer["data"]) == 7
    status, answer = server.call("GET", "/api/training/daily")
    assert status == 200 and answer["days"] == 30 and len(answer["data"]) == 30

    status, answer = server.call("GET", "/api/training/sources")
    assert status == 200 and answer["data"] == jsonable(stats.sources(ws))

    for query, expected in (("days=0", "greater than or equal to 1"), ("days=abc", "valid integer"),
                            ("days=99999", "less than or equal to 3650")):
        status, answer = server.call("GET", f"/api/training/daily?{query}")
        assert status == 422 and "days" in (message := assert_one_sentence(answer)) and expected in message


# -- scheduler ---------------------------------------------------------------------------------------------------
def test_scheduler_status_matches_the_engine(server, world):
    from engine.ops import scheduler

    status, answer = server.call("GET", "/api/scheduler/status")
    assert status == 200
    direct = jsonable(scheduler.scheduler_status(world["config"], world["workspace"]))
    data = answer["data"]
    assert data["running"] is False and direct["running"] is False
    assert [job["job_id"] for job in data["jobs"]] == [job["job_id"] for job in direct["jobs"]] == JOB_IDS
    for served, expected in zip(data["jobs"], direct["jobs"], strict=True):
        assert {k: served[k] for k in ("enabled", "interval_minutes", "last_run")} == \
            {k: expected[k] for k in ("enabled", "interval_minutes", "last_run")}


def test_run_a_job_waiting_and_in_the_background(server, world):
    from engine.ops import scheduler

    ws = world["workspace"]
    status, answer = server.call("POST", "/api/scheduler/run", {"job_id": "quality_check", "wait": True})
    assert status == 200, answer
    run = answer["data"]
    assert run["job_id"] == "quality_check" and run["status"] == "ok" and run["error"] is None
    conn = sqlite3.connect(ws / "studio.db")
    try:
        examples = conn.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
    finally:
        conn.close()
    assert run["result"]["checked"] == examples
    assert jsonable(scheduler.job_history(ws, "quality_check")[0]) == run

    status, answer = server.call("POST", "/api/scheduler/run", {"job_id": "dedup_cleanup"})
    assert status == 202, answer
    run_id = answer["data"]["run_id"]
    assert isinstance(run_id, int) and answer["data"]["job_id"] == "dedup_cleanup"
    deadline = time.monotonic() + 30
    while True:
        record = next(item for item in scheduler.job_history(ws, "dedup_cleanup") if item["run_id"] == run_id)
        if record["status"] != "running":
            break
        assert time.monotonic() < deadline, "the background job did not finish within 30 s"
        time.sleep(0.1)
    assert record["status"] == "ok" and record["trigger"] == "manual"
    assert record["result"]["checked"] == examples

    status, answer = server.call("GET", "/api/scheduler/status")
    last = {job["job_id"]: job["last_run"] for job in answer["data"]["jobs"]}
    assert last["dedup_cleanup"]["run_id"] == run_id and last["quality_check"]["run_id"] == run["run_id"]


def test_configure_a_job_in_the_workspace_not_the_config(server, world):
    from engine.ops import scheduler

    config_bytes = world["config_path"].read_bytes()
    status, answer = server.call("PUT", "/api/scheduler/job", {"job_id": "export_training", "interval_minutes": 90})
    assert status == 200, answer
    status, answer = server.call("PUT", "/api/scheduler/job", {"job_id": "export_training", "enabled": False})
    assert status == 200, answer
    jobs = {job["job_id"]: job for job in scheduler.list_jobs(PipelineConfig.load(world["config_path"]),
                                                              world["workspace"])}
    assert jobs["export_training"]["interval_minutes"] == 90 and jobs["export_training"]["enabled"] is False
    assert jobs["mining_code"]["interval_minutes"] == 360 and jobs["mining_code"]["enabled"] is True
    status, answer = server.call("GET", "/api/scheduler/status")
    served = {job["job_id"]: job for job in answer["data"]["jobs"]}
    assert served["export_training"]["interval_minutes"] == 90 and served["export_training"]["enabled"] is False
    assert world["config_path"].read_bytes() == config_bytes
    status, answer = server.call("PUT", "/api/scheduler/job", {"job_id": "export_training", "enabled": True,
                                                               "interval_minutes": 1440})
    assert status == 200


def test_a_job_running_elsewhere_is_a_409(server, world):
    """Another process holding the job (here: this test process, through the scheduler's per-job lock file)."""
    ws = world["workspace"]
    before = db_dump(ws)
    lock = Workspace.open(ws).path("locks", "mining_code.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        for wait in (False, True):
            status, answer = server.call("POST", "/api/scheduler/run", {"job_id": "mining_code", "wait": wait})
            assert status == 409 and "mining_code is already running" in assert_one_sentence(answer)
    assert db_dump(ws) == before
    status, answer = server.call("POST", "/api/scheduler/run", {"job_id": "mining_code", "wait": True})
    assert status == 200 and answer["data"]["status"] == "ok"
    assert answer["data"]["result"]["new_examples"] == 0  # everything was collected already: nothing new


# -- bad payloads: one sentence, 4xx, nothing changed ------------------------------------------------------------
BAD_REQUESTS = [
    ("POST", "/api/scheduler/run", b'{"job_id": "mining_code"', 400, "not valid JSON"),
    ("POST", "/api/scheduler/run", b"[1, 2]", 422, "JSON object"),
    ("POST", "/api/scheduler/run", b"", 422, "JSON object"),
    ("POST", "/api/scheduler/run", {"wait": True}, 422, "job_id is required"),
    ("POST", "/api/scheduler/run", {"job_id": "mine_everything"}, 404, "mining_code"),
    ("POST", "/api/scheduler/run", {"job_id": 7}, 422, "job_id"),
    ("POST", "/api/scheduler/run", {"job_id": "mining_code", "wait": "yes"}, 422, "wait"),
    ("POST", "/api/scheduler/run", {"job_id": "mining_code", "now": True}, 422, "now"),
    ("PUT", "/api/scheduler/job", {"job_id": "mining_code", "interval_minutes": -5}, 422, "greater than 0"),
    ("PUT", "/api/scheduler/job", {"job_id": "mining_code", "interval_minutes": 0}, 422, "interval_minutes"),
    ("PUT", "/api/scheduler/job", {"job_id": "mining_code", "interval_minutes": "often"}, 422, "valid number"),
    ("PUT", "/api/scheduler/job", {"job_id": "mining_code", "interval_minutes": 10 ** 9}, 422, "less than"),
    ("PUT", "/api/scheduler/job", {"job_id": "mining_code", "enabled": "no"}, 422, "enabled"),
    ("PUT", "/api/scheduler/job", {"job_id": "mining_code"}, 422, "Say what to change"),
    ("PUT", "/api/scheduler/job", {"job_id": "nightly", "enabled": False}, 404, "nightly"),
    ("POST", "/api/train", {"iters": 0}, 422, "iters"),
    ("POST", "/api/train", {"learning_rate": "fast"}, 422, "learning_rate"),
    ("POST", "/api/train", {"epochs": 3}, 422, "epochs"),
    ("POST", "/api/train", {"preset": "huge", "force": True}, 422, "'full', '8gb' or 'quick'"),
    ("POST", "/api/train", {"data": "/nonexistent/folder"}, 400, "does not exist"),
    ("POST", "/api/train", b"", 422, "needs a JSON object body"),  # a run is started only when asked for in JSON
]


def test_bad_payloads_give_one_sentence_and_change_nothing(server, world):
    ws = world["workspace"]
    before = db_dump(ws)
    for method, path, body, expected_status, expected_text in BAD_REQUESTS:
        raw = body if isinstance(body, bytes) else None
        status, answer = server.call(method, path, None if raw is not None else body, raw=raw)
        assert status == expected_status, (method, path, body, answer)
        assert expected_text in assert_one_sentence(answer), (body, answer)
    # a cross-site form can post text/plain without a CORS preflight: such a body is never taken as JSON
    status, answer = server.call("PUT", "/api/scheduler/job", raw=b'{"job_id": "mining_code", "enabled": false}',
                                 headers={"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type: application/json" in assert_one_sentence(answer)
    assert db_dump(ws) == before
    assert not ws.joinpath("runs").exists() or not any(ws.joinpath("runs").iterdir())


def test_writes_need_json_and_this_origin(server, world):
    """What a web page the user visits could send: no body and no type, a form type, text/plain, or JSON from its
    own origin. Every one is refused before anything runs; the same request from a program (no Origin) or from
    this origin goes through to the usual checks."""
    ws = world["workspace"]
    before = db_dump(ws)
    port = server.base.rsplit(":", 1)[1]
    cases = [
        ({}, None, 415, "no Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"force=true", 415, "application/json"),
        ({"Content-Type": "text/plain"}, b'{"force": true}', 415, "application/json"),
        ({"Origin": "http://evil.test", "Content-Type": "application/json"}, b'{"force": true}', 403,
         "http://evil.test"),
        ({"Origin": "null", "Content-Type": "application/json"}, b'{"force": true}', 403, "another origin"),
        ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, b'{"force": true}', 403,
         "another site"),
        ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, b'{"force": true}', 403,
         "another site"),
    ]
    for headers, raw, expected, text in cases:
        status, answer = server.call("POST", "/api/train", raw=raw, headers=headers)
        assert status == expected and text in assert_one_sentence(answer), (headers, answer)
    assert db_dump(ws) == before
    assert not ws.joinpath("runs").exists() or not any(ws.joinpath("runs").iterdir())
    # From its own origin (the /docs page) and from a program, a write reaches the endpoint's own checks.
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    status, answer = server.call("PUT", "/api/scheduler/job", {"job_id": "nightly", "enabled": False}, headers=same)
    assert status == 404 and "nightly" in answer["error"]
    status, answer = server.call("PUT", "/api/scheduler/job", {"job_id": "nightly", "enabled": False})
    assert status == 404


@pytest.mark.browser
def test_a_page_on_another_origin_cannot_start_training_in_chromium(server, world, browser_page):
    """The attack, as a browser makes it: a page on another origin (another port of this machine) posts to
    /api/train with fetch in no-cors mode (text/plain and an empty body, no preflight) and with a form. Chromium
    sends its Origin and Sec-Fetch-Site: every attempt gets 4xx and no run starts."""
    import http.server
    import threading

    page_html = (b"<!doctype html><title>cat pictures</title><form id=f method=post enctype=text/plain "
                 b"target=sink><input name='{\"force\": true, \"x\": \"' value='\"}'></form>"
                 b"<iframe name=sink></iframe>")

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *args):
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    statuses: list[int] = []
    page = browser_page
    page.on("response", lambda response: statuses.append(response.status)
            if response.url.endswith("/api/train") else None)
    try:
        page.goto(f"http://127.0.0.1:{attacker.server_port}/")
        page.evaluate("""async (api) => {
            await fetch(api + '/api/train', {method: 'POST', mode: 'no-cors'});
            await fetch(api + '/api/train', {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'},
                                             body: JSON.stringify({force: true})});
            document.getElementById('f').action = api + '/api/train';
            document.getElementById('f').submit();
        }""", server.base)
        page.wait_for_timeout(2_000)
    finally:
        attacker.shutdown()
    assert statuses == [403, 403, 403]  # refused for their origin, before the body or readiness is looked at
    assert not world["workspace"].joinpath("runs").exists() or not any(world["workspace"].joinpath("runs").iterdir())


def test_without_a_token_only_loopback_host_names_are_served(server):
    """DNS rebinding: a web page whose own name resolves to 127.0.0.1 must not read the API."""
    port = server.base.rsplit(":", 1)[1]
    status, answer = server.call("GET", "/api/self", headers={"Host": f"attacker.example:{port}"})
    assert status == 400 and "attacker.example" in assert_one_sentence(answer)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1"):
        status, answer = server.call("GET", "/api/self", headers={"Host": host})
        assert status == 200 and answer["success"] is True


# -- training ----------------------------------------------------------------------------------------------------
def test_training_status_readiness_and_not_ready_409(server, world):
    from engine.ops import stats
    from engine.training.deploy import deployment_stats
    from engine.training.runs import list_runs

    ws = Workspace.open(world["workspace"])
    status, answer = server.call("POST", "/api/scheduler/run", {"job_id": "export_training", "wait": True})
    assert status == 200 and answer["data"]["status"] == "ok", answer
    collected = ws.path("datasets", "collected")
    lines = {split: sum(1 for _ in open(collected / f"{split}.jsonl")) if (collected / f"{split}.jsonl").exists()
             else 0 for split in ("train", "valid", "test")}
    exported = sum(lines.values())
    assert exported > 0
    # The server reads the config on every request: one example short of the threshold, then exactly on it.
    original = world["config_path"].read_bytes()
    try:
        for needed, ready in ((exported + 1, False), (exported, True)):
            config = PipelineConfig.load(world["config_path"]).with_values(
                {"collect.min_examples_for_training": needed})
            config.save()
            status, answer = server.call("GET", "/api/training")
            assert status == 200
            data = answer["data"]
            assert data["runs"] == [] == list_runs(ws) and data["active_run"] is None
            readiness = data["readiness"]
            assert readiness.pop("exported") == {
                "data_folder": str(collected.resolve()), "exists": True, **lines, "examples": exported,
                "min_for_training": needed, "ready_to_train": ready}
            assert readiness == jsonable(stats.training_readiness(config, ws.root))
            assert readiness["total_samples"] == exported  # the export is up to date with what was collected
            deployment = deployment_stats(ws)
            assert data["deployment"]["total_versions"] == deployment["versions"] == 0
            assert data["deployment"]["model_version"] is None and data["deployment"]["rollback_available"] is False

            if not ready:
                before = db_dump(ws.root)
                status, answer = server.call("POST", "/api/train", {})
                assert status == 409
                message = assert_one_sentence(answer)
                assert f"holds {exported} examples and {needed} are needed" in message and "force" in message
                assert db_dump(ws.root) == before and not ws.path("runs").exists()
    finally:
        world["config_path"].write_bytes(original)


def test_train_starts_a_real_run_and_refuses_a_second(server, world, tiny):
    from engine.training.runs import get_run, list_runs, stop_run

    ws = Workspace.open(world["workspace"])
    model, data = tiny
    small = write_data_folder(world["root"] / "small-data", train=12, valid=4, test=0)
    status, answer = server.call("POST", "/api/train", {"data": str(small), "model": str(model)})
    assert status == 409 and "holds 16 examples and 100 are needed" in assert_one_sentence(answer)

    body = {"data": str(data), "model": str(model), "preset": "quick", "iters": 6, "batch_size": 2,
            "num_layers": 2, "learning_rate": 2e-3, "steps_per_report": 2, "steps_per_eval": 3, "evaluate": False}
    status, answer = server.call("POST", "/api/train", body)
    assert status == 202, answer
    started = answer["data"]
    run_id = started["run_id"]
    assert (started["train_samples"], started["valid_samples"], started["test_samples"]) == (120, 12, 8)
    assert started["iters"] == 6 and started["data_dir"] == str(data.resolve())
    record = get_run(ws, run_id)
    assert record.config["iters"] == 6 and record.config["evaluate"] is False and record.config["min_samples"] == 100
    deadline = time.monotonic() + 120
    while True:
        status, answer = server.call("GET", "/api/training")
        runs = answer["data"]["runs"]
        if runs and runs[0]["status"] not in ("queued", "running"):
            break
        assert answer["data"]["active_run"] == run_id
        assert time.monotonic() < deadline, "the tiny run did not finish within 120 s"
        time.sleep(0.3)
    finished = get_run(ws, run_id)
    assert finished.status == "completed", finished.log_tail
    assert runs[0]["run_id"] == run_id and runs[0]["iterations_done"] == finished.iterations_done == 6
    assert runs[0]["final_train_loss"] == pytest.approx(finished.final_train_loss)

    status, answer = server.call("GET", "/api/self")
    assert status == 200
    training_stats = answer["data"]["training_stats"]
    assert training_stats["last_training"]["run_id"] == run_id
    assert training_stats["last_training"]["samples_count"] == 120
    assert training_stats["last_training"]["status"] == "completed"

    long_run = {**body, "iters": 100000, "steps_per_eval": 100000, "steps_per_report": 1}
    status, answer = server.call("POST", "/api/train", long_run)
    assert status == 202, answer
    long_id = answer["data"]["run_id"]
    try:
        before = [run.id for run in list_runs(ws)]
        status, answer = server.call("POST", "/api/train", body)
        assert status == 409 and long_id in assert_one_sentence(answer)
        assert [run.id for run in list_runs(ws)] == before
    finally:
        stop_run(ws, long_id)
    assert get_run(ws, long_id).status == "stopped"


def test_self_matches_the_engine(server, world):
    from engine.ops import stats
    from engine.training.deploy import deployment_stats
    from engine.training.runs import list_runs

    ws = Workspace.open(world["workspace"])
    status, answer = server.call("GET", "/api/self")
    assert status == 200
    data = answer["data"]
    assert data["workspace"] == str(world["workspace"]) and data["config"] == str(world["config_path"])
    training_stats = data["training_stats"]
    assert set(training_stats) == {"model_version", "deployed_at", "last_training", "training_data", "deployment"}
    runs = list_runs(ws)
    last = training_stats["last_training"]
    assert (last is None and not runs) or last["run_id"] == runs[0].id
    deployment = deployment_stats(ws)
    assert training_stats["deployment"] == {"total_versions": deployment["versions"],
                                            "rollback_available": deployment["rollback_available"],
                                            "canary_active": deployment["canary_version"] is not None}
    assert training_stats["model_version"] is None and training_stats["deployed_at"] is None
    direct = stats.training_readiness(world["config"], ws.root)
    collected = ws.path("datasets", "collected")
    exported = sum(1 for split in ("train", "valid", "test") if (collected / f"{split}.jsonl").exists()
                   for _ in open(collected / f"{split}.jsonl"))
    assert training_stats["training_data"] == {
        "total_samples": direct["total_samples"], "min_for_training": direct["min_for_training"],
        "ready_to_train": direct["ready_to_train"], "exported_samples": exported,
        "held_for_review": direct["held_for_review"]}
    assert direct["min_for_training"] == world["config"].get("collect.min_examples_for_training") == 100


# -- network binding and the token -------------------------------------------------------------------------------
def test_non_loopback_without_a_token_refuses_to_start(world):
    result = subprocess.run(
        [sys.executable, "-m", "engine", "api", "--config", str(world["config_path"]), "--workspace",
         str(world["workspace"]), "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: Binding to 0.0.0.0 exposes the API to the network; pass --token or "
                                     "set STUDIO_API_TOKEN.")


def test_a_port_in_use_is_one_sentence(world):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "engine", "api", "--config", str(world["config_path"]), "--workspace",
             str(world["workspace"]), "--port", str(port)],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: Port {port} on 127.0.0.1 is already in use; stop what uses it or "
                                     "pass --port N (0 picks a free port).")


@pytest.mark.parametrize("token_from", ["flag", "environment"])
def test_token_required_when_bound_to_all_interfaces(world, token_from):
    token = "s3cret-Token-for-tests"
    extra, env = ((["--token", token], None) if token_from == "flag" else ([], {"STUDIO_API_TOKEN": token}))
    api = ApiServer(world["config_path"], world["workspace"], world["root"] / f"api-{token_from}.log",
                    "--host", "0.0.0.0", *extra, env=env)
    try:
        assert "0.0.0.0" in api.log_path.read_text()
        for path in ("/api/training/stats", "/api/self", "/api/scheduler/status"):
            status, answer = api.call("GET", path)
            assert status == 401 and "Authorization: Bearer" in assert_one_sentence(answer)
            status, answer = api.call("GET", path, token="wrong-token")
            assert status == 401 and "wrong" in assert_one_sentence(answer)
            status, answer = api.call("GET", path, headers={"Authorization": f"Basic {token}"})
            assert status == 401
            status, answer = api.call("GET", path, token=token)
            assert status == 200 and answer["success"] is True
        before = db_dump(world["workspace"])
        status, answer = api.call("POST", "/api/scheduler/run", {"job_id": "mining_code", "wait": True})
        assert status == 401 and db_dump(world["workspace"]) == before
        status, spec = api.call("GET", "/openapi.json")  # the docs stay open: they hold no data
        assert status == 200 and "HTTPBearer" in spec["components"]["securitySchemes"]
        status, answer = api.call("GET", "/api/self", token=token, headers={"Host": "studio.example.lan"})
        assert status == 200  # with a token, any name the network knows the machine by is fine
    finally:
        api.stop()


def test_unexpected_errors_are_a_sentence_without_traceback(world, tmp_path):
    ws = Workspace.open(tmp_path / "workspace")
    with ws.transaction() as conn:  # a damaged workspace: a run row whose config is not JSON
        conn.execute("INSERT INTO training_runs(id, status, data_dir, base_model, config_json, train_samples,"
                     " valid_samples, test_samples, created_at) VALUES ('broken', 'completed', '/x', 'm', '{not json',"
                     " 1, 0, 0, '2026-01-01T00:00:00.000000Z')")
    api = ApiServer(world["config_path"], ws.root, tmp_path / "api.log")
    try:
        status, answer = api.call("GET", "/api/training")
        assert status == 500
        message = assert_one_sentence(answer)
        assert "JSONDecodeError" in message and "GET /api/training" in message
        status, answer = api.call("GET", "/openapi.json")
        assert status == 200  # the server goes on answering
    finally:
        api.stop()
    assert "Traceback" in (tmp_path / "api.log").read_text()  # the details are in the server's log
