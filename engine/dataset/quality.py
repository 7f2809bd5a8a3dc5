"""Quality of a training pair: the seed's score and tiers, as small checks that each keep a pair, demote it or drop
it with a reason (datatrove's filter habit: reasons are counted, rejects are kept for the report).

Score (the seed's calculate_quality_score, adapted to linked pairs): 0.5 base, +0.1 valid format, +0.1 optimal
length (100-4,000 characters), +0.2 link confidence >= 0.8 (+0.1 for >= 0.7; the seed's "source bonus": here the
evidence is the link), +0.2 a reviewer marked it good. Demotions: -0.2 repetitive output, -0.1 unbalanced brackets
in code, -0.1 link confidence below `min_confidence`. Only a human-reviewed pair can reach gold (the seed: "Gold:
human-verified"), so an automatic score stops at 0.89.

Tiers: gold >= 0.9, silver 0.7-0.9, bronze 0.5-0.7, raw < 0.5.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from engine.config import DEFAULT_MIN_CONFIDENCE
from engine.dataset.review import clears_findings
from engine.formats import format_problems

MIN_TOTAL_CHARS = 20
MAX_TOTAL_CHARS = 50_000
OPTIMAL_CHARS = (100, 4_000)
_BRACKETS = {")": "(", "]": "[", "}": "{"}
_STRING_OR_COMMENT = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`[^`]*`|#[^\n]*|//[^\n]*|/\*.*?\*/",
                                re.DOTALL)


@dataclass
class Quality:
    """The verdict on one pair: kept or dropped, its score and tier, and every reason behind them."""

    score: float
    tier: str
    dropped: bool = False
    reasons: list[str] = field(default_factory=list)  # drops and demotions, e.g. "repetitive output"


def tier_for(score: float) -> str:
    if score >= 0.9:
        return "gold"
    if score >= 0.7:
        return "silver"
    if score >= 0.5:
        return "bronze"
    return "raw"



def metadata_problems(record: dict) -> list[str]:
    """Completeness of the ARCHITECTURE contract's metadata; these warn, they do not drop."""
    metadata = record.get("metadata")
    if not isinstance(metadata, dict):
        return []
    problems = []
    for name in ("commit_sha", "commit_timestamp", "file_path", "knowledge_type", "confidence", "source_id"):
        if name not in metadata:
            problems.append(f"metadata.{name} missing")
    sha = metadata.get("commit_sha")
    if isinstance(sha, str) and not re.fullmatch(r"[0-9a-f]{40}", sha):
        problems.append("metadata.commit_sha is not a full 40-hex sha")
    confidence = metadata.get("confidence")
    if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))):
        problems.append("metadata.confidence is not a number")
    elif isinstance(confidence, (int, float)) and not 0 <= confidence <= 1:
        problems.append("metadata.confidence is outside 0-1")
    return problems


def confidence_of(record: dict) -> float | None:
    metadata = record.get("metadata")
    value = metadata.get("confidence") if isinstance(metadata, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return None
    return float(value)


def is_repetitive(text: str) -> bool:
    """Excessive repetition: most non-blank lines repeat, or one short line makes up half the text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 6:
        counts = Counter(lines)
        repeated = sum(count for count in counts.values() if count > 1)
        trivial = {"}", "{", ")", "]", "end", "};", "},", "pass", "else:", "});"}
        repeated -= sum(count for line, count in counts.items() if line in trivial and count > 1)
        if repeated / len(lines) > 0.6:
            return True
    words = text.split()
    if len(words) >= 30:
        top, count = Counter(words).most_common(1)[0]
        if count / len(words) > 0.4 and len(top) > 1:
            return True
    return False


def brackets_balanced(code: str) -> bool:
    """Brackets outside strings and comments close in order. Code that is a fragment of a diff may open a block
    it does not close; one unclosed level is tolerated, a wrong closer is not."""
    stack = []
    for char in _STRING_OR_COMMENT.sub("", code):
        if char in "([{":
            stack.append(char)
        elif char in _BRACKETS:
            if stack and stack[-1] == _BRACKETS[char]:
                stack.pop()
            elif stack:
                return False
    return len(stack) <= 1


def assess(record: dict, min_confidence: float = DEFAULT_MIN_CONFIDENCE, decision: str | None = None) -> Quality:
    """Score one record (a parsed JSONL object) given the latest review decision on it (good/bad/skip/redact)."""
    problems = format_problems(record)
    if problems:
        return Quality(0.0, "raw", True, [f"invalid format: {problem}" for problem in problems])
    instruction, output = record["instruction"], record["output"]
    text_input = record.get("input") or ""
    total = len(instruction) + len(text_input) + len(output)
    rejected = reject(total, decision)
    if rejected:
        return rejected

    reasons = []
    score = 0.5 + 0.1  # valid format
    if OPTIMAL_CHARS[0] <= total <= OPTIMAL_CHARS[1]:
        score += 0.1
    else:
        reasons.append("length outside 100-4,000 characters")
    confidence = confidence_of(record)
    if confidence is not None and confidence >= 0.8:
        score += 0.2
    elif confidence is not None and confidence >= 0.7:
        score += 0.1
    if confidence is None:
        reasons.append("no link confidence")
    elif confidence < min_confidence:
        score -= 0.1
        reasons.append(f"link confidence below {min_confidence:g}")
    return finish_quality(score, reasons, output, [output], decision)


def reject(total_chars: int, decision: str | None) -> Quality | None:
    """Raw outright, whatever else holds: a size out of bounds, or a reviewer's "bad"."""
    if total_chars < MIN_TOTAL_CHARS:
        return Quality(0.0, "raw", True, [f"too short (under {MIN_TOTAL_CHARS} characters)"])
    if total_chars > MAX_TOTAL_CHARS:
        return Quality(0.0, "raw", True, [f"too long (over {MAX_TOTAL_CHARS:,} characters)"])
    if decision == "bad":
        return Quality(0.0, "raw", True, ["reviewer marked bad"])
    return None


def finish_quality(score: float, reasons: list[str], output: str, code: list[str], decision: str | None) -> Quality:
    """The checks every example shares: repetition and unbalanced brackets in `code` cost, and only a reviewer's
    good (or redact) makes gold."""
    if is_repetitive(output):
        score -= 0.2
        reasons.append("repetitive output")
    if not all(brackets_balanced(block) for block in code):
        score -= 0.1
        reasons.append("unbalanced brackets in output")
    if clears_findings(decision):
        score += 0.2
    else:
        score = min(score, 0.89)  # gold is for human-verified examples only
    score = round(max(0.0, min(1.0, score)), 2)
    return Quality(score, tier_for(score), False, reasons)
