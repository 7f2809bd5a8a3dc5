"""The one shared config of analysis and generation (the seed's training_config.py): the system prompt and the
tool definition, in the Apple adapter format. A `training_config.json` beside the widget files may override
either: `{"system_prompt": "...", "tool_definition": {...}}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

SYSTEM_PROMPT = (
    "You are an expert developer of Übersicht desktop widgets for macOS. Übersicht widgets are React components "
    "written in JSX: a module exports `command` (a shell command or a function whose output is passed to render), "
    "`refreshFrequency` in milliseconds, `className` or styled components for CSS, and `render({ output })`, "
    "optionally `initialState` and `updateState`. When asked for a widget, answer with its complete source code. "
    "Each file starts with a `// File: <path>` comment. You may call the write_widget_file tool to save a file."
)

TOOL_DEFINITION = {
    "type": "function",
    "function": {
        "name": "write_widget_file",
        "description": "Save one file of an Übersicht widget into the user's widgets folder.",
        "arguments": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path inside the widget folder, e.g. Clock.widget/index.jsx"},
                "content": {"type": "string", "description": "The complete file content."},
            },
            "required": ["path", "content"],
        },
    },
}


@dataclass(frozen=True)
class TrainingConfig:
    system_prompt: str = SYSTEM_PROMPT
    tool_definition: dict | None = None

    @property
    def tools(self) -> list[dict]:
        return [self.tool_definition or TOOL_DEFINITION]

    def to_json(self) -> dict:
        return {"system_prompt": self.system_prompt, "tool_definition": self.tools[0]}


def load_training_config(path: Path | None) -> TrainingConfig:
    """Defaults, overridden by the JSON file at `path` when it exists."""
    if path is None or not Path(path).exists():
        return TrainingConfig()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The training config {path} is not readable JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"The training config {path} must be a JSON object with system_prompt / tool_definition.")
    system_prompt = data.get("system_prompt", SYSTEM_PROMPT)
    tool = data.get("tool_definition", TOOL_DEFINITION)
    if not isinstance(system_prompt, str) or not system_prompt.strip():
        raise ConfigError(f"The training config {path} has an empty or non-string system_prompt.")
    from engine.uebersicht.apple_format import tool_problems

    problems = tool_problems(tool)
    if problems:
        raise ConfigError(f"The training config {path} has a bad tool_definition: {problems[0]}")
    return TrainingConfig(system_prompt=system_prompt, tool_definition=tool)


def build_example(config: TrainingConfig, user_prompt: str, code: str) -> list[dict]:
    """One training example exactly as written to the JSONL: system (with tools), user, assistant."""
    return [
        {"role": "system", "content": config.system_prompt, "tools": config.tools},
        {"role": "user", "content": user_prompt},
        {"role": "assistant", "content": code},
    ]
