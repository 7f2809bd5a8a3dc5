"""Writing one benchmark's section of bench/RESULTS.md in place: the section starts at its `## ` heading and ends
before the next one; a section not there yet is appended."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def write_section(text: str) -> Path:
    current = RESULTS.read_text(encoding="utf-8")
    heading = text.splitlines()[0]
    start = current.find(heading + "\n")
    if start == -1:
        current = current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = current.find("\n## ", start + len(heading))
        current = current[:start] + text.rstrip("\n") + "\n" + (current[end:] if end != -1 else "")
    RESULTS.write_text(current, encoding="utf-8")
    return RESULTS
