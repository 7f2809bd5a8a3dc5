"""Record formats in one place: what a line of training data is, how it is checked, hashed and converted, and
which of its fields hold the text a model trains on (what the sensitive-data scan and redaction walk).

Two vocabularies meet here. mlx-lm detects a data line's format from its keys (../reference/formats.md section 4):
`prompt` + `completion` -> completions, `messages` -> chat, `text` -> text. The studio's collected examples come
in three formats of their own (seed 002): instruction `{"instruction", "input", "output"}` (the seeds' pairs), chat
`{"messages": [{role, content}, ...]}` and completion `{"prompt", "completion"}`; each also carries a `metadata`
object, which is never part of the content hash (the same pair found again with other metadata is the same item).

JSONL files are read robustly: every line yields either a record or a one-sentence reason, never an exception.
Truncated lines, non-UTF-8 bytes, lone surrogate escapes, values that are not objects, blank lines and oversized
lines are reported with their line number; memory stays bounded by `max_line_bytes` whatever the file holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudioError, shown_label
from engine.text import byte_size

ROLES = ("system", "user", "assistant")
SEED_FIELDS = ("instruction", "input", "output")  # the seeds' pair: an instruction, its context, the code written
# The fields a model trains on, besides the `content` of each chat message (and of each message of an Apple adapter
# line, a bare list of messages): the sensitive-data scan reads them one by one, redaction rewrites them.
TEXT_FIELDS = ("instruction", "input", "output", "prompt", "completion", "text")


# ------------------------------------------------------------------------------------------------------ detecting

def mlx_record_format(record: dict) -> str | None:
    """The format mlx-lm detects from a data line, in its order: completions, chat, text; None if none."""
    if "prompt" in record and "completion" in record:
        return "completions"
    if "messages" in record:
        return "chat"
    if "text" in record:
        return "text"
    return None


def record_format(record: dict) -> str | None:
    """chat | completions | text | seed (the seeds' instruction/input/output), or None; mlx-lm's order."""
    if found := mlx_record_format(record):
        return found
    if all(key in record for key in SEED_FIELDS):
        return "seed"
    return None


# ------------------------------------------------------------------------------------------------------- checking

def instruction_problems(record: dict) -> list[str]:
    """What keeps a record from being an instruction pair at all: missing or mistyped fields."""
    problems = []
    for name in ("instruction", "output"):
        value = record.get(name)
        if value is None:
            problems.append(f"missing {name}")
        elif not isinstance(value, str):
            problems.append(f"{name} is a {type(value).__name__}, not text")
        elif not value.strip():
            problems.append(f"empty {name}")
    value = record.get("input", "")
    if value is not None and not isinstance(value, str):
        problems.append(f"input is a {type(value).__name__}, not text")
    metadata = record.get("metadata", {})
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(f"metadata is a {type(metadata).__name__}, not an object")
    return problems


def format_problems(record: dict, fmt: str = "instruction") -> list[str]:
    """What keeps a record from being an example of its format (instruction, chat or completion) at all: missing,
    empty or mistyped fields. An empty list means the record can be converted and trained on."""
    if fmt == "instruction":
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


# -------------------------------------------------------------------------------------------------------- hashing

def pair_hash(record: dict) -> str:
    """Identity of a pair's content (instruction, input, output), independent of metadata and line order."""
    key = json.dumps([record.get("instruction"), record.get("input"), record.get("output")], ensure_ascii=False)
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


def content_hash(record: dict, fmt: str) -> str:
    """sha1 of the training content. Instruction pairs use `pair_hash`, the key review decisions are recorded
    under, so a decision on a pair also applies to the same pair collected as an example."""
    if fmt == "instruction":
        return pair_hash(record)
    if fmt == "chat":
        key = ["chat", [[message.get("role"), message.get("content")] for message in record.get("messages", [])]]
    else:
        key = ["completion", record.get("prompt"), record.get("completion")]
    return hashlib.sha1(json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


# ----------------------------------------------------------------------------------------------------- converting

def to_completion(record: dict) -> dict:
    """One pair as an mlx-lm completions line: the instruction (and its context, when there is one) is the
    prompt, the code is the completion."""
    prompt = record["instruction"].strip()
    context = (record.get("input") or "").strip()
    if context:
        prompt = f"{prompt}\n\n{context}"
    return {"prompt": prompt, "completion": record["output"]}


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


# ---------------------------------------------------------------------------------------- the texts of a record

def training_texts(record) -> list[tuple[str, str]]:
    """(path, text) of every text a model trains on, in record order: the TEXT_FIELDS, then each message's
    content (`messages[2].content`; `[1].content` for an Apple adapter line, which is the list of messages)."""
    if isinstance(record, list):
        return [(f"[{index}].content", message["content"]) for index, message in enumerate(record)
                if isinstance(message, dict) and isinstance(message.get("content"), str)]
    if not isinstance(record, dict):
        return []
    texts = [(name, record[name]) for name in TEXT_FIELDS if isinstance(record.get(name), str)]
    messages = record.get("messages")
    if isinstance(messages, list):
        texts += [(f"messages[{index}].content", message["content"]) for index, message in enumerate(messages)
                  if isinstance(message, dict) and isinstance(message.get("content"), str)]
    return texts


# ----------------------------------------------------------------------------------------------- reading JSONL

# A training pair longer than this is junk for fine-tuning (the quality bound is 50,000 characters); reading stops
# buffering such a line so one runaway line cannot exhaust memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
# A \uD800-\uDFFF escape is valid JSON but only half of a character; alone it cannot be written as UTF-8 again.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(slots=True)
class JsonlLine:
    """Line `line_number` (1-based) of a JSONL file: `record` when it parsed as an object, else `error`."""

    line_number: int
    record: dict | None
    error: str | None
    size: int  # bytes, newline excluded

    @property
    def pair_index(self) -> int:
        """The 0-based index findings use for this line."""
        return self.line_number - 1


def _parse(line_number: int, raw: bytes) -> JsonlLine:
    size = len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JsonlLine(line_number, None, f"line {line_number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} "
                                            f"at position {exc.start})", size)
    if not text.strip():
        return JsonlLine(line_number, None, f"line {line_number} is blank (mlx-lm stops loading at a blank line)", size)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ", the line looks truncated" if not text.rstrip().endswith("}") else ""
        where = f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
        return JsonlLine(line_number, None, f"line {line_number} is not valid JSON ({where}{hint})", size)
    except RecursionError:
        return JsonlLine(line_number, None, f"line {line_number} is nested too deeply to read", size)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        return JsonlLine(line_number, None, f"line {line_number} holds a lone surrogate escape (\\ud800 to \\udfff "
                                            "without its pair), which is half a character and cannot be written back",
                         size)
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")
        return JsonlLine(line_number, None, f"line {line_number} is a JSON {kind}, expected an object", size)
    return JsonlLine(line_number, value, None, size)


def _has_lone_surrogate(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_jsonl(path: str | os.PathLike, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[JsonlLine]:
    """Yield one `JsonlLine` per line of `path`. A missing or unreadable file is a StudioError naming it;
    anything wrong inside the file is reported on its line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise StudioError(f"The training data file {path} does not exist.")
    if path.is_dir():
        raise StudioError(f"{path} is a folder; give the path of a .jsonl file.")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise StudioError(f"The training data file {path} cannot be read: {exc.strerror}.") from exc
    if not stat.S_ISREG(mode):  # opening a FIFO waits for a writer forever; a device like /dev/zero never ends
        raise StudioError(f"{path} is not a regular file (a pipe, device or socket); give the path of a .jsonl file.")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise StudioError(f"The training data file {path} cannot be read: {exc.strerror}.") from exc
    with handle:
        line_number = 0
        while True:
            chunk = handle.readline(max_line_bytes + 1)
            if not chunk:
                return
            line_number += 1
            if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
                size = len(chunk)
                while True:  # skip the rest of the runaway line without keeping it
                    rest = handle.readline(1 << 20)
                    size += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield JsonlLine(line_number, None, f"line {line_number} is {byte_size(size)}, longer than the "
                                                   f"{byte_size(max_line_bytes)} a line may have", size)
                continue
            yield _parse(line_number, chunk.rstrip(b"\r\n"))


def dumps_line(record: dict) -> str:
    """One JSONL line (no newline): compact, UTF-8 kept readable."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def malformed_reason(error: str) -> str:
    """The counted reason for a JSONL line `read_jsonl` could not read (its sentence says more)."""
    for marker, reason in (("not valid JSON", "not valid JSON"), ("expected an object", "not a JSON object"),
                           ("not valid UTF-8", "not UTF-8 text"), ("longer than", "line too long"),
                           ("nested too deeply", "nested too deeply")):
        if marker in error:
            return f"malformed line: {reason}"
    return "malformed line"
