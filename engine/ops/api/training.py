"""GET /api/training (runs, readiness, deployment), POST /api/train (start a LoRA run) and GET /api/self (seed 003's
training_stats): the same engine.training functions as `python -m engine train` and `deploy`, and the one readiness
of engine.ops.stats that `stats summary` and the Pipeline page show."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from engine import __version__
from engine.config import PipelineConfig
from engine.ops import stats
from engine.ops.api.answers import ConflictError, JsonBody, ok
from engine.ops.api.deps import ConfigPathDep, TrainLockDep, WorkspaceDep
from engine.store import Workspace
from engine.training.launcher import DEFAULT_PRESET, PARAMETER_HELP, PRESETS

RECENT_RUNS = 20

router = APIRouter()


class TrainRequest(JsonBody):
    """The `train` verb's options (engine/cli/train.py), as JSON; unset ones take the preset's values."""

    force: StrictBool = Field(False, description="train even below collect.min_examples_for_training")
    data: StrictStr | None = Field(None, description="an MLX data folder on the server (absolute path); default "
                                                     "<workspace>/datasets/collected, written by export_training")
    model: StrictStr | None = Field(None, description="hub id or local model folder; default the offline default")
    preset: Literal[tuple(PRESETS)] = Field(DEFAULT_PRESET, description="the launcher's presets")  # type: ignore
    iters: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["iters"])
    batch_size: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["batch_size"])
    learning_rate: StrictFloat | None = Field(None, gt=0, description=PARAMETER_HELP["learning_rate"])
    num_layers: StrictInt | None = Field(None, description=PARAMETER_HELP["num_layers"])
    max_seq_length: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["max_seq_length"])
    lora_rank: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["lora_rank"])
    lora_scale: StrictFloat | None = Field(None, description=PARAMETER_HELP["lora_scale"])
    grad_accumulation_steps: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["grad_accumulation_steps"])
    steps_per_report: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["steps_per_report"])
    steps_per_eval: StrictInt | None = Field(None, ge=1, description=PARAMETER_HELP["steps_per_eval"])
    seed: StrictInt | None = Field(None, description="random seed of the run")
    grad_checkpoint: StrictBool | None = Field(None, description=PARAMETER_HELP["grad_checkpoint"])
    mask_prompt: StrictBool | None = Field(None, description=PARAMETER_HELP["mask_prompt"])
    evaluate: StrictBool | None = Field(None, description="compare with the base model and check generation after "
                                                         "training (default true)")


_TRAIN_OVERRIDES = ("iters", "batch_size", "learning_rate", "num_layers", "max_seq_length", "lora_rank",
                    "lora_scale", "grad_accumulation_steps", "steps_per_report", "steps_per_eval", "seed",
                    "grad_checkpoint", "mask_prompt", "evaluate")


def _not_ready(config: PipelineConfig, ws: Workspace, readiness: dict, given: bool) -> str:
    have, needed, folder = readiness["examples"], readiness["min_for_training"], readiness["data_folder"]
    sentence = (f"Not ready to train: {folder} holds {have} examples and {needed} are needed "
                "(collect.min_examples_for_training)")
    if given:
        return sentence + "; add examples or send \"force\": true."
    collected = stats.training_readiness(config, ws.root)["total_samples"]
    if collected > have:
        return (sentence + f"; {collected} collected examples can be exported, so run the export_training job "
                "(POST /api/scheduler/run), or send \"force\": true.")
    return sentence + "; collect more (the mining_code job) and export them, or send \"force\": true."


def run_summary(run) -> dict:
    """The fields of a training run a client lists (the full record is in the workspace and `train --show`)."""
    return {
        "run_id": run.id, "status": run.status, "base_model": run.base_model, "preset": run.preset,
        "data_dir": run.data_dir, "train_samples": run.train_samples, "valid_samples": run.valid_samples,
        "test_samples": run.test_samples, "iterations_done": run.iterations_done, "iters": run.iters,
        "final_train_loss": run.final_train_loss, "final_val_loss": run.final_val_loss,
        "tokens_per_second": run.tokens_per_second, "peak_memory_gb": run.peak_memory_gb,
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
        "error": run.error,
    }


def deployment_summary(ws: Workspace) -> dict:
    """Seed 003's deployment block plus the counts `deploy stats` shows."""
    from engine.training.deploy import current_version, deployment_stats

    stats = deployment_stats(ws)
    current = current_version(ws)
    return {
        "model_version": current.name if current else None,
        "deployed_at": current.deployed_at if current else None,
        "total_versions": stats["versions"],
        "rollback_available": stats["rollback_available"],
        "canary_active": stats["canary_version"] is not None,
        "canary_version": f"v{stats['canary_version']}" if stats["canary_version"] else None,
        "canary_share": stats["canary_share"],
        "versions_by_status": stats["versions_by_status"],
        "last_event": stats["last_event"],
    }


@router.get("/training", summary="Training runs, readiness and deployment")
def training(ws: WorkspaceDep, config_path: ConfigPathDep,
             limit: Annotated[int, Query(ge=1, le=200, description="how many recent runs")] = RECENT_RUNS,
             ) -> JSONResponse:
    from engine.training.runs import list_runs

    config = PipelineConfig.load(config_path)
    runs = list_runs(ws, limit=limit)
    active = next((run.id for run in runs if run.active), None)
    return ok({"runs": [run_summary(run) for run in runs], "active_run": active,
               "readiness": stats.training_readiness(config, ws.root, with_exported=True),
               "deployment": deployment_summary(ws)})


@router.post("/train", summary="Start a LoRA training run", status_code=202,
             responses={409: {"description": "not enough examples, or a run is already active"}})
def train(body: TrainRequest, ws: WorkspaceDep, config_path: ConfigPathDep, train_lock: TrainLockDep,
          ) -> JSONResponse:
    from engine.training.launcher import plan_run, start_run
    from engine.training.runs import list_runs

    config = PipelineConfig.load(config_path)
    with train_lock:
        active = [run for run in list_runs(ws) if run.active]
        if active:
            raise ConflictError(f"Training run {active[0].id} is still {active[0].status}; wait for it to "
                                f"finish or stop it with `python -m engine train --workspace {ws.root} "
                                f"--stop {active[0].id}`.")
        readiness = stats.folder_readiness(config, ws.root, body.data)
        if not readiness["ready_to_train"] and not body.force:
            raise ConflictError(_not_ready(config, ws, readiness, given=bool(body.data)))
        overrides = {key: getattr(body, key) for key in _TRAIN_OVERRIDES}
        overrides["min_samples"] = readiness["min_for_training"]
        # The readiness check above is the gate (examples in the folder, before any split); the launcher's own
        # check counts only train.jsonl, so it is told the run was decided on, and still warns on thin data.
        plan = plan_run(readiness["data_folder"], body.model, body.preset, None, overrides, force=True)
        run_id = start_run(ws, plan)
    return ok({"run_id": run_id, "data_dir": str(plan.data.path), "train_samples": plan.data.train,
               "valid_samples": plan.data.valid, "test_samples": plan.data.test, "model": plan.model.label,
               "iters": plan.config["iters"], "warnings": plan.warnings,
               "log": str(ws.path("runs", run_id, "train.log"))}, status_code=202)


@router.get("/self", summary="What this studio is and its training state (seed 003's training_stats)")
def self_status(ws: WorkspaceDep, config_path: ConfigPathDep) -> JSONResponse:
    from engine.training.runs import list_runs

    config = PipelineConfig.load(config_path)
    runs = list_runs(ws, limit=1)
    last = runs[0] if runs else None
    deployment = deployment_summary(ws)
    readiness = stats.training_readiness(config, ws.root, with_exported=True)
    return ok({
        "name": "Training Data Studio",
        "version": __version__,
        "explanation": ("I turn screen captures, git history, docs and conversations into fine-tuning data, "
                        "train LoRA adapters on it and serve the deployed version."),
        "workspace": str(ws.root),
        "config": str(config_path),
        "training_stats": {
            "model_version": deployment["model_version"],
            "deployed_at": deployment["deployed_at"],
            "last_training": {"run_id": last.id, "samples_count": last.train_samples, "status": last.status,
                              "created_at": last.created_at, "finished_at": last.finished_at} if last else None,
            "training_data": {"total_samples": readiness["total_samples"],
                              "min_for_training": readiness["min_for_training"],
                              "ready_to_train": readiness["ready_to_train"],
                              "exported_samples": readiness["exported"]["examples"],
                              "held_for_review": readiness["held_for_review"]},
            "deployment": {key: deployment[key] for key in ("total_versions", "rollback_available",
                                                            "canary_active")},
        },
    })
