"""The scheduler's four jobs (seed 002): what each one runs, and a one-line summary of its result.

Each job body is a plain function `(config, workspace_path, progress) -> dict` over the engine's own stages, so a
scheduled run, a run from the API or the page, and `python -m engine scheduler run --job ID` do the same thing.
The bodies are transactional by construction: extract stores each batch with its watermark, and the collection
functions (engine.collect) each work in one transaction, so a job that fails part-way leaves nothing half-applied
and its retry continues where it stopped. engine.collect is imported inside the bodies so that this module, and
the scheduler's status, load even when the collector cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config import DEFAULTS, PipelineConfig
from engine.progress import ProgressFn

JobBody = Callable[[PipelineConfig, Path, ProgressFn], dict]


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    title: str
    description: str
    body: JobBody
    summarize: Callable[[dict], str]


def mine_code(config: PipelineConfig, workspace_path: Path, progress: ProgressFn) -> dict:
    """Incremental mining: extract new screenpipe rows, commits and docs, then collect new examples from them."""
    from engine.collect import collect
    from engine.extract import extract

    extracted = extract(config, workspace_path, progress=progress)
    new_by_source = {report.source: report.new_items for report in extracted.reports}
    collected = collect(config, workspace_path, progress=progress).to_dict()
    return {
        "extract": {
            "new_knowledge": sum(count for source, count in new_by_source.items() if not source.startswith("git ")),
            "new_commits": sum(count for source, count in new_by_source.items() if source.startswith("git ")),
            "new_by_source": new_by_source,
            "knowledge_total": sum(kind["items"] for kind in extracted.knowledge.values()),
            "commits_total": extracted.commits,
            "notes": extracted.notes,
        },
        "collect": collected,
        "new_examples": collected.get("total_new", 0),
    }


def check_quality(config: PipelineConfig, workspace_path: Path, progress: ProgressFn) -> dict:
    from engine.collect import quality_check

    return quality_check(config, workspace_path, progress=progress)


def clean_duplicates(config: PipelineConfig, workspace_path: Path, progress: ProgressFn) -> dict:
    from engine.collect import dedup_cleanup

    return dedup_cleanup(config, workspace_path, progress=progress)


def export_collected(config: PipelineConfig, workspace_path: Path, progress: ProgressFn) -> dict:
    from engine.collect import export_training

    return export_training(config, workspace_path, progress=progress)


def _mining_summary(result: dict) -> str:
    extracted = result.get("extract", {})
    return (f"+{extracted.get('new_knowledge', 0):,} knowledge items, +{extracted.get('new_commits', 0):,} commits, "
            f"+{result.get('new_examples', 0):,} examples")


def _quality_summary(result: dict) -> str:
    tiers = ", ".join(f"{tier} {count:,}" for tier, count in (result.get("by_tier") or {}).items())
    return f"checked {result.get('checked', 0):,} examples, {result.get('changed', 0):,} changed tier" + (
        f" ({tiers})" if tiers else "")


def _dedup_summary(result: dict) -> str:
    cleared = result.get("duplicates_cleared", 0)
    return (f"checked {result.get('checked', 0):,} examples, marked {result.get('duplicates_marked', 0):,} "
            "duplicates" + (f", cleared {cleared:,}" if cleared else ""))


def _export_summary(result: dict) -> str:
    if not result.get("written", True):
        return f"nothing written: {result.get('reason', '')}".strip()
    split = " / ".join(f"{name} {count:,}" for name, count in (result.get("counts") or {}).items())
    return f"wrote {split} to {result.get('folder', '?')}"


JOBS: dict[str, JobSpec] = {
    spec.job_id: spec for spec in (
        JobSpec("mining_code", "Mine new data",
                "Extract new screenpipe rows, commits and documents into the workspace, then collect new "
                "training examples from them (incremental).", mine_code, _mining_summary),
        JobSpec("quality_check", "Quality check",
                "Re-score every collected example and update its quality tier.", check_quality, _quality_summary),
        JobSpec("dedup_cleanup", "Deduplicate",
                "Mark collected examples that duplicate another one.", clean_duplicates, _dedup_summary),
        JobSpec("export_training", "Export training data",
                "Write the collected examples at or above the export tier to datasets/collected "
                "(train/valid/test.jsonl, a folder mlx-lm loads).", export_collected, _export_summary),
    )
}
JOB_IDS = tuple(JOBS)

assert set(JOB_IDS) == set(DEFAULTS["scheduler"]["jobs"]), "engine.config's scheduler.jobs and JOBS disagree"


def summarize(job_id: str, result: dict | None) -> str:
    """One line a person reads: what the run added or changed."""
    if not result or job_id not in JOBS:
        return ""
    return JOBS[job_id].summarize(result)
