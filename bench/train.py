"""`python -m bench train [--model tiny|default|PATH] [--iters N] [--repeat K] [--blas-iters N]`: launcher overhead.

1. Overhead: the studio launcher (`start_run`, worker process, metrics to SQLite and metrics.jsonl, run record)
   against `python -m mlx_lm lora` run directly with the same config, data and environment (OpenBLAS preloaded
   on Linux for both). Wall time from start to exit, and mean tokens/s over the loss reports (mlx-lm's own
   figure: the launcher records it from the callback, the direct run prints it in its report table). Post-training
   evaluation is off in the launcher here, because the direct run does none; its cost is measured separately.
2. OpenBLAS: the same launcher run with and without the preload (Linux only), as tokens/s.

Runs alternate (direct, launcher, direct, ...) and the median of `--repeat` is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.processes import openblas_library
from engine.store import Workspace
from engine.training.launcher import plan_run, start_run, worker_environment
from engine.training.models import ensure_default_model
from engine.training.runs import wait_for_run

OUT = Path(__file__).parent / "out"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# mlx-lm's report row: iteration, train loss (with a trend arrow), tokens/s, trained tokens
_REPORT = re.compile(r"^\s*(\d+)\s+(\d+\.\d+)\s*[^\d\s]?\s+([\d,]+)\s+[\d.]+[kMG]?\s*$")


def _model(spec: str) -> tuple[str, int]:
    """The model folder and how many layers to adapt."""
    if spec == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.tiny_model import build_tiny_model

        folder = OUT / "tiny-model"
        if not (folder / "config.json").exists():
            build_tiny_model(folder)
        return str(folder), 2
    if spec == "default":
        return str(ensure_default_model()), 8
    return spec, 8


def _data(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tiny_model import write_data_folder

    return write_data_folder(folder, train=120, valid=16, test=0)


def run_direct(model: str, data: Path, config: dict, work: Path, use_openblas: bool = True) -> dict:
    env, _ = worker_environment(use_openblas)
    adapters = work / f"direct-{time.monotonic_ns()}"
    command = [
        sys.executable, "-m", "mlx_lm", "lora", "--model", model, "--data", str(data), "--train",
        "--iters", str(config["iters"]), "--batch-size", str(config["batch_size"]),
        "--num-layers", str(config["num_layers"]), "--learning-rate", str(config["learning_rate"]),
        "--steps-per-report", str(config["steps_per_report"]), "--steps-per-eval", str(config["steps_per_eval"]),
        "--max-seq-length", str(config["max_seq_length"]), "--adapter-path", str(adapters),
        "--val-batches", str(config["val_batches"]), "--save-every", str(config["save_every"]),
    ]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"mlx_lm lora failed: {result.stderr.strip().splitlines()[-1:]}")
    rates = []
    for line in _ANSI.sub("", result.stdout).splitlines():
        match = _REPORT.match(line)
        if match:
            rates.append(float(match.group(3).replace(",", "")))
    if not rates:
        raise SystemExit("could not read tokens/s from mlx_lm lora's report lines")
    return {"wall": wall, "tokens_per_second": statistics.mean(rates), "reports": len(rates)}


def run_launcher(model: str, data: Path, config: dict, work: Path, use_openblas: bool = True) -> dict:
    ws = Workspace.open(work / "ws")
    plan = plan_run(data, model, overrides=config, force=True)
    began = time.perf_counter()
    run_id = start_run(ws, plan, use_openblas=use_openblas)
    run = wait_for_run(ws, run_id, poll_seconds=0.02)
    wall = time.perf_counter() - began
    if run.status != "completed":
        raise SystemExit(f"launcher run failed: {run.error}\n{run.log_tail}")
    return {"wall": wall, "tokens_per_second": run.tokens_per_second, "train_seconds": run.train_seconds}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench train")
    parser.add_argument("--model", default="tiny", help="tiny (built locally), default (SmolLM2-135M) or a folder")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--blas-iters", type=int, default=0,
                        help="iterations for the with/without OpenBLAS comparison (0: skip; slow without it)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    model, layers = _model(args.model)
    config = {"iters": args.iters, "batch_size": args.batch_size, "num_layers": layers, "learning_rate": 1e-4,
              "steps_per_report": max(1, args.iters // 10), "steps_per_eval": args.iters, "val_batches": 4,
              "save_every": args.iters, "max_seq_length": args.max_seq_length, "evaluate": False}
    blas = openblas_library()
    print(f"model {args.model} ({model}), {args.iters} iterations, batch {args.batch_size}, {layers} LoRA layers, "
          f"OpenBLAS {blas or 'not available'}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        data = _data(work / "data")
        direct, launcher = [], []
        for index in range(args.repeat):
            direct.append(run_direct(model, data, config, work))
            launcher.append(run_launcher(model, data, config, work))
            print(f"  round {index + 1}: direct {direct[-1]['wall']:.2f} s {direct[-1]['tokens_per_second']:,.0f} "
                  f"tok/s · launcher {launcher[-1]['wall']:.2f} s {launcher[-1]['tokens_per_second']:,.0f} tok/s",
                  flush=True)
        direct_wall = statistics.median(r["wall"] for r in direct)
        launcher_wall = statistics.median(r["wall"] for r in launcher)
        direct_tps = statistics.median(r["tokens_per_second"] for r in direct)
        launcher_tps = statistics.median(r["tokens_per_second"] for r in launcher)
        print(f"mlx_lm lora direct: wall {direct_wall:.2f} s, {direct_tps:,.0f} tok/s (median of {args.repeat})")
        print(f"studio launcher:    wall {launcher_wall:.2f} s, {launcher_tps:,.0f} tok/s (median of {args.repeat})")
        print(f"ratio launcher/direct: wall {launcher_wall / direct_wall:.3f}x, "
              f"tokens/s {launcher_tps / direct_tps:.3f}x (target: wall at most 1.05x)")
        with_eval = run_launcher(model, data, {**config, "evaluate": True}, work)
        print(f"post-training evaluation (base + adapter held-out loss, 3 generations): "
              f"+{with_eval['wall'] - launcher_wall:.2f} s")
        if args.blas_iters and blas:
            short = {**config, "iters": args.blas_iters, "steps_per_report": 1, "steps_per_eval": args.blas_iters,
                     "save_every": args.blas_iters}
            fast = run_launcher(model, data, short, work, use_openblas=True)
            slow = run_launcher(model, data, short, work, use_openblas=False)
            speedup = fast["tokens_per_second"] / slow["tokens_per_second"]
            print(f"OpenBLAS ({args.blas_iters} iterations): with {fast['tokens_per_second']:,.1f} tok/s "
                  f"(training {fast['train_seconds']:.1f} s), without {slow['tokens_per_second']:,.1f} tok/s "
                  f"(training {slow['train_seconds']:.1f} s): {speedup:.1f}x")
    return 0
