"""Continuous collection: training examples from commits, docs, conversation logs and linked pairs, kept in the
workspace's `examples` table with their source, format, quality tier and size, and the scheduler's jobs on them.

- `collect(config, workspace_path, sources=None, progress)` -> CollectResult: new examples, incrementally.
- `quality_check(config, workspace_path, progress)` -> dict: re-score every example, update tiers.
- `dedup_cleanup(config, workspace_path, progress)` -> dict: mark exact and near duplicates.
- `export_training(config, workspace_path, progress)` -> dict: the mlx-lm folder datasets/collected/.
"""

from engine.collect.collector import CollectResult, SourceTally, collect, resolve_sources
from engine.collect.export import export_training, last_export
from engine.collect.maintenance import dedup_cleanup, quality_check
from engine.errors import CollectError
from engine.records import Example, Skip

__all__ = [
    "CollectError", "CollectResult", "Example", "Skip", "SourceTally", "collect", "dedup_cleanup", "export_training",
    "last_export", "quality_check", "resolve_sources",
]
