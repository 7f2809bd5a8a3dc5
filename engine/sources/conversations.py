"""Conversation examples from JSONL logs (collect.conversation_logs: files, or folders of *.jsonl).

Each line is one conversation: `{"messages": [{"role", "content"}, ...]}`, optionally with `"feedback"` (positive /
negative, thumbs up / down, true / false, a number) and `"timestamp"` (ISO 8601 or epoch seconds). Content may also
be a list of `{"type": "text", "text": ...}` parts, as OpenAI-style logs write it. A line that cannot be used is
skipped with its reason and its file and line number, never a crash: not JSON, no messages, an unknown role, an
empty message, no reply, a reply shorter than collect.min_message_chars, or negative feedback (the seed keeps only
"real interactions that were successful"). A trailing user turn that was never answered is dropped, not the line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from engine.clock import iso_utc
from engine.errors import CollectError, shown_label
from engine.formats import ROLES, malformed_reason, read_jsonl
from engine.records import Example, Skip

POSITIVE = frozenset({"positive", "good", "up", "thumbs_up", "thumbsup", "+1", "👍", "like", "liked", "helpful",
                      "correct", "accepted", "yes"})
NEGATIVE = frozenset({"negative", "bad", "down", "thumbs_down", "thumbsdown", "-1", "👎", "dislike", "disliked",
                      "unhelpful", "wrong", "rejected", "no"})


def conversation_files(logs: list[Path]) -> list[Path]:
    """The JSONL files behind collect.conversation_logs, checked before anything is read or written."""
    files: list[Path] = []
    for index, path in enumerate(logs):
        if not path.exists():
            raise CollectError(f"`collect.conversation_logs[{index}]`: {path} does not exist; point it at a JSONL "
                               "file or a folder of .jsonl files, or remove it from the list.")
        if path.is_dir():
            files.extend(sorted(found for found in path.rglob("*.jsonl") if found.is_file()))
        elif not os.access(path, os.R_OK):
            raise CollectError(f"`collect.conversation_logs[{index}]`: {path} cannot be read; check its permissions.")
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def normalize_feedback(value) -> str | None:
    """'positive', 'negative' or None (no feedback, or a value that says neither)."""
    if isinstance(value, dict):
        value = next((value[key] for key in ("rating", "score", "thumbs", "value", "label") if key in value), None)
    if isinstance(value, bool):
        return "positive" if value else "negative"
    if isinstance(value, (int, float)):
        return "positive" if value > 0 else "negative" if value < 0 else None
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "_")
        if text in POSITIVE:
            return "positive"
        if text in NEGATIVE:
            return "negative"
    return None


def _timestamp(value) -> str | None:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds, as JavaScript writes them
            return iso_utc(datetime.fromtimestamp(seconds, tz=timezone.utc))
        if isinstance(value, str) and value.strip():
            return iso_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _text(content) -> str | None:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if parts and all(isinstance(part, str) for part in parts):
            return "\n".join(parts).strip()
    return None


def conversation_example(value: dict, where: str, min_message_chars: int) -> Example | Skip:
    """One log line's conversation as a chat example, or the reason it is skipped."""
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return Skip("no messages list", where)
    cleaned = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            return Skip("message with an unsupported role", where,
                        f"{where}: role {shown_label(role)} (expected system, user or assistant)")
        text = _text(message.get("content"))
        if text is None:
            return Skip("message content is not text", where)
        if not text:
            return Skip("empty message", where)
        cleaned.append({"role": message["role"], "content": text})
    if any(message["role"] == "system" for message in cleaned[1:]):
        return Skip("system message not first", where)
    while cleaned and cleaned[-1]["role"] != "assistant":
        cleaned.pop()  # an unanswered last question teaches nothing
    roles = {message["role"] for message in cleaned}
    if "assistant" not in roles or "user" not in roles:
        return Skip("no user question with an assistant reply", where)
    if any(message["role"] == "assistant" and len(message["content"]) < min_message_chars for message in cleaned):
        return Skip(f"assistant reply shorter than {min_message_chars} characters", where)
    feedback = normalize_feedback(value.get("feedback"))
    if feedback == "negative":
        return Skip("negative feedback", where)
    timestamp = _timestamp(value.get("timestamp"))
    file, _, line = where.rpartition(":")
    record = {"messages": cleaned,
              "metadata": {"source": "conversations", "file": file, "line": int(line), "feedback": feedback,
                           "timestamp": timestamp, "turns": sum(m["role"] == "assistant" for m in cleaned)}}
    return Example("conversations", "chat", where, record, timestamp)


def display_path(path: Path, base_dir: Path) -> str:
    """A log's path relative to the config's folder when it is inside it (stable if the folder moves)."""
    try:
        return path.resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_conversation_examples(files: list[Path], base_dir: Path, min_message_chars: int
                               ) -> Iterator[Example | Skip]:
    """One Example or Skip per non-blank line of each log file."""
    for path in files:
        name = display_path(path, base_dir)
        for line in read_jsonl(path):
            where = f"{name}:{line.line_number}"
            if line.record is None:
                if line.error and " is blank" in line.error:
                    continue  # blank lines separate nothing in a log; skipping them is not worth a report line
                yield Skip(malformed_reason(line.error or ""), where, f"{name}: {line.error}")
                continue
            yield conversation_example(line.record, where, min_message_chars)
