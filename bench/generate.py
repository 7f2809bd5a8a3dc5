"""`python -m bench generate [--model default|tiny|PATH] [--adapter DIR] [--max-tokens N] [--repeat K]`: chat speed.

1. Overhead: the app's generation (`engine.chat.generate.stream_answer`, streamed piece by piece as the Compare
   page and the generate verb consume it) against `mlx_lm.generate` with the same loaded model, the same laid-out
   prompt and the same settings (greedy, same max tokens). Both must produce the same text; tokens/s is the
   number of generated tokens over the wall time of the whole call, and the ratio app / mlx-lm is the figure
   (target >= 0.95). Runs alternate (mlx-lm, app, mlx-lm, ...) after one warm-up each; medians are reported, and
   the ratio of the best runs too (on a shared machine the least disturbed estimate).
2. Time to first token: the app's wall time from the call to the first streamed piece (prompt processing
   included), beside mlx-lm's own prompt-processing time from `stream_generate`.
3. Two columns: base and base + adapter streamed in turn (`interleave`, as the Compare page does) against the
   two answers one after the other.
Each measurement set runs in a child process, on Linux with and without OpenBLAS preloaded (STACK.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"
PROMPT = ("Instruction: Add retry with exponential backoff to the forecast client\n"
          "Input: Screen Context: the fetch_forecast call fails at once when the API returns 503.\n\n"
          "Task: Modify weatherly/client.py\nOutput:")


def _model(spec: str) -> str:
    if spec == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.tiny_model import build_tiny_model

        folder = OUT / "tiny-model"
        if not (folder / "config.json").exists():
            build_tiny_model(folder)
        return str(folder)
    if spec == "default":
        from engine.training.models import ensure_default_model

        return str(ensure_default_model())
    return spec


def measure(model: str, adapter: str | None, max_tokens: int, repeat: int) -> dict:
    """One process: load once, then alternate mlx_lm.generate and the app's stream; return the figures."""
    import mlx.core as mx
    from mlx_lm import generate, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from engine.chat.generate import GenerationSettings, interleave, stream_answer
    from engine.chat.models import ModelCache, adapter_choice, base_choice

    cache = ModelCache()
    base = cache.get(base_choice(model))
    settings = GenerationSettings(max_tokens=max_tokens)
    prompt_text = stream_answer(base, PROMPT, settings).prompt_text

    def reference() -> tuple[float, str]:
        started = time.perf_counter()
        text = generate(base.model, base.tokenizer, prompt_text, max_tokens=max_tokens,
                        sampler=make_sampler(temp=0.0))
        return time.perf_counter() - started, text

    def app():
        started = time.perf_counter()
        stream = stream_answer(base, PROMPT, settings)
        for _piece in stream:
            pass
        return time.perf_counter() - started, stream

    def reference_prompt_seconds() -> float:
        response = next(iter(stream_generate(base.model, base.tokenizer, prompt_text, max_tokens=2)))
        return response.prompt_tokens / response.prompt_tps

    reference(), app()  # warm-up: first calls compile and allocate
    ref_walls, app_walls, first_tokens, ref_prompt = [], [], [], []
    tokens, text = 0, ""
    for _ in range(repeat):
        wall, ref_text = reference()
        ref_walls.append(wall)
        wall, stream = app()
        app_walls.append(wall)
        first_tokens.append(stream.stats.first_token_seconds)
        ref_prompt.append(reference_prompt_seconds())
        if stream.text != ref_text:
            raise SystemExit("the app and mlx_lm.generate produced different text with the same greedy settings")
        tokens, text = stream.stats.tokens, stream.text
    result = {
        "model": model, "max_tokens": max_tokens, "repeat": repeat, "tokens": tokens,
        "prompt_tokens": stream.stats.prompt_tokens, "answer_start": text[:80],
        "openblas": "openblas" in os.environ.get("LD_PRELOAD", ""),
        "mlx_lm_tokens_per_second": tokens / statistics.median(ref_walls),
        "app_tokens_per_second": tokens / statistics.median(app_walls),
        "app_first_token_seconds": statistics.median(first_tokens),
        "mlx_lm_prompt_seconds": statistics.median(ref_prompt),
        "walls": {"mlx_lm": ref_walls, "app": app_walls},
    }
    result["ratio"] = result["app_tokens_per_second"] / result["mlx_lm_tokens_per_second"]
    # best of the runs: the estimate least disturbed by other processes on a shared machine
    result["ratio_best"] = min(ref_walls) / min(app_walls)
    if adapter:
        tuned = cache.get(adapter_choice(adapter, model))
        base_plain = cache.get(base_choice(model, tuned.choice.data_dir))
        started = time.perf_counter()
        one_by_one = [stream_answer(chat, PROMPT, settings).consume() for chat in (base_plain, tuned)]
        sequential = time.perf_counter() - started
        streams = [stream_answer(chat, PROMPT, settings) for chat in (base_plain, tuned)]
        started = time.perf_counter()
        for _ in interleave(streams):
            pass
        together = time.perf_counter() - started
        assert [s.text for s in streams] == [s.text for s in one_by_one]
        both = sum(s.stats.tokens for s in streams)
        result["two_columns"] = {"tokens": both, "sequential_seconds": sequential, "interleaved_seconds": together,
                                 "interleaved_tokens_per_second": both / together,
                                 "first_token_seconds": [s.stats.first_token_seconds for s in streams]}
    mx.clear_cache()
    return result


def _child(args: argparse.Namespace, model: str, preload: str | None) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                      env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bench", "generate", "--child", "--model", model,
               "--max-tokens", str(args.max_tokens), "--repeat", str(args.repeat)]
    if args.adapter:
        command += ["--adapter", args.adapter]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the measuring process failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench generate")
    parser.add_argument("--model", default="default", help="default (SmolLM2-135M-Instruct), tiny, or a folder")
    parser.add_argument("--adapter", help="an adapter folder for the two-column measurement")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-blas-comparison", action="store_true", help="measure with OpenBLAS only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.model, args.adapter, args.max_tokens, args.repeat)))
        return 0
    from engine.processes import openblas_library

    model = _model(args.model)
    blas = openblas_library()
    modes = [("OpenBLAS", blas)] if blas else []
    if not blas or not args.no_blas_comparison:
        modes.append(("mlx CPU BLAS" if sys.platform.startswith("linux") else "default", None))
    print(f"model {args.model} ({model}), greedy, {args.max_tokens} max tokens, median of {args.repeat}, "
          f"{os.cpu_count()} cores")
    results = {}
    for name, preload in modes:
        result = _child(args, model, preload)
        results[name] = result
        print(f"  {name:<13} mlx_lm.generate {result['mlx_lm_tokens_per_second']:7.1f} tok/s · app "
              f"{result['app_tokens_per_second']:7.1f} tok/s · ratio {result['ratio']:.3f} "
              f"(best runs {result['ratio_best']:.3f}) · "
              f"{result['tokens']} tokens · first token {result['app_first_token_seconds']:.3f} s "
              f"(mlx-lm prompt processing {result['mlx_lm_prompt_seconds']:.3f} s, "
              f"{result['prompt_tokens']} prompt tokens)", flush=True)
        if "two_columns" in result:
            two = result["two_columns"]
            print(f"  {'':<13} two columns: {two['tokens']} tokens interleaved in {two['interleaved_seconds']:.2f} s "
                  f"({two['interleaved_tokens_per_second']:.1f} tok/s) vs one after the other "
                  f"{two['sequential_seconds']:.2f} s; first tokens at "
                  + ", ".join(f"{value:.3f} s" for value in two["first_token_seconds"]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generate.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written {OUT / 'generate.json'}")
    return 0
