"""The prompt layout of the data an adapter was trained on, and example prompts drawn from that data.

mlx-lm trains the three MLX formats (../reference/formats.md section 4) in three layouts, and a prompt only gets
the fine-tuned behaviour when it is laid out the same way:
- chat (`messages`): the tokenizer's chat template over the messages;
- completions (`prompt` + `completion`): the chat template over one user turn holding the prompt (mlx-lm 0.32
  wraps completions in the chat template), so the answer starts after the assistant header;
- text (`text`): the raw text, continued.
The seeds' pairs (`instruction`, `input`, `output`, with "Task: Modify <file>" closing the input) become the
completions prompt "Instruction: ...\\nInput: ...\\nOutput:" (seed 001's layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StudioError
from engine.formats import read_jsonl, record_format

FORMATS = ("chat", "completions", "text")
HELD_OUT_SPLITS = ("test", "valid")


@dataclass(frozen=True)
class PromptLayout:
    """How prompts are laid out: `data_format` is chat | completions | text, or plain when no training data is
    known (then the chat template is used when the tokenizer has one). `seed_fields` says the data's prompts
    follow the seeds' Instruction / Input / Task: Modify layout."""

    data_format: str = "plain"
    seed_fields: bool = False
    data_dir: Path | None = None

    def describe(self) -> str:
        if self.data_format == "plain":
            return "no training data known: the chat template when the tokenizer has one, else the raw prompt"
        where = f" (from {self.data_dir})" if self.data_dir else ""
        kind = {"chat": "chat messages through the chat template",
                "completions": "prompt/completion pairs: the prompt as one user turn of the chat template",
                "text": "plain text, continued as written"}[self.data_format]
        seeds = "; prompts in the seeds' Instruction / Input / Task: Modify layout" if self.seed_fields else ""
        return kind + seeds + where


@dataclass
class ReferencePrompt:
    """One line of a data folder as a prompt to try: the prompt a person would type, the real (reference) answer,
    and where it came from. Not a collected example (engine.records.Example): this one is read back from an MLX
    data folder to compare what a model answers with what the data says."""

    split: str
    index: int
    prompt: str
    reference: str
    system: str | None = None
    history: list[dict] = field(default_factory=list)  # earlier chat turns before the prompt (chat data)

    @property
    def title(self) -> str:
        first = next((line.strip() for line in self.prompt.splitlines() if line.strip()), "")
        return f"{self.split} #{self.index + 1}: {first[:90]}"


def seed_prompt(instruction: str, context: str = "", file_path: str | None = None) -> str:
    """The seeds' completions prompt: Instruction, Input (context, closed by "Task: Modify <file>"), Output."""
    context = context.strip()
    if file_path and f"Task: Modify {file_path}" not in context:
        context = f"{context}\n\nTask: Modify {file_path}" if context else f"Task: Modify {file_path}"
    return f"Instruction: {instruction.strip()}\nInput: {context}\nOutput:"


def _first_record(file: Path) -> dict | None:
    """The first non-blank line of `file` as mlx-lm would read it; None when that line is not a JSON object."""
    for line in read_jsonl(file):
        if line.record is not None or " is blank" not in (line.error or ""):
            return line.record
    return None


def detect_layout(data_dir: str | Path | None) -> PromptLayout:
    """The layout of the data folder's train.jsonl (first line, as mlx-lm detects it); plain when unknown."""
    if not data_dir:
        return PromptLayout()
    folder = Path(data_dir).expanduser()
    train = folder / "train.jsonl"
    if not train.is_file():
        return PromptLayout()
    try:
        record = _first_record(train)
    except StudioError:  # unreadable: no layout can be known
        return PromptLayout()
    kind = record_format(record) if record else None
    if kind is None:
        return PromptLayout()
    if kind == "seed":
        return PromptLayout("completions", True, folder)
    seeds = kind == "completions" and str(record["prompt"]).lstrip().startswith("Instruction:")
    if kind == "chat":
        users = [m.get("content", "") for m in record["messages"] if m.get("role") == "user"]
        seeds = bool(users) and ("Task: Modify" in str(users[-1]) or str(users[-1]).startswith("Instruction:"))
    return PromptLayout(kind, seeds, folder)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, layout: PromptLayout, prompt: str, system_prompt: str | None = None,
                  history: list[dict] | None = None) -> str:
    """The exact text handed to the model for `prompt`, laid out as the adapter's training data was.

    A system prompt becomes a system message in the chat template (or a first paragraph for plain text).
    `history` holds earlier chat turns (role/content dicts) that come before the prompt.
    """
    system_prompt = (system_prompt or "").strip()
    if layout.data_format == "text" or not has_chat_template(tokenizer):
        return f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [m for m in (history or []) if not (system_prompt and m.get("role") == "system")]
    messages.append({"role": "user", "content": prompt})
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja errors, e.g. a template that refuses a system role
        if system_prompt:
            return render_prompt(tokenizer, layout, f"{system_prompt}\n\n{prompt}", None, history)
        raise StudioError(f"The model's chat template cannot lay out this prompt ({exc}).") from exc


def example_from_record(record: dict, split: str, index: int) -> ReferencePrompt | None:
    """A ReferencePrompt from one line of a data folder (any of the three MLX formats or the seeds' pairs)."""
    kind = record_format(record)
    if kind == "completions":
        return ReferencePrompt(split, index, str(record["prompt"]), str(record["completion"]))
    if kind == "seed":
        file_path = (record.get("metadata") or {}).get("file_path")
        prompt = seed_prompt(str(record["instruction"]), str(record["input"]), file_path)
        return ReferencePrompt(split, index, prompt, str(record["output"]))
    if kind == "chat":
        messages = [m for m in record["messages"] if isinstance(m, dict)]
        last_answer = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last_answer is None or last_answer == 0:
            return None
        before = messages[:last_answer]
        users = [i for i, m in enumerate(before) if m.get("role") == "user"]
        if not users:
            return None
        system = next((str(m.get("content", "")) for m in before if m.get("role") == "system"), None)
        history = [m for m in before[: users[-1]] if m.get("role") != "system"]
        return ReferencePrompt(split, index, str(before[users[-1]].get("content", "")),
                               str(messages[last_answer].get("content", "")), system, history)
    if kind == "text":
        text = str(record["text"])
        lines = text.splitlines(keepends=True)
        cut = max(1, len(lines) // 2) if len(lines) > 1 else max(1, len(text) // 2)
        head, tail = ("".join(lines[:cut]), "".join(lines[cut:])) if len(lines) > 1 else (text[:cut], text[cut:])
        return ReferencePrompt(split, index, head, tail) if tail.strip() else None
    return None


def read_examples(data_dir: str | Path, split: str, limit: int) -> list[ReferencePrompt]:
    """Up to `limit` examples from `<data_dir>/<split>.jsonl` (bad lines are skipped; a missing file is [])."""
    file = Path(data_dir).expanduser() / f"{split}.jsonl"
    if not file.is_file() or limit <= 0:
        return []
    examples: list[ReferencePrompt] = []
    for line in read_jsonl(file):
        example = example_from_record(line.record, split, line.pair_index) if line.record is not None else None
        if example is not None:
            examples.append(example)
        if len(examples) >= limit:
            break
    return examples


def held_out_split(data_dir: str | Path) -> str | None:
    """test when the folder has a test.jsonl, else valid; None when it has neither."""
    folder = Path(data_dir).expanduser()
    return next((split for split in HELD_OUT_SPLITS if (folder / f"{split}.jsonl").is_file()), None)


def example_prompts(data_dir: str | Path | None, per_split: int = 5) -> list[ReferencePrompt]:
    """Example prompts for the Compare page: some from training, some held out (test, else valid)."""
    if not data_dir or not Path(data_dir).expanduser().is_dir():
        return []
    examples = read_examples(data_dir, "train", per_split)
    held = held_out_split(data_dir)
    if held:
        examples += read_examples(data_dir, held, per_split)
    return examples
