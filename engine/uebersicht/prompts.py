"""Stage 3: `prompts/<widget id>.prompt`, the user turn of each training example.

A prompt is drafted from the manifest description plus an analysis of the widget's JSX (what it shows, the
commands it runs, how often it refreshes, how it is styled). The default drafter is a template; a caller may pass
any other `PromptDrafter` (e.g. a local model, once the chat module exists) with the same facts.

A hand-edited or hand-written prompt is never overwritten: every prompt this module writes has its SHA-256
recorded in `prompts/.generated.json`; a file whose content no longer matches (or that was never recorded) is
the user's and is left alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StudioError
from engine.files import write_atomic
from engine.uebersicht.code import join_code, load_widget_code, resolve_widget_folder
from engine.uebersicht.manifest import is_safe_widget_id
from engine.uebersicht.report import jsx_rows

REGISTRY_NAME = ".generated.json"

# What a shell command reveals about what the widget shows; first match per topic wins.
_COMMAND_TOPICS = (
    (r"pmset\s+-g\s+batt|AppleSmartBattery|battery", "the battery level"),
    (r"\bdate\b|toLocale(?:Time|Date)String|new Date\(", "the date and time"),
    (r"\bcal\b|icalBuddy|Calendar", "calendar events"),
    (r"Spotify", "the track playing in Spotify"),
    (r"(?:Music|iTunes)\.app|application \"(?:Music|iTunes)\"", "the track playing in Apple Music"),
    (r"top\s+-l|\bps\s|cpu|CPU", "CPU usage"),
    (r"vm_stat|memory_pressure|\bmemory\b|hw\.memsize", "memory usage"),
    (r"\bdf\b|diskutil", "disk usage"),
    (r"netstat|ifconfig|ipconfig|networksetup|airport|\bping\b", "network status"),
    (r"weather|wttr\.in|openweathermap|forecast", "the weather"),
    (r"\bcurl\b|\bwget\b|fetch\(", "data fetched from the web"),
    (r"yabai|chunkc|skhd|spaces", "desktop spaces from the window manager"),
    (r"\buptime\b", "the system uptime"),
    (r"\bwhoami\b|hostname|sw_vers", "system information"),
    (r"reminders|todo|task", "a to-do list"),
    (r"mail\b|unread", "unread mail"),
    (r"git\s", "git repository status"),
    (r"crypto|bitcoin|stock|ticker", "market prices"),
)


@dataclass
class JsxAnalysis:
    """What a widget's code says about its behaviour; every field may be empty."""

    commands: list[str] = field(default_factory=list)
    refresh_ms: int | None = None
    refresh_disabled: bool = False
    shows: list[str] = field(default_factory=list)
    styling: list[str] = field(default_factory=list)
    keeps_state: bool = False
    clickable: bool = False
    position: str = ""


@dataclass
class PromptFacts:
    """Everything a drafter may use for one widget."""

    widget_id: str
    name: str
    description: str
    analysis: JsxAnalysis
    code: str


PromptDrafter = Callable[[PromptFacts], str]


def _string_literal_after(code: str, pattern: str) -> str | None:
    match = re.search(pattern + r"\s*=\s*(`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')", code, re.DOTALL)
    return match.group(1)[1:-1].strip() if match else None


def analyse_jsx(code: str) -> JsxAnalysis:
    """Read the Übersicht widget API out of JSX: command, refreshFrequency, className/styled/style, state, events."""
    analysis = JsxAnalysis()
    command = _string_literal_after(code, r"export\s+const\s+command")
    if command:
        analysis.commands.append(" ".join(command.split()))
    analysis.commands += [" ".join(c.split()) for c in re.findall(r"\brun\(\s*[`\"']([^`\"']+)[`\"']", code)]
    refresh = re.search(r"export\s+const\s+refreshFrequency\s*=\s*([^;\n]+)", code)
    if refresh:
        value = refresh.group(1).strip()
        if value == "false":
            analysis.refresh_disabled = True
        else:
            analysis.refresh_ms = _milliseconds(value)
    # The commands say what a widget shows; only a widget without a literal command is read whole (slower, and
    # words in markup or comments make weaker evidence).
    haystack = " ".join(analysis.commands) or code
    analysis.shows = [topic for pattern, topic in _COMMAND_TOPICS if re.search(pattern, haystack)][:3]
    if re.search(r"export\s+const\s+className", code):
        analysis.styling.append("a CSS className")
    if re.search(r"\bstyled[.(]", code):
        analysis.styling.append("styled components")
    if re.search(r"\bcss`|\bcss\(", code):
        analysis.styling.append("the css helper")
    if re.search(r"style=\{\{", code):
        analysis.styling.append("inline styles")
    analysis.keeps_state = bool(re.search(r"export\s+const\s+(updateState|initialState)", code))
    analysis.clickable = bool(re.search(r"\bon(Click|MouseDown|MouseUp)\s*=", code))
    class_name = _string_literal_after(code, r"export\s+const\s+className") or ""
    edges = [edge for edge in ("top", "bottom", "left", "right") if re.search(rf"(?<![-\w]){edge}\s*:", class_name)]
    if len(edges) >= 2:
        analysis.position = "-".join(edges[:2])
    return analysis


def _milliseconds(expression: str) -> int | None:
    """refreshFrequency is a number or a product such as `1000 * 60`; anything else is not understood."""
    if not re.fullmatch(r"\s*\d+(?:\.\d+)?(?:\s*\*\s*\d+(?:\.\d+)?)*\s*", expression):
        return None
    total = 1.0
    for factor in expression.split("*"):
        total *= float(factor)
    return int(total) if total > 0 else None


def _human_interval(ms: int) -> str:
    for unit_ms, unit in ((3_600_000, "hour"), (60_000, "minute"), (1000, "second")):
        if ms >= unit_ms and ms % unit_ms == 0:
            count = ms // unit_ms
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {ms} ms"


def _shorten(command: str, limit: int = 80) -> str:
    return command if len(command) <= limit else command[: limit - 1].rstrip() + "…"


def template_prompt(facts: PromptFacts) -> str:
    """The seed's template: "Create an Übersicht widget that ... The widget should ... using React/JSX with ..."."""
    analysis = facts.analysis
    description = facts.description.strip().rstrip(".")
    if description:
        opening = f"Create an Übersicht widget named \"{facts.name}\": {description[0].lower() + description[1:]}."
    else:
        opening = f"Create an Übersicht widget named \"{facts.name}\"."
    duties = []
    if analysis.shows:
        duties.append("show " + _join(analysis.shows))
    if analysis.commands:
        duties.append("run the shell command `" + _shorten(analysis.commands[0]) + "`")
    if analysis.refresh_disabled:
        duties.append("render once without refreshing on its own")
    elif analysis.refresh_ms:
        duties.append("refresh " + _human_interval(analysis.refresh_ms))
    if analysis.keeps_state:
        duties.append("keep its state between refreshes with updateState")
    if analysis.clickable:
        duties.append("respond to clicks")
    if analysis.position:
        duties.append(f"sit in the {analysis.position} corner of the desktop")
    styling = _join(analysis.styling) if analysis.styling else "plain markup"
    middle = f" The widget should {_join(duties)}" if duties else " The widget should render its content"
    return f"{opening}{middle} using React/JSX with {styling}."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- files ----------------------------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_registry(prompts: Path) -> dict[str, str]:
    try:
        registry = json.loads((prompts / REGISTRY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return registry if isinstance(registry, dict) else {}


def prompt_path(prompts: Path, widget_id: str) -> Path:
    if not is_safe_widget_id(widget_id):
        raise StudioError(f"The widget id {widget_id!r} is not a plain name usable as a file name.")
    return Path(prompts) / f"{widget_id}.prompt"


def read_prompt(prompts: Path, widget_id: str) -> str | None:
    path = prompt_path(prompts, widget_id)
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudioError(f"The prompt {path} cannot be read ({exc}).") from exc


def is_hand_edited(prompts: Path, widget_id: str) -> bool:
    """True when the prompt file exists and is not exactly what this module last wrote."""
    path = prompt_path(prompts, widget_id)
    if not path.exists():
        return False
    return _read_registry(prompts).get(widget_id) != _digest(path.read_text(encoding="utf-8"))


def save_prompt(prompts: Path, widget_id: str, text: str) -> Path:
    """Store a prompt a person wrote (the page's editor); from now on generation leaves it alone."""
    text = text.strip()
    if not text:
        raise StudioError(f"The prompt for {widget_id} is empty; write what the widget should do.")
    path = prompt_path(prompts, widget_id)
    write_atomic(path, text + "\n")
    registry = _read_registry(prompts)
    if registry.pop(widget_id, None) is not None:
        write_atomic(Path(prompts) / REGISTRY_NAME, json.dumps(registry, indent=2, sort_keys=True) + "\n")
    return path


@dataclass
class PromptReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_hand_edited: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (widget id, reason)

    def summary(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
            f"{len(self.kept_hand_edited)} hand-edited kept, {len(self.skipped)} skipped"
        )


def generate_prompts(
    rows: list[dict[str, str]],
    downloads: Path,
    prompts: Path,
    drafter: PromptDrafter = template_prompt,
    only: list[str] | None = None,
) -> PromptReport:
    """Draft a prompt for every JSX widget in the report rows (or those in `only`); never touches hand edits."""
    prompts = Path(prompts)
    registry = _read_registry(prompts)
    report = PromptReport()
    for row in jsx_rows(rows):
        widget_id = row["OS_id"]
        if only is not None and widget_id not in only:
            continue
        try:
            path = prompt_path(prompts, widget_id)
            if is_hand_edited(prompts, widget_id):
                report.kept_hand_edited.append(widget_id)
                continue
            files = load_widget_code(resolve_widget_folder(downloads, row["PS_widgetfoldername"]))
        except StudioError as exc:
            report.skipped.append((widget_id, str(exc)))
            continue
        if not files:
            report.skipped.append((widget_id, "no JSX file in its folder"))
            continue
        code = join_code(files)
        facts = PromptFacts(
            widget_id=widget_id,
            name=row.get("OS_name") or widget_id,
            description=row.get("OS_description", ""),
            analysis=analyse_jsx(code),
            code=code,
        )
        text = drafter(facts).strip()
        if not text:
            report.skipped.append((widget_id, "the drafter returned an empty prompt"))
            continue
        content = text + "\n"
        if path.exists() and path.read_text(encoding="utf-8") == content:
            report.unchanged.append(widget_id)
            continue
        write_atomic(path, content)
        registry[widget_id] = _digest(content)
        report.written.append(widget_id)
    if report.written:
        write_atomic(prompts / REGISTRY_NAME, json.dumps(registry, indent=2, sort_keys=True) + "\n")
    return report
