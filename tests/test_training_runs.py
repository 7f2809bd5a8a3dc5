"""The training launcher with real mlx-lm on a tiny local model: run records, metrics, adapter files, killing,
stopping, configs and refusals."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from safetensors.numpy import load_file

from engine.__main__ import main as engine_main
from engine.errors import StudioError
from engine.processes import openblas_library
from engine.store import Workspace
from engine.training import deploy as versions
from engine.training.evaluate import file_sha256, manifest_checksum
from engine.training.launcher import plan_run, resolve_config
from engine.training.runs import get_run, list_runs, run_metrics, stop_run, wait_for_run
from tests.conftest import ROOT
from tests.tiny_model import build_tiny_model, start_tiny_run, stop_active_runs, train_tiny, write_data_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_model(root / "model"), write_data_folder(root / "data")


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    model, data = tiny
    ws = Workspace.open(tmp_path_factory.mktemp("ws"))
    yield ws, train_tiny(ws, data, model)
    stop_active_runs(ws)


def test_run_record_metrics_and_adapter_files(trained, tiny):
    ws, run = trained
    config = run.config
    assert run.status == "completed" and run.error is None
    assert (run.train_samples, run.valid_samples, run.test_samples) == (120, 12, 8)
    saved = json.loads(ws.path("runs", run.id, "config.json").read_text())
    assert saved["config"] == config and saved["data_dir"] == str(tiny[1].resolve())
    assert config["iters"] == 12 and config["lora_rank"] == 8 and config["batch_size"] == 2

    rows = run_metrics(ws, run.id)
    train = [row for row in rows if row["kind"] == "train"]
    val = [row for row in rows if row["kind"] == "val"]
    assert [row["iteration"] for row in train] == [2, 4, 6, 8, 10, 12]
    assert [row["iteration"] for row in val] == [0, 3, 7, 11]  # mlx-lm evaluates before steps 1, 4, 8, 12
    assert all(math.isfinite(row["loss"]) and row["tokens_per_second"] > 0 for row in train)
    assert all(row["peak_memory_gb"] > 0 for row in train)
    assert run.iterations_done == 12 and run.final_train_loss == train[-1]["loss"]
    assert run.final_val_loss == val[-1]["loss"] and run.peak_memory_gb == max(r["peak_memory_gb"] for r in train)
    assert run.tokens_per_second == pytest.approx(sum(r["tokens_per_second"] for r in train) / len(train))
    lines = ws.path("runs", run.id, "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(rows)

    adapters = ws.path("runs", run.id, "adapters")
    assert {item["name"] for item in run.adapter_files} == {"adapters.safetensors", "adapter_config.json"}
    for item in run.adapter_files:
        assert file_sha256(adapters / item["name"]) == item["sha256"]
        assert (adapters / item["name"]).stat().st_size == item["bytes"]
    tensors = load_file(str(adapters / "adapters.safetensors"))
    lora_a = [array for name, array in tensors.items() if name.endswith("lora_a")]
    assert lora_a and all(array.shape[1] == 8 for array in lora_a)  # rank 8 from the resolved config
    assert json.loads((adapters / "adapter_config.json").read_text())["lora_parameters"]["rank"] == 8

    evaluation = run.evaluation
    assert evaluation["sanity"]["ok"] and evaluation["sanity"]["tensors"] == len(tensors)
    for split in ("valid", "test"):
        base, tuned = evaluation["base"][split], evaluation["adapter"][split]
        assert tuned["loss"] < base["loss"]  # the data is learnable: the adapter beats its base on held-out data
        assert tuned["perplexity"] == pytest.approx(math.exp(tuned["loss"]))
    assert evaluation["base"]["valid"]["loss"] == pytest.approx(val[0]["loss"], rel=1e-4)  # same split, same model
    generation = evaluation["generation"]
    assert len(generation["samples"]) == 3 and 0 <= generation["repetition_rate"] <= 1
    log = ws.path("runs", run.id, "train.log").read_text()
    assert "[studio] completed" in log
    if openblas_library():
        assert "OpenBLAS preloaded: /" in log and run.blas and "openblas" in run.blas


def test_a_run_is_the_workspaces_training_task_one_at_a_time_usable_before_its_evaluation(tiny, tmp_path):
    """One status per run everywhere: the task status (phase, iterations of total, elapsed, estimate) and the run's
    phase in the workspace move together; a second start while it goes is refused; the adapter is marked usable
    when it is saved, before the evaluation; the base comparison says how many answers the adapter changed."""
    from engine.processes import TaskBusy, task_status
    from engine.training.launcher import TASK_KIND

    model, data = tiny
    ws = Workspace.open(tmp_path / "ws")
    run_id = start_tiny_run(ws, data, model, iters=300, steps_per_report=10, steps_per_eval=1000)
    try:
        with pytest.raises(TaskBusy, match=f"Training run {run_id} is still going"):
            start_tiny_run(ws, data, model)
        seen = set()
        deadline = time.monotonic() + 120
        while (status := task_status(ws.root, TASK_KIND)).running:
            assert time.monotonic() < deadline, "the run did not finish within 120 s"
            if status.phase == "training":
                assert get_run(ws, run_id).status_text in ("running · training", "adapter ready · evaluating")
                assert status.total == 300 and 0 <= status.done <= 300
                seen.add(status.done)
            time.sleep(0.05)
        # progress moves every step, not only at the loss reports (every 10th step)
        assert any(done % 10 for done in seen), sorted(seen)
    finally:
        stop_active_runs(ws)
    assert status.state == "done" and status.result == {"run_id": run_id, "status": "completed"}
    run = get_run(ws, run_id)
    assert run.status == run.phase == "completed" and run.usable
    assert run.usable_at and run.started_at < run.usable_at <= run.finished_at
    phases = re.findall(r"\[studio\] phase: (.+)", ws.path("runs", run_id, "train.log").read_text())
    assert phases == ["loading the model and data", "training", "evaluating"]
    changed = run.evaluation["answers_changed"]
    assert changed["prompts"] == 3 and 0 <= changed["changed"] <= 3
    assert all("base_output" in sample for sample in run.evaluation["generation"]["samples"])
    assert start_tiny_run(ws, data, model, iters=2)  # the workspace trains again once the run is done
    stop_active_runs(ws)


def assert_tail_of_log(tail: str, log_file) -> None:
    """The recorded tail is the end of the real log (colours stripped) and ends on an mlx-lm loss report."""
    lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).split("\r")[-1].rstrip()
             for line in log_file.read_text().splitlines()]
    lines = [line for line in lines if line.strip()]
    tail_lines = tail.splitlines()
    assert 1 <= len(tail_lines) <= 30 and tail_lines == lines[-len(tail_lines):]
    assert any(re.match(r"^\s*\d+\s+\d+\.\d+", line) for line in tail_lines[-3:]), tail


def test_killed_run_is_failed_with_log_tail_and_current_version_unchanged(trained, tiny):
    ws, done = trained
    model, data = tiny
    deployed = versions.deploy(ws, done.id, force=True)
    active_before = {p.name: file_sha256(p) for p in ws.path("versions", "active").iterdir()}
    # started by another process (the CLI), so this test process is not its parent: as when the page started it
    result = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--workspace", str(ws.root), "--data", str(data), "--model",
         str(model), "--preset", "quick", "--iters", "100000", "--num-layers", "2", "--steps-per-report", "1",
         "--steps-per-eval", "100000", "--force", "--detach"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    run_id = next(run.id for run in list_runs(ws) if run.active)
    deadline = time.monotonic() + 60
    while not [row for row in run_metrics(ws, run_id) if row["kind"] == "train"]:
        assert time.monotonic() < deadline, "no loss report within 60 s"
        time.sleep(0.2)
    os.kill(get_run(ws, run_id).pid, signal.SIGKILL)
    run = wait_for_run(ws, run_id, timeout=20)
    assert run.status == "failed"
    assert "killed or crashed" in run.error
    assert_tail_of_log(run.log_tail, ws.path("runs", run_id, "train.log"))
    assert run.iterations_done >= 1 and run.finished_at
    current = versions.current_version(ws)
    assert current.version == deployed.version
    assert {p.name: file_sha256(p) for p in ws.path("versions", "active").iterdir()} == active_before


def test_stop_ends_the_process_and_marks_the_run_stopped(trained, tiny):
    ws, _ = trained
    model, data = tiny
    run_id = start_tiny_run(ws, data, model, iters=100000, steps_per_report=1, steps_per_eval=100000)
    deadline = time.monotonic() + 60
    while get_run(ws, run_id).iterations_done < 1:
        assert time.monotonic() < deadline, "no loss report within 60 s"
        time.sleep(0.2)
    pid = get_run(ws, run_id).pid
    run = stop_run(ws, run_id)
    assert run.status == "stopped" and run.error == "Stopped by the user."
    assert_tail_of_log(run.log_tail, ws.path("runs", run_id, "train.log"))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(StudioError, match="already stopped"):
        stop_run(ws, run_id)
    assert get_run(ws, run_id).status == "stopped"  # the liveness check does not turn it into failed


def test_crash_inside_mlx_is_a_failed_run_with_one_sentence(trained, tiny):
    ws, _ = trained
    model, data = tiny
    run = wait_for_run(ws, start_tiny_run(ws, data, model, num_layers=5), timeout=120)  # the model has 2 layers
    assert run.status == "failed"
    assert run.error == "Training failed: Requested to train 5 layers but the model only has 2 layers."
    assert "Traceback" in run.log_tail  # the log keeps the detail; the record keeps one sentence


def test_thin_data_is_refused_unless_forced(tmp_path, tiny):
    thin = write_data_folder(tmp_path / "thin", train=20, valid=4, test=0)
    with pytest.raises(StudioError, match="has 20 training samples, fewer than the minimum of 100"):
        plan_run(thin, str(tiny[0]))
    plan = plan_run(thin, str(tiny[0]), force=True)
    assert plan.warnings == ["Only 20 training samples: below 50 the adapter will overfit."]
    some = write_data_folder(tmp_path / "some", train=70)
    with pytest.raises(StudioError, match="has 70 training samples"):
        plan_run(some, str(tiny[0]))
    assert plan_run(some, str(tiny[0]), overrides={"min_samples": 60}).warnings == []
    assert "below the minimum of 100; trained because forced" in plan_run(some, str(tiny[0]), force=True).warnings[0]
    assert plan_run(write_data_folder(tmp_path / "enough", train=100), str(tiny[0])).warnings == []


def test_config_layers_defaults_preset_yaml_flags(tmp_path):
    yaml_file = tmp_path / "lora.yaml"
    yaml_file.write_text("iters: 7\nbatch_size: 3\nlora_parameters:\n  rank: 16\n  scale: 10.0\nmodel: ignored/x\n")
    config = resolve_config("8gb", yaml_file, {"iters": 9, "learning_rate": None})
    assert config["iters"] == 9  # flag over YAML
    assert config["batch_size"] == 3 and config["lora_rank"] == 16 and config["lora_scale"] == 10.0  # YAML over preset
    assert config["max_seq_length"] == 512 and config["grad_checkpoint"] is True  # preset over defaults
    assert config["learning_rate"] == 1e-4  # a None flag leaves the layer below
    assert resolve_config("full")["iters"] == 100 and resolve_config("full")["num_layers"] == 8  # the seed's CONFIG
    assert resolve_config("default") == resolve_config("full")  # the old name of the seed's preset
    short = resolve_config()  # the default: a short first run that changes answers, a loss point every step
    assert short["iters"] <= 30 and short["learning_rate"] >= 1e-4 and short["steps_per_report"] == 1


def test_saved_presets_are_checked_layered_and_offered_to_the_cli(tmp_path):
    from engine.training.launcher import delete_preset, save_preset, saved_presets

    ws = Workspace.open(tmp_path / "ws")
    assert saved_presets(ws) == {}
    with pytest.raises(StudioError, match="'quick' is a built-in preset"):
        save_preset(ws, "quick", {"iters": 5})
    with pytest.raises(StudioError, match="iters must be at least 1"):
        save_preset(ws, "mine", {"iters": 0})
    with pytest.raises(StudioError, match="Unknown training parameter 'epochs'"):
        save_preset(ws, "mine", {"epochs": 3})
    assert save_preset(ws, "my short run", {"iters": 7, "learning_rate": "3e-4"}) == {"iters": 7, "learning_rate": 3e-4}
    presets = saved_presets(ws)
    config = resolve_config("my short run", overrides={"iters": 9}, saved=presets)
    assert (config["iters"], config["learning_rate"], config["num_layers"]) == (9, 3e-4, 8)
    with pytest.raises(StudioError, match="Unknown preset 'nope'; choose one of my short run, full, 8gb, quick"):
        resolve_config("nope", saved=presets)
    delete_preset(ws, "my short run")
    assert saved_presets(ws) == {}


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (None, ["--data", "{tmp}/missing"], "The data folder {tmp}/missing does not exist."),
        ("blank", ["--data", "{tmp}/d"], "{tmp}/d/train.jsonl line 2 is blank; mlx-lm stops loading at a blank line."),
        ("keys", ["--data", "{tmp}/d"], "The first line of {tmp}/d/train.jsonl has the keys ['instruction', 'output']"),
        ("ok", ["--data", "{tmp}/d", "--model", "{tmp}/nomodel"], "The model folder {tmp}/nomodel does not exist."),
        ("ok", ["--data", "{tmp}/d", "--model", "someone/not-cached"], "is not in the local Hugging Face cache"),
        ("ok", ["--data", "{tmp}/d", "--iters", "0"], "iters must be at least 1, not 0."),
        ("ok", ["--data", "{tmp}/d", "--batch-size", "20"], "valid.jsonl has only 12 samples; lower batch_size."),
        ("yaml", ["--data", "{tmp}/d", "--training-config", "{tmp}/c.yaml"], "has the unknown key 'epochs'."),
        (None, [], "Say which data folder to train on with --data DIR"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, capsys, monkeypatch, setup, args, expected):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "d"
    if setup == "blank":
        data.mkdir()
        (data / "train.jsonl").write_text('{"text": "a"}\n\n{"text": "b"}\n')
    elif setup == "keys":
        data.mkdir()
        (data / "train.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    elif setup in ("ok", "yaml"):
        write_data_folder(data)
        (tmp_path / "c.yaml").write_text("epochs: 3\n")
    argv = ["train", "--workspace", str(tmp_path / "ws"), *[arg.format(tmp=tmp_path) for arg in args]]
    assert engine_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert expected.format(tmp=tmp_path) in err
    assert not list((tmp_path / "ws").glob("runs/*"))  # refused before anything was recorded


def test_cli_trains_in_the_foreground_and_lists(tmp_path, tiny, capsys):
    model, data = tiny
    ws = tmp_path / "ws"
    code = engine_main(["train", "--workspace", str(ws), "--data", str(data), "--model", str(model), "--preset",
                        "quick", "--iters", "4", "--num-layers", "2", "--steps-per-report", "2", "--no-evaluate"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "iter      2  train loss" in out and "iter      4  train loss" in out and " completed in " in out
    engine_main(["train", "--workspace", str(ws), "--list", "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1 and listed[0]["status"] == "completed" and listed[0]["iterations"] == 4
    run = get_run(Workspace.open(ws), listed[0]["id"])
    assert "adapter" not in run.evaluation and run.evaluation["sanity"]["ok"]
    assert manifest_checksum(run.adapter_files)


def test_same_config_same_seed_gives_the_same_losses(trained, tiny):
    ws, first = trained
    model, data = tiny
    second = train_tiny(ws, data, model)
    losses = [[row["loss"] for row in run_metrics(ws, run.id) if row["kind"] == "train"] for run in (first, second)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
