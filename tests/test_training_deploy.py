"""Adapter versions on real trained adapters: deploy, checksums, rollback to byte-identical files, automatic
rollback of a worse candidate, canary routing and promotion, and the deploy CLI."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from engine.__main__ import main as engine_main
from engine.errors import StudioError
from engine.store import Workspace
from engine.training import deploy as versions
from engine.training.evaluate import file_sha256
from engine.training.runs import wait_for_run
from tests.tiny_model import build_tiny_model, start_tiny_run, write_data_folder


@pytest.fixture(scope="module")
def trained_workspace(tmp_path_factory):
    """One workspace with three completed runs (one after the other: a workspace trains one run at a time): two
    good ones and a barely trained one."""
    root = tmp_path_factory.mktemp("deploy")
    model, data = build_tiny_model(root / "model"), write_data_folder(root / "data")
    ws = Workspace.open(root / "ws")
    ids = {}
    for name, overrides in (("good", {}), ("other", {"seed": 1, "iters": 14}),
                            ("weak", {"iters": 2, "learning_rate": 1e-5})):
        ids[name] = start_tiny_run(ws, data, model, **overrides)
        run = wait_for_run(ws, ids[name], timeout=180)
        assert run.status == "completed", f"{name}: {run.error}\n{run.log_tail}"
    return ws.root, ids


@pytest.fixture
def ws(trained_workspace, tmp_path):
    """A private copy of the trained workspace, so each test starts with no version deployed."""
    source, ids = trained_workspace
    target = tmp_path / "ws"
    shutil.copytree(source, target)
    return Workspace.open(target), ids


def active_files(ws: Workspace) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(ws.path("versions", "active").iterdir())}


def run_files(ws: Workspace, run_id: str) -> dict[str, bytes]:
    folder = ws.path("runs", run_id, "adapters")
    return {name: (folder / name).read_bytes() for name in ("adapter_config.json", "adapters.safetensors")}


def test_deploy_refuses_failed_checks_then_records_a_version_with_checksums(ws):
    ws, ids = ws
    with pytest.raises(StudioError, match="failed its generation check .*repetition rate"):
        versions.deploy(ws, ids["good"])  # the random tiny model repeats itself: the check is real
    assert versions.list_versions(ws) == [] and versions.current_version(ws) is None
    result = versions.deploy(ws, ids["good"], force=True, description="first")
    assert result.status == "active" and result.version == 1
    assert result.comparison["against"] == "the base model" and not result.comparison["worse"]
    record = versions.current_version(ws)
    assert record.version == 1 and record.run_id == ids["good"] and record.status == "active"
    assert record.description == "first" and record.deployed_at
    assert {item["sha256"] for item in record.files} == {
        file_sha256(ws.path("runs", ids["good"], "adapters", name)) for name in ("adapters.safetensors",
                                                                                  "adapter_config.json")}
    assert active_files(ws) == run_files(ws, ids["good"])
    pointer = json.loads(ws.path("versions", "current.json").read_text())
    assert pointer["version"] == 1 and pointer["checksum"] == record.checksum


def test_rollback_restores_byte_identical_files_of_the_previous_version(ws):
    ws, ids = ws
    v1 = versions.deploy(ws, ids["good"], force=True)
    v2 = versions.deploy(ws, ids["other"], force=True, margin=0.5)  # compared with v1 by a real evaluation
    assert v2.status == "active" and v2.comparison["against"] == "v1"
    assert v2.comparison["baseline_loss"] == pytest.approx(
        versions.get_version(ws, 1).metrics["evaluation"]["adapter"]["test"]["loss"], rel=1e-4)
    assert active_files(ws) == run_files(ws, ids["other"]) != run_files(ws, ids["good"])

    restored = versions.rollback(ws)
    assert restored.version == v1.version == 1
    assert active_files(ws) == run_files(ws, ids["good"])  # byte-identical, not just the same names
    assert {name: file_sha256(ws.path("versions", "active", name)) for name in active_files(ws)} == {
        item["name"]: item["sha256"] for item in versions.get_version(ws, 1).files}
    assert versions.get_version(ws, 2).status == "rolled_back"
    assert json.loads(ws.path("versions", "current.json").read_text())["version"] == 1

    assert versions.rollback(ws, 2).version == 2 and active_files(ws) == run_files(ws, ids["other"])
    assert versions.rollback(ws, 1).version == 1
    assert versions.rollback(ws) is None  # before v1 the base model alone was served
    assert not ws.path("versions", "active").exists() and versions.current_version(ws) is None
    with pytest.raises(StudioError, match="nothing to roll back"):
        versions.rollback(ws)


def test_rollback_refuses_a_version_whose_files_changed(ws):
    ws, ids = ws
    versions.deploy(ws, ids["good"], force=True)
    versions.deploy(ws, ids["other"], force=True, margin=None)
    before = active_files(ws)
    stored = ws.path("versions", "v1", "adapters", "adapters.safetensors")
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    with pytest.raises(StudioError, match="The files of v1 no longer match their checksum"):
        versions.rollback(ws)
    assert versions.current_version(ws).version == 2 and active_files(ws) == before


def test_a_candidate_worse_than_the_current_version_is_rolled_back_automatically(ws):
    ws, ids = ws
    versions.deploy(ws, ids["good"], force=True)
    before = active_files(ws)
    dry = versions.deploy(ws, ids["weak"], force=True, margin=0.02, dry_run=True)
    assert dry.dry_run and "would be rolled back automatically" in dry.message
    assert [record.version for record in versions.list_versions(ws)] == [1]  # a dry run writes nothing

    result = versions.deploy(ws, ids["weak"], force=True, margin=0.02)
    assert result.status == "rolled_back" and result.comparison["worse"]
    assert result.comparison["candidate_loss"] > result.comparison["baseline_loss"] * 1.02
    assert "rolled back automatically" in result.message
    assert versions.get_version(ws, 2).status == "rolled_back"
    assert versions.current_version(ws).version == 1 and active_files(ws) == before
    assert versions.deployment_stats(ws)["events"] == {"deploy": 1, "auto_rollback": 1}


def test_canary_takes_its_share_then_is_promoted_or_rolled_back_on_errors(ws):
    ws, ids = ws
    versions.deploy(ws, ids["good"], force=True)
    canary = versions.canary(ws, ids["other"], 0.25, force=True, margin=None)
    assert canary.status == "canary" and versions.current_version(ws).version == 1
    rng = random.Random(0)
    served = [versions.route_request(ws, rng) for _ in range(400)]
    to_canary = [s for s in served if s.role == "canary"]
    assert 70 <= len(to_canary) <= 130  # 25% of 400, within sampling noise for this seed
    assert all(s.version == 2 and s.adapter_dir == ws.path("versions", "v2", "adapters") for s in to_canary)
    assert all(s.version == 1 and s.adapter_dir == ws.path("versions", "active") for s in served if s.role == "current")
    for s in served[:50]:
        assert versions.record_request(ws, s, ok=True, latency_ms=12.0) is None
    stats = versions.deployment_stats(ws)
    assert stats["canary_version"] == 2 and stats["canary_share"] == 0.25
    assert sum(value["requests"] for value in stats["traffic"].values()) == 50

    promoted = versions.promote(ws)
    assert promoted.version == 2 and versions.current_version(ws).version == 2
    assert active_files(ws) == run_files(ws, ids["other"]) and versions.deployment_state(ws)["canary_version"] is None
    assert versions.get_version(ws, 1).status == "retired"

    versions.canary(ws, ids["good"], 0.5, force=True, margin=None)
    canary_request = versions.Served(3, "canary", ws.path("versions", "v3", "adapters"))
    messages = [versions.record_request(ws, canary_request, ok=False) for _ in range(20)]
    assert messages[:-1] == [None] * 19 and "rolled back automatically: error rate 100% over 20" in messages[-1]
    assert versions.deployment_state(ws)["canary_version"] is None
    assert versions.get_version(ws, 3).status == "rolled_back" and versions.current_version(ws).version == 2


def test_deploy_cli(ws, capsys):
    ws, ids = ws
    base = ["deploy", "--workspace", str(ws.root)]
    assert engine_main([*base, "current"]) == 0
    assert "the base model is served" in capsys.readouterr().out
    assert engine_main([*base, "deploy", ids["good"], "--dry-run"]) == 0
    assert "would be refused: Run" in capsys.readouterr().out
    assert engine_main([*base, "deploy", ids["good"], "--force", "--description", "cli"]) == 0
    assert f"v1 from run {ids['good']} is now the current version." in capsys.readouterr().out
    assert engine_main([*base, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(item["version"], item["status"], item["description"]) for item in listed] == [(1, "active", "cli")]
    assert engine_main([*base, "canary", ids["other"], "--traffic", "20", "--force", "--no-compare"]) == 0
    assert "v2 serves 20% of requests as a canary." in capsys.readouterr().out
    assert engine_main([*base, "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["canary_version"] == 2 and stats["versions_by_status"] == {"active": 1, "canary": 1}
    assert engine_main([*base, "promote"]) == 0 and "Promoted v2" in capsys.readouterr().out
    assert engine_main([*base, "rollback"]) == 0 and "v1 is served now" in capsys.readouterr().out
    assert engine_main([*base, "rollback", "v9"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == "error: There is no version v9; `python -m engine deploy list` shows them."
    assert engine_main([*base, "rollback", "latest"]) == 1
    assert "is not a version" in capsys.readouterr().err
    assert engine_main([*base, "deploy", "no-such-run"]) == 1
    assert capsys.readouterr().err.startswith("error: There is no training run no-such-run")
