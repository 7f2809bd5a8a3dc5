"""Stage 4: token budgets. Counts the complete training example (system prompt + tool definition + user prompt +
widget code + the JSON around them) with a real tokenizer, and writes the seed's two files:

- `training_data_size_analysis.json`: per widget, every part's token count, per file, and statistics;
- `training_data_strategy.json`: exactly the seed's structure: `max_sequence_length`, `strategy` (widget id ->
  `action` keep / exclude with `reason` and `over_by`, `current_total_tokens`, `current_widget_tokens`) and
  `summary` (count per action).

The third action the seed only wishes for, `trim`, drops comment blocks, then whole helper files of a multi-file
widget, then non-essential top-level sections (never the Übersicht exports a widget needs) until the example fits.
A trim entry carries the seed's fields plus `trimmed_total_tokens`, `trimmed_widget_tokens` and `dropped`; the summary
gains a `trim` count only when some widget is trimmed. The quick widget-only analysis (`widget_size_analysis.json`)
counts code alone, before prompts exist.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from engine.dataset.tokens import Tokenizer, get_tokenizer
from engine.errors import StudioError
from engine.files import write_atomic
from engine.uebersicht import WidgetPaths
from engine.uebersicht.apple_format import serialize_example
from engine.uebersicht.code import CodeFile, join_code, load_widget_code, resolve_widget_folder
from engine.uebersicht.prompts import read_prompt
from engine.uebersicht.report import jsx_rows, read_report
from engine.uebersicht.training_config import TrainingConfig, build_example, load_training_config

DEFAULT_MAX_TOKENS = 4095
HAND_EXCLUDED = "Excluded by hand"
ACTIONS = ("keep", "exclude", "trim")
# Top-level exports Übersicht reads; a trimmed widget keeps them.
_ESSENTIAL = re.compile(
    r"^(import\b|export\s+(const|let|var|function)\s+(command|refreshFrequency|render|className|initialState|"
    r"updateState|init)\b|export\s+default\b)"
)
_SECTION_START = re.compile(r"^(?:export|import|const|let|var|function|async|class|/\*|//)\b|^/[*/]")


@dataclass
class WidgetSource:
    """A JSX widget with a prompt: everything one training example is built from."""

    widget_id: str
    folder: str
    prompt: str
    files: list[CodeFile]


@dataclass
class WidgetSize:
    widget_id: str
    folder: str
    files: list[dict]  # {"path", "tokens"}
    system_tokens: int
    tool_tokens: int
    prompt_tokens: int
    widget_tokens: int
    total_tokens: int

    @property
    def overhead_tokens(self) -> int:
        return self.total_tokens - self.system_tokens - self.tool_tokens - self.prompt_tokens - self.widget_tokens


@dataclass
class TrimPlan:
    code: str
    dropped: list[str]
    total_tokens: int
    widget_tokens: int
    fits: bool


@dataclass
class EvaluationReport:
    sizes: list[WidgetSize]
    skipped: list[tuple[str, str]]
    strategy: dict
    tokenizer: str
    analysis_path: Path | None = None
    strategy_path: Path | None = None
    notes: list[str] = field(default_factory=list)


def load_widget_sources(
    rows: list[dict[str, str]], downloads: Path, prompts: Path | None
) -> tuple[list[WidgetSource], list[tuple[str, str]]]:
    """Every JSX widget of the report with its code (and prompt, when `prompts` is given); the rest with reasons."""
    sources, skipped = [], []
    for row in jsx_rows(rows):
        widget_id = row["OS_id"]
        try:
            files = load_widget_code(resolve_widget_folder(downloads, row["PS_widgetfoldername"]))
            prompt = read_prompt(prompts, widget_id) if prompts is not None else ""
        except StudioError as exc:
            skipped.append((widget_id, str(exc)))
            continue
        if not files:
            skipped.append((widget_id, "no JSX file in its folder"))
        elif prompt is None:
            skipped.append((widget_id, "no prompt file; run `widgets prompts` or write one"))
        else:
            sources.append(WidgetSource(widget_id, row["PS_widgetfoldername"], prompt, files))
    return sources, skipped


def measure(source: WidgetSource, config: TrainingConfig, tokenizer: Tokenizer) -> WidgetSize:
    code = join_code(source.files)
    return WidgetSize(
        widget_id=source.widget_id,
        folder=source.folder,
        files=[{"path": f.path, "tokens": tokenizer.count(f.text)} for f in source.files],
        system_tokens=tokenizer.count(config.system_prompt),
        tool_tokens=tokenizer.count(json.dumps(config.tools, ensure_ascii=False)),
        prompt_tokens=tokenizer.count(source.prompt),
        widget_tokens=tokenizer.count(code),
        total_tokens=tokenizer.count(serialize_example(build_example(config, source.prompt, code))),
    )


# --- trim -----------------------------------------------------------------------------------------------------


def split_sections(text: str) -> list[str]:
    """Top-level sections of a JS/JSX file: a section starts at a column-0 statement or comment."""
    sections: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if not sections or _SECTION_START.match(line):
            sections.append([line])
        else:
            sections[-1].append(line)
    return ["".join(lines) for lines in sections]


def _section_label(section: str) -> str:
    first = section.strip().splitlines()[0] if section.strip() else ""
    if first.startswith(("/*", "//")):
        return "comment"
    match = re.match(r"(?:export\s+)?(?:const|let|var|function|async function|class)\s+(\w+)", first)
    return match.group(1) if match else first[:40]


def _is_comment(section: str) -> bool:
    return all(not line.strip() or line.strip().startswith(("//", "/*", "*")) for line in section.splitlines())


def plan_trim(source: WidgetSource, config: TrainingConfig, tokenizer: Tokenizer, max_tokens: int) -> TrimPlan:
    """Drop parts of the widget until the complete example fits `max_tokens`, in this order: comment blocks,
    whole files other than the entry file (largest first), then non-essential top-level sections (largest first)."""
    files = {f.path: split_sections(f.text) for f in source.files}
    order = [f.path for f in source.files]
    dropped: list[str] = []

    def current() -> tuple[str, int, int]:
        code = join_code([CodeFile(path, "".join(files[path])) for path in order if path in files])
        total = tokenizer.count(serialize_example(build_example(config, source.prompt, code)))
        return code, total, tokenizer.count(code)

    code, total, widget = current()
    candidates: list[tuple[str, str, int | None]] = [  # (file, label, section index or None for the whole file)
        (path, path, None) for path in sorted(order[1:], key=lambda p: -tokenizer.count("".join(files[p])))
    ]
    for path in order:
        sections = files[path]
        comments = [(path, f"{path}: comment", i) for i, s in enumerate(sections) if _is_comment(s)]
        rest = [
            (path, f"{path}: {_section_label(s)}", i)
            for i, s in sorted(enumerate(sections), key=lambda item: -tokenizer.count(item[1]))
            if not _is_comment(s) and not _ESSENTIAL.match(s.lstrip())
        ]
        candidates += comments
        candidates += rest
    # Least harmful first: comment blocks, then whole helper files, then code sections.
    candidates.sort(key=lambda c: 1 if c[2] is None else (0 if c[1].endswith(": comment") else 2))
    for path, label, index in candidates:
        if total <= max_tokens:
            break
        if path not in files:
            continue
        if index is None:
            del files[path]
        else:
            files[path][index] = ""
        dropped.append(label)
        code, total, widget = current()
    return TrimPlan(code=code, dropped=dropped, total_tokens=total, widget_tokens=widget, fits=total <= max_tokens)


# --- strategy -------------------------------------------------------------------------------------------------


def strategy_entry(
    action: str, size: WidgetSize, max_tokens: int, trim: TrimPlan | None = None, reason: str | None = None
) -> dict:
    """One widget's entry in the seed's key order."""
    if action == "keep":
        return {
            "action": "keep",
            "current_total_tokens": size.total_tokens,
            "current_widget_tokens": size.widget_tokens,
        }
    if action == "exclude":
        return {
            "action": "exclude",
            "reason": reason or f"Exceeds limit ({size.total_tokens} > {max_tokens} tokens)",
            "current_total_tokens": size.total_tokens,
            "current_widget_tokens": size.widget_tokens,
            "over_by": max(0, size.total_tokens - max_tokens),
        }
    if action == "trim" and trim is not None:
        return {
            "action": "trim",
            "current_total_tokens": size.total_tokens,
            "current_widget_tokens": size.widget_tokens,
            "trimmed_total_tokens": trim.total_tokens,
            "trimmed_widget_tokens": trim.widget_tokens,
            "dropped": trim.dropped,
        }
    raise StudioError(f"The strategy action {action!r} is not one of {', '.join(ACTIONS)}.")


def summarize(strategy: dict[str, dict]) -> dict[str, int]:
    summary = {"keep": 0, "exclude": 0}
    for entry in strategy.values():
        summary[entry["action"]] = summary.get(entry["action"], 0) + 1
    return summary


def strategy_document(max_tokens: int, strategy: dict[str, dict]) -> dict:
    return {"max_sequence_length": max_tokens, "strategy": strategy, "summary": summarize(strategy)}


def load_strategy(path: Path) -> dict | None:
    """The strategy file (None when absent); raises StudioError when it lacks the seed's structure."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StudioError(f"The strategy file {path} is not readable JSON ({exc}).") from exc
    if not isinstance(document, dict) or not isinstance(document.get("strategy"), dict):
        raise StudioError(f"The strategy file {path} lacks a \"strategy\" object.")
    if not isinstance(document.get("max_sequence_length"), int):
        raise StudioError(f"The strategy file {path} lacks an integer max_sequence_length.")
    for widget_id, entry in document["strategy"].items():
        if not isinstance(entry, dict) or entry.get("action") not in ACTIONS:
            raise StudioError(
                f"The strategy file {path} gives {widget_id} no valid action; expected one of {', '.join(ACTIONS)}."
            )
    return document


def evaluate_training_data(
    paths: WidgetPaths,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    model: str | None = None,
    trim: bool = False,
) -> EvaluationReport:
    """Measure every JSX widget with a prompt and write the analysis and strategy files. With `trim`, a widget
    over the limit that trimming brings under it gets action "trim" instead of "exclude". A widget the previous
    strategy shows as excluded by hand (the page's editor) stays excluded; every other choice is recomputed."""
    if max_tokens < 1:
        raise StudioError(f"--max-tokens must be a positive number of tokens, not {max_tokens}.")
    rows = read_report(paths.csv)
    config = load_training_config(paths.training_config)
    tokenizer = get_tokenizer(model)
    sources, skipped = load_widget_sources(rows, paths.downloads, paths.prompts)
    try:
        previous = load_strategy(paths.strategy) or {"strategy": {}}
    except StudioError:
        previous = {"strategy": {}}  # an unreadable old strategy is simply replaced
    by_hand = {w for w, entry in previous["strategy"].items() if entry.get("reason") == HAND_EXCLUDED}
    sizes, strategy = [], {}
    for source in sources:
        size = measure(source, config, tokenizer)
        sizes.append(size)
        if source.widget_id in by_hand:  # a person's decision outlives a re-evaluation
            strategy[source.widget_id] = strategy_entry("exclude", size, max_tokens, reason=HAND_EXCLUDED)
            continue
        if size.total_tokens <= max_tokens:
            strategy[source.widget_id] = strategy_entry("keep", size, max_tokens)
            continue
        plan = plan_trim(source, config, tokenizer, max_tokens) if trim and len(source.files) else None
        if plan is not None and plan.fits:
            strategy[source.widget_id] = strategy_entry("trim", size, max_tokens, trim=plan)
        else:
            strategy[source.widget_id] = strategy_entry("exclude", size, max_tokens)
    document = strategy_document(max_tokens, strategy)
    totals = [size.total_tokens for size in sizes]
    analysis = {
        "max_sequence_length": max_tokens,
        "tokenizer": tokenizer.name,
        "tokenizer_model": model or None,
        "tokenizer_fallback_reason": tokenizer.fallback_reason,
        "config": {
            "system_prompt_tokens": tokenizer.count(config.system_prompt),
            "tool_definition_tokens": tokenizer.count(json.dumps(config.tools, ensure_ascii=False)),
        },
        "statistics": _statistics(totals, max_tokens),
        "widgets": [
            {
                "id": size.widget_id,
                "folder": size.folder,
                "files": size.files,
                "system_tokens": size.system_tokens,
                "tool_tokens": size.tool_tokens,
                "prompt_tokens": size.prompt_tokens,
                "widget_tokens": size.widget_tokens,
                "json_overhead_tokens": size.overhead_tokens,
                "total_tokens": size.total_tokens,
                "fits": size.total_tokens <= max_tokens,
                "over_by": max(0, size.total_tokens - max_tokens),
            }
            for size in sizes
        ],
        "skipped": [{"id": widget_id, "reason": reason} for widget_id, reason in skipped],
    }
    write_atomic(paths.analysis, json.dumps(analysis, indent=2, ensure_ascii=False) + "\n")
    write_atomic(paths.strategy, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    notes = [f"token counts use {tokenizer.name}"]
    if tokenizer.fallback_reason:
        notes.append(f"fell back to tiktoken because {tokenizer.fallback_reason}")
    return EvaluationReport(sizes, skipped, document, tokenizer.name, paths.analysis, paths.strategy, notes)


def _statistics(values: list[int], max_tokens: int) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(values),
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(values), 1),
        "median": statistics.median(values),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "over_limit": sum(value > max_tokens for value in values),
    }


def evaluated_model(paths: WidgetPaths, model: str | None = None) -> str | None:
    """`model` when given, else the tokenizer model the last evaluation used, so trimming later counts alike."""
    if model:
        return model
    try:
        analysis = json.loads(paths.analysis.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return analysis.get("tokenizer_model") if isinstance(analysis, dict) else None


def set_actions(
    paths: WidgetPaths, actions: dict[str, str], model: str | None = None
) -> dict:
    """Apply the editor's choices (widget id -> keep / exclude / trim) to the strategy file and save it.
    A trim that cannot bring the widget under the limit raises StudioError and nothing is saved."""
    document = load_strategy(paths.strategy)
    if document is None:
        raise StudioError(f"There is no strategy file {paths.strategy} yet; run `widgets evaluate` first.")
    max_tokens = document["max_sequence_length"]
    strategy = dict(document["strategy"])
    changed = {
        widget_id: action
        for widget_id, action in actions.items()
        if strategy.get(widget_id, {}).get("action") != action
    }
    unknown = sorted(set(changed) - set(strategy))
    if unknown:
        raise StudioError(f"The strategy has no widget {', '.join(unknown)}; run `widgets evaluate` again.")
    if not changed:
        return document
    config = load_training_config(paths.training_config)
    tokenizer = get_tokenizer(evaluated_model(paths, model))
    sources, _ = load_widget_sources(read_report(paths.csv), paths.downloads, paths.prompts)
    by_id = {source.widget_id: source for source in sources if source.widget_id in changed}
    for widget_id, action in changed.items():
        if action not in ACTIONS:
            raise StudioError(f"The action {action!r} for {widget_id} is not one of {', '.join(ACTIONS)}.")
        source = by_id.get(widget_id)
        if source is None:
            raise StudioError(f"The widget {widget_id} has no code or prompt any more; run `widgets evaluate` again.")
        size = measure(source, config, tokenizer)
        plan = None
        reason = None
        if action == "trim":
            plan = plan_trim(source, config, tokenizer, max_tokens)
            if not plan.fits:
                raise StudioError(
                    f"Trimming {widget_id} still leaves {plan.total_tokens} tokens, over the limit of {max_tokens}."
                )
        elif action == "exclude" and size.total_tokens <= max_tokens:
            reason = HAND_EXCLUDED
        strategy[widget_id] = strategy_entry(action, size, max_tokens, trim=plan, reason=reason)
    document = strategy_document(max_tokens, strategy)
    write_atomic(paths.strategy, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document


def analyze_widget_sizes(
    paths: WidgetPaths, max_tokens: int = DEFAULT_MAX_TOKENS, model: str | None = None
) -> dict:
    """The quick widget-only check (code tokens only; no prompts needed); writes widget_size_analysis.json."""
    tokenizer = get_tokenizer(model)
    sources, skipped = load_widget_sources(read_report(paths.csv), paths.downloads, None)
    widgets = []
    for source in sources:
        tokens = tokenizer.count(join_code(source.files))
        widgets.append({
            "id": source.widget_id,
            "folder": source.folder,
            "files": [{"path": f.path, "tokens": tokenizer.count(f.text)} for f in source.files],
            "widget_tokens": tokens,
            "over_limit": tokens > max_tokens,
        })
    widgets.sort(key=lambda widget: -widget["widget_tokens"])
    over = [w for w in widgets if w["over_limit"]]
    # "Moderate" means within 50% over the limit: trimming a few sections may fix it; beyond that, exclude.
    moderate = [w for w in over if w["widget_tokens"] <= 1.5 * max_tokens]
    document = {
        "max_sequence_length": max_tokens,
        "tokenizer": tokenizer.name,
        "statistics": _statistics([w["widget_tokens"] for w in widgets], max_tokens),
        "widgets": widgets,
        "skipped": [{"id": widget_id, "reason": reason} for widget_id, reason in skipped],
        "recommendations": {
            "exclusion": {"exclude": [w["id"] for w in over]},
            "truncation": {"trim": [w["id"] for w in over]},
            "hybrid": {
                "trim": [w["id"] for w in moderate],
                "exclude": [w["id"] for w in over if w not in moderate],
            },
            "note": "Widget code only: the complete example (system prompt, tools, prompt, JSON) is larger; "
            "run `widgets evaluate` once prompts exist.",
        },
    }
    write_atomic(paths.size_analysis, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document
