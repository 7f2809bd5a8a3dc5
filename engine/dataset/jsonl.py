"""Reading training-data JSONL robustly: every line yields either a record or a one-sentence reason, never an
exception. Truncated lines, non-UTF-8 bytes, lone surrogate escapes, values that are not objects, blank lines and
oversized lines are reported with their line number; memory stays bounded by `max_line_bytes` whatever the file
holds."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudioError

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


def _size(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB" if size >= 1_048_576 else f"{size:,} bytes"


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
                yield JsonlLine(line_number, None, f"line {line_number} is {_size(size)}, longer than the "
                                                   f"{_size(max_line_bytes)} a line may have", size)
                continue
            yield _parse(line_number, chunk.rstrip(b"\r\n"))


def dumps_line(record: dict) -> str:
    """One JSONL line (no newline): compact, UTF-8 kept readable."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
