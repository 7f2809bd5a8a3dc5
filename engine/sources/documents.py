"""Read project documents (Markdown, text, YAML, ...) from the configured folders, with path and modification
time. Source ids are `doc:<path relative to the folder's parent>`, e.g. `doc:docs/retry.md`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from engine.clock import iso_utc
from engine.errors import SourceError
from engine.records import Knowledge
from engine.sources.report import SourceReport

MAX_DOCUMENT_BYTES = 2_000_000
SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv"}


def check_directories(directories: list[Path]) -> None:
    for index, directory in enumerate(directories):
        if not directory.exists():
            raise SourceError(
                f"`document_sources.directories[{index}]`: {directory} does not exist; create it or remove it "
                "from the list."
            )
        if not directory.is_dir():
            raise SourceError(f"`document_sources.directories[{index}]`: {directory} is a file, not a folder.")


def read_documents(
    directories: list[Path], extensions: list[str], min_length: int, report: SourceReport
) -> Iterator[Knowledge]:
    """Yield one record per readable document with a configured extension."""
    check_directories(directories)
    wanted = {ext.lower() for ext in extensions}
    for directory in directories:
        root = directory.resolve()
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_DIRS)
            for name in sorted(names):
                path = Path(folder) / name
                if path.suffix.lower() not in wanted:
                    continue
                report.rows_read += 1
                source_id = f"doc:{path.relative_to(root.parent).as_posix()}"
                if path.is_symlink() or not path.is_file():
                    report.skip("not a regular file", source_id)
                    continue
                stat = path.stat()
                if stat.st_size > MAX_DOCUMENT_BYTES:
                    report.skip(f"larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB", source_id)
                    continue
                data = path.read_bytes()
                if b"\x00" in data[:8000]:
                    report.skip("binary content", source_id)
                    continue
                text = data.decode("utf-8", errors="replace")
                if len(text.strip()) < min_length:
                    report.skip(f"shorter than min_knowledge_length ({min_length})", source_id)
                    continue
                report.kept += 1
                yield Knowledge(
                    source_id=source_id, knowledge_type="document", text=text,
                    timestamp=iso_utc(datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)),
                    app_name=None, window_name=str(path),
                )
