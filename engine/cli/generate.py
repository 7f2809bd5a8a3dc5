"""`python -m engine generate [--model M] [--adapter DIR | --version V] --prompt TEXT [--max-tokens N]`"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from engine.cli import add_config_arguments, workspace_of
from engine.store import Workspace

HELP = "answer a prompt with a base model, an adapter folder or a deployed version (streaming)"
DESCRIPTION = ("Stream an answer from a base model, or from a base model with a LoRA adapter. The prompt is "
    "laid out as the adapter's training data was (chat template, prompt/completion, or text).")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="base model: a folder, a hub id, or empty for the offline default "
                        "($STUDIO_CHAT_BASE_MODEL or smollm2-135m-instruct); with an adapter, its own base by default")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--adapter", metavar="DIR", help="an adapter folder mlx-lm wrote (adapters.safetensors)")
    which.add_argument("--version", metavar="V", help="a deployed version: v3, 3, or current")
    parser.add_argument("--prompt", required=True, help="what to ask (use - to read it from stdin)")
    parser.add_argument("--max-tokens", type=int, default=256, help="most tokens to generate (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default); higher samples")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling share (default 1: off)")
    parser.add_argument("--system", help="a system prompt")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--data", help="the data folder whose prompt layout to use (default: the adapter's own)")
    parser.add_argument("--raw", action="store_true", help="send the prompt exactly as typed, with no layout")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the answer and its timings as JSON at the end")


def run(args: argparse.Namespace) -> int:
    from engine.chat.generate import GenerationSettings, stream_answer
    from engine.chat.models import adapter_choice, base_choice, load_chat_model, reexec_with_openblas, version_choice

    reexec_with_openblas()

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    settings = GenerationSettings(args.temperature, args.top_p, args.max_tokens, args.system, args.seed).validated()
    if args.version:
        choice = version_choice(Workspace.open(workspace_of(args)), args.version)
        if args.model or args.data:
            choice = replace(choice, model=args.model or choice.model,
                             data_dir=Path(args.data) if args.data else choice.data_dir)
    elif args.adapter:
        choice = adapter_choice(args.adapter, args.model, args.data)
    else:
        choice = base_choice(args.model, args.data)
    chat_model = load_chat_model(choice)
    stream = stream_answer(chat_model, prompt, settings, raw=args.raw)
    for piece in stream:
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    if args.json:
        print(json.dumps({"model": chat_model.model_path, "adapter": str(choice.adapter_dir or "") or None,
                          "label": choice.name, "layout": chat_model.layout.describe(), "answer": stream.text,
                          "load_seconds": chat_model.load_seconds,
                          "openblas_preloaded": "openblas" in os.environ.get("LD_PRELOAD", ""),
                          **stream.stats.to_dict()}, indent=2))
    else:
        sys.stdout.write("\n")
        print(f"[{choice.name}: {stream.stats.summary()}; loaded in {chat_model.load_seconds:.1f} s]",
              file=sys.stderr)
    return 0
