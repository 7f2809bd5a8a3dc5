"""PipelineConfig: the seeds' pipeline_config.json, loaded unchanged, validated, and saved without losing keys.

Known sections (the seeds'): paths, document_sources, filtering, confidence, code_extensions. Optional sections
added by the studio, each with defaults: `screenpipe` (app/window include/exclude lists, a time range, which
screenpipe tables to read), `studio` (the workspace folder), `linking` (matcher mode, embedding model, the seed
v1 time window, keyword list and weights), `collect`, `scheduler`, and `team` (the roles of people who log in,
engine.team). Relative paths are resolved against the config
file's folder and `~` is expanded, so a config can travel with the data it points at.
`team.members` lists a team's sources (each member's screenpipe databases and repositories, tagged with the
member's name) and `executor` says where the heavy steps run (local or a Ray cluster, engine.executor).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, StudioError
from engine.files import output_target, write_atomic

# The link confidence below which a pair is not trained on; every fallback in the engine is this one value.
DEFAULT_MIN_CONFIDENCE = 0.6

DEFAULTS: dict[str, Any] = {
    "paths": {
        "screenpipe_db": "~/.screenpipe/db.sqlite",
        "git_repo": ".",
        "output_file": "output/training_data.jsonl",
    },
    "document_sources": {"directories": [], "extensions": [".md", ".txt", ".rst", ".yml", ".yaml"]},
    "filtering": {"min_knowledge_length": 100, "min_code_lines": 5, "max_commits": 500, "top_k_matches": 3},
    "confidence": {"min_confidence": DEFAULT_MIN_CONFIDENCE},
    "code_extensions": [".rs", ".py", ".ts", ".tsx", ".js", ".jsx"],
    "screenpipe": {
        "apps_include": [],
        "apps_exclude": [],
        "windows_include": [],
        "windows_exclude": [],
        "since": None,
        "until": None,
        "read_audio": True,
        "read_legacy_ui": True,
    },
    "studio": {"workspace": None},
    "linking": {
        "mode": "best",
        "model": "all-MiniLM-L6-v2",
        "time_window_days": 7,
        "commit_offset_hours": 1,
        "keyword_weight": 0.3,
        "semantic_weight": 0.7,
        "keywords": None,
        "valid_fraction": 0.1,
    },
    "collect": {
        "sources": ["commits", "docs", "conversations", "linked"],
        "conversation_logs": [],
        "min_message_chars": 10,
        "export_format": "chat",
        "export_min_tier": "bronze",
        "min_examples_for_training": 100,
    },
    "scheduler": {
        "jobs": {
            "mining_code": {"enabled": True, "interval_minutes": 360},
            "quality_check": {"enabled": True, "interval_minutes": 720},
            "dedup_cleanup": {"enabled": True, "interval_minutes": 1440},
            "export_training": {"enabled": True, "interval_minutes": 1440},
        },
        "watch": True,
        "debounce_seconds": 30,
        "max_retries": 3,
        "retry_delay_seconds": 300,
    },
    "team": {"roles": {}, "members": []},
    "executor": {"name": "local", "ray_address": None},
}

MAX_TOP_K = 1000  # links kept per commit; each costs memory in every chunk of the matcher
MAX_DAYS = 36_500
MAX_HOURS = 8_760
MAX_SECONDS = 7 * 24 * 3600

# key -> (kind, description of what is expected)
_SCHEMA: dict[str, str] = {
    "paths": "object",
    "paths.screenpipe_db": "path",
    "paths.git_repo": "path_or_paths",
    "paths.output_file": "path",
    "document_sources": "object",
    "document_sources.directories": "paths",
    "document_sources.extensions": "extensions",
    "filtering": "object",
    "filtering.min_knowledge_length": "count",
    "filtering.min_code_lines": "count",
    "filtering.max_commits": "positive",
    "filtering.top_k_matches": "top_k",
    "confidence": "object",
    "confidence.min_confidence": "fraction",
    "code_extensions": "extensions",
    "screenpipe": "object",
    "screenpipe.apps_include": "strings",
    "screenpipe.apps_exclude": "strings",
    "screenpipe.windows_include": "strings",
    "screenpipe.windows_exclude": "strings",
    "screenpipe.since": "datetime",
    "screenpipe.until": "datetime",
    "screenpipe.read_audio": "bool",
    "screenpipe.read_legacy_ui": "bool",
    "studio": "object",
    "studio.workspace": "optional_path",
    "linking": "object",
    "linking.mode": "link_mode",
    "linking.model": "path",
    "linking.time_window_days": "days",
    "linking.commit_offset_hours": "hours",
    "linking.keyword_weight": "fraction",
    "linking.semantic_weight": "fraction",
    "linking.keywords": "optional_strings",
    "linking.valid_fraction": "fraction",
    "collect": "object",
    "collect.sources": "collect_sources",
    "collect.conversation_logs": "paths",
    "collect.min_message_chars": "count",
    "collect.export_format": "example_format",
    "collect.export_min_tier": "tier",
    "collect.min_examples_for_training": "count",
    "scheduler": "object",
    "scheduler.jobs": "object",
    "scheduler.watch": "bool",
    "scheduler.debounce_seconds": "seconds",
    "scheduler.max_retries": "count",
    "scheduler.retry_delay_seconds": "seconds",
    "team": "object",
    "team.roles": "roles",
    "team.members": "members",
    "executor": "object",
    "executor.name": "executor",
    "executor.ray_address": "optional_address",
}

_EXPECTED = {
    "object": "an object ({...})",
    "path": "a path string",
    "optional_path": "a path string or null",
    "path_or_paths": "a path string or a list of path strings",
    "paths": "a list of path strings",
    "strings": "a list of strings",
    "extensions": 'a list of file extensions such as ".py"',
    "count": "a whole number, 0 or more",
    "positive": "a whole number, 1 or more",
    "fraction": "a number between 0 and 1",
    "datetime": 'a date or time such as "2026-03-01" or "2026-03-01T10:00:00+00:00", or null',
    "bool": "true or false",
    "link_mode": '"semantic", "hybrid" or "best"',
    "top_k": f"a whole number from 1 to {MAX_TOP_K}",
    "days": f"a number of days above 0 and at most {MAX_DAYS:,}",
    "hours": f"a number of hours from 0 to {MAX_HOURS:,}",
    "seconds": f"a number of seconds from 0 to {MAX_SECONDS:,} (a week)",
    "optional_strings": "a list of strings, or null for the built-in list",
    "collect_sources": 'a list of sources from "commits", "docs", "conversations", "linked"',
    "example_format": '"instruction", "chat" or "completion"',
    "tier": '"gold", "silver", "bronze" or "raw"',
    "roles": 'an object mapping e-mail addresses, "*@domain" or "*" to "owner", "reviewer" or "viewer"',
    "members": ('a list of members such as {"name": "maya", "screenpipe_db": "maya/db.sqlite", "git_repo": '
                '"maya/repo"}, each with a distinct name of letters, digits, ".", "_" or "-" and at least one source'),
    "executor": '"local" or "ray"',
    "optional_address": 'a Ray address such as "auto" or "head-node:6379", or null',
}

COLLECT_SOURCES = ("commits", "docs", "conversations", "linked")
EXAMPLE_FORMATS = ("instruction", "chat", "completion")
TIERS = ("gold", "silver", "bronze", "raw")


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _valid(kind: str, value: Any) -> bool:
    is_str_list = isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "path":
        return isinstance(value, str) and value.strip() != ""
    if kind == "optional_path":
        return value is None or (isinstance(value, str) and value.strip() != "")
    if kind == "path_or_paths":
        return (isinstance(value, str) and value.strip() != "") or (is_str_list and len(value) > 0)
    if kind in ("paths", "strings"):
        return is_str_list
    if kind == "extensions":
        return is_str_list and all(item.startswith(".") and len(item) > 1 for item in value)
    if kind in ("count", "positive"):
        return isinstance(value, int) and not isinstance(value, bool) and value >= (0 if kind == "count" else 1)
    if kind == "fraction":
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and 0 <= value <= 1)
    if kind == "datetime":
        return value is None or (isinstance(value, str) and parse_config_datetime(value) is not None)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "link_mode":
        return value in ("semantic", "hybrid", "best")
    if kind == "top_k":
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TOP_K
    if kind in ("days", "hours", "seconds"):
        # finite and bounded: Infinity (valid in Python's JSON) stopped the file watcher, and a huge number
        # overflows the time arithmetic later
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            return False
        if kind == "days":
            return 0 < value <= MAX_DAYS
        return 0 <= value <= (MAX_HOURS if kind == "hours" else MAX_SECONDS)
    if kind == "optional_strings":
        return value is None or is_str_list
    if kind == "collect_sources":
        return is_str_list and all(item in COLLECT_SOURCES for item in value)
    if kind == "example_format":
        return value in EXAMPLE_FORMATS
    if kind == "tier":
        return value in TIERS
    if kind == "members":
        return isinstance(value, list) and all(_valid_member(member) for member in value) and len(
            {member["name"] for member in value}) == len(value)
    if kind == "executor":
        return value in ("local", "ray")
    if kind == "optional_address":
        return value is None or (isinstance(value, str) and value.strip() != "")
    if kind == "roles":
        from engine.team import ROLES

        return isinstance(value, dict) and all(isinstance(key, str) and key.strip() and role in ROLES
                                               for key, role in value.items())
    raise AssertionError(kind)


_MEMBER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MEMBER_KEYS = ("name", "screenpipe_db", "git_repo")


def _valid_member(member: Any) -> bool:
    if not isinstance(member, dict) or set(member) - set(MEMBER_KEYS):
        return False
    name = member.get("name")
    if not (isinstance(name, str) and _MEMBER_NAME.fullmatch(name)):
        return False
    if not any(key in member for key in ("screenpipe_db", "git_repo")):
        return False
    return all(_valid("path_or_paths", member[key]) for key in ("screenpipe_db", "git_repo") if key in member)


def parse_config_datetime(text: str) -> datetime | None:
    """A date or datetime from the config, as an aware UTC datetime; None if it does not parse."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _lookup(data: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _merged(defaults: dict, given: dict) -> dict:
    result = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass(frozen=True)
class Member:
    """One teammate's sources in a team config; their knowledge source ids read `<name>/ocr:<frames.id>`."""

    name: str
    screenpipe_dbs: list[Path]
    git_repos: list[Path]


def member_of(source_id: str) -> str | None:
    """The team member a knowledge source id came from (`maya/ocr:12` -> "maya"); None for one's own data."""
    head, slash, _ = source_id.partition("/")
    return head if slash and ":" not in head else None


@dataclass
class PipelineConfig:
    """A validated config. `raw` is exactly what the file holds (unknown keys kept); properties give typed,
    resolved values with defaults filled in."""

    raw: dict
    base_dir: Path
    path: Path | None = None
    _values: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    # -- loading and saving -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> PipelineConfig:
        """Read and validate a pipeline_config.json; raises ConfigError naming the file, key and problem."""
        path = Path(path).expanduser()
        if not path.exists():
            raise ConfigError(
                f"The config file {path} does not exist; run `python -m engine demo` to see a working example."
            )
        if path.is_dir():
            raise ConfigError(f"The config path {path} is a folder; point --config at a pipeline_config.json file.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"The config file {path} is not UTF-8 text; save it as UTF-8 JSON.") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"The config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"The config file {path} must hold a JSON object ({{...}}), not {_type_name(raw)}.")
        try:
            return cls(raw=raw, base_dir=path.parent.resolve(), path=path)
        except ConfigError as exc:
            raise ConfigError(f"{path.name}: {exc}") from None

    def save(self, path: str | Path | None = None) -> Path:
        """Write the config (every key, known or not) atomically; returns the path written."""
        target = Path(path or self.path or "pipeline_config.json").expanduser()
        self.validate()
        write_atomic(target, json.dumps(self.raw, indent=2, ensure_ascii=False) + "\n")
        self.path = target
        return target

    def with_values(self, updates: dict[str, Any]) -> PipelineConfig:
        """A copy with dotted keys set (e.g. {"filtering.min_code_lines": 3}); validated; unknown keys kept."""
        raw = copy.deepcopy(self.raw)
        for dotted, value in updates.items():
            node = raw
            parts = dotted.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return PipelineConfig(raw=raw, base_dir=self.base_dir, path=self.path)

    def validate(self) -> None:
        """Check every known key's type; raise ConfigError with the key, what was found and what is expected."""
        for dotted, kind in _SCHEMA.items():
            present, value = _lookup(self.raw, dotted)
            if present and not _valid(kind, value):
                raise ConfigError(
                    f"`{dotted}` must be {_EXPECTED[kind]}, but it is {_type_name(value)} ({json.dumps(value)[:60]})."
                )
        self._values = _merged(DEFAULTS, self.raw)
        since, until = self.since, self.until
        if since and until and since > until:
            raise ConfigError("`screenpipe.since` is after `screenpipe.until`; swap them or clear one.")
        try:
            output_target(self.output_file)  # a folder, device or FIFO there would be replaced by the pairs file
        except StudioError as exc:
            raise ConfigError(f"`paths.output_file`: {exc}") from None

    # -- typed values -------------------------------------------------------------------------------------
    def resolve(self, value: str) -> Path:
        """A config path as an absolute Path: `~` expanded, relative paths taken from the config's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def get(self, dotted: str) -> Any:
        return _lookup(self._values, dotted)[1]

    @property
    def screenpipe_db(self) -> Path:
        return self.resolve(self.get("paths.screenpipe_db"))

    @property
    def git_repos(self) -> list[Path]:
        value = self.get("paths.git_repo")
        return [self.resolve(item) for item in ([value] if isinstance(value, str) else value)]

    @property
    def output_file(self) -> Path:
        return self.resolve(self.get("paths.output_file"))

    @property
    def doc_directories(self) -> list[Path]:
        return [self.resolve(item) for item in self.get("document_sources.directories")]

    @property
    def conversation_logs(self) -> list[Path]:
        """JSONL conversation logs (files or folders of *.jsonl) that `collect` reads."""
        return [self.resolve(item) for item in self.get("collect.conversation_logs")]

    @property
    def doc_extensions(self) -> list[str]:
        return [item.lower() for item in self.get("document_sources.extensions")]

    @property
    def code_extensions(self) -> list[str]:
        return [item.lower() for item in self.get("code_extensions")]

    @property
    def min_knowledge_length(self) -> int:
        return self.get("filtering.min_knowledge_length")

    @property
    def min_code_lines(self) -> int:
        return self.get("filtering.min_code_lines")

    @property
    def max_commits(self) -> int:
        return self.get("filtering.max_commits")

    @property
    def top_k(self) -> int:
        return self.get("filtering.top_k_matches")

    @property
    def min_confidence(self) -> float:
        return float(self.get("confidence.min_confidence"))

    @property
    def since(self) -> datetime | None:
        value = self.get("screenpipe.since")
        return parse_config_datetime(value) if value else None

    @property
    def until(self) -> datetime | None:
        value = self.get("screenpipe.until")
        return parse_config_datetime(value) if value else None

    @property
    def team_roles(self) -> dict[str, str]:
        """`team.roles`: identity pattern -> owner | reviewer | viewer (engine.team)."""
        return dict(self.get("team.roles"))

    @property
    def members(self) -> list[Member]:
        """`team.members`: whose screenpipe databases and repositories a team config pools."""
        def paths(value) -> list[Path]:
            if value is None:
                return []
            return [self.resolve(item) for item in ([value] if isinstance(value, str) else value)]

        return [Member(entry["name"], paths(entry.get("screenpipe_db")), paths(entry.get("git_repo")))
                for entry in self.get("team.members")]

    @property
    def screenpipe_sources(self) -> list[tuple[str | None, Path]]:
        """(member or None, database) for every screenpipe database to read. Without team members that is
        paths.screenpipe_db; with them, each member's, plus paths.screenpipe_db only if the file names one."""
        members = self.members
        own = [(None, self.screenpipe_db)] if not members or _lookup(self.raw, "paths.screenpipe_db")[0] else []
        return own + [(member.name, path) for member in members for path in member.screenpipe_dbs]

    @property
    def git_sources(self) -> list[tuple[str | None, Path]]:
        """(member or None, repository) for every git repository to read, as `screenpipe_sources` decides."""
        members = self.members
        own = [(None, path) for path in self.git_repos] if not members or _lookup(self.raw, "paths.git_repo")[0] \
            else []
        return own + [(member.name, path) for member in members for path in member.git_repos]

    @property
    def workspace(self) -> Path | None:
        value = self.get("studio.workspace")
        return self.resolve(value) if value else None
