"""Übersicht widget datasets (seed 004): download the gallery's archives, analyse them, write prompts, budget
tokens, and build Apple adapter-training JSONL.

Every stage takes a `WidgetPaths` (the seed's file layout under one folder: the current directory for the CLI,
`<workspace>/widgets/` for the page) and returns a small report dataclass; the CLI and the page only format it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WidgetPaths:
    """The seed's files, each overridable by a CLI flag; defaults are relative to `root`."""

    manifest: Path
    downloads: Path
    csv: Path
    prompts: Path
    analysis: Path
    strategy: Path
    size_analysis: Path
    datasets: Path
    training_config: Path
    download_log: Path

    @classmethod
    def under(cls, root: str | Path) -> WidgetPaths:
        root = Path(root)
        return cls(
            manifest=root / "widget_list.json",
            downloads=root / "downloads",
            csv=root / "widget_processing_results.csv",
            prompts=root / "prompts",
            analysis=root / "training_data_size_analysis.json",
            strategy=root / "training_data_strategy.json",
            size_analysis=root / "widget_size_analysis.json",
            datasets=root / "datasets",
            training_config=root / "training_config.json",
            download_log=root / "downloads" / ".download_log.json",
        )
