"""Exporting a fine-tuned model: the fused MLX folder answers exactly as base + adapter do, and the GGUF file is
written only where llama.cpp would read it right (checked by reading it back the way llama.cpp's conventions say:
transformers' GGUF loader and our own mlx reader), with the reason in one sentence where it cannot be."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.__main__ import main as engine_main
from engine.errors import StudioError
from engine.store import Workspace
from engine.training.export import export_run
from engine.training.models import convert_gguf, smollm2_gguf_path
from tests.tiny_model import build_tiny_model, train_tiny, write_data_folder


def _greedy(model_path: str, adapter: str | None, prompt: str) -> str:
    from mlx_lm import generate, load

    model, tokenizer = load(model_path, adapter_path=adapter)
    return generate(model, tokenizer, prompt, max_tokens=12, verbose=False)


def test_tiny_run_fuses_into_a_folder_that_answers_like_base_plus_adapter_and_refuses_a_wrong_gguf(tmp_path, capsys):
    model = build_tiny_model(tmp_path / "model")
    ws = Workspace.open(tmp_path / "ws")
    run = train_tiny(ws, write_data_folder(tmp_path / "data"), model)
    assert engine_main(["fuse", run.id, "--workspace", str(ws.root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    folder = ws.path("exports", run.id)
    assert result["folder"] == str(folder) and result["gguf_file"] is None
    assert "byte-level BPE" in result["gguf_skipped"] and "SentencePiece" in result["gguf_skipped"]
    assert (folder / "mlx" / "model.safetensors").is_file() and (folder / "mlx" / "tokenizer.json").is_file()
    assert json.loads((folder / "export.json").read_text())["run_id"] == run.id
    assert not list(ws.path("exports").glob(".*"))  # no staging folder left behind
    prompt = "<|user|>\nrepeat model twice<|end|>\n<|assistant|>\n"
    fused = _greedy(str(folder / "mlx"), None, prompt)
    assert fused == _greedy(str(model), str(ws.path("runs", run.id, "adapters")), prompt)
    assert fused != _greedy(str(model), None, prompt)  # the adapter is really in the fused weights

    with pytest.raises(StudioError, match="has no saved adapter to export"):
        ws.path("runs", run.id, "adapters", "adapters.safetensors").unlink()
        export_run(ws, run.id)


def test_default_model_exports_a_gguf_file_llama_cpp_conventions_read_back(tmp_path):
    """The offline default came from a GGUF file: the export carries its tokenizer metadata over, and the file read
    back by transformers' GGUF loader predicts what the fused mlx model predicts."""
    import mlx.core as mx
    import torch
    from mlx_lm import load
    from transformers import AutoModelForCausalLM

    ws = Workspace.open(tmp_path / "ws")
    run = train_tiny(ws, write_data_folder(tmp_path / "data", train=8, valid=2, test=0), None, iters=2,
                     num_layers=2, steps_per_report=1, steps_per_eval=2, evaluate=False)
    result = export_run(ws, run.id)
    gguf = ws.path("exports", run.id, "SmolLM2-135M-Instruct-fine-tuned-f16.gguf")
    assert result.gguf_file == str(gguf) and result.gguf_skipped is None
    assert (gguf.parent / "Modelfile").read_text() == f"FROM ./{gguf.name}\n"

    _, written = mx.load(str(gguf), return_metadata=True)
    _, source = mx.load(str(smollm2_gguf_path()), return_metadata=True)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                "tokenizer.chat_template", "llama.rope.freq_base", "llama.block_count"):
        assert str(written[key]) == str(source[key]), key
    assert int(written["general.file_type"].item()) == 1  # F16

    back = tmp_path / "back"
    back.mkdir()
    convert_gguf(gguf, back)  # our reader undoes llama.cpp's query/key permutation
    fused = mx.load(str(ws.path("exports", run.id, "mlx", "model.safetensors")))
    restored = mx.load(str(back / "model.safetensors"))
    assert set(restored) == set(fused)
    assert max(mx.abs(restored[name] - fused[name].astype(mx.float32)).max().item() for name in fused) < 0.01

    model, tokenizer = load(str(ws.path("exports", run.id, "mlx")))
    ids = tokenizer.encode("def fibonacci(n):\n    ")
    expected = np.array(model(mx.array([ids]))[0, -1])
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    with torch.no_grad():
        got = reference(torch.tensor([ids])).logits[0, -1].numpy()
    assert list(np.argsort(-got)[:5]) == list(np.argsort(-expected)[:5])
