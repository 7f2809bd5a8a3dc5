"""`python -m engine link --config CFG [--mode semantic|hybrid|best] [--min-confidence X] [--top-k K]
[--executor local|ray [--ray-address ADDR]]`"""

from __future__ import annotations

import argparse
import json

from engine.cli import add_config_arguments, config_and_workspace, number_in
from engine.config import LINK_MODES, MAX_TOP_K
from engine.executor import add_executor_arguments, executor_choice, open_executor
from engine.linking.link import LinkResult
from engine.pipeline import extract_and_link
from engine.processes import current_task
from engine.progress import TqdmProgress

HELP = "extract (incremental), link commits to knowledge, write training pairs and the MLX folder"
DESCRIPTION = ("Read new source rows, link every commit to the screens, audio and docs that explain it, and "
    "write paths.output_file plus train.jsonl / valid.jsonl in data/ beside it.")


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--mode", choices=LINK_MODES, help="matcher (default: the config's linking.mode, else best)")
    parser.add_argument("--min-confidence", type=number_in(0, 1), help="keep links at or above this (default: the "
                        "config's confidence.min_confidence)")
    parser.add_argument("--top-k", type=number_in(1, MAX_TOP_K, whole=True),
                        help=f"links per commit, 1 to {MAX_TOP_K} (default: filtering.top_k_matches)")
    parser.add_argument("--no-extract", action="store_true", help="link what the workspace holds, read nothing new")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_executor_arguments(parser)


def format_summary(result: LinkResult) -> str:
    lines = [
        f"[Linking] mode {result.mode}, model {result.model}, min_confidence {result.min_confidence}, "
        f"top_k {result.top_k} (run {result.run_id})",
        f"  ✓ {result.commits:,} commits with code changes",
        f"  ✓ {result.knowledge_items:,} knowledge items from {result.knowledge_sources:,} source rows; "
        f"{result.representatives:,} after near-duplicate collapse ({result.near_duplicates_merged:,} merged)",
        f"  ✓ embedded {result.embedded_texts:,} new texts"
        + (f" ({result.embedding_runtime} runtime)" if result.embedding_runtime else "")
        + f", {result.cached_texts:,} from the cache ({result.chunked_texts:,} long texts chunked)",
        f"  ✓ {result.stored_links:,} scored links stored; {result.kept_links:,} kept for "
        f"{result.linked_commits:,} commits",
    ]
    if result.mode == "best":
        lines.insert(3, f"  ✓ {result.candidate_commits:,} commits had knowledge in their time window "
                        f"({result.candidates:,} candidates scored); the others cannot be linked")
    if result.capped_texts:
        lines.append(f"  ! {result.capped_texts:,} very long texts: only their first ~1,800 tokens were embedded")
    if result.confidence_mean is not None:
        lines.append(f"  ✓ Average confidence: {result.confidence_mean:.3f} "
                     f"(range {result.confidence_min:.3f} - {result.confidence_max:.3f}); confidences are "
                     f"calibrated, so about {result.confidence_mean:.0%} of the kept links should be right")
    lines.append(f"  ✓ Created {result.pairs:,} training entries from {result.linked_commits:,} linked commits"
                 + (f" (average {result.pairs / result.linked_commits:.1f} entries per commit)"
                    if result.linked_commits else ""))
    if result.output_file:
        lines.append(f"[Output] {result.output_file}")
    if result.mlx_folder:
        lines.append(f"[MLX] {result.mlx_folder}: train {result.mlx_counts['train']}, "
                     f"valid {result.mlx_counts['valid']}")
    else:
        lines.append("[MLX] not written: mlx-lm needs at least two pairs (lower --min-confidence or raise --top-k)")
    if result.mlx_counts.get("held_for_review"):
        lines.append(f"[MLX] held back {result.mlx_counts['held_for_review']:,} pairs with possible sensitive data: "
                     "review them on the Validation page (or `python -m engine validate`), then "
                     "`python -m engine export`")
    timings = ", ".join(f"{name} {value:.1f} s" for name, value in result.seconds.items())
    lines.append(f"Time: {timings}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config, workspace = config_and_workspace(args)
    bars = TqdmProgress(enabled=not args.json, min_total=200)
    task = current_task()  # the Linking page runs this verb as a background task and polls its status

    def progress(stage: str, done: int, total: int | None) -> None:
        bars(stage, done, total)
        if task:
            task(stage, done, total)

    try:
        progress("reading new source rows", 0, None)
        with open_executor(*executor_choice(config, args.executor, args.ray_address)) as executor:
            extracted, result = extract_and_link(config, workspace, args.mode, args.min_confidence, args.top_k,
                                                 progress, read_sources=not args.no_extract, executor=executor)
            ran_on = {"name": executor.name, "workers": executor.workers}
    finally:
        bars.close()
    if task:
        task.finish({"extract": extracted.to_dict() if extracted else None, "link": result.to_dict()})
    if args.json:
        print(json.dumps({"extract": extracted.to_dict() if extracted else None, "link": result.to_dict(),
                          "executor": ran_on}, indent=2))
    else:
        if extracted:
            print(f"[Extract] {extracted.seconds:.1f} s; commits {extracted.commits:,}, knowledge "
                  + ", ".join(f"{kind} {counts['items']:,}" for kind, counts in extracted.knowledge.items()))
        print(format_summary(result))
    return 0
