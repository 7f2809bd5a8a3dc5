"""The flow in one place: extract → link → pairs → write.

Each stage computes and stores its own state and returns records: extract fills the workspace, linking stores
scored link runs, engine.dataset.pairs builds pairs from a run. This module chains them and is the one caller of
the writers of linking's datasets: `paths.output_file` (training_data.jsonl) and the mlx-lm folder `data/` beside
it. Which links become training context is decided once, by engine.linking.threshold.passes, at the
min_confidence / top_k the caller passes (the CLI flags, the Linking page's sliders) or the config's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from engine.config import PipelineConfig
from engine.dataset.pairs import build_pairs, write_mlx_folder, write_pairs
from engine.executor import LOCAL
from engine.extract import ExtractResult, extract
from engine.linking.link import DEFAULT_CANDIDATES, LinkResult, link, save_run_stats
from engine.linking.model import LinkModel
from engine.progress import ProgressFn, no_progress
from engine.store import Workspace


def link_and_write(
    config: PipelineConfig, workspace_path: Path, mode: str | None = None, min_confidence: float | None = None,
    top_k: int | None = None, progress: ProgressFn = no_progress, *, embedder=None,
    candidates: int = DEFAULT_CANDIDATES, write_outputs: bool = True, model: LinkModel | None = None,
    executor=None,
) -> LinkResult:
    """Link the workspace (engine.linking.link.link: store a scored run), build the pairs of that run at its
    min_confidence / top_k and, unless `write_outputs` is False, write `config.output_file` and the MLX folder
    `data/` beside it (pairs with possible sensitive data are held back from the MLX folder for review). Returns
    the run's LinkResult with the pairs, files and MLX counts filled in, also stored as the run's stats."""
    result = link(config, workspace_path, mode, min_confidence, top_k, progress, embedder=embedder,
                  candidates=candidates, model=model, executor=executor)
    clock = time.perf_counter()
    progress("writing pairs", 0, None)
    workspace = Workspace.open(workspace_path)
    contexts: list[list[str]] = []
    with workspace.connection() as conn:
        pairs = build_pairs(conn, result.run_id, result.min_confidence, result.top_k, contexts)
    output_file = mlx_folder = None
    mlx_counts: dict[str, int] = {}
    if write_outputs:
        output_file = write_pairs(pairs, config.output_file)
        mlx_folder, mlx_counts = write_mlx_folder(pairs, config.output_file.parent / "data",
                                                   float(config.get("linking.valid_fraction")), contexts, workspace)
    result = replace(result, pairs=len(pairs), output_file=str(output_file) if output_file else None,
                     mlx_folder=str(mlx_folder) if mlx_folder else None, mlx_counts=mlx_counts,
                     seconds={**result.seconds, "pairs": round(time.perf_counter() - clock, 3)})
    save_run_stats(workspace_path, result)
    return result


def extract_and_link(
    config: PipelineConfig, workspace_path: Path, mode: str | None = None, min_confidence: float | None = None,
    top_k: int | None = None, progress: ProgressFn = no_progress, *, read_sources: bool = True, executor=None,
) -> tuple[ExtractResult | None, LinkResult]:
    """The whole flow: read what is new in the sources (skipped when `read_sources` is False), then
    `link_and_write`. Returns (the extract result or None, the link result)."""
    extracted = extract(config, workspace_path, progress=progress, executor=executor or LOCAL) \
        if read_sources else None
    return extracted, link_and_write(config, workspace_path, mode, min_confidence, top_k, progress,
                                     executor=executor)
