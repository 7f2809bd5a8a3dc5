"""A BERT sentence encoder in numpy: the same weights and tokenizer as sentence-transformers, without torch.

Why: importing torch and sentence-transformers costs about 4.5 s per process, which dominated a fresh
`python -m engine link` that only has a hundred new screens to embed. This module runs the model folders that
sentence-transformers would load as Transformer (BERT) -> mean Pooling -> Normalize — all-MiniLM-L6-v2, the default,
among them — straight from `model.safetensors` and `tokenizer.json` (tokenizers + safetensors + numpy load in
about 0.2 s). Its vectors match sentence-transformers' to float32 rounding (a test compares the two on the real
model), so both share one embedding cache. Any other architecture keeps using sentence-transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

_SUPPORTED_ACTIVATIONS = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu"}


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def supports(location: str | Path) -> bool:
    """True when `location` is a local sentence-transformers folder this encoder reproduces exactly."""
    folder = Path(location)
    if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
        return False
    modules = _read_json(folder / "modules.json")
    config = _read_json(folder / "config.json")
    if not isinstance(modules, list) or not isinstance(config, dict):
        return False
    kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules if isinstance(module, dict)]
    if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
        return False
    pooling_path = next(module.get("path", "") for module in modules if str(module.get("type")).endswith("Pooling"))
    pooling = _read_json(folder / pooling_path / "config.json") or {}
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        pooling.get(key) for key in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                     "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                                     "pooling_mode_lasttoken")
    )
    return bool(
        mean_only
        and config.get("model_type") == "bert"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act") in _SUPPORTED_ACTIVATIONS
    )


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x * np.float32(1 / math.sqrt(2))))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x ** 3)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + np.float32(eps)) * weight + bias


class NumpyBert:
    """Tokenize, run the BERT encoder, mean-pool over real tokens and L2-normalize, in float32 numpy."""

    def __init__(self, location: str | Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(location)
        self.config = _read_json(folder / "config.json")
        modules = _read_json(folder / "modules.json")
        self.normalize = any(str(module.get("type", "")).endswith("Normalize") for module in modules)
        st_config = _read_json(folder / "sentence_bert_config.json") or {}
        self.max_seq_length = int(st_config.get("max_seq_length") or self.config["max_position_embeddings"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        weights = load_file(str(folder / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self._w = {name[len(prefix):]: np.ascontiguousarray(value, dtype=np.float32)
                   for name, value in weights.items() if name.startswith(prefix) and value.dtype.kind == "f"}
        # Pre-transpose the dense layers once so every product is x @ W.
        for name in [name for name in self._w if name.endswith(".weight") and self._w[name].ndim == 2
                     and not name.startswith("embeddings.")]:
            self._w[name] = np.ascontiguousarray(self._w[name].T)
        self.heads = int(self.config["num_attention_heads"])
        self.layers = int(self.config["num_hidden_layers"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        act = self.config.get("hidden_act")
        self._act = {"gelu": _gelu, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh,
                     "relu": lambda x: np.maximum(x, 0)}[act]
        self.pad_id = int(self.config.get("pad_token_id") or 0)

    # -- tokenization -------------------------------------------------------------------------------------
    def offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens, without special tokens and without truncation."""
        return [encoding.offsets for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def _ids(self, texts: list[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        limit = self.max_seq_length
        result = []
        for encoding in encodings:
            ids = encoding.ids
            if len(ids) > limit:  # keep [CLS] ... [SEP] like the HF tokenizer's truncation does
                ids = ids[:limit - 1] + ids[-1:]
            result.append(ids)
        return result

    # -- the model ------------------------------------------------------------------------------------------
    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self._w
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][0][None, None, :])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        hidden = x.shape[-1]
        size = hidden // self.heads
        scale = np.float32(1 / math.sqrt(size))
        bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            flat = x.reshape(batch * length, hidden)

            def heads(name: str, flat=flat, p=p) -> np.ndarray:
                out = flat @ w[f"{p}attention.self.{name}.weight"] + w[f"{p}attention.self.{name}.bias"]
                return out.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q, k, v = heads("query"), heads("key"), heads("value")
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            attended = context @ w[f"{p}attention.output.dense.weight"] + w[f"{p}attention.output.dense.bias"]
            flat = _layer_norm(attended + flat, w[f"{p}attention.output.LayerNorm.weight"],
                               w[f"{p}attention.output.LayerNorm.bias"], self.eps)
            inner = self._act(flat @ w[f"{p}intermediate.dense.weight"] + w[f"{p}intermediate.dense.bias"])
            out = inner @ w[f"{p}output.dense.weight"] + w[f"{p}output.dense.bias"]
            x = _layer_norm(out + flat, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"],
                            self.eps).reshape(batch, length, hidden)
        weights = mask[:, :, None]
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled.astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """One float32 vector per text, in order; batches of similar length keep padding low."""
        if not texts:
            return np.zeros((0, int(self.config["hidden_size"])), dtype=np.float32)
        all_ids = self._ids(texts)
        order = sorted(range(len(texts)), key=lambda index: len(all_ids[index]), reverse=True)
        result = np.zeros((len(texts), int(self.config["hidden_size"])), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            length = max(len(all_ids[index]) for index in chosen)
            ids = np.full((len(chosen), length), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chosen), length), dtype=np.float32)
            for row, index in enumerate(chosen):
                ids[row, :len(all_ids[index])] = all_ids[index]
                mask[row, :len(all_ids[index])] = 1.0
            result[chosen] = self._forward(ids, mask)
        return result
