"""Small text helpers for what the pages and the CLI print."""

from __future__ import annotations


def plural(count: int, singular: str, many: str | None = None) -> str:
    """`1 pair`, `2 pairs`, `1,204 pairs`; `many` for irregular words (`plural(n, "entry", "entries")`)."""
    word = singular if count == 1 else (many or f"{singular}s")
    return f"{count:,} {word}"
