"""Probe: run pairs through two models and score each answer against the real code, so a person sees whether
fine-tuning helped (the seed's test_model.py: training examples, which should work well, beside held-out ones,
which show overfitting).

Scores, both 0-100 and higher is closer to the reference:
- chrF: character n-gram F-score (n = 1..6, recall weighted twice as much as precision, whitespace ignored), as
  in sacrebleu's sentence chrF; robust to small edits in code.
- line overlap: F1 over the multiset of non-blank lines (stripped), i.e. how many real lines came out verbatim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.chat.generate import GenerationSettings, generate_answer
from engine.chat.layout import ReferencePrompt, held_out_split, read_examples
from engine.chat.models import ChatModel
from engine.errors import StudioError
from engine.text import plural

CHRF_ORDER = 6
CHRF_BETA = 2.0


def _char_ngrams(text: str, n: int) -> Counter:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(hypothesis: str, reference: str, order: int = CHRF_ORDER, beta: float = CHRF_BETA) -> float:
    """Sentence chrF (0-100): mean character n-gram precision and recall over n = 1..order, whitespace removed,
    combined as an F-beta score. Identical texts score 100; texts sharing no character score 0."""
    hyp = "".join(hypothesis.split())
    ref = "".join(reference.split())
    if not hyp or not ref:
        return 100.0 if hyp == ref else 0.0
    precisions, recalls = [], []
    for n in range(1, order + 1):
        hyp_grams, ref_grams = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not hyp_grams or not ref_grams:
            continue
        matches = sum((hyp_grams & ref_grams).values())
        precisions.append(matches / sum(hyp_grams.values()))
        recalls.append(matches / sum(ref_grams.values()))
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    if precision == 0 and recall == 0:
        return 0.0
    beta2 = beta * beta
    return 100.0 * (1 + beta2) * precision * recall / (beta2 * precision + recall)


def _lines(text: str) -> Counter:
    return Counter(line.strip() for line in text.splitlines() if line.strip())


def line_overlap(hypothesis: str, reference: str) -> float:
    """F1 (0-100) of the non-blank, stripped lines the answer shares with the reference (each line counted as
    often as it occurs in both)."""
    hyp, ref = _lines(hypothesis), _lines(reference)
    if not hyp or not ref:
        return 100.0 if hyp == ref else 0.0
    shared = sum((hyp & ref).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / sum(hyp.values()), shared / sum(ref.values())
    return 100.0 * 2 * precision * recall / (precision + recall)


@dataclass
class ProbeRow:
    """One pair: the prompt, the real answer, and per model label its answer, chrF and line overlap."""

    split: str
    index: int
    prompt: str
    reference: str
    answers: dict[str, str] = field(default_factory=dict)
    chrf: dict[str, float] = field(default_factory=dict)
    line_overlap: dict[str, float] = field(default_factory=dict)
    tokens_per_second: dict[str, float | None] = field(default_factory=dict)

    @property
    def held_out(self) -> bool:
        return self.split != "train"


@dataclass
class ProbeReport:
    labels: list[str]
    data_dir: str
    rows: list[ProbeRow]
    seconds: float

    def means(self, held_out: bool | None = None) -> dict[str, dict[str, float]]:
        """Mean chrF and line overlap per model label (over held-out rows, training rows, or all with None)."""
        rows = [row for row in self.rows if held_out is None or row.held_out == held_out]
        result = {}
        for label in self.labels:
            if rows:
                result[label] = {"chrf": sum(row.chrf[label] for row in rows) / len(rows),
                                 "line_overlap": sum(row.line_overlap[label] for row in rows) / len(rows),
                                 "pairs": len(rows)}
        return result

    def wins(self, held_out: bool = True) -> tuple[int, int, int]:
        """(second model better, tied, first better) by chrF over held-out (or training) rows."""
        first, second = self.labels[0], self.labels[-1]
        rows = [row for row in self.rows if row.held_out == held_out]
        better = sum(row.chrf[second] > row.chrf[first] + 1e-9 for row in rows)
        worse = sum(row.chrf[second] < row.chrf[first] - 1e-9 for row in rows)
        return better, len(rows) - better - worse, worse

    def verdict(self) -> str:
        """One sentence: did the second model (the fine-tuned one) answer held-out pairs closer to the real code?"""
        means = self.means(held_out=True) or self.means(held_out=False)
        if not means:
            return "No pairs were probed."
        first, second = self.labels[0], self.labels[-1]
        which = "held-out" if self.means(held_out=True) else "training"
        better, tied, worse = self.wins(held_out=which == "held-out")
        delta = means[second]["chrf"] - means[first]["chrf"]
        direction = "closer to" if delta > 0 else ("as close to" if delta == 0 else "further from")
        pairs = plural(means[second]["pairs"], f"{which} pair")
        return (f"On {pairs} {second} is {direction} the real code than {first}: "
                f"chrF {means[second]['chrf']:.1f} against {means[first]['chrf']:.1f} ({delta:+.1f}), "
                f"better on {better}, tied on {tied}, worse on {worse}.")

    def to_dict(self) -> dict:
        return {"labels": self.labels, "data_dir": self.data_dir, "seconds": self.seconds,
                "held_out": self.means(held_out=True), "train": self.means(held_out=False),
                "verdict": self.verdict(), "rows": [asdict(row) for row in self.rows]}

    @classmethod
    def from_dict(cls, data: dict) -> ProbeReport:
        """The report again from `to_dict()` (a probe that ran in the background hands its result over as JSON)."""
        return cls(list(data["labels"]), data["data_dir"], [ProbeRow(**row) for row in data["rows"]],
                   float(data["seconds"]))


def probe_examples(data_dir: str | Path, n: int) -> list[ReferencePrompt]:
    """n training pairs and n held-out pairs (test.jsonl, else valid.jsonl) from an MLX data folder."""
    folder = Path(data_dir).expanduser()
    if not (folder / "train.jsonl").is_file():
        raise StudioError(f"The data folder {folder} has no train.jsonl to draw probe pairs from.")
    if n < 1:
        raise StudioError(f"The number of pairs to probe must be at least 1, not {n}.")
    examples = read_examples(folder, "train", n)
    held = held_out_split(folder)
    if held:
        examples += read_examples(folder, held, n)
    if not examples:
        raise StudioError(f"{folder} holds no pairs with a prompt and an answer to probe.")
    return examples


def probe(models: list[ChatModel], data_dir: str | Path, n: int = 5, settings: GenerationSettings | None = None,
          on_row: Callable[[ProbeRow, int, int], None] | None = None) -> ProbeReport:
    """Answer n training and n held-out pairs with every model (greedy unless `settings` say otherwise) and score
    the answers against the real ones. `on_row(row, done, total)` is called after each pair."""
    import time

    if len(models) < 1:
        raise StudioError("Probing needs at least one model.")
    labels = [model.choice.name for model in models]
    if len(set(labels)) != len(labels):
        labels = [f"{index + 1}: {label}" for index, label in enumerate(labels)]
    settings = settings or GenerationSettings(max_tokens=128)
    examples = probe_examples(data_dir, n)
    started = time.perf_counter()
    rows = []
    for done, example in enumerate(examples, start=1):
        row = ProbeRow(example.split, example.index, example.prompt, example.reference)
        for label, model in zip(labels, models, strict=True):
            answer = generate_answer(model, example.prompt, _with_system(settings, example), example.history)
            row.answers[label] = answer.text
            row.chrf[label] = chrf(answer.text, example.reference)
            row.line_overlap[label] = line_overlap(answer.text, example.reference)
            row.tokens_per_second[label] = answer.stats.tokens_per_second
        rows.append(row)
        if on_row is not None:
            on_row(row, done, len(examples))
    return ProbeReport(labels, str(Path(data_dir).expanduser()), rows, time.perf_counter() - started)


def _with_system(settings: GenerationSettings, example: ReferencePrompt) -> GenerationSettings:
    """A pair's own system message (chat data) wins over none; an explicit system prompt wins over both."""
    if settings.system_prompt or not example.system:
        return settings
    return GenerationSettings(settings.temperature, settings.top_p, settings.max_tokens, example.system,
                              settings.seed)
