"""A tiny local Llama model and small MLX data folders for fast, real training tests (STACK.md recipe).

`build_tiny_model(folder)` trains a byte-level BPE tokenizer on a few KB of text, wraps it in
`PreTrainedTokenizerFast` with a chat template and saves it beside a randomly initialised
`LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)` model (about 600 KB). mlx-lm loads,
trains and generates with it in seconds. Weights are built in a temp folder by the tests, never committed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_WORDS = (
    "def return class import self value index list dict string number commit file path screen window "
    "error fix update test build config model train adapter version rollback deploy canary loss batch "
    "token layer rank learning rate data folder json line prompt completion assistant user system"
).split()


def _corpus(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
        lines.append(" ".join(words))
    return lines


def build_tiny_model(folder: Path) -> Path:
    """Write a tokenizer and a random 2-layer Llama (safetensors, float32) into `folder`; return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special = ["<|pad|>", "<|bos|>", "<|eos|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(400, seed=1) + [" ".join(_WORDS)], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    import torch

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def write_data_folder(folder: Path, train: int = 120, valid: int = 12, test: int = 8, seed: int = 7) -> Path:
    """An MLX chat data folder (train/valid/test.jsonl) of short, learnable question-answer pairs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    def sample() -> dict:
        word = rng.choice(_WORDS)
        return {
            "messages": [
                {"role": "user", "content": f"repeat {word} twice"},
                {"role": "assistant", "content": f"{word} {word}"},
            ]
        }

    for name, count in (("train", train), ("valid", valid), ("test", test)):
        if count:
            lines = [json.dumps(sample()) for _ in range(count)]
            (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


TINY_OVERRIDES = {"iters": 12, "batch_size": 2, "num_layers": 2, "learning_rate": 2e-3, "steps_per_report": 2,
                  "steps_per_eval": 4, "generation_tokens": 16, "generation_prompts": 3, "val_batches": 25,
                  "eval_batches": 25}


def start_tiny_run(ws, data_dir: Path, model_dir: Path | None, **overrides) -> str:
    """Start a real mlx-lm LoRA run of the tiny model (None: the default base model) through the launcher; return
    its id at once."""
    from engine.training.launcher import plan_run, start_run

    plan = plan_run(data_dir, str(model_dir) if model_dir else None, preset="quick",
                    overrides={**TINY_OVERRIDES, **overrides}, force=True)
    return start_run(ws, plan)


def train_tiny(ws, data_dir: Path, model_dir: Path | None, **overrides):
    """Train the tiny model to the end and return the run record (fails the test if the run did not complete)."""
    from engine.training.runs import wait_for_run

    run = wait_for_run(ws, start_tiny_run(ws, data_dir, model_dir, **overrides), timeout=180)
    assert run.status == "completed", f"{run.error}\n{run.log_tail}"
    return run


def stop_active_runs(ws) -> None:
    """Teardown: stop whatever run a failed test left going, so no training process outlives the test."""
    from engine.training.runs import list_runs, stop_run

    for run in list_runs(ws):
        if run.active:
            stop_run(ws, run.id)
