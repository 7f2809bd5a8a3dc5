"""What a reader did with a source: rows read, kept, skipped with reasons, duplicates. Shown by CLI and page."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

MAX_EXAMPLES_PER_REASON = 5


@dataclass
class SourceReport:
    source: str  # "screenpipe frames", "screenpipe audio", "git <repo>", "documents"
    rows_read: int = 0  # rows this run read from the source (incremental: only new rows)
    kept: int = 0  # rows that passed the filters
    new_items: int = 0  # knowledge items / commits the workspace did not have
    duplicates: int = 0  # kept rows whose normalized text the workspace already had
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few source ids
    notes: list[str] = field(default_factory=list)
    cut: int = 0  # kept texts longer than the reader's cap, stored cut to it
    seconds: float = 0.0

    def skip(self, reason: str, source_id: str) -> None:
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES_PER_REASON:
            examples.append(source_id)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["skipped"] = dict(self.skipped)
        data["skipped_total"] = self.skipped_total
        return data
