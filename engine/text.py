"""Small text helpers for what the pages and the CLI print."""

from __future__ import annotations


def plural(count: int, singular: str, many: str | None = None) -> str:
    """`1 pair`, `2 pairs`, `1,204 pairs`; `many` for irregular words (`plural(n, "entry", "entries")`)."""
    word = singular if count == 1 else (many or f"{singular}s")
    return f"{count:,} {word}"


def byte_size(count: float) -> str:
    """`512 bytes`, `1.5 KB`, `2,048.0 GB`: a storage size as the pages and the CLI show it."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,.0f} bytes"
