"""`python -m engine fuse RUN_ID [--no-gguf] [--json]`: export a fine-tuned model (adapter fused into its base)."""

from __future__ import annotations

import argparse
import json

from engine.cli import add_config_arguments, workspace_of

HELP = "export a run's fine-tuned model: a fused MLX folder and a GGUF file for llama.cpp / Ollama"
DESCRIPTION = ("Fuse a training run's adapter into its base model and write <workspace>/exports/RUN_ID/: the "
    "MLX folder (mlx-lm, transformers), and a GGUF file with a Modelfile where the architecture and "
    "tokenizer allow it.")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="a run whose adapter is ready (python -m engine train --list)")
    parser.add_argument("--no-gguf", dest="gguf", action="store_false", help="write the MLX folder only")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from engine.chat.models import reexec_with_openblas
    from engine.processes import current_task
    from engine.progress import no_progress
    from engine.store import Workspace
    from engine.training.export import export_run

    reexec_with_openblas()
    task = current_task()  # the Training page runs this verb in the background and polls it
    result = export_run(Workspace.open(workspace_of(args)), args.run_id, gguf=args.gguf, progress=task or no_progress)
    if task:
        task.finish(result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"Exported run {args.run_id} to {result.folder}")
    print(f"  MLX folder: {result.mlx_folder}")
    print(f"  GGUF file:  {result.gguf_file}" if result.gguf_file else f"  no GGUF file: {result.gguf_skipped}")
    if result.gguf_file:
        print(f"  Ollama:     cd {result.folder} && ollama create my-model -f Modelfile")
    print("  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.seconds.items()))
    return 0
