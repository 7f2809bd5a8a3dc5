"""Typed records that flow between stages. Timestamps are ISO 8601 strings in UTC with microseconds
(`2026-03-01T10:00:00.123456+00:00`), so they sort and compare as text in the workspace database."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.formats import content_hash

# The quality tiers an example can earn, best first (engine/dataset/quality.py decides which).
TIERS = ("gold", "silver", "bronze", "raw")

# The splits of every dataset folder the engine writes, in mlx-lm's file names.
SPLITS = ("train", "valid", "test")


@dataclass(slots=True)
class Knowledge:
    """One piece of text someone saw, heard or wrote: a frame's text, a transcript, UI text, a document."""

    source_id: str  # ocr:<frames.id> | audio:<audio_transcriptions.id> | ui:<table>:<id> | doc:<relative path>
    knowledge_type: str  # ocr | audio | ui | document
    text: str
    timestamp: str | None
    app_name: str | None = None
    window_name: str | None = None  # for audio: the recording device
    browser_url: str | None = None
    speaker_id: int | None = None  # audio: screenpipe's speakers.id, when it identified the speaker


@dataclass(slots=True)
class FileChange:
    """One code file changed by a commit, with its added lines and its whole diff."""

    path: str
    old_path: str | None
    change_type: str  # A | M | D | R
    added_lines: int
    removed_lines: int
    added_code: str
    diff: str


@dataclass(slots=True)
class Commit:
    sha: str
    repo: str
    message: str
    author: str
    timestamp: str
    files: list[FileChange] = field(default_factory=list)


@dataclass
class Example:
    """A candidate training example as a source reader produced it (commits, docs, conversation logs, linked
    pairs), before it is scored and stored in the workspace's `examples` table."""

    source: str  # commits | docs | conversations | linked
    format: str  # instruction | chat | completion
    origin: str  # where it came from: commit sha, doc path#section, file:line, sha:file
    record: dict  # the training content plus `metadata`
    source_time: str | None = None  # ISO 8601 UTC

    @property
    def content_hash(self) -> str:
        return content_hash(self.record, self.format)


@dataclass(frozen=True)
class Skip:
    """A source item left out, with the reason (counted per reason) and where it was (file:line, sha, ...)."""

    reason: str
    where: str
    detail: str | None = None  # the one sentence a person reads, when it says more than the reason
