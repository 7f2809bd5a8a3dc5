"""`python -m engine train`: LoRA-train a base model on an MLX data folder with mlx-lm, recorded as a run.

    python -m engine train --data DIR [--model M] [--preset 8gb] [--iters N ...] [--training-config lora.yaml] [--force]
    python -m engine train --list | --show RUN_ID | --stop RUN_ID
"""

from __future__ import annotations

import argparse
import json

from engine.cli import add_config_arguments, workspace_of
from engine.errors import StudioError
from engine.store import Workspace
from engine.training.launcher import DEFAULT_PRESET, PARAMETER_HELP, PRESETS, plan_run, saved_presets, start_run
from engine.training.models import DEFAULT_BASE_MODEL
from engine.training.runs import get_run, list_runs, run_metrics, stop_run, wait_for_run

_FLAGS = [
    ("--iters", int, "iters"), ("--batch-size", int, "batch_size"), ("--learning-rate", float, "learning_rate"),
    ("--num-layers", int, "num_layers"), ("--max-seq-length", int, "max_seq_length"),
    ("--lora-rank", int, "lora_rank"), ("--lora-scale", float, "lora_scale"),
    ("--grad-accumulation-steps", int, "grad_accumulation_steps"), ("--steps-per-report", int, "steps_per_report"),
    ("--steps-per-eval", int, "steps_per_eval"), ("--seed", int, "seed"), ("--min-samples", int, "min_samples"),
]


def _help(text: str | None) -> str | None:
    """argparse formats help with %: a literal percent sign ("30% slower") must be doubled."""
    return text.replace("%", "%%") if text else text


HELP = "LoRA-train a base model on an MLX data folder (mlx-lm, out of process), or list/stop runs."
DESCRIPTION = ("Train LoRA adapters with mlx-lm. Config layers: defaults < --preset < --training-config YAML < "
    "flags.")


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", help="MLX data folder with train.jsonl and valid.jsonl (and test.jsonl)")
    parser.add_argument("--model", default=None,
                        help=f"hub id, local model folder, or empty for the offline default {DEFAULT_BASE_MODEL}")
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help=f"a built-in preset ({', '.join(PRESETS)}; default {DEFAULT_PRESET}, a short first "
                             "run) or one saved on the Training page")
    parser.add_argument("--training-config", metavar="YAML", help="a YAML file with mlx-lm training options")
    for flag, kind, key in _FLAGS:
        parser.add_argument(flag, type=kind, dest=key, default=None, help=_help(PARAMETER_HELP.get(key)))
    parser.add_argument("--grad-checkpoint", action="store_true", default=None,
                        help=_help(PARAMETER_HELP["grad_checkpoint"]))
    parser.add_argument("--mask-prompt", action="store_true", default=None, help=_help(PARAMETER_HELP["mask_prompt"]))
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false", default=None,
                        help="skip the base-model comparison and generation check after training")
    parser.add_argument("--force", action="store_true", help="train even below --min-samples (default 100)")
    parser.add_argument("--no-openblas", action="store_true", help="do not preload OpenBLAS (Linux; for comparison)")
    parser.add_argument("--detach", action="store_true", help="start the run and return at once")
    parser.add_argument("--list", action="store_true", help="list runs")
    parser.add_argument("--show", metavar="RUN_ID", help="show one run with its metrics")
    parser.add_argument("--stop", metavar="RUN_ID", help="stop a running run")
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def run(args: argparse.Namespace) -> int:
    ws = Workspace.open(workspace_of(args))
    if args.list:
        return _list(ws, args.json)
    if args.show:
        return _show(ws, args.show, args.json)
    if args.stop:
        record = stop_run(ws, args.stop)
        print(f"Run {record.id} stopped after {record.iterations_done} of {record.iters} iterations.")
        return 0
    if not args.data:
        raise StudioError("Say which data folder to train on with --data DIR (a folder holding train.jsonl).")
    overrides = {key: getattr(args, key) for _, _, key in _FLAGS}
    overrides.update(grad_checkpoint=args.grad_checkpoint, mask_prompt=args.mask_prompt, evaluate=args.evaluate)
    plan = plan_run(args.data, args.model, args.preset, args.training_config, overrides, force=args.force,
                    saved=saved_presets(ws))
    for warning in plan.warnings:
        print(f"warning: {warning}")
    run_id = start_run(ws, plan, use_openblas=not args.no_openblas)
    print(f"Run {run_id}: {plan.data.train} train / {plan.data.valid} valid / {plan.data.test} test samples, "
          f"model {plan.model.label}, {plan.config['iters']} iterations; log in {ws.path('runs', run_id, 'train.log')}")
    if args.detach:
        return 0
    try:
        record = wait_for_run(ws, run_id, on_metrics=_print_reports,
                              on_phase=lambda run: print(f"phase: {run.phase}", flush=True))
    except KeyboardInterrupt:
        record = stop_run(ws, run_id)
        print(f"Run {run_id} stopped after {record.iterations_done} iterations.")
        return 130
    return _summary(record)


def memory(gigabytes: float | None) -> str:
    """mlx's peak memory in a unit that shows a real number for tiny and large models alike."""
    if gigabytes is None:
        return "-"
    return f"{gigabytes:.2f} GB" if gigabytes >= 0.1 else f"{gigabytes * 1000:.1f} MB"


def _print_reports(rows: list[dict]) -> None:
    for row in rows:
        if row["kind"] == "train":
            print(f"iter {row['iteration']:>6}  train loss {row['loss']:.3f}  {row['tokens_per_second']:,.0f} tok/s  "
                  f"peak {memory(row['peak_memory_gb'])}", flush=True)
        else:
            print(f"iter {row['iteration']:>6}  val loss   {row['loss']:.3f}", flush=True)


def _summary(record) -> int:
    if record.status != "completed":
        print(f"Run {record.id} {record.status}: {record.error}")
        if record.log_tail:
            print("--- end of log ---\n" + record.log_tail)
        return 1
    print(f"Run {record.id} completed in {record.train_seconds:.1f} s of training: "
          f"{record.tokens_per_second or 0:,.0f} tok/s, peak {memory(record.peak_memory_gb)}, "
          f"adapters in runs/{record.id}/adapters")
    evaluation = record.evaluation
    for split, losses in (evaluation.get("adapter") or {}).items():
        base = (evaluation.get("base") or {}).get(split)
        against = f" against base {base['loss']:.3f} (ppl {base['perplexity']:.2f})" if base else ""
        print(f"{split}: loss {losses['loss']:.3f} (ppl {losses['perplexity']:.2f}){against}")
    if changed := evaluation.get("answers_changed"):
        print(f"The adapter answers {changed['changed']} of {changed['prompts']} held-out prompts differently from "
              "its base model.")
    generation = evaluation.get("generation")
    if generation:
        for problem in generation["problems"]:
            print(f"warning: {problem}")
    return 0


def _list(ws: Workspace, as_json: bool) -> int:
    runs = list_runs(ws)
    if as_json:
        print(json.dumps([{"id": r.id, "status": r.status, "phase": r.phase, "iterations": r.iterations_done,
                           "iters": r.iters,
                           "train_loss": r.final_train_loss, "val_loss": r.final_val_loss,
                           "tokens_per_second": r.tokens_per_second, "base_model": r.base_model} for r in runs],
                         indent=2))
        return 0
    if not runs:
        print("No training runs yet; start one with `python -m engine train --data DIR`.")
        return 0
    for r in runs:
        loss = f"{r.final_val_loss:.3f}" if r.final_val_loss is not None else "-"
        print(f"{r.id}  {r.status_text:<28}  {r.iterations_done:>5}/{r.iters:<5}  val {loss:>7}  {r.base_model}")
    return 0


def _show(ws: Workspace, run_id: str, as_json: bool) -> int:
    record = get_run(ws, run_id)
    if as_json:
        print(json.dumps({**record.__dict__, "metrics": run_metrics(ws, run_id)}, indent=2, default=str))
        return 0
    print(f"{record.id}: {record.status}, {record.iterations_done}/{record.iters} iterations, "
          f"model {record.base_model}")
    _print_reports(run_metrics(ws, run_id))
    if record.status == "completed":
        _summary(record)
    elif record.error:
        print(record.error)
        if record.log_tail:
            print("--- end of log ---\n" + record.log_tail)
    return 0
