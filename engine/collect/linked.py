"""Linked examples: the training pairs the linking stage produced (commit message + the screens, calls and docs
that explain it -> the code written), in the seeds' instruction format with their metadata.

They come from the workspace's latest link run, rebuilt at the config's min_confidence and top_k (what `link`
wrote to paths.output_file); a workspace without link runs falls back to paths.output_file when that file exists.
Their tier is engine.dataset.quality.assess's, with the reviewers' decisions (keyed by pair hash) applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from engine.config import PipelineConfig
from engine.formats import malformed_reason, read_jsonl
from engine.records import Example, Skip


def _example(pair: dict, index: int) -> Example:
    metadata = pair.get("metadata") if isinstance(pair.get("metadata"), dict) else {}
    sha, path = metadata.get("commit_sha"), metadata.get("file_path")
    origin = f"{sha[:12]}:{path}" if isinstance(sha, str) and path else f"pair {index + 1}"
    return Example("linked", "instruction", origin, pair, metadata.get("commit_timestamp"))


def read_linked_examples(conn: sqlite3.Connection, config: PipelineConfig, notes: list[str]
                         ) -> Iterator[Example | Skip]:
    """One Example per pair of the latest link run (or line of paths.output_file); notes say which was read."""
    run = conn.execute("SELECT id FROM link_runs WHERE status = 'ok' ORDER BY id DESC LIMIT 1").fetchone()
    if run is not None:
        from engine.dataset.pairs import build_pairs

        notes.append(f"linked: pairs of link run {run['id']} at min_confidence {config.min_confidence:g}, "
                     f"top_k {config.top_k}")
        for index, pair in enumerate(build_pairs(conn, run["id"], config.min_confidence, config.top_k)):
            yield _example(pair, index)
        return
    output = config.output_file
    if not output.is_file():
        notes.append("linked: no link run in the workspace and no paths.output_file yet; run "
                     "`python -m engine link` to produce linked pairs")
        return
    notes.append(f"linked: pairs read from {output} (the workspace has no link run)")
    for line in read_jsonl(output):
        where = f"{output.name}:{line.line_number}"
        if line.record is None:
            if line.error and " is blank" in line.error:
                continue
            yield Skip(malformed_reason(line.error or ""), where, f"{output.name}: {line.error}")
            continue
        yield _example(line.record, line.line_number - 1)
