"""The embedding model's torch-free runtimes: the numpy encoder (the same vectors and chunks as sentence-transformers)
and the ONNX graph built from the same weights, in float32 (identical too) and int8 (the default: close, and cached
under its own model id)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from engine.linking import embedder as embedder_module
from engine.linking.embedder import chunk_texts, hf_offsets, load_embedder
from engine.linking.numpy_bert import NumpyBert, supports
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def default_location() -> str:
    return load_embedder().location


def _texts() -> list[str]:
    rng = random.Random(7)
    words = ("fix the retry logic in the payment webhook handler when stripe returns 429 rate limit errors "
             "async await CacheEntry.ttl_seconds src/cache.rs #412 über straße 東京").split()
    texts = ["hello", "", "Fix race in cache invalidation", "ünïcödé — dashes, tabs\tand\nnewlines", "x" * 3000,
             "word " * 400]
    return texts + [" ".join(rng.choices(words, k=rng.randint(1, 200))) for _ in range(40)]


def test_numpy_vectors_equal_sentence_transformers_on_the_real_model(default_location):
    from sentence_transformers import SentenceTransformer

    texts = _texts()
    ours = NumpyBert(default_location).encode(texts)
    theirs = SentenceTransformer(default_location, device="cpu").encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-5
    assert (ours * theirs).sum(axis=1).min() > 0.99999
    # Not a degenerate encoder: different texts give clearly different vectors.
    assert (ours[2] @ ours[3]) < 0.9


def test_numpy_chunks_equal_the_hugging_face_tokenizer_chunks(default_location):
    from transformers import AutoTokenizer

    texts = _texts()
    ours = chunk_texts(texts, NumpyBert(default_location).offsets, 254)
    theirs = chunk_texts(texts, hf_offsets(AutoTokenizer.from_pretrained(default_location)), 254)
    assert ours == theirs
    assert any(len(pieces) > 1 for pieces in ours)


def test_the_onnx_graph_is_the_same_model_and_its_int8_form_stays_close(default_location):
    from engine.linking.onnx_bert import OnnxBert

    texts = _texts()
    reference = NumpyBert(default_location).encode(texts)
    exact = OnnxBert(default_location, quantized=False).encode(texts)
    assert np.abs(exact - reference).max() < 1e-4  # the graph written from the weights is the same network
    quantized = OnnxBert(default_location).encode(texts)
    cosine = (quantized * reference).sum(axis=1)
    assert cosine.min() > 0.97 and cosine.mean() > 0.99
    assert (quantized[2] @ quantized[3]) < 0.9


def test_onnx_is_the_default_runtime_and_float32_runtimes_follow_the_size_of_the_job(default_location, monkeypatch):
    embedder = load_embedder()
    assert embedder.model_id.endswith("@int8") and embedder.prepare(10) == embedder.prepare(10**6) == "onnx"
    monkeypatch.setenv("STUDIO_EMBEDDING_RUNTIME", "float32")
    assert load_embedder().model_id == "all-MiniLM-L6-v2"  # float32 vectors never share a cache with int8 ones


def test_runtime_follows_the_size_of_the_job(default_location, monkeypatch):
    monkeypatch.setenv("STUDIO_EMBEDDING_RUNTIME", "float32")
    monkeypatch.setattr(embedder_module, "_LOADED", {})
    embedder = load_embedder()
    assert embedder.prepare(10) == "numpy"
    assert embedder.prepare(embedder_module.NUMPY_MAX_TEXTS + 1) == "torch"
    monkeypatch.setattr(embedder_module, "_LOADED", {embedder.location: object()})
    assert embedder.prepare(10) == "torch"  # torch already paid for in this process: keep one runtime


def test_other_architectures_fall_back_to_sentence_transformers(default_location, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(default_location, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "roberta"
    (folder / "config.json").write_text(json.dumps(config))
    assert supports(default_location) and not supports(folder)
    pooling = folder / "1_Pooling" / "config.json"
    config["model_type"] = "bert"
    (folder / "config.json").write_text(json.dumps(config))
    pooling.write_text(json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
                                   "pooling_mode_mean_tokens": False}))
    assert not supports(folder)
    assert load_embedder(str(folder)).prepare(5) == "torch"


def test_a_small_relink_in_a_fresh_process_never_imports_torch(tmp_path):
    from tests.linking_fixtures import build_labelled_world

    world = build_labelled_world(tmp_path / "world", commits=6, seed=11)
    script = textwrap.dedent(f"""
        import sys
        from engine.config import PipelineConfig
        from engine.extract import extract
        from engine.pipeline import link_and_write
        config = PipelineConfig.load({str(world.config)!r})
        extract(config, {str(tmp_path / "ws")!r})
        result = link_and_write(config, {str(tmp_path / "ws")!r}, "best")
        assert result.embedded_texts > 0, result
        print(result.embedded_texts, result.kept_links, "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    embedded, kept, torch_imported = done.stdout.split()
    assert int(embedded) > 0 and int(kept) > 0
    assert torch_imported == "False"
