"""Redaction: each sensitive span becomes a typed placeholder such as `<AWS_ACCESS_KEY_1>`. Within one pair the
same value gets the same placeholder in every field (so the model still sees that the key in the input is the
key in the code); different values of a kind are numbered 1, 2, ..."""

from __future__ import annotations

from collections.abc import Iterable

from engine.dataset.sensitive import FIELDS, KINDS, Finding


def placeholder_tag(kind: str) -> str:
    return KINDS.get(kind, (kind.upper(), ""))[0]


def redact_record(record: dict, findings: Iterable[Finding]) -> dict:
    """A copy of `record` with every finding's span replaced by its placeholder (metadata untouched)."""
    by_field: dict[str, list[Finding]] = {}
    for finding in findings:
        by_field.setdefault(finding.field, []).append(finding)
    numbers: dict[tuple[str, str], int] = {}  # (tag, value) -> n, shared by the pair's fields
    counters: dict[str, int] = {}
    redacted = dict(record)
    for field in FIELDS:  # a fixed order makes the numbering reproducible
        spans = sorted(by_field.get(field, ()), key=lambda finding: finding.start)
        text = record.get(field)
        if not spans or not isinstance(text, str):
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
        redacted[field] = "".join(pieces)
    return redacted


def masked_segments(text: str, findings: Iterable[Finding]) -> list[tuple[str, str | None]]:
    """`text` cut into (piece, kind) segments for display: kind None for plain text; a sensitive piece is given
    masked (its length as bullets), so a page can highlight where the secret is without showing it."""
    from engine.dataset.sensitive import mask

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
