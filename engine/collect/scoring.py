"""Quality score and tier of a collected example: seed 002's calculate_quality_score, through the checks of
engine/dataset/quality.py (not a second copy of them).

Linked pairs are scored exactly as the Validation page scores them (`quality.assess`: link confidence is their
evidence). Every other example gets the same frame: 0.5 base, +0.1 valid format, +0.1 optimal length (100-4,000
characters), +0.2 a reviewer marked it good, -0.2 repetitive answer, -0.1 unbalanced brackets in the answer's code;
plus the evidence its source gives (the seed's "source bonus"):
- commits: +0.1 when the message has a body that explains the change; -0.1 when the diff had to be cut to fit;
- docs: -0.1 for a thin section (under 30 words);
- conversations: +0.2 for positive user feedback ("Real interactions that were successful").
Only a human-reviewed example reaches gold (the seed: "Gold: human-verified"), so automatic scores stop at 0.89.
"""

from __future__ import annotations

import re

from engine.config import DEFAULT_MIN_CONFIDENCE
from engine.dataset.quality import (
    OPTIMAL_CHARS,
    Quality,
    assess,
    finish_quality,
    reject,
)
from engine.formats import format_problems, prompt_and_answer

THIN_SECTION_WORDS = 30
_FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of a Markdown answer."""
    return _FENCED.findall(text)


def _source_evidence(source: str, evidence: dict, answer: str) -> tuple[float, list[str]]:
    if source == "commits":
        bonus, reasons = 0.0, []
        if evidence.get("has_body"):
            bonus += 0.1
        else:
            reasons.append("message has no body")
        if evidence.get("diff_truncated"):
            bonus -= 0.1
            reasons.append("diff excerpt cut to fit")
        return bonus, reasons
    if source == "docs":
        if len(answer.split()) < THIN_SECTION_WORDS:
            return -0.1, [f"thin section (under {THIN_SECTION_WORDS} words)"]
        return 0.0, []
    if source == "conversations":
        feedback = evidence.get("feedback")
        if feedback == "positive":
            return 0.2, []
        return 0.0, ["no user feedback"]
    return 0.0, []


def score_example(record: dict, fmt: str, source: str, decision: str | None = None,
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Quality:
    """Score one example given the latest review decision on it (good / bad / skip / redact, or None). The source's
    evidence is read from the record's metadata (`has_body`, `diff_truncated`, `feedback`), so a later quality
    check scores it the same way without going back to the source."""
    if source == "linked":
        return assess(record, min_confidence, decision)
    problems = format_problems(record, fmt)
    if problems:
        return Quality(0.0, "raw", True, [f"invalid format: {problem}" for problem in problems])
    prompt, answer = prompt_and_answer(record, fmt)
    total = len(prompt) + len(answer)
    rejected = reject(total, decision)
    if rejected:
        return rejected

    reasons: list[str] = []
    score = 0.5 + 0.1  # valid format
    if OPTIMAL_CHARS[0] <= total <= OPTIMAL_CHARS[1]:
        score += 0.1
    else:
        reasons.append("length outside 100-4,000 characters")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    bonus, evidence_reasons = _source_evidence(source, metadata, answer)
    score += bonus
    reasons += evidence_reasons
    return finish_quality(score, reasons, answer, code_blocks(answer), decision)
