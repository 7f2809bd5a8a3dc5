"""Redaction: each sensitive span becomes a typed placeholder such as `<AWS_ACCESS_KEY_1>`. Within one record the
same value gets the same placeholder in every field, metadata included (so the model still sees that the key in
the input is the key in the code); different values of a kind are numbered 1, 2, ... The work is done by
engine.dataset.gate, which addresses every text of a record by its path."""

from __future__ import annotations

from collections.abc import Iterable

from engine.dataset.gate import redact_record
from engine.dataset.sensitive import Finding, mask, placeholder_tag

__all__ = ["masked_segments", "placeholder_tag", "redact_record"]


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
