"""`python -m bench waits [--data DIR] [--repeat K] [--max-tokens N]`: what a person waits through, phase by phase,
beside mlx-lm's own time for the same work.

1. Start -> a usable adapter, on the offline default model with the default (quick) preset and the demo's exported
   pairs (built into a temporary folder unless --data names an MLX folder):
   - conversion of the base model (once per machine): the studio's mlx reader against transformers' GGUF loader
     and save_pretrained (mlx-lm has no GGUF converter; this was the studio's converter before);
   - the launcher (`start_run`, timed from the call to the moment the run is marked usable, the phases from its
     task status) against `python -m mlx_lm lora` with the same model, data, config and environment (OpenBLAS),
     timed from process start to exit, its phases from its own output lines;
   - evaluation, which the studio runs after the adapter is usable (not part of the wait), beside mlx-lm's
     `lora --test` on the same adapter.
2. Send -> first token on Compare, with the page's own code path (served choice, shared model cache, prompt layout,
   generation on the server's mlx thread) against mlx-lm's `load` and `stream_generate` on the same prompt: cold
   (the model loaded on Send, as before this issue) and warm (the page loads its models in the background when it
   draws, so Send finds them ready).
App share = (studio - mlx-lm) / studio, per wait. Each measurement runs in a child process with the server's
environment (OpenBLAS preloaded on Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def demo_data(folder: Path) -> Path:
    """The demo's linked pairs, exported as an MLX folder the way the Validation page exports them."""
    from engine.config import PipelineConfig
    from engine.dataset.export import export_dataset
    from engine.demo import build_demo
    from engine.extract import extract
    from engine.pipeline import link_and_write
    from engine.store import Workspace

    config = PipelineConfig.load(build_demo(folder / "demo"))
    extract(config, config.workspace)
    link_and_write(config, config.workspace)
    result = export_dataset(config.output_file, Workspace.open(config.workspace), name="default")
    return Path(result.folder)


def _env() -> dict:
    from engine.training.launcher import worker_environment

    env, _ = worker_environment(True)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def measure_conversion(work: Path) -> dict:
    code = (
        "import sys, time, pathlib\n"
        "started = time.perf_counter()\n"
        "from engine.training.models import convert_gguf, smollm2_gguf_path\n"
        "if sys.argv[1] == 'studio':\n"
        "    convert_gguf(smollm2_gguf_path(), pathlib.Path(sys.argv[2]))\n"
        "else:\n"
        "    import torch\n"
        "    from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "    gguf = smollm2_gguf_path()\n"
        "    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)\n"
        "    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)\n"
        "    model.hf_quantizer = None\n"
        "    del model.config.quantization_config\n"
        "    model.save_pretrained(sys.argv[2])\n"
        "    tokenizer.save_pretrained(sys.argv[2])\n"
        "print(time.perf_counter() - started)\n"
    )
    result = {}
    for name in ("studio", "transformers"):
        out = work / f"convert-{name}"
        out.mkdir()
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, name, str(out)], env=_env(), capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"conversion with {name} failed: {done.stderr[-1500:]}")
        result[name] = time.perf_counter() - began
        shutil.rmtree(out)
    return result


def measure_launcher(data: Path, work: Path) -> dict:
    """start_run -> usable (and -> completed), with the phase timeline read from the task status."""
    from engine.processes import task_status
    from engine.store import Workspace
    from engine.training.launcher import TASK_KIND, plan_run, start_run
    from engine.training.runs import get_run

    ws = Workspace.open(work / f"ws-{time.monotonic_ns()}")
    plan = plan_run(data, None)
    began = time.perf_counter()
    run_id = start_run(ws, plan)
    phases: dict[str, float] = {}
    usable = None
    while True:
        status = task_status(ws.root, TASK_KIND)
        now = time.perf_counter() - began
        if status is not None and status.phase not in phases:
            phases[status.phase] = now
        if usable is None and status is not None and status.phase in ("evaluating", "done"):
            usable = now
        if status is not None and not status.running:
            break
        time.sleep(0.05)
    run = get_run(ws, run_id)
    if run.status != "completed":
        raise SystemExit(f"the studio's run failed: {run.error}\n{run.log_tail}")
    return {"usable": usable, "completed": time.perf_counter() - began, "phases": phases, "run_id": run_id,
            "adapters": str(ws.path("runs", run_id, "adapters")), "model": run.model_path, "config": run.config,
            "tokens_per_second": run.tokens_per_second}


def measure_mlx_lm(model: str, data: Path, config: dict, work: Path) -> dict:
    """`python -m mlx_lm lora` with the same settings: wall time to exit and its phases from its output."""
    adapters = work / f"direct-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "mlx_lm", "lora", "--model", model, "--data", str(data), "--train",
               "--iters", str(config["iters"]), "--batch-size", str(config["batch_size"]),
               "--num-layers", str(config["num_layers"]), "--learning-rate", str(config["learning_rate"]),
               "--steps-per-report", str(config["steps_per_report"]), "--steps-per-eval", str(config["steps_per_eval"]),
               "--max-seq-length", str(config["max_seq_length"]), "--adapter-path", str(adapters),
               "--val-batches", str(config["val_batches"]), "--save-every", str(config["save_every"]),
               "--seed", str(config["seed"])]
    began = time.perf_counter()
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=work)
    phases = {}
    for line in process.stdout:
        text = _ANSI.sub("", line)
        for marker, name in (("Loading pretrained model", "loading"), ("Loading datasets", "loading data"),
                             ("Trainable parameters", "training")):
            if marker in text and name not in phases:
                phases[name] = time.perf_counter() - began
    process.wait()
    if process.returncode:
        raise SystemExit("mlx_lm lora failed")
    return {"usable": time.perf_counter() - began, "phases": phases, "adapters": str(adapters)}


def measure_mlx_lm_test(model: str, data: Path, adapters: str, config: dict) -> float:
    command = [sys.executable, "-m", "mlx_lm", "lora", "--model", model, "--data", str(data), "--test",
               "--adapter-path", adapters, "--batch-size", str(config["batch_size"]),
               "--max-seq-length", str(config["max_seq_length"]), "--test-batches", str(config["eval_batches"])]
    began = time.perf_counter()
    subprocess.run(command, env=_env(), capture_output=True, check=True)
    return time.perf_counter() - began


def first_token_child(adapters: str, data: str, max_tokens: int) -> dict:
    """In one process with the server's environment: Send -> first token as the Compare page does it, cold and
    warm, and mlx-lm's own load + stream_generate on the same prompt text."""
    import mlx.core as mx  # noqa: F401  (imported here so both sides start with mlx already imported)

    from engine.chat.generate import GenerationSettings, interleave_on_mlx_thread, stream_answer
    from engine.chat.layout import example_prompts
    from engine.chat.models import ModelCache, adapter_choice, load_chat_model, on_mlx_thread

    prompt = example_prompts(Path(data))[0].prompt
    settings = GenerationSettings(max_tokens=max_tokens)
    tuned = adapter_choice(adapters, data_dir=data)
    picks = {"left": tuned.base(), "right": tuned}

    def page_send(cache: ModelCache) -> tuple[float, dict]:
        began = time.perf_counter()
        marks = {}
        models = {side: cache.get(choice) for side, choice in picks.items()}
        marks["models ready"] = time.perf_counter() - began
        streams = {side: stream_answer(models[side], prompt, settings) for side in picks}
        marks["prompts laid out"] = time.perf_counter() - began
        cancel = threading.Event()
        for _index, _piece in interleave_on_mlx_thread(list(streams.values()), cancel):
            marks["first token"] = time.perf_counter() - began
            cancel.set()  # as when the person leaves: the generation stops after this token
            break
        on_mlx_thread(lambda: None)  # the next measurement starts from a quiet mlx thread
        return marks["first token"], marks

    def reference(cold: bool, loaded: dict) -> float:
        from mlx_lm import load, stream_generate

        def run() -> float:
            began = time.perf_counter()
            if cold:
                model_path = loaded["path"]
                loaded["base"] = load(model_path)
                loaded["tuned"] = load(model_path, adapter_path=adapters)
            model, tokenizer = loaded["base"]
            text = stream_answer(loaded["chat"], prompt, settings).prompt_text
            next(iter(stream_generate(model, tokenizer, text, max_tokens=1)))
            return time.perf_counter() - began

        return on_mlx_thread(run)

    chat = on_mlx_thread(load_chat_model, picks["left"])
    loaded = {"path": chat.model_path, "chat": chat, "base": (chat.model, chat.tokenizer)}
    result = {"prompt_tokens": len(chat.tokenizer.encode(stream_answer(chat, prompt, settings).prompt_text))}
    cold_cache = ModelCache(mlx_thread=True)  # as the server's
    result["studio_cold"], result["studio_cold_marks"] = page_send(cold_cache)
    result["mlx_lm_cold"] = reference(True, loaded)
    warm, reference_warm = [], []
    for _ in range(3):
        warm.append(page_send(cold_cache)[0])  # models now in the cache, as after the page warmed them
        reference_warm.append(reference(False, loaded))
    result["studio_warm"], result["mlx_lm_warm"] = statistics.median(warm), statistics.median(reference_warm)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench waits")
    parser.add_argument("--data", help="an MLX data folder (default: the demo's pairs, exported)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--skip-training", action="store_true", help="measure Send -> first token only")
    parser.add_argument("--child", nargs=3, metavar=("ADAPTERS", "DATA", "MAX_TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(first_token_child(args.child[0], args.child[1], int(args.child[2]))))
        return 0
    from engine.processes import openblas_library
    from engine.training.models import ensure_default_model

    print(f"OpenBLAS {openblas_library() or 'not available'}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-waits-") as tmp:
        work = Path(tmp)
        data = Path(args.data) if args.data else demo_data(work)
        model = str(ensure_default_model(log=lambda message: None))
        conversion = measure_conversion(work)
        print(f"conversion of the default model: studio {conversion['studio']:.1f} s, transformers (the previous "
              f"converter) {conversion['transformers']:.1f} s", flush=True)
        studio = measure_launcher(data, work)
        direct = measure_mlx_lm(model, data, studio["config"], work)
        share = (studio["usable"] - direct["usable"]) / studio["usable"]
        print(f"Start -> usable adapter: studio {studio['usable']:.1f} s, mlx_lm lora {direct['usable']:.1f} s, "
              f"ratio {studio['usable'] / direct['usable']:.3f}, app share {share:+.1%}", flush=True)
        print("  studio phases (s from Start): " + ", ".join(f"{name} {at:.1f}" for name, at in
                                                              studio["phases"].items()))
        print("  mlx_lm phases (s from start): " + ", ".join(f"{name} {at:.1f}" for name, at in
                                                              direct["phases"].items()))
        evaluation = studio["completed"] - studio["usable"]
        reference_test = measure_mlx_lm_test(model, data, studio["adapters"], studio["config"])
        print(f"evaluation after the adapter is usable: studio {evaluation:.1f} s (held-out loss of adapter and "
              f"base, answers of both), mlx_lm lora --test {reference_test:.1f} s (adapter loss only)", flush=True)
        done = subprocess.run([sys.executable, "-m", "bench", "waits", "--child", studio["adapters"], str(data),
                               str(args.max_tokens)], env=_env(), capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            raise SystemExit(f"the Send measurement failed:\n{done.stderr[-2000:]}")
        send = json.loads(lines[-1])
        for kind in ("cold", "warm"):
            ours, theirs = send[f"studio_{kind}"], send[f"mlx_lm_{kind}"]
            print(f"Send -> first token ({kind}, {send['prompt_tokens']} prompt tokens): studio {ours:.2f} s, "
                  f"mlx-lm {theirs:.2f} s, ratio {ours / theirs:.3f}, app share {(ours - theirs) / ours:+.1%}")
        print("  studio cold timeline (s): " + ", ".join(f"{name} {at:.2f}" for name, at in
                                                          send["studio_cold_marks"].items()))
    return 0
