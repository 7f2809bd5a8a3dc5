"""Evaluation of a trained adapter: sanity of its files, generation without degenerate repetition, and held-out
loss and perplexity against the base model on the same split.

`check_adapter_files` and `repetition_rate` are plain Python (the deploy step uses them without mlx); the functions
taking a model run inside an mlx process (the training worker or `_worker evaluate`).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
MAX_ADAPTER_BYTES = 2 * 1024**3  # the orchestrator seed's upper bound; above it something other than LoRA was saved


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adapter_manifest(adapter_dir: Path) -> list[dict]:
    """The files a deployment carries (final adapters and config, not checkpoints), with sizes and sha256."""
    names = [ADAPTER_FILE, ADAPTER_CONFIG]
    return [
        {"name": name, "bytes": (adapter_dir / name).stat().st_size, "sha256": file_sha256(adapter_dir / name)}
        for name in names
        if (adapter_dir / name).is_file()
    ]


def manifest_checksum(manifest: list[dict]) -> str:
    """One sha256 over the sorted name:sha256 lines: equal iff every file is byte-identical."""
    lines = "".join(f"{item['name']}:{item['sha256']}\n" for item in sorted(manifest, key=lambda item: item["name"]))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_adapter_files(adapter_dir: Path) -> dict:
    """Sanity checks: both files present, sizes within bounds, a readable safetensors header with LoRA tensors,
    and an adapter_config.json naming the fine-tune type and layers. Returns {"ok", "problems", "tensors", "bytes"}.
    """
    adapter_dir = Path(adapter_dir)
    problems: list[str] = []
    tensors, size = 0, 0
    weights = adapter_dir / ADAPTER_FILE
    if not weights.is_file():
        problems.append(f"{ADAPTER_FILE} is missing from {adapter_dir}.")
    else:
        size = weights.stat().st_size
        if size == 0 or size > MAX_ADAPTER_BYTES:
            problems.append(f"{ADAPTER_FILE} is {size} bytes, outside 1 byte to 2 GB.")
        else:
            try:
                header = _safetensors_header(weights)
                names = [name for name in header if name != "__metadata__"]
                tensors = len(names)
                if not any("lora" in name for name in names):
                    problems.append(f"{ADAPTER_FILE} holds {tensors} tensors but none of them is a LoRA matrix.")
            except ValueError as exc:
                problems.append(f"{ADAPTER_FILE} is not a valid safetensors file ({exc}).")
    config_file = adapter_dir / ADAPTER_CONFIG
    if not config_file.is_file():
        problems.append(f"{ADAPTER_CONFIG} is missing from {adapter_dir}.")
    else:
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
            missing = [key for key in ("fine_tune_type", "num_layers", "lora_parameters") if key not in config]
            if missing:
                problems.append(f"{ADAPTER_CONFIG} lacks {', '.join(missing)}.")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{ADAPTER_CONFIG} is not valid JSON ({exc}).")
    return {"ok": not problems, "problems": problems, "tensors": tensors, "bytes": size}


def _safetensors_header(path: Path) -> dict:
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError("shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length <= 0 or length > 100 * 1024**2:
            raise ValueError(f"header length {length} is implausible")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a mapping")
    return header


def repetition_rate(tokens: list[int], n: int = 4) -> float:
    """Share of the n-grams in a generation that repeat an n-gram seen earlier in it (0 = none, ~1 = a loop)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple] = set()
    repeats = 0
    for gram in grams:
        if gram in seen:
            repeats += 1
        seen.add(gram)
    return repeats / len(grams)


def perplexity(loss: float | None) -> float | None:
    if loss is None:
        return None
    return math.exp(loss) if loss < 700 else float("inf")


def heldout_losses(model, datasets: dict, batch_size: int, max_seq_length: int, num_batches: int,
                   on_batch=None) -> dict:
    """Mean token loss (and perplexity) of `model` on each named split, through mlx-lm's own evaluate;
    `on_batch()` is called after each batch."""
    from mlx_lm.tuner.datasets import CacheDataset
    from mlx_lm.tuner.trainer import evaluate

    result = {}
    for name, dataset in datasets.items():
        if dataset is None or len(dataset) < batch_size:
            continue
        batches = min(num_batches, len(dataset) // batch_size) if num_batches > 0 else len(dataset) // batch_size
        loss = evaluate(model=model, dataset=CacheDataset(dataset), batch_size=batch_size,
                        num_batches=batches, max_seq_length=max_seq_length, progress_callback=on_batch)
        result[name] = {"loss": loss, "perplexity": perplexity(loss), "batches": batches}
    return result


def generation_prompts(records: list[dict], tokenizer, count: int) -> list[str]:
    """Prompts taken from held-out records: the chat without its last answer, the prompt, or half the text."""
    prompts = []
    for record in records[:count]:
        if "messages" in record:
            messages = [m for m in record["messages"] if m.get("role") != "assistant"] or record["messages"][:1]
            try:
                prompts.append(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            except Exception:  # a tokenizer without a chat template: plain text of the user turns
                prompts.append("\n".join(str(m.get("content", "")) for m in messages))
        elif "prompt" in record:
            # mlx-lm trains prompt/completion data as a user turn of the chat template, so ask the same way
            messages = [{"role": "user", "content": str(record["prompt"])}]
            try:
                prompts.append(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            except Exception:  # a tokenizer without a chat template: mlx-lm could not have used one either
                prompts.append(str(record["prompt"]))
        elif "text" in record:
            text = str(record["text"])
            prompts.append(text[: max(1, len(text) // 2)])
    return prompts


def generation_check(model, tokenizer, prompts: list[str], max_tokens: int, max_repetition: float,
                     on_prompt=None) -> dict:
    """Generate greedily from each prompt; the check fails when nothing comes out or the mean repetition rate
    of the generations exceeds `max_repetition`. `on_prompt()` is called after each answer."""
    from mlx_lm import generate

    samples = []
    for prompt in prompts:
        text = generate(model, tokenizer, prompt=prompt, max_tokens=max_tokens, verbose=False)
        tokens = tokenizer.encode(text, add_special_tokens=False) if text else []
        samples.append({"prompt": prompt[-200:], "output": text, "tokens": len(tokens),
                        "repetition_rate": repetition_rate(tokens)})
        if on_prompt is not None:
            on_prompt()
    produced = [sample for sample in samples if sample["tokens"] > 0]
    rate = sum(sample["repetition_rate"] for sample in produced) / len(produced) if produced else None
    problems = []
    if prompts and not produced:
        problems.append("The model generated no tokens for any held-out prompt.")
    if rate is not None and rate > max_repetition:
        problems.append(f"Generations repeat themselves: repetition rate {rate:.0%} is above {max_repetition:.0%}.")
    return {"ok": not problems, "problems": problems, "repetition_rate": rate, "samples": samples}


def read_records(path: Path, limit: int) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
            if len(records) >= limit:
                break
    return records
