"""A sensitive stretch of text: what every detector returns (engine.dataset.sensitive re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """One sensitive stretch of a text: its kind, character offsets [start, end) and the rule that found it."""

    kind: str
    start: int
    end: int
    source: str
