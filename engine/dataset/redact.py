"""Redaction: each sensitive span becomes a typed placeholder such as `<AWS_ACCESS_KEY_1>`. Within one record the
same value gets the same placeholder in every field, metadata included (so the model still sees that the key in
the input is the key in the code); different values of a kind are numbered 1, 2, ... Findings address the texts
of a record by path (`messages[1].content`, `metadata.sources[0].window_name`), as engine.dataset.gate scans them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from engine.dataset.sensitive import Finding, mask, placeholder_tag
from engine.formats import training_texts

_PATH_PART = re.compile(r"\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]|\.?([A-Za-z_][A-Za-z0-9_]*)")


def masked_segments(text: str, findings: Iterable[Finding]) -> list[tuple[str, str | None]]:
    """`text` cut into (piece, kind) segments for display: kind None for plain text; a sensitive piece is given
    masked (its length as bullets), so a page can highlight where the secret is without showing it."""
    segments: list[tuple[str, str | None]] = []
    cursor = 0
    for finding in sorted(findings, key=lambda finding: finding.start):
        if finding.start < cursor or finding.end > len(text):
            continue
        if finding.start > cursor:
            segments.append((text[cursor:finding.start], None))
        segments.append((mask(text[finding.start:finding.end]), finding.kind))
        cursor = finding.end
    if cursor < len(text):
        segments.append((text[cursor:], None))
    return segments


def parse_path(path: str) -> list[str | int]:
    """`metadata.sources[0].window_name` -> ["metadata", "sources", 0, "window_name"]."""
    parts: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if not match or match.end() == position:
            raise ValueError(f"not a record path: {path!r}")
        if match.group(1) is not None:
            parts.append(int(match.group(1)))
        elif match.group(2) is not None:
            parts.append(json.loads(match.group(2)))
        else:
            parts.append(match.group(3))
        position = match.end()
    return parts


def _get(record, parts: list[str | int]):
    value = record
    for part in parts:
        value = value[part]
    return value


def value_at(record, path: str):
    """The value at a record path such as `metadata.sources[0].window_name`; None when the path is not there."""
    try:
        return _get(record, parse_path(path))
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _set(record, parts: list[str | int], new_value: str) -> None:
    target = record
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = new_value


def _copy(value):
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def redact_record(record, findings: Iterable[Finding]):
    """A copy of `record` with every finding's span replaced by a typed placeholder such as `<AWS_ACCESS_KEY_1>`:
    the same value gets the same number in every field, different values of a kind are numbered 1, 2, ...
    Findings whose offsets no longer fit the text (a stale scan) are skipped."""
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        by_path.setdefault(finding.field, []).append(finding)
    redacted = _copy(record)
    numbers: dict[tuple[str, str], int] = {}  # (tag, value) -> n, shared by the record's fields
    counters: dict[str, int] = {}
    order = [path for path, _ in training_texts(record)]
    order += sorted(path for path in by_path if path not in order)
    for path in order:
        spans = sorted(by_path.get(path, ()), key=lambda finding: finding.start)
        if not spans:
            continue
        try:
            parts = parse_path(path)
            text = _get(record, parts)
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        if not isinstance(text, str):
            continue
        pieces, cursor = [], 0
        for finding in spans:
            if finding.start < cursor or finding.end > len(text):
                continue  # overlapping or stale offsets: the earlier span already covers it
            tag = placeholder_tag(finding.kind)
            value = text[finding.start:finding.end]
            if (tag, value) not in numbers:
                counters[tag] = counters.get(tag, 0) + 1
                numbers[(tag, value)] = counters[tag]
            pieces.append(text[cursor:finding.start])
            pieces.append(f"<{tag}_{numbers[(tag, value)]}>")
            cursor = finding.end
        pieces.append(text[cursor:])
        _set(redacted, parts, "".join(pieces))
    return redacted
