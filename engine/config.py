"""PipelineConfig: the seeds' pipeline_config.json, loaded unchanged, validated, and saved without losing keys.

Known sections (the seeds'): paths, document_sources, filtering, confidence, code_extensions. Optional sections
added by the studio, each with defaults: `screenpipe` (app/window include/exclude lists, a time range, which
screenpipe tables to read), `studio` (the workspace folder), `linking` (matcher mode, embedding model, the seed
v1 time window, keyword list and weights), `collect`, `scheduler`, and `team` (the roles of people who log in,
engine.team). Relative paths are resolved against the config file's folder and `~` is expanded, so a config can
travel with the data it points at. `team.members` lists a team's sources (each member's screenpipe databases and
repositories, tagged with the member's name) and `executor` says where the heavy steps run (local or a Ray
cluster, engine.executor).

The schema is ConfigSchema, one pydantic model per section: each key is declared once with its type, range,
default and the phrase an error gives for what it must be; DEFAULTS is read from the same declaration, and
`_sentence` turns any validation error into one sentence. Validation only checks: `get()` and the properties return
the file's own values over the defaults, and keys the schema does not know are kept and saved untouched.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import ConfigError, StudioError
from engine.executor import EXECUTORS
from engine.files import output_target, write_atomic
from engine.records import TIERS
from engine.team import ROLES

# The link confidence below which a pair is not trained on; every fallback in the engine is this one value.
DEFAULT_MIN_CONFIDENCE = 0.6

MAX_TOP_K = 1000  # links kept per commit; each costs memory in every chunk of the matcher
MAX_DAYS = 36_500
MAX_HOURS = 8_760
MAX_SECONDS = 7 * 24 * 3600

COLLECT_SOURCES = ("commits", "docs", "conversations", "linked")
EXAMPLE_FORMATS = ("instruction", "chat", "completion")
LINK_MODES = ("semantic", "hybrid", "best")


def _listed(choices: tuple[str, ...]) -> str:
    """`"a", "b", "c"`: allowed values as an error sentence quotes them."""
    return ", ".join(f'"{choice}"' for choice in choices)


def _either(choices: tuple[str, ...]) -> str:
    """`"a", "b" or "c"`: the one allowed value, as an error sentence offers the choice."""
    head, _, last = _listed(choices).rpartition(", ")
    return f"{head} or {last}"


# -- the kinds of value a config holds ------------------------------------------------------------------------
# Each kind is one Annotated type: what it accepts (strict: "5" is not 5, true is not 1), its range, and the
# `description` an error sentence says it must be. Numbers are finite: Infinity and NaN (valid in Python's JSON)
# stopped the file watcher, and a huge number overflows the time arithmetic later.

def _non_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("blank")
    return text


def _extension(text: str) -> str:
    if not (text.startswith(".") and len(text) > 1):
        raise ValueError("not an extension")
    return text


def _moment(text: str | None) -> str | None:
    if text is not None and parse_config_datetime(text) is None:
        raise ValueError("not a date")
    return text


def _distinct_names(members: list[TeamMember]) -> list[TeamMember]:
    if len({member.name for member in members}) != len(members):
        raise ValueError("two members share a name")
    return members


NonBlank = Annotated[str, AfterValidator(_non_blank)]
PathText = Annotated[NonBlank, Field(description="a path string")]
OptionalPath = Annotated[NonBlank | None, Field(description="a path string or null")]
PathOrPaths = Annotated[NonBlank | Annotated[list[str], Field(min_length=1)],
                        Field(description="a path string or a list of path strings")]
PathList = Annotated[list[str], Field(description="a list of path strings")]
Strings = Annotated[list[str], Field(description="a list of strings")]
OptionalStrings = Annotated[list[str] | None, Field(description="a list of strings, or null for the built-in list")]
Extensions = Annotated[list[Annotated[str, AfterValidator(_extension)]],
                       Field(description='a list of file extensions such as ".py"')]
Count = Annotated[int, Field(ge=0, description="a whole number, 0 or more")]
Positive = Annotated[int, Field(ge=1, description="a whole number, 1 or more")]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, description=f"a whole number from 1 to {MAX_TOP_K}")]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, description="a number between 0 and 1")]
Days = Annotated[float, Field(gt=0, le=MAX_DAYS, allow_inf_nan=False,
                              description=f"a number of days above 0 and at most {MAX_DAYS:,}")]
Hours = Annotated[float, Field(ge=0, le=MAX_HOURS, allow_inf_nan=False,
                               description=f"a number of hours from 0 to {MAX_HOURS:,}")]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False,
                                 description=f"a number of seconds from 0 to {MAX_SECONDS:,} (a week)")]
Moment = Annotated[str | None, AfterValidator(_moment), Field(
    description='a date or time such as "2026-03-01" or "2026-03-01T10:00:00+00:00", or null')]
Flag = Annotated[bool, Field(description="true or false")]
Address = Annotated[NonBlank | None, Field(description='a Ray address such as "auto" or "head-node:6379", or null')]
AN_OBJECT = "an object ({...})"


def _section(model: type[BaseModel]) -> Any:
    """A section field: the section's defaults when the file leaves it out."""
    return Field(default_factory=model, description=AN_OBJECT)


class _Section(BaseModel):
    # keys the studio does not know are allowed and not checked: `raw` keeps them and save() writes them back
    model_config = ConfigDict(strict=True, extra="ignore")


class PathsSection(_Section):
    screenpipe_db: PathText = "~/.screenpipe/db.sqlite"
    git_repo: PathOrPaths = "."
    output_file: PathText = "output/training_data.jsonl"


class DocumentSourcesSection(_Section):
    directories: PathList = []
    extensions: Extensions = [".md", ".txt", ".rst", ".yml", ".yaml"]


class FilteringSection(_Section):
    min_knowledge_length: Count = 100
    min_code_lines: Count = 5
    max_commits: Positive = 500
    top_k_matches: TopK = 3


class ConfidenceSection(_Section):
    min_confidence: Fraction = DEFAULT_MIN_CONFIDENCE


class ScreenpipeSection(_Section):
    apps_include: Strings = []
    apps_exclude: Strings = []
    windows_include: Strings = []
    windows_exclude: Strings = []
    since: Moment = None
    until: Moment = None
    read_audio: Flag = True
    read_legacy_ui: Flag = True


class StudioSection(_Section):
    workspace: OptionalPath = None


class LinkingSection(_Section):
    mode: Annotated[Literal[LINK_MODES], Field(description=_either(LINK_MODES))] = "best"
    model: PathText = "all-MiniLM-L6-v2"
    time_window_days: Days = 7
    commit_offset_hours: Hours = 1
    keyword_weight: Fraction = 0.3
    semantic_weight: Fraction = 0.7
    keywords: OptionalStrings = None
    valid_fraction: Fraction = 0.1


class CollectSection(_Section):
    sources: Annotated[list[Literal[COLLECT_SOURCES]], Field(
        description=f"a list of sources from {_listed(COLLECT_SOURCES)}")] = list(COLLECT_SOURCES)
    conversation_logs: PathList = []
    min_message_chars: Count = 10
    export_format: Annotated[Literal[EXAMPLE_FORMATS], Field(description=_either(EXAMPLE_FORMATS))] = "chat"
    export_min_tier: Annotated[Literal[TIERS], Field(description=_either(TIERS))] = "bronze"
    min_examples_for_training: Count = 100


class SchedulerSection(_Section):
    # the jobs are checked job by job where they run (engine.ops.scheduler); here only that they are an object
    jobs: Annotated[dict[str, Any], Field(description=AN_OBJECT)] = {
        "mining_code": {"enabled": True, "interval_minutes": 360},
        "quality_check": {"enabled": True, "interval_minutes": 720},
        "dedup_cleanup": {"enabled": True, "interval_minutes": 1440},
        "export_training": {"enabled": True, "interval_minutes": 1440},
    }
    watch: Flag = True
    debounce_seconds: Seconds = 30
    max_retries: Count = 3
    retry_delay_seconds: Seconds = 300


class TeamMember(BaseModel):
    """One entry of `team.members`: a name and at least one source; any other key is a mistake."""

    model_config = ConfigDict(strict=True, extra="forbid")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]  # it prefixes source ids: `maya/ocr:12`
    screenpipe_db: PathOrPaths | None = None
    git_repo: PathOrPaths | None = None

    @model_validator(mode="after")
    def _names_a_source(self) -> TeamMember:
        named = self.model_fields_set & {"screenpipe_db", "git_repo"}
        if not named or any(getattr(self, key) is None for key in named):
            raise ValueError("a member needs at least one source, and a source is never null")
        return self


class TeamSection(_Section):
    roles: Annotated[dict[NonBlank, Literal[ROLES]], Field(
        description=f'an object mapping e-mail addresses, "*@domain" or "*" to {_either(ROLES)}')] = {}
    members: Annotated[list[TeamMember], AfterValidator(_distinct_names), Field(description=(
        'a list of members such as {"name": "maya", "screenpipe_db": "maya/db.sqlite", "git_repo": "maya/repo"}, '
        'each with a distinct name of letters, digits, ".", "_" or "-" and at least one source'))] = []


class ExecutorSection(_Section):
    name: Annotated[Literal[EXECUTORS], Field(description=_either(EXECUTORS))] = "local"
    ray_address: Address = None


class ConfigSchema(_Section):
    """The whole pipeline_config.json: the seeds' sections, then the studio's. A section the file leaves out gets
    its defaults."""

    paths: PathsSection = _section(PathsSection)
    document_sources: DocumentSourcesSection = _section(DocumentSourcesSection)
    filtering: FilteringSection = _section(FilteringSection)
    confidence: ConfidenceSection = _section(ConfidenceSection)
    code_extensions: Extensions = [".rs", ".py", ".ts", ".tsx", ".js", ".jsx"]
    screenpipe: ScreenpipeSection = _section(ScreenpipeSection)
    studio: StudioSection = _section(StudioSection)
    linking: LinkingSection = _section(LinkingSection)
    collect: CollectSection = _section(CollectSection)
    scheduler: SchedulerSection = _section(SchedulerSection)
    team: TeamSection = _section(TeamSection)
    executor: ExecutorSection = _section(ExecutorSection)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, _Section) else None


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The declared defaults as plain JSON values, section by section (as written in the models, unconverted)."""
    result = {}
    for name, info in model.model_fields.items():
        section = _section_model(info.annotation)
        result[name] = _defaults(section) if section else copy.deepcopy(info.get_default(call_default_factory=True))
    return result


DEFAULTS: dict[str, Any] = _defaults(ConfigSchema)


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _sentence(error: ValidationError, raw: dict) -> str:
    """pydantic's first error as the one sentence a person can act on: the deepest declared key on the error's path
    (a member's bad name reports `team.members`), what it must be (that key's description) and what it is."""
    model: type[BaseModel] | None = ConfigSchema
    path: list[str] = []
    expected = AN_OBJECT
    for part in error.errors()[0]["loc"]:
        fields = model.model_fields if model is not None else {}
        if not isinstance(part, str) or part not in fields:
            break
        path.append(part)
        expected = fields[part].description or AN_OBJECT
        model = _section_model(fields[part].annotation)
    dotted = ".".join(path)
    value = _lookup(raw, dotted)[1]
    return f"`{dotted}` must be {expected}, but it is {_type_name(value)} ({json.dumps(value)[:60]})."


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


def _setting(dotted: str, doc: str) -> property:
    """A read-only PipelineConfig property for one whole-number key (its type is the schema's)."""
    return property(lambda config: config.get(dotted), doc=doc)


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
        """Check every known key against ConfigSchema; raise ConfigError with the key, what was found and what is
        expected."""
        try:
            ConfigSchema.model_validate(self.raw)
        except ValidationError as exc:
            raise ConfigError(_sentence(exc, self.raw)) from None
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

    min_knowledge_length = _setting("filtering.min_knowledge_length", "Shorter knowledge (characters) is skipped.")
    min_code_lines = _setting("filtering.min_code_lines", "A changed file with fewer added code lines is skipped.")
    max_commits = _setting("filtering.max_commits", "Commits with code changes kept per repository.")
    top_k = _setting("filtering.top_k_matches", "Links kept per commit (at most MAX_TOP_K).")

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
