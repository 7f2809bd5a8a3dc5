"""One collected training example and the views every stage needs of it: its content hash, its prompt and answer
text, its size, and its lines in mlx-lm's chat or completions format.

Formats (seed 002): instruction `{"instruction", "input", "output"}`, chat `{"messages": [{role, content}, ...]}`,
completion `{"prompt", "completion"}`; each record also carries a `metadata` object, which is never part of the
content hash (the same pair found again with other metadata is the same example).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from engine.dataset.dedup import pair_hash
from engine.dataset.export import to_completion
from engine.errors import StudioError, shown_label

ROLES = ("system", "user", "assistant")


class CollectError(StudioError):
    """Collection cannot run as asked (a missing conversation log, an unknown source, too few examples, ...)."""


@dataclass
class Example:
    """A candidate example as a source reader produced it, before it is scored and stored."""

    source: str  # commits | docs | conversations | linked
    format: str  # instruction | chat | completion
    origin: str  # where it came from: commit sha, doc path#section, file:line, sha:file
    record: dict  # the training content plus `metadata`
    source_time: str | None = None  # ISO 8601 UTC

    @property
    def content_hash(self) -> str:
        return content_hash(self.record, self.format)


@dataclass(frozen=True)
class Skip:
    """A source item left out, with the reason (counted per reason) and where it was (file:line, sha, ...)."""

    reason: str
    where: str
    detail: str | None = None  # the one sentence a person reads, when it says more than the reason


def malformed_reason(error: str) -> str:
    """The counted reason for a JSONL line engine.dataset.jsonl could not read (its sentence says more)."""
    for marker, reason in (("not valid JSON", "not valid JSON"), ("expected an object", "not a JSON object"),
                           ("not valid UTF-8", "not UTF-8 text"), ("longer than", "line too long"),
                           ("nested too deeply", "nested too deeply")):
        if marker in error:
            return f"malformed line: {reason}"
    return "malformed line"


def content_hash(record: dict, fmt: str) -> str:
    """sha1 of the training content. Instruction pairs use engine.dataset.dedup.pair_hash, the key review decisions
    are recorded under, so a decision on a pair also applies to the same pair collected here."""
    if fmt == "instruction":
        return pair_hash(record)
    if fmt == "chat":
        key = ["chat", [[message.get("role"), message.get("content")] for message in record.get("messages", [])]]
    else:
        key = ["completion", record.get("prompt"), record.get("completion")]
    return hashlib.sha1(json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def _render_turns(messages: list[dict]) -> str:
    """Earlier turns of a conversation as one prompt text (for completions and the dedup/scoring views)."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    labels = {"system": "System", "user": "User", "assistant": "Assistant"}
    return "\n\n".join(f"{labels.get(message['role'], message['role'])}: {message['content']}" for message in messages)


def prompt_and_answer(record: dict, fmt: str) -> tuple[str, str]:
    """(everything the model is given, what it must answer): the last assistant turn is the answer of a chat."""
    if fmt == "instruction":
        return to_completion(record)["prompt"], record["output"]
    if fmt == "chat":
        messages = record["messages"]
        last = max(index for index, message in enumerate(messages) if message["role"] == "assistant")
        return _render_turns(messages[:last]), messages[last]["content"]
    return record["prompt"], record["completion"]


def training_text(record: dict, fmt: str) -> str:
    """All the text a model trains on for this example (what tokens and characters are counted over)."""
    if fmt == "chat":
        return "\n".join(message["content"] for message in record["messages"])
    prompt, answer = prompt_and_answer(record, fmt)
    return f"{prompt}\n{answer}"


def instruction_view(record: dict, fmt: str) -> dict:
    """The example as an instruction pair (dedup compares these)."""
    if fmt == "instruction":
        return {"instruction": record["instruction"], "input": record.get("input") or "", "output": record["output"]}
    prompt, answer = prompt_and_answer(record, fmt)
    return {"instruction": prompt, "input": "", "output": answer}


def to_chat_line(record: dict, fmt: str) -> dict:
    """mlx-lm's chat format: {"messages": [...]} (an instruction's context follows its instruction)."""
    if fmt == "chat":
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in record["messages"]]}
    prompt, answer = prompt_and_answer(record, fmt)
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def to_completion_line(record: dict, fmt: str) -> dict:
    """mlx-lm's completions format: {"prompt", "completion"} (earlier chat turns are rendered into the prompt)."""
    prompt, answer = prompt_and_answer(record, fmt)
    return {"prompt": prompt, "completion": answer}


def format_problems(record: dict, fmt: str) -> list[str]:
    """What keeps a record from being an example of its format at all (missing, empty or mistyped fields)."""
    if fmt == "instruction":
        from engine.dataset.quality import format_problems as instruction_problems

        return instruction_problems(record)
    if fmt == "completion":
        return [f"{name} is missing or empty" for name in ("prompt", "completion")
                if not isinstance(record.get(name), str) or not record[name].strip()]
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["messages is not a non-empty list"]
    problems = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"message {index + 1} is not an object")
        elif message.get("role") not in ROLES:
            problems.append(f"message {index + 1} has role {shown_label(message.get('role'))}, not system, user or "
                            "assistant")
        elif not isinstance(message.get("content"), str) or not message["content"].strip():
            problems.append(f"message {index + 1} has no text")
    if not problems and not any(message["role"] == "assistant" for message in messages):
        problems.append("no assistant message")
    return problems
