"""The out-of-process mlx-lm entry: `python -m engine.training._worker train <workspace> <run id>`.

It runs as the workspace's training task and reports its phase as it goes (converting the base model once per
machine, loading, training step by step, evaluating). It trains LoRA through mlx-lm's own `train_model` with a
callback that records every loss report (workspace DB + runs/<id>/metrics.jsonl); as soon as the adapter is saved
the run is marked usable ("evaluating"), then held-out losses and a few answers of the adapter and of its base
model (the same weights with the adapter switched off) are compared and the run is completed, or failed with one
sentence and the tail of its log.
`python -m engine.training._worker evaluate ...` prints the held-out losses of a model + adapter as JSON (used by
deploy to compare a candidate with the current version on the same split).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mlx_lm.tuner.callbacks import TrainingCallback

from engine.clock import zulu_now
from engine.processes import current_task
from engine.store import Workspace
from engine.training.evaluate import (
    adapter_manifest,
    check_adapter_files,
    generation_check,
    generation_prompts,
    heldout_losses,
    read_records,
)
from engine.training.models import default_model_ready, materialize, resolve_base_model
from engine.training.runs import read_log_tail


def say(message: str) -> None:
    print(f"[studio] {message}", flush=True)


def loaded_blas() -> str | None:
    """The OpenBLAS library mapped into this process, if any (what the preload actually achieved)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                if "libopenblas" in line:
                    return line.split()[-1]
    except OSError:
        return None
    return None


def mlx_args(config: dict, data_dir: str, model_path: str, adapter_dir: Path) -> types.SimpleNamespace:
    """The namespace mlx-lm's train_model and load_dataset expect, built from our resolved config."""
    return types.SimpleNamespace(
        model=model_path,
        data=data_dir,
        train=True,
        test=False,
        fine_tune_type=config["fine_tune_type"],
        optimizer=config["optimizer"],
        optimizer_config={config["optimizer"]: {}},
        mask_prompt=config["mask_prompt"],
        num_layers=config["num_layers"],
        batch_size=config["batch_size"],
        iters=config["iters"],
        val_batches=config["val_batches"],
        learning_rate=config["learning_rate"],
        steps_per_report=config["steps_per_report"],
        steps_per_eval=config["steps_per_eval"],
        grad_accumulation_steps=config["grad_accumulation_steps"],
        resume_adapter_file=None,
        adapter_path=str(adapter_dir),
        save_every=config["save_every"],
        max_seq_length=config["max_seq_length"],
        grad_checkpoint=config["grad_checkpoint"],
        clear_cache_threshold=0,
        lr_schedule=None,
        lora_parameters={"rank": config["lora_rank"], "dropout": config["lora_dropout"],
                         "scale": config["lora_scale"]},
        seed=config["seed"],
        report_to=None,
        project_name=None,
        trust_remote_code=False,
    )


class MetricsRecorder(TrainingCallback):
    """mlx-lm TrainingCallback: each report becomes a row in training_metrics and a line in metrics.jsonl, written
    through `conn`, one connection for the whole training (opened and closed by the caller)."""

    def __init__(self, ws: Workspace, run_id: str, metrics_file: Path, conn: sqlite3.Connection):
        self.ws, self.run_id, self.metrics_file, self.conn = ws, run_id, metrics_file, conn
        self.started = time.perf_counter()
        self.tokens_per_second: list[float] = []
        self.peak_memory = 0.0

    def _append(self, row: dict) -> None:
        with open(self.metrics_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_train_loss_report(self, info: dict) -> None:
        seconds = time.perf_counter() - self.started
        row = {"kind": "train", "iteration": int(info["iteration"]), "loss": float(info["train_loss"]),
               "learning_rate": float(info["learning_rate"]), "tokens_per_second": float(info["tokens_per_second"]),
               "iterations_per_second": float(info["iterations_per_second"]),
               "trained_tokens": int(info["trained_tokens"]), "peak_memory_gb": float(info["peak_memory"]),
               "seconds": seconds}
        self.tokens_per_second.append(row["tokens_per_second"])
        self.peak_memory = max(self.peak_memory, row["peak_memory_gb"])
        self._append(row)
        with self.ws.transaction(self.conn) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO training_metrics(run_id, kind, iteration, loss, learning_rate,"
                " tokens_per_second, iterations_per_second, trained_tokens, peak_memory_gb, seconds)"
                " VALUES (?, 'train', ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, row["iteration"], row["loss"], row["learning_rate"], row["tokens_per_second"],
                 row["iterations_per_second"], row["trained_tokens"], row["peak_memory_gb"], seconds),
            )
            conn.execute(
                "UPDATE training_runs SET iterations_done=?, final_train_loss=?, tokens_per_second=?,"
                " peak_memory_gb=? WHERE id=?",
                (row["iteration"], row["loss"], sum(self.tokens_per_second) / len(self.tokens_per_second),
                 self.peak_memory, self.run_id),
            )

    def on_val_loss_report(self, info: dict) -> None:
        seconds = time.perf_counter() - self.started
        row = {"kind": "val", "iteration": int(info["iteration"]), "loss": float(info["val_loss"]), "seconds": seconds}
        self._append(row)
        with self.ws.transaction(self.conn) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO training_metrics(run_id, kind, iteration, loss, seconds)"
                " VALUES (?, 'val', ?, ?, ?)",
                (self.run_id, row["iteration"], row["loss"], seconds),
            )
            conn.execute("UPDATE training_runs SET final_val_loss=? WHERE id=?", (row["loss"], self.run_id))


class RunProgress:
    """The run's progress in two places that always agree: the training task's status file (phase, done of total,
    elapsed, estimate; engine/processes.py) and the run's `phase` in the workspace, which the Runs table and
    `train --list` show."""

    def __init__(self, ws: Workspace, run_id: str):
        self.ws, self.run_id = ws, run_id
        self.task = current_task()
        self.phase: str | None = None

    def __call__(self, phase: str, done: int = 0, total: int | None = None) -> None:
        # The run's row first, then the task: whoever reads the task's phase and then the run sees the same phase.
        if phase != self.phase:
            self.phase = phase
            say(f"phase: {phase}")
            with self.ws.transaction() as conn:
                conn.execute("UPDATE training_runs SET phase=? WHERE id=?", (phase, self.run_id))
        if self.task is not None:
            self.task(phase, done, total)

    def counter(self, phase: str, total: int) -> Callable[[], None]:
        """Report `phase` at 0 of `total` now; the function returned reports one more step done each time it is
        called (what mlx-lm's per-step and per-batch hooks call)."""
        done = 0
        self(phase, 0, total)

        def step() -> None:
            nonlocal done
            done += 1
            self(phase, done, total)

        return step

    def finish(self, result: dict) -> None:
        if self.task is not None:
            self.task.finish(result)

    def fail(self, sentence: str) -> None:
        if self.task is not None:
            self.task.fail(sentence)


@contextlib.contextmanager
def iteration_progress(on_iteration):
    """Call `on_iteration()` after every training step mlx-lm takes. mlx-lm reports losses only every
    steps_per_report steps; its progress bar advances every step, so the hook sits there (and is removed after)."""
    try:
        from mlx_lm.cli_ui import TrainUI
    except ImportError:  # another mlx-lm layout: progress then moves with the loss reports only
        yield
        return
    original = TrainUI.advance

    def advance(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        on_iteration()
        return result

    TrainUI.advance = advance
    try:
        yield
    finally:
        TrainUI.advance = original


@contextlib.contextmanager
def adapter_disabled(model):
    """The base model's answers from the trained model: every LoRA layer's scale set to 0 (its output is then
    exactly the frozen base layer's), restored afterwards. DoRA rescales the base weights, so it has no off switch:
    None is yielded and the caller skips the base comparison."""
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    modules = [module for _, module in model.named_modules()]
    if any(isinstance(module, (DoRALinear, DoRAEmbedding)) for module in modules):
        yield None
        return
    layers = [module for module in modules if isinstance(module, (LoRALinear, LoRASwitchLinear, LoRAEmbedding))]
    scales = [layer.scale for layer in layers]
    for layer in layers:
        layer.scale = 0.0
    try:
        yield model
    finally:
        for layer, scale in zip(layers, scales, strict=True):
            layer.scale = scale


def train_command(workspace: str, run_id: str) -> int:
    ws = Workspace.open(workspace)
    run_dir = ws.path("runs", run_id)
    record = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    config = record["config"]
    blas = loaded_blas()
    progress = RunProgress(ws, run_id)
    with ws.transaction() as conn:
        conn.execute(
            "UPDATE training_runs SET status='running', started_at=?, pid=?, blas=? WHERE id=? AND status='queued'",
            (zulu_now(), os.getpid(), blas, run_id),
        )
    say(f"run {run_id}: pid {os.getpid()}, data {record['data_dir']}, model {record['base_model']}")
    say(f"OpenBLAS preloaded: {blas}" if blas else "OpenBLAS not preloaded: mlx uses its reference CPU BLAS (slow).")
    try:
        base = resolve_base_model(record["base_model"])
        if base.kind == "default" and not default_model_ready():
            progress("converting the base model (once per machine)")
        model_path = materialize(base, log=say, progress=progress)
        with ws.transaction() as conn:
            conn.execute("UPDATE training_runs SET model_path=? WHERE id=?", (model_path, run_id))
        status = _train(ws, run_id, run_dir, record, config, model_path, progress)
        progress.finish({"run_id": run_id, "status": status})
        return 0
    except BaseException as exc:  # any failure becomes a failed run with its log tail, never a silent death
        sentence = _one_sentence(exc)
        say(f"FAILED: {sentence}")
        progress.fail(sentence)
        if not isinstance(exc, Exception):
            raise
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        with ws.transaction() as conn:
            conn.execute(
                "UPDATE training_runs SET status='failed', phase='failed', error=?, log_tail=?, finished_at=?"
                " WHERE id=? AND status IN ('queued', 'running', 'evaluating')",
                (sentence, read_log_tail(run_dir / "train.log"), zulu_now(), run_id),
            )
        return 1


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message without its final period (or the exception's name)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def _one_sentence(exc: BaseException) -> str:
    return f"Training failed: {_first_line(exc)}."


def _train(ws: Workspace, run_id: str, run_dir: Path, record: dict, config: dict, model_path: str,
           progress: RunProgress) -> str:
    """Train, mark the adapter usable, then evaluate it; returns the run's final status."""
    from mlx_lm.lora import train_model
    from mlx_lm.tuner.datasets import load_dataset
    from mlx_lm.utils import load

    adapter_dir = run_dir / "adapters"
    args = mlx_args(config, record["data_dir"], model_path, adapter_dir)
    progress("loading the model and data")
    tic = time.perf_counter()
    say(f"loading {model_path}")
    model, tokenizer = load(model_path)
    train_set, valid_set, test_set = load_dataset(args, tokenizer)
    say(f"loaded model and data in {time.perf_counter() - tic:.1f} s: "
        f"{len(train_set)} train, {len(valid_set)} valid, {len(test_set)} test samples")

    with ws.connection() as conn:
        recorder = MetricsRecorder(ws, run_id, run_dir / "metrics.jsonl", conn)
        np.random.seed(config["seed"])  # batch order, as mlx_lm.lora's run() seeds it: same config, same run
        iterations = config["iters"]
        stepped = progress.counter("training", iterations)
        tic = time.perf_counter()
        # An empty validation set is passed as it is: mlx-lm wraps whatever it gets and skips validation when the set
        # is empty, but cannot wrap None.
        with iteration_progress(stepped):
            train_model(args, model, train_set, valid_set, recorder)
        train_seconds = time.perf_counter() - tic
    say(f"trained {iterations} iterations in {train_seconds:.1f} s")

    # The adapter is usable from here: chat can load it while its evaluation runs.
    sanity = check_adapter_files(adapter_dir)
    evaluation: dict = {"sanity": sanity}
    status = "evaluating" if config["evaluate"] else "completed"
    if not config["evaluate"]:
        evaluation["passed"] = sanity["ok"]
    with ws.transaction() as conn:
        conn.execute(
            "UPDATE training_runs SET status=?, phase=?, usable_at=?, finished_at=?, train_seconds=?,"
            " adapter_files_json=?, evaluation_json=? WHERE id=? AND status='running'",
            (status, status if status == "completed" else "evaluating", zulu_now(),
             None if config["evaluate"] else zulu_now(), train_seconds, json.dumps(adapter_manifest(adapter_dir)),
             json.dumps(evaluation), run_id),
        )
    if not config["evaluate"]:
        say("completed")
        return status
    heldout = {"valid": valid_set if len(valid_set) else None, "test": test_set if len(test_set) else None}
    evaluation.update(_evaluate(model, tokenizer, heldout, record, config, progress))
    evaluation["passed"] = sanity["ok"] and evaluation["generation"]["ok"]
    with ws.transaction() as conn:
        conn.execute(
            "UPDATE training_runs SET status='completed', phase='completed', finished_at=?, evaluation_json=?"
            " WHERE id=? AND status='evaluating'",
            (zulu_now(), json.dumps(evaluation), run_id),
        )
    say("completed")
    return "completed"


def _evaluate(model, tokenizer, heldout: dict, record: dict, config: dict, progress: RunProgress) -> dict:
    """Held-out loss of the adapter and of the base model (the same weights with the adapter switched off), and a
    few greedy answers from each: whether the adapter repeats itself, and on how many prompts it answers
    differently from its base."""
    batches = sum(min(config["eval_batches"], len(split) // config["batch_size"])
                  for split in heldout.values() if split is not None and len(split) >= config["batch_size"])
    source = "test" if heldout["test"] is not None else "valid" if heldout["valid"] is not None else "train"
    records = read_records(Path(record["data_dir"]) / f"{source}.jsonl", config["generation_prompts"])
    prompts = generation_prompts(records, tokenizer, config["generation_prompts"])
    total = 2 * batches + 2 * len(prompts)
    advanced = progress.counter("evaluating", total)
    tic = time.perf_counter()
    result: dict = {}
    result["adapter"] = heldout_losses(model, heldout, config["batch_size"], config["max_seq_length"],
                                       config["eval_batches"], on_batch=advanced)
    say(f"adapter held-out loss: {_losses_text(result['adapter'])}")
    result["generation"] = generation_check(model, tokenizer, prompts, config["generation_tokens"],
                                            config["max_repetition_rate"], on_prompt=advanced)
    rate = result["generation"]["repetition_rate"]
    say(f"generation check: {'ok' if result['generation']['ok'] else 'FAILED'}, "
        f"repetition rate {rate if rate is None else round(rate, 3)}")
    result["adapter_seconds"] = time.perf_counter() - tic
    tic = time.perf_counter()
    with adapter_disabled(model) as base:
        if base is not None:
            result["base"] = heldout_losses(base, heldout, config["batch_size"], config["max_seq_length"],
                                            config["eval_batches"], on_batch=advanced)
            say(f"base model held-out loss: {_losses_text(result['base'])}")
            base_answers = generation_check(base, tokenizer, prompts, config["generation_tokens"],
                                            config["max_repetition_rate"], on_prompt=advanced)
            pairs = zip(result["generation"]["samples"], base_answers["samples"], strict=True)
            for sample, base_sample in pairs:
                sample["base_output"] = base_sample["output"]
            changed = sum(sample["output"] != sample["base_output"] for sample in result["generation"]["samples"])
            result["answers_changed"] = {"changed": changed, "prompts": len(prompts)}
            say(f"the adapter answers {changed} of {len(prompts)} held-out prompts differently from its base")
    result["base_seconds"] = time.perf_counter() - tic
    return result


def _losses_text(losses: dict) -> str:
    return ", ".join(f"{name} {value['loss']:.3f} (ppl {value['perplexity']:.2f})" for name, value in losses.items()) \
        or "no held-out split large enough"


def evaluate_command(model_path: str, adapter_dir: str | None, data_dir: str, batch_size: int,
                     max_seq_length: int, num_batches: int, mask_prompt: bool) -> int:
    """Print {"valid": {...}, "test": {...}} for base + adapter on the data folder's held-out splits."""
    try:
        from mlx_lm.tuner.datasets import load_local_dataset
        from mlx_lm.utils import load

        model, tokenizer = load(model_path, adapter_path=adapter_dir)
        options = types.SimpleNamespace(mask_prompt=mask_prompt)
        _, valid_set, test_set = load_local_dataset(Path(data_dir), tokenizer, options)
        splits = {"valid": valid_set if len(valid_set) else None, "test": test_set if len(test_set) else None}
        result = heldout_losses(model, splits, batch_size, max_seq_length, num_batches)
    except Exception as exc:  # reported as one sentence to the deploy step that asked
        print(json.dumps({"error": f"Evaluating {adapter_dir or model_path} failed: {_first_line(exc)}."}))
        return 1
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.training._worker")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train")
    train.add_argument("workspace")
    train.add_argument("run_id")
    evaluate = sub.add_parser("evaluate")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--adapter")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--batch-size", type=int, default=1)
    evaluate.add_argument("--max-seq-length", type=int, default=2048)
    evaluate.add_argument("--num-batches", type=int, default=25)
    evaluate.add_argument("--mask-prompt", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "train":
        return train_command(args.workspace, args.run_id)
    return evaluate_command(args.model, args.adapter, args.data, args.batch_size, args.max_seq_length,
                            args.num_batches, args.mask_prompt)


if __name__ == "__main__":
    sys.exit(main())
