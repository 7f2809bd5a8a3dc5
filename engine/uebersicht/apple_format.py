"""Apple Foundation Models adapter-training JSONL (formats.md §3): the writer's serialisation and a validator
that checks every rule, naming the line, the message and the rule broken.

Rules: each line is one JSON array of messages; roles only system/user/assistant with non-empty string content;
at most one system message and only first; `tools` only on the system message, each
`{"type":"function","function":{"name","description","arguments"}}` (`arguments`, not `parameters`);
`response_format` only on a user message, `{"type":"json_schema","json_schema":{"name","schema"}}`, and then the
answering assistant content must be a JSON string; no two consecutive messages with the same role; the last
message is the assistant's.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import StudioError, shown_label

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = {"role", "content", "tools", "response_format"}


def serialize_example(messages: list[dict]) -> str:
    """One JSONL line (no newline): compact, UTF-8 kept as is."""
    return json.dumps(messages, ensure_ascii=False, separators=(",", ":"))


def tool_problems(tool: object) -> list[str]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return ['a tool must be {"type": "function", "function": {...}}']
    function = tool.get("function")
    if not isinstance(function, dict):
        return ['a tool lacks its "function" object']
    problems = []
    if not isinstance(function.get("name"), str) or not function["name"].strip():
        problems.append("a tool function needs a non-empty string name")
    if "description" in function and not isinstance(function["description"], str):
        problems.append("a tool function description must be a string")
    if "parameters" in function:
        problems.append('a tool function uses "parameters"; the Apple format calls it "arguments"')
    elif not isinstance(function.get("arguments"), dict):
        problems.append('a tool function needs an "arguments" JSON Schema object')
    return problems


def _response_format_problems(value: object) -> list[str]:
    if not isinstance(value, dict) or value.get("type") != "json_schema":
        return ['response_format must be {"type": "json_schema", "json_schema": {...}}']
    schema = value.get("json_schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or not isinstance(
        schema.get("schema"), dict
    ):
        return ['response_format.json_schema needs a string "name" and a "schema" object']
    return []


def example_problems(example: object) -> list[str]:
    """Every rule `example` (one parsed line) breaks; empty when it is valid."""
    if not isinstance(example, list):
        return [f"the line is a JSON {type(example).__name__}, expected an array of messages"]
    if not example:
        return ["the array of messages is empty"]
    problems: list[str] = []
    expect_json_answer = False
    for index, message in enumerate(example):
        where = f"message {index}"
        if not isinstance(message, dict):
            problems.append(f"{where} is not an object")
            continue
        role = message.get("role")
        if role not in ROLES:
            problems.append(f"{where} has role {shown_label(role)}, expected one of {', '.join(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"{where} needs a non-empty string content")
        unknown = set(message) - MESSAGE_KEYS
        if unknown:
            problems.append(f"{where} has unknown key(s) {', '.join(sorted(unknown))}")
        if role == "system" and index != 0:
            problems.append(f"{where} is a system message that is not first")
        if "tools" in message:
            if role != "system":
                problems.append(f"{where} carries tools, allowed only on the system message")
            elif not isinstance(message["tools"], list) or not message["tools"]:
                problems.append(f"{where} tools must be a non-empty list")
            else:
                problems += [f"{where}: {p}" for tool in message["tools"] for p in tool_problems(tool)]
        if "response_format" in message:
            if role != "user":
                problems.append(f"{where} carries response_format, allowed only on a user message")
            problems += [f"{where}: {p}" for p in _response_format_problems(message["response_format"])]
        if index and isinstance(example[index - 1], dict) and example[index - 1].get("role") == role:
            problems.append(f"{where} repeats the role {shown_label(role)} of the message before it")
        if role == "assistant" and expect_json_answer and isinstance(content, str):
            try:
                json.loads(content)
            except ValueError:
                problems.append(f"{where} answers a response_format request but its content is not JSON")
        if role == "user":
            expect_json_answer = "response_format" in message
        elif role == "assistant":
            expect_json_answer = False
    last = example[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        problems.append("the last message is not the assistant's")
    return problems


def line_problems(line: str) -> list[str]:
    if not line.strip():
        return ["the line is blank"]
    try:
        example = json.loads(line)
    except ValueError as exc:
        return [f"the line is not JSON ({exc})"]
    return example_problems(example)


def validate_jsonl(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, problem) for every problem in the file; [] when every line is valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudioError(f"The dataset file {path} cannot be read ({exc}).") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it is not a blank line
    return [(number, problem) for number, line in enumerate(lines, 1) for problem in line_problems(line)]
