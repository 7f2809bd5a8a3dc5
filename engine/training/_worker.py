"""The out-of-process mlx-lm entry: `python -m engine.training._worker train <workspace> <run id>`.

It loads the base model, measures the base model's held-out loss, trains LoRA through mlx-lm's own
`train_model` with a callback that records every loss report (workspace DB + runs/<id>/metrics.jsonl), then
evaluates the adapter and marks the run completed, or failed with one sentence and the tail of its log.
`python -m engine.training._worker evaluate ...` prints the held-out losses of a model + adapter as JSON (used by
deploy to compare a candidate with the current version on the same split).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
from mlx_lm.tuner.callbacks import TrainingCallback

from engine.store import Workspace
from engine.training.evaluate import (
    adapter_manifest,
    check_adapter_files,
    generation_check,
    generation_prompts,
    heldout_losses,
    read_records,
)
from engine.training.launcher import now_iso
from engine.training.models import materialize, resolve_base_model
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
    """mlx-lm TrainingCallback: each report becomes a row in training_metrics and a line in metrics.jsonl."""

    def __init__(self, ws: Workspace, run_id: str, metrics_file: Path):
        self.ws, self.run_id, self.metrics_file = ws, run_id, metrics_file
        self.conn = ws.connect()
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


def train_command(workspace: str, run_id: str) -> int:
    ws = Workspace.open(workspace)
    run_dir = ws.path("runs", run_id)
    record = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    config = record["config"]
    blas = loaded_blas()
    with ws.transaction() as conn:
        conn.execute(
            "UPDATE training_runs SET status='running', started_at=?, pid=?, blas=? WHERE id=? AND status='queued'",
            (now_iso(), os.getpid(), blas, run_id),
        )
    say(f"run {run_id}: pid {os.getpid()}, data {record['data_dir']}, model {record['base_model']}")
    say(f"OpenBLAS preloaded: {blas}" if blas else "OpenBLAS not preloaded: mlx uses its reference CPU BLAS (slow).")
    try:
        model_path = materialize(resolve_base_model(record["base_model"]), log=say)
        with ws.transaction() as conn:
            conn.execute("UPDATE training_runs SET model_path=? WHERE id=?", (model_path, run_id))
        return _train(ws, run_id, run_dir, record, config, model_path)
    except BaseException as exc:  # any failure becomes a failed run with its log tail, never a silent death
        sentence = _one_sentence(exc)
        say(f"FAILED: {sentence}")
        if not isinstance(exc, Exception):
            raise
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        with ws.transaction() as conn:
            conn.execute(
                "UPDATE training_runs SET status='failed', error=?, log_tail=?, finished_at=?"
                " WHERE id=? AND status IN ('queued', 'running')",
                (sentence, read_log_tail(run_dir / "train.log"), now_iso(), run_id),
            )
        return 1


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message without its final period (or the exception's name)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def _one_sentence(exc: BaseException) -> str:
    return f"Training failed: {_first_line(exc)}."


def _train(ws: Workspace, run_id: str, run_dir: Path, record: dict, config: dict, model_path: str) -> int:
    from mlx_lm.lora import train_model
    from mlx_lm.tuner.datasets import load_dataset
    from mlx_lm.utils import load

    adapter_dir = run_dir / "adapters"
    args = mlx_args(config, record["data_dir"], model_path, adapter_dir)
    tic = time.perf_counter()
    say(f"loading {model_path}")
    model, tokenizer = load(model_path)
    train_set, valid_set, test_set = load_dataset(args, tokenizer)
    say(f"loaded model and data in {time.perf_counter() - tic:.1f} s: "
        f"{len(train_set)} train, {len(valid_set)} valid, {len(test_set)} test samples")
    heldout = {"valid": valid_set if len(valid_set) else None, "test": test_set if len(test_set) else None}
    evaluation: dict = {}
    if config["evaluate"]:
        tic = time.perf_counter()
        evaluation["base"] = heldout_losses(model, heldout, config["batch_size"], config["max_seq_length"],
                                            config["eval_batches"])
        evaluation["base_seconds"] = time.perf_counter() - tic
        say(f"base model held-out loss: {_losses_text(evaluation['base'])}")

    recorder = MetricsRecorder(ws, run_id, run_dir / "metrics.jsonl")
    np.random.seed(config["seed"])  # batch order, as mlx_lm.lora's run() seeds it: same config, same run
    tic = time.perf_counter()
    # An empty validation set is passed as it is: mlx-lm wraps whatever it gets and skips validation when the set is
    # empty, but cannot wrap None.
    train_model(args, model, train_set, valid_set, recorder)
    train_seconds = time.perf_counter() - tic
    say(f"trained {config['iters']} iterations in {train_seconds:.1f} s")

    sanity = check_adapter_files(adapter_dir)
    evaluation["sanity"] = sanity
    if config["evaluate"]:
        tic = time.perf_counter()
        evaluation["adapter"] = heldout_losses(model, heldout, config["batch_size"], config["max_seq_length"],
                                               config["eval_batches"])
        say(f"adapter held-out loss: {_losses_text(evaluation['adapter'])}")
        # prompts from a held-out split when there is one; without valid.jsonl and test.jsonl, from train.jsonl
        source = "test" if heldout["test"] is not None else "valid" if heldout["valid"] is not None else "train"
        records = read_records(Path(record["data_dir"]) / f"{source}.jsonl", config["generation_prompts"])
        prompts = generation_prompts(records, tokenizer, config["generation_prompts"])
        evaluation["generation"] = generation_check(model, tokenizer, prompts, config["generation_tokens"],
                                                    config["max_repetition_rate"])
        evaluation["adapter_seconds"] = time.perf_counter() - tic
        rate = evaluation["generation"]["repetition_rate"]
        say(f"generation check: {'ok' if evaluation['generation']['ok'] else 'FAILED'}, "
            f"repetition rate {rate if rate is None else round(rate, 3)}")
    evaluation["passed"] = sanity["ok"] and evaluation.get("generation", {"ok": True})["ok"]
    manifest = adapter_manifest(adapter_dir)
    with ws.transaction() as conn:
        conn.execute(
            "UPDATE training_runs SET status='completed', finished_at=?, train_seconds=?, adapter_files_json=?,"
            " evaluation_json=? WHERE id=? AND status='running'",
            (now_iso(), train_seconds, json.dumps(manifest), json.dumps(evaluation), run_id),
        )
    say("completed")
    return 0


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
