"""What a data folder holds, shown before training: samples per split, the format mlx-lm will detect, the first
samples as a person reads them, and their lengths in the base model's own tokens (with how many will be cut at
max_seq_length), so a surprise shows before minutes of training instead of after."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import StudioError
from engine.formats import mlx_record_format
from engine.training.launcher import inspect_data_folder


@dataclass
class DataPreview:
    folder: str
    data_format: str
    counts: dict[str, int]
    samples: list[dict] = field(default_factory=list)  # {"split", "line", "parts": [(label, text)]}
    tokens: dict | None = None  # {"tokenizer", "mean", "max", "over_limit", "limit", "counted"} or None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _parts(record: dict) -> list[tuple[str, str]]:
    """A record as labelled texts, in the order mlx-lm reads them."""
    kind = mlx_record_format(record)
    if kind == "completions":
        return [("prompt", str(record["prompt"])), ("completion", str(record["completion"]))]
    if kind == "chat":
        return [(str(message.get("role", "?")), str(message.get("content", ""))) for message in record["messages"]
                if isinstance(message, dict)]
    return [("text", str(record.get("text", "")))]


def _tokenizer(model_folder: Path | None):
    """The base model's tokenizer from its tokenizer.json (the tokenizers library alone: fast, no torch), or None."""
    if model_folder is None or not (model_folder / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(model_folder / "tokenizer.json"))
    except Exception:  # an unusual tokenizer.json: the preview goes on without token counts
        return None


def preview_data_folder(folder: str | Path, model_folder: str | Path | None = None, max_seq_length: int | None = None,
                        samples: int = 3, count_limit: int = 5000) -> DataPreview:
    """Counts, format and the first `samples` training samples of an MLX data folder; with `model_folder`, token
    lengths of the training samples (the first `count_limit`), compared with `max_seq_length`."""
    data = inspect_data_folder(folder)
    preview = DataPreview(str(data.path), data.data_format, {"train": data.train, "valid": data.valid,
                                                              "test": data.test}, warnings=list(data.warnings))
    tokenizer = _tokenizer(Path(model_folder) if model_folder else None)
    lengths = []
    with open(data.path / "train.jsonl", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                break
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise StudioError(f"{data.path / 'train.jsonl'} line {number} is not valid JSON.") from exc
            parts = _parts(record)
            if len(preview.samples) < samples:
                preview.samples.append({"split": "train", "line": number, "parts": parts})
            if tokenizer is not None and number <= count_limit:
                lengths.append(sum(len(tokenizer.encode(text, add_special_tokens=False).ids) for _, text in parts))
            elif tokenizer is None and len(preview.samples) >= samples:
                break
    if lengths:
        over = sum(length > max_seq_length for length in lengths) if max_seq_length else 0
        preview.tokens = {"tokenizer": str(model_folder), "mean": statistics.mean(lengths), "max": max(lengths),
                          "counted": len(lengths), "limit": max_seq_length, "over_limit": over}
        if over:
            preview.warnings.append(f"{over} of {len(lengths)} training samples are longer than max_seq_length "
                                    f"{max_seq_length} tokens; mlx-lm cuts them, so their ends are not learned.")
    return preview
