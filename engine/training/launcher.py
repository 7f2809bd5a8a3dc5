"""Start LoRA training with mlx-lm out of process and record it as a run in the workspace.

Config layers, lowest first: DEFAULTS < preset < YAML config file (mlx-lm's own keys) < explicit parameters.
The resolved config is saved as runs/<id>/config.json; mlx-lm writes adapter_config.json beside the adapters.
The worker (`python -m engine.training._worker train <workspace> <run id>`) runs as the workspace's "train" task
(engine/processes.py: one status file with phase, progress, elapsed time and an estimate; one run at a time; reaped
when it ends) in its own process group, with its output in runs/<id>/train.log; on Linux, OpenBLAS is preloaded when
installed (20-30x faster mlx on CPU).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import utc_now, zulu_now
from engine.errors import StudioError
from engine.files import write_atomic
from engine.formats import mlx_record_format
from engine.processes import TaskBusy, engine_environment, preload_openblas, start_task, task_status
from engine.store import Workspace
from engine.training.models import BaseModel, resolve_base_model

WARN_BELOW_SAMPLES = 50  # the train_model seed's warning level: below it an adapter overfits badly

DEFAULTS: dict = {
    "iters": 100,
    "batch_size": 1,
    "learning_rate": 1e-5,
    "num_layers": 8,
    "max_seq_length": 2048,
    "lora_rank": 8,
    "lora_scale": 20.0,
    "lora_dropout": 0.0,
    "grad_checkpoint": False,
    "grad_accumulation_steps": 1,
    "mask_prompt": False,
    "fine_tune_type": "lora",
    "optimizer": "adam",
    "steps_per_report": 10,
    "steps_per_eval": 50,
    "val_batches": 25,
    "save_every": 100,
    "seed": 0,
    "evaluate": True,
    "eval_batches": 25,
    "generation_prompts": 3,
    "generation_tokens": 48,
    "max_repetition_rate": 0.3,
    "min_samples": 100,  # the orchestrator seed's readiness threshold; fewer needs force
}

# "full" is train_model.py's CONFIG (100 iters, batch 1, lr 1e-5, 8 layers), "8gb" train_8gb.py's memory preset.
PRESETS: dict[str, dict] = {
    "full": {},
    "8gb": {
        "batch_size": 1,
        "grad_accumulation_steps": 4,
        "max_seq_length": 512,
        "grad_checkpoint": True,
        "lora_rank": 4,
        "lora_scale": 2.0,
        "num_layers": 8,
        "learning_rate": 1e-4,
    },
    # The first run a newcomer starts: a couple of minutes on a 2-core CPU with the default model, a learning rate
    # high enough that the adapter visibly changes the answers, a loss point every step for the live chart, and a
    # short evaluation (after the adapter is already usable). Validation only at the first and last step, on two
    # batches: on the demo each validation pass cost as much as three training steps.
    "quick": {"iters": 20, "batch_size": 1, "learning_rate": 2e-4, "max_seq_length": 1024, "steps_per_report": 1,
              "steps_per_eval": 20, "val_batches": 2, "eval_batches": 4, "generation_prompts": 2},
}
DEFAULT_PRESET = "quick"
PRESET_ALIASES = {"default": "full"}  # the name "full" had before "quick" became the default
PRESETS_FILE = "presets.json"  # in the workspace: presets saved from the Training page (name -> parameters)
_PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}")

PARAMETER_HELP: dict[str, str] = {
    "iters": "Training steps; each step sees one batch.",
    "batch_size": "Samples per step; 1 for 8 GB machines.",
    "learning_rate": "Adam learning rate; 1e-5 is conservative, 1e-4 learns faster and may overfit small data.",
    "num_layers": "How many of the last transformer layers get LoRA adapters; -1 for all.",
    "max_seq_length": "Longer samples are truncated to this many tokens; 512 for 8 GB machines.",
    "lora_rank": "Rank of the LoRA matrices: higher learns more, costs more memory.",
    "lora_scale": "LoRA scaling factor (alpha / rank).",
    "grad_checkpoint": "Recompute activations in the backward pass: less memory, about 30% slower.",
    "grad_accumulation_steps": "Accumulate gradients over this many steps before an update (effective batch).",
    "mask_prompt": "Compute the loss on the completion only, not on the prompt.",
    "steps_per_report": "Report the training loss every this many steps.",
    "steps_per_eval": "Compute the validation loss every this many steps.",
    "min_samples": "Refuse to train on fewer training samples than this unless forced.",
}

_INT_KEYS = {
    "iters", "batch_size", "num_layers", "max_seq_length", "lora_rank", "grad_accumulation_steps",
    "steps_per_report", "steps_per_eval", "val_batches", "save_every", "seed", "eval_batches",
    "generation_prompts", "generation_tokens", "min_samples",
}
_FLOAT_KEYS = {"learning_rate", "lora_scale", "lora_dropout", "max_repetition_rate"}
_BOOL_KEYS = {"grad_checkpoint", "mask_prompt", "evaluate"}
_CHOICES = {"fine_tune_type": {"lora", "dora"}, "optimizer": {"adam", "adamw", "sgd", "adafactor", "muon"}}
# mlx-lm YAML keys that name the same thing as ours.
_YAML_ALIASES = {"lora_parameters": None, "grad_accum_steps": "grad_accumulation_steps", "lora_layers": "num_layers"}
_YAML_IGNORED = {"model", "data", "train", "test", "adapter_path", "config", "resume_adapter_file", "test_batches"}


@dataclass
class DataFolder:
    """What an MLX data folder holds: sample counts per split and the detected format."""

    path: Path
    data_format: str
    train: int
    valid: int
    test: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class LaunchPlan:
    """Everything decided before a process starts: resolved config, data counts, model, warnings."""

    config: dict
    data: DataFolder
    model: BaseModel
    preset: str
    warnings: list[str]


def resolve_config(preset: str = DEFAULT_PRESET, config_file: str | os.PathLike | None = None,
                   overrides: dict | None = None, saved: dict[str, dict] | None = None) -> dict:
    """Layer DEFAULTS < preset (built in, or one of the `saved` presets) < YAML file < overrides (None values
    ignored) and validate every value."""
    known = {**(saved or {}), **PRESETS}
    preset = PRESET_ALIASES.get(preset, preset) if preset not in known else preset
    if preset not in known:
        raise StudioError(f"Unknown preset {preset!r}; choose one of {', '.join(known)}.")
    config = dict(DEFAULTS)
    config.update(known[preset])
    if config_file:
        config.update(_load_yaml_config(Path(config_file).expanduser()))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in DEFAULTS:
            raise StudioError(f"Unknown training parameter {key!r}.")
        config[key] = value
    return _validate(config)


def saved_presets(ws: Workspace) -> dict[str, dict]:
    """Presets saved in this workspace, name -> the parameters they set (on top of the defaults)."""
    path = ws.path(PRESETS_FILE)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StudioError(f"The saved presets in {path} cannot be read ({exc}); fix or delete the file.") from None
    if not isinstance(loaded, dict):
        raise StudioError(f"The saved presets in {path} must be a JSON object of name -> parameters.")
    return {name: values for name, values in loaded.items() if isinstance(values, dict)}


def save_preset(ws: Workspace, name: str, values: dict) -> dict:
    """Save (or replace) a named preset in the workspace; returns the parameters stored. Built-in names are
    reserved; every value is checked as a run would check it."""
    name = (name or "").strip()
    if not _PRESET_NAME.fullmatch(name):
        raise StudioError("A preset name is 1 to 40 letters, digits, spaces, '.', '_' or '-', starting with a letter "
                          "or digit.")
    if name in PRESETS or name in PRESET_ALIASES:
        raise StudioError(f"{name!r} is a built-in preset; choose another name.")
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise StudioError(f"Unknown training parameter {unknown[0]!r}.")
    checked = _validate({**DEFAULTS, **values})
    stored = {key: checked[key] for key in values}
    presets = saved_presets(ws)
    presets[name] = stored
    write_atomic(ws.path(PRESETS_FILE), json.dumps(presets, indent=2, sort_keys=True) + "\n")
    return stored


def delete_preset(ws: Workspace, name: str) -> None:
    presets = saved_presets(ws)
    if name not in presets:
        raise StudioError(f"There is no saved preset {name!r}.")
    del presets[name]
    write_atomic(ws.path(PRESETS_FILE), json.dumps(presets, indent=2, sort_keys=True) + "\n")


def _load_yaml_config(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise StudioError(f"The training config file {path} does not exist.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise StudioError(f"The training config file {path} is not valid YAML ({str(exc).splitlines()[0]}).") from exc
    if not isinstance(loaded, dict):
        raise StudioError(f"The training config file {path} must hold a mapping of keys to values.")
    result: dict = {}
    for key, value in loaded.items():
        if key in _YAML_IGNORED:
            continue
        if key == "lora_parameters":
            if not isinstance(value, dict):
                raise StudioError(f"lora_parameters in {path} must be a mapping with rank, scale and dropout.")
            for sub in ("rank", "scale", "dropout"):
                if sub in value:
                    result[f"lora_{sub}"] = value[sub]
            continue
        key = _YAML_ALIASES.get(key) or key
        if key not in DEFAULTS:
            raise StudioError(f"The training config file {path} has the unknown key {key!r}.")
        result[key] = value
    return result


def _validate(config: dict) -> dict:
    for key in _INT_KEYS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value))
            except ValueError:
                raise StudioError(f"{key} must be a whole number, not {value!r}.") from None
        config[key] = value
    for key in _FLOAT_KEYS:
        try:
            config[key] = float(config[key])
        except (TypeError, ValueError):
            raise StudioError(f"{key} must be a number, not {config[key]!r}.") from None
        if not math.isfinite(config[key]):
            raise StudioError(f"{key} must be a finite number.")
    for key in _BOOL_KEYS:
        if not isinstance(config[key], bool):
            raise StudioError(f"{key} must be true or false, not {config[key]!r}.")
    for key, allowed in _CHOICES.items():
        if config[key] not in allowed:
            raise StudioError(f"{key} must be one of {', '.join(sorted(allowed))}, not {config[key]!r}.")
    positive = ("iters", "batch_size", "max_seq_length", "lora_rank", "grad_accumulation_steps",
                "steps_per_report", "steps_per_eval", "save_every")
    for key in positive:
        if config[key] < 1:
            raise StudioError(f"{key} must be at least 1, not {config[key]}.")
    if config["num_layers"] == 0 or config["num_layers"] < -1:
        raise StudioError(f"num_layers must be at least 1 (or -1 for all layers), not {config['num_layers']}.")
    if config["learning_rate"] <= 0:
        raise StudioError(f"learning_rate must be above 0, not {config['learning_rate']}.")
    if not 0 <= config["lora_dropout"] < 1:
        raise StudioError(f"lora_dropout must be between 0 and 1, not {config['lora_dropout']}.")
    return config


def inspect_data_folder(path: str | os.PathLike) -> DataFolder:
    """Count samples per split and detect the format from the first line, as mlx-lm does (formats.md 4).

    Raises a StudioError naming the file and line for a blank line, a line that is not a JSON object, or a
    first line with none of prompt+completion, messages, text.
    """
    if not str(path).strip():
        raise StudioError("Choose a data folder first: an MLX data folder holding train.jsonl and valid.jsonl.")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise StudioError(f"The data folder {folder} does not exist.")
    train_file = folder / "train.jsonl"
    if not train_file.is_file():
        raise StudioError(f"The data folder {folder} has no train.jsonl; export a dataset into it first.")
    counts, formats = {}, {}
    for split in ("train", "valid", "test"):
        file = folder / f"{split}.jsonl"
        counts[split], formats[split] = _scan_jsonl(file) if file.is_file() else (0, None)
    if counts["train"] == 0:
        raise StudioError(f"{train_file} is empty.")
    data_format = formats["train"]
    for split in ("valid", "test"):
        if formats[split] and formats[split] != data_format:
            raise StudioError(
                f"{folder / (split + '.jsonl')} is in {formats[split]} format but train.jsonl is in {data_format}."
            )
    warnings = []
    if counts["valid"] == 0:
        warnings.append("There is no valid.jsonl, so no validation loss will be reported.")
    return DataFolder(folder.resolve(), data_format, counts["train"], counts["valid"], counts["test"], warnings)


def _scan_jsonl(file: Path) -> tuple[int, str | None]:
    count, data_format = 0, None
    with open(file, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise StudioError(f"{file} line {number} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position "
                                  f"{exc.start}); save the file as UTF-8.") from None
            if not line.strip():
                if handle.read().strip():  # a trailing blank line is harmless; one in the middle breaks mlx-lm
                    raise StudioError(f"{file} line {number} is blank; mlx-lm stops loading at a blank line.")
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StudioError(f"{file} line {number} is not valid JSON ({exc.msg}).") from None
            if not isinstance(record, dict):
                raise StudioError(f"{file} line {number} is not a JSON object.")
            if data_format is None:
                data_format = _detect_format(record, file)
            count += 1
    return count, data_format



def _detect_format(record: dict, file: Path) -> str:
    if found := mlx_record_format(record):
        return found
    raise StudioError(
        f"The first line of {file} has the keys {sorted(record)}; mlx-lm expects prompt and completion, "
        f"messages, or text."
    )


def plan_run(data_dir: str | os.PathLike, model: str | None = None, preset: str = DEFAULT_PRESET,
             config_file: str | os.PathLike | None = None, overrides: dict | None = None,
             force: bool = False, saved: dict[str, dict] | None = None) -> LaunchPlan:
    """Check everything that can be checked before starting a process; refuse thin data unless forced."""
    config = resolve_config(preset, config_file, overrides, saved)
    data = inspect_data_folder(data_dir)
    base = resolve_base_model(model)
    warnings = list(data.warnings)
    minimum = config["min_samples"]
    if data.train < minimum and not force:
        raise StudioError(
            f"{data.path} has {data.train} training samples, fewer than the minimum of {minimum}; an adapter "
            f"trained on so few mostly memorises them, so add data or force the run."
        )
    if data.train < WARN_BELOW_SAMPLES:
        warnings.append(f"Only {data.train} training samples: below {WARN_BELOW_SAMPLES} the adapter will overfit.")
    elif data.train < minimum:
        warnings.append(f"{data.train} training samples is below the minimum of {minimum}; trained because forced.")
    if data.train < config["batch_size"]:
        raise StudioError(
            f"batch_size is {config['batch_size']} but {data.path} has only {data.train} training samples."
        )
    if data.valid and data.valid < config["batch_size"]:
        raise StudioError(
            f"batch_size is {config['batch_size']} but valid.jsonl has only {data.valid} samples; lower batch_size."
        )
    if config["mask_prompt"] and data.data_format == "text":
        raise StudioError("mask_prompt needs prompt/completion or chat data; this data folder is plain text.")
    return LaunchPlan(config=config, data=data, model=base, preset=preset, warnings=warnings)


def worker_environment(use_openblas: bool = True) -> tuple[dict, str | None]:
    """The environment for an mlx process: the engine importable, OpenBLAS preloaded when available."""
    env = engine_environment()
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("COLUMNS", "100")  # rich draws mlx-lm's report table at this width in the log
    return env, preload_openblas(env) if use_openblas else None


def new_run_id() -> str:
    return utc_now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


TASK_KIND = "train"  # one training run at a time per workspace, reported like every other long job


def active_training(ws: Workspace):
    """The training task running in this workspace (engine.processes status: phase, progress, elapsed, estimate),
    or None."""
    status = task_status(ws.root, TASK_KIND)
    return status if status is not None and status.running else None


def task_run_id(status) -> str | None:
    """The run a training task works on (its arguments are `train <workspace> <run id>`)."""
    return status.args[-1] if status is not None and len(status.args) >= 3 else None


def start_run(ws: Workspace, plan: LaunchPlan, use_openblas: bool = True) -> str:
    """Record the run, start its worker as the workspace's training task and return the run id at once (the run
    goes on alone). A second run while one is going is refused (TaskBusy): the machine trains one at a time."""
    running = active_training(ws)
    if running is not None:
        raise TaskBusy(f"Training run {task_run_id(running)} is still going ({running.describe()}); wait for it to "
                       "finish or stop it first.")
    run_id = new_run_id()
    run_dir = ws.path("runs", run_id)
    run_dir.mkdir(parents=True, exist_ok=False)
    record = {
        "run_id": run_id,
        "data_dir": str(plan.data.path),
        "data_format": plan.data.data_format,
        "base_model": plan.model.spec,
        "model_kind": plan.model.kind,
        "preset": plan.preset,
        "config": plan.config,
        "warnings": plan.warnings,
    }
    write_atomic(run_dir / "config.json", json.dumps(record, indent=2) + "\n")
    env, blas = worker_environment(use_openblas)
    with ws.transaction() as conn:
        conn.execute(
            "INSERT INTO training_runs(id, status, phase, data_dir, base_model, model_path, preset, config_json,"
            " train_samples, valid_samples, test_samples, blas, created_at)"
            " VALUES (?, 'queued', 'starting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, str(plan.data.path), plan.model.spec, str(plan.model.path) if plan.model.path else None,
             plan.preset, json.dumps(plan.config), plan.data.train, plan.data.valid, plan.data.test, blas, zulu_now()),
        )
    try:
        status = start_task(ws.root, TASK_KIND, ["train", str(ws.root.resolve()), run_id],
                            module="engine.training._worker", env=env, log=run_dir / "train.log", cwd=run_dir)
    except StudioError as exc:
        with ws.transaction() as conn:
            conn.execute("UPDATE training_runs SET status='failed', phase='failed', error=?, finished_at=? "
                         "WHERE id=?", (str(exc), zulu_now(), run_id))
        raise
    with ws.transaction() as conn:
        conn.execute("UPDATE training_runs SET pid=?, pid_started=? WHERE id=?",
                     (status.pid, status.pid_started, run_id))
    return run_id


def run_mlx_json(args: list[str], timeout: float = 1800) -> dict:
    """Run a worker sub-command (e.g. `evaluate`) with OpenBLAS preloaded and return the JSON it prints last."""
    env, _ = worker_environment()
    completed = subprocess.run(
        [sys.executable, "-m", "engine.training._worker", *args],
        capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StudioError(f"The evaluation process failed: {tail[0]}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise StudioError(result["error"])
    return result
