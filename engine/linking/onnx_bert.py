"""The embedding model on ONNX Runtime with int8 weights: the fastest faithful runtime measured on these CPUs.

Why: a cold link of a real history spends most of its time embedding. Measured side by side on the same texts
(bench/RESULTS.md, `python -m bench embed`): sentence-transformers on torch, ONNX Runtime in float32 (no faster
than torch on 2 cores) and ONNX Runtime with int8 matrix weights (per output channel) — the last is about 1.5x faster
than torch, needs no torch import (4.5 s per process), and its vectors keep cosine >= 0.98 with the float32 ones;
on the labelled real histories it links the same commits to the same knowledge (the bench compares the decisions).

The graph is written here from the same `model.safetensors` the numpy encoder reads (engine.linking.numpy_bert:
BERT -> mean pooling -> normalize; all-MiniLM-L6-v2 among them), then its MatMul weights are quantized by
onnxruntime's own dynamic quantizer. Both files are built once per machine and model into the per-user cache
(`$STUDIO_MODEL_CACHE`, else ~/.cache/training-data-studio/models, as the base model's conversion is) and reused by
every workspace. Vectors from this runtime are cached under their own model id (`<model>@int8`): they are never
mixed with float32 ones.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from engine.linking.numpy_bert import NumpyBert
from engine.models_home import model_cache_dir

OPSET = 17
RUNTIME_SUFFIX = "@int8"


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def supports(location: str | Path) -> bool:
    """The architectures the graph below reproduces: the numpy encoder's, with the exact (erf) GELU."""
    from engine.linking import numpy_bert

    if not numpy_bert.supports(location):
        return False
    config = numpy_bert._read_json(Path(location) / "config.json") or {}
    return config.get("hidden_act") == "gelu"


def _cache_dir() -> Path:
    return model_cache_dir() / "embeddings-onnx"


def _fingerprint(location: Path) -> str:
    digest = hashlib.sha1()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        path = location / name
        stat = path.stat()
        digest.update(f"{name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def _graph(model: NumpyBert):
    """The BERT encoder as an ONNX graph: input_ids (int64 [B, L]), attention_mask (float [B, L]) ->
    last_hidden_state (float [B, L, H]). Weights are the numpy encoder's (dense ones already transposed)."""
    from onnx import TensorProto, helper, numpy_helper

    w = model._w
    hidden = w["embeddings.word_embeddings.weight"].shape[1]
    heads = model.heads
    size = hidden // heads
    nodes, initializers = [], []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    counter = iter(range(1_000_000))

    def node(op: str, inputs: list[str], **attributes) -> str:
        out = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], **attributes))
        return out

    def layer_norm(x: str, prefix: str) -> str:
        return node("LayerNormalization", [x, const(f"{prefix}.weight", w[f"{prefix}.weight"]),
                                           const(f"{prefix}.bias", w[f"{prefix}.bias"])],
                    axis=-1, epsilon=model.eps)

    def dense(x: str, prefix: str) -> str:
        return node("Add", [node("MatMul", [x, const(f"{prefix}.weight", w[f"{prefix}.weight"])]),
                            const(f"{prefix}.bias", w[f"{prefix}.bias"])])

    words = node("Gather", [const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"])
    length = node("Gather", [node("Shape", ["input_ids"]), const("one_index", np.array(1, dtype=np.int64))])
    positions = node("Range", [const("zero", np.array(0, dtype=np.int64)), length,
                               const("step", np.array(1, dtype=np.int64))])
    position = node("Gather", [const("position_embeddings", w["embeddings.position_embeddings.weight"]), positions])
    x = node("Add", [node("Add", [words, position]),
                     const("token_type_0", w["embeddings.token_type_embeddings.weight"][0])])
    x = layer_norm(x, "embeddings.LayerNorm")
    # (1 - mask) * float32 min, as [B, 1, 1, L]: padded tokens get no attention
    inverted = node("Sub", [const("one_float", np.array(1.0, dtype=np.float32)), "attention_mask"])
    bias = node("Mul", [inverted, const("mask_min", np.array(np.finfo(np.float32).min, dtype=np.float32))])
    bias = node("Unsqueeze", [bias, const("axes_1_2", np.array([1, 2], dtype=np.int64))])
    split_shape = const("split_heads", np.array([0, 0, heads, size], dtype=np.int64))
    merge_shape = const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1 / math.sqrt(size), dtype=np.float32))
    root2 = const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    one = const("one_gelu", np.array(1.0, dtype=np.float32))
    if model.config.get("hidden_act") != "gelu":
        raise ValueError("the ONNX runtime covers BERT models with the exact (erf) GELU")
    for layer in range(model.layers):
        p = f"encoder.layer.{layer}."

        def split(name: str, p=p, x=x) -> str:
            return node("Transpose", [node("Reshape", [dense(x, f"{p}attention.self.{name}"), split_shape])],
                        perm=[0, 2, 1, 3])

        q, k, v = split("query"), split("key"), split("value")
        scores = node("Add", [node("Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), scale]),
                              bias])
        attention = node("Softmax", [scores], axis=-1)
        context = node("Reshape", [node("Transpose", [node("MatMul", [attention, v])], perm=[0, 2, 1, 3]),
                                   merge_shape])
        x = layer_norm(node("Add", [dense(context, f"{p}attention.output.dense"), x]),
                       f"{p}attention.output.LayerNorm")
        inner = dense(x, f"{p}intermediate.dense")
        gelu = node("Mul", [node("Mul", [inner, half]),
                            node("Add", [node("Erf", [node("Div", [inner, root2])]), one])])
        x = layer_norm(node("Add", [dense(gelu, f"{p}output.dense"), x]), f"{p}output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "length"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "length", hidden])],
        initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="training-data-studio")


def build(location: str | Path, model: NumpyBert | None = None, quantized: bool = True) -> Path:
    """The int8 (or float32) ONNX file for this model folder, built once into the per-user cache (atomic: a
    half-written file is never used)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    location = Path(location)
    target = _cache_dir() / f"{location.name}-{_fingerprint(location)}-{'int8' if quantized else 'float32'}.onnx"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model = model or NumpyBert(location)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        float_path, int8_path = Path(scratch) / "float.onnx", Path(scratch) / "int8.onnx"
        onnx.save(_graph(model), str(float_path))
        if not quantized:
            os.replace(float_path, target)
            return target
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        os.replace(int8_path, target)
    return target


class OnnxBert:
    """Tokenize like the numpy encoder, run the int8 graph, mean-pool and normalize."""

    def __init__(self, location: str | Path, threads: int | None = None, quantized: bool = True):
        import onnxruntime as ort

        self.numpy = NumpyBert(location)
        self.max_seq_length = self.numpy.max_seq_length
        self.offsets = self.numpy.offsets
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(build(location, self.numpy, quantized)), options,
                                            providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        hidden = int(self.numpy.config["hidden_size"])
        if not texts:
            return np.zeros((0, hidden), dtype=np.float32)
        all_ids = self.numpy._ids(texts)
        order = sorted(range(len(texts)), key=lambda index: len(all_ids[index]), reverse=True)
        result = np.zeros((len(texts), hidden), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            length = max(len(all_ids[index]) for index in chosen)
            ids = np.full((len(chosen), length), self.numpy.pad_id, dtype=np.int64)
            mask = np.zeros((len(chosen), length), dtype=np.float32)
            for row, index in enumerate(chosen):
                ids[row, :len(all_ids[index])] = all_ids[index]
                mask[row, :len(all_ids[index])] = 1.0
            states = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            weights = mask[:, :, None]
            pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
            if self.numpy.normalize:
                pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
            result[chosen] = pooled
        return result
