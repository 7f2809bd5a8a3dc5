"""Progress reporting that works the same for the CLI (tqdm bars) and the pages (st.progress).

A stage reports through a `ProgressFn`: `progress(stage, done, total)`, where total may be None when unknown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

ProgressFn = Callable[[str, int, "int | None"], None]


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The default: report nothing."""


class TqdmProgress:
    """One tqdm bar per stage on stderr, shown only on a terminal and only for work big enough to need one."""

    def __init__(self, enabled: bool = True, min_total: int = 2000):
        self.enabled = enabled and sys.stderr.isatty()
        self.min_total = min_total
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled or (total is not None and total < self.min_total):
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="rows", leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()
            del self.bars[stage]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
