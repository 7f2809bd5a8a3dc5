"""Export a fine-tuned model: the adapter fused into its base model as an MLX folder (what `mlx_lm.fuse` writes,
loadable by mlx-lm and transformers), and beside it a GGUF file for llama.cpp and Ollama where the architecture and
tokenizer allow it.

GGUF: mlx-lm's own writer covers Llama, Mistral and Mixtral with SentencePiece tokenizers; it describes every
tokenizer as SentencePiece, so a byte-level BPE tokenizer (SmolLM2's, GPT-2's) would be split wrongly by
llama.cpp. When the base model came from a GGUF file (the offline default does), the GGUF is written from the
fused weights with that file's own metadata (architecture, tokenizer, merges, chat template), which llama.cpp wrote
and reads. Any other case gets the MLX folder and a one-sentence reason instead of a GGUF file that would not work.

`export_run(ws, run_id)` writes `<workspace>/exports/<run id>/` (`mlx/`, `<name>-f16.gguf`, a `Modelfile` for
`ollama create`, `export.json`); the folder appears by an atomic rename when complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import StudioError
from engine.files import building_folder, write_atomic
from engine.progress import ProgressFn, no_progress
from engine.store import Workspace

GGUF_ARCHITECTURES = ("llama", "mistral", "mixtral")  # what mlx-lm's GGUF writer supports
GGUF_FILE_TYPE_F16 = 1  # llama.cpp's LLAMA_FTYPE_MOSTLY_F16


@dataclass
class ExportResult:
    folder: str
    mlx_folder: str
    gguf_file: str | None
    gguf_skipped: str | None  # why there is no GGUF file
    files: list[dict] = field(default_factory=list)  # {"name", "bytes"} under folder
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def export_folder(ws: Workspace, run_id: str) -> Path:
    return ws.path("exports", run_id)


def gguf_source(model_path: str | Path) -> Path | None:
    """The GGUF file a local base model was converted from, when the studio converted it (the offline default)."""
    from engine.training.models import default_model_path, smollm2_gguf_path

    try:
        if Path(model_path).resolve() == default_model_path().resolve():
            return smollm2_gguf_path()
    except (OSError, StudioError):
        return None
    return None


def gguf_refusal(config: dict, model_folder: Path, source: Path | None) -> str | None:
    """Why no working GGUF can be written for this model, or None when one can."""
    model_type = config.get("model_type")
    if model_type not in GGUF_ARCHITECTURES:
        return (f"GGUF export covers {', '.join(GGUF_ARCHITECTURES)} models; this one is {model_type}, so only the "
                "MLX folder was written.")
    if config.get("quantization") or config.get("quantization_config"):
        return "The base model is quantized, and mlx-lm writes GGUF only from float weights."
    if source is not None:
        return None
    try:
        tokenizer = json.loads((model_folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "The model has no readable tokenizer.json, which the GGUF file must describe."
    pre = tokenizer.get("pre_tokenizer") or {}
    kinds = {pre.get("type")} | {item.get("type") for item in pre.get("pretokenizers", [])}
    if "ByteLevel" in kinds:
        return ("The model's tokenizer is byte-level BPE, which mlx-lm's GGUF writer would describe as SentencePiece "
                "(llama.cpp would split text wrongly), so only the MLX folder was written.")
    return None


def export_run(ws: Workspace, run_id: str, gguf: bool = True, progress: ProgressFn = no_progress) -> ExportResult:
    """Fuse a run's adapter into its base model and write the export folder (replacing an earlier export of the
    same run); raises StudioError in one sentence when the run has no usable adapter."""
    from engine.training.runs import get_run

    run = get_run(ws, run_id)
    adapters = ws.path("runs", run_id, "adapters")
    if not run.usable or not (adapters / "adapters.safetensors").is_file():
        raise StudioError(f"Run {run_id} is {run.status} and has no saved adapter to export; export a run whose "
                          "adapter is ready.")
    model_path = run.model_path or run.base_model
    target = export_folder(ws, run_id)
    with building_folder(target) as staging:
        result = _export_into(staging, model_path, adapters, gguf, progress)
    result.folder = str(target)
    result.mlx_folder = str(target / "mlx")
    result.gguf_file = str(target / Path(result.gguf_file).name) if result.gguf_file else None
    write_atomic(target / "export.json", json.dumps({"run_id": run_id, **result.to_dict()}, indent=2) + "\n")
    return result


def _export_into(folder: Path, model_path: str, adapters: Path, gguf: bool, progress: ProgressFn) -> ExportResult:
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.utils import load, save

    seconds = {}
    clock = time.perf_counter()
    progress("loading the base model and the adapter", 0, None)
    model, tokenizer, config = load(model_path, adapter_path=str(adapters), return_config=True)
    progress("fusing the adapter into the weights", 0, None)
    fused = [(name, module.fuse()) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    seconds["load and fuse"] = time.perf_counter() - clock
    clock = time.perf_counter()
    progress("writing the MLX folder", 0, None)
    mlx_folder = folder / "mlx"
    save(mlx_folder, model_path, model, tokenizer, config, donate_model=False)
    seconds["MLX folder"] = time.perf_counter() - clock
    gguf_file, skipped = None, None
    if gguf:
        source = gguf_source(model_path)
        skipped = gguf_refusal(config, mlx_folder, source)
        if skipped is None:
            clock = time.perf_counter()
            progress("writing the GGUF file", 0, None)
            name = Path(model_path).name.removesuffix("-v2") or "model"
            gguf_file = folder / f"{name}-fine-tuned-f16.gguf"
            write_gguf(dict(tree_flatten(model.parameters())), config, mlx_folder, gguf_file, source)
            (folder / "Modelfile").write_text(f"FROM ./{gguf_file.name}\n", encoding="utf-8")
            seconds["GGUF file"] = time.perf_counter() - clock
    else:
        skipped = "GGUF was not asked for."
    files = sorted(({"name": str(path.relative_to(folder)), "bytes": path.stat().st_size}
                    for path in folder.rglob("*") if path.is_file()), key=lambda item: item["name"])
    return ExportResult(str(folder), str(mlx_folder), str(gguf_file) if gguf_file else None, skipped, files, seconds)


def write_gguf(weights: dict, config: dict, model_folder: Path, out_file: Path, source: Path | None) -> None:
    """Write fused float weights as an F16 GGUF file: with the source GGUF's own metadata when the model came
    from one, else with mlx-lm's writer (SentencePiece tokenizers)."""
    import mlx.core as mx
    from mlx_lm.gguf import convert_to_gguf, permute_weights, translate_weight_names

    if source is None:
        convert_to_gguf(model_folder, weights, config, str(out_file))
        return
    _, metadata = mx.load(str(source), return_metadata=True)
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    tensors = {}
    for name, array in weights.items():
        if "self_attn.q_proj.weight" in name:
            array = permute_weights(array, heads, heads)
        elif "self_attn.k_proj.weight" in name:
            array = permute_weights(array, heads, kv_heads)
        # llama.cpp keeps norms in float32 and the matrices in float16
        tensors[translate_weight_names(name)] = array.astype(mx.float32 if "norm" in name else mx.float16)
    metadata = dict(metadata)
    metadata["general.file_type"] = mx.array(GGUF_FILE_TYPE_F16, dtype=mx.uint32)
    metadata["general.name"] = f"{metadata.get('general.name') or 'model'} (fine-tuned)"
    mx.save_gguf(str(out_file), tensors, metadata)
