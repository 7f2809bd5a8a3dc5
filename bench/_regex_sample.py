"""A random string matching a regular expression (the subset peers use to describe token formats: literals,
classes, \\d \\w \\s, repeats, groups, alternation). Used to make the generated look-alike part of the secrets
corpus from a peer's own format description; deterministic for a given `random.Random`."""

from __future__ import annotations

import random
import re._constants as C  # noqa: N812
import re._parser as P  # noqa: N812
import string

_MAX_REPEAT = 8  # what an open-ended repeat ({n,}, +, *) adds at most beyond its minimum
_CATEGORIES = {
    C.CATEGORY_DIGIT: string.digits,
    C.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    C.CATEGORY_SPACE: " ",
    C.CATEGORY_NOT_DIGIT: string.ascii_letters,
    C.CATEGORY_NOT_WORD: "-.",
    C.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
}
_PRINTABLE = string.ascii_letters + string.digits + "-_.+/=~"


def _class(items, rng: random.Random) -> str:
    chars: list[str] = []
    negate = False
    for op, arg in items:
        if op == C.NEGATE:
            negate = True
        elif op == C.LITERAL:
            chars.append(chr(arg))
        elif op == C.RANGE:
            chars.extend(chr(code) for code in range(arg[0], arg[1] + 1))
        elif op == C.CATEGORY:
            chars.extend(_CATEGORIES.get(arg, ""))
    if negate:
        chars = [char for char in _PRINTABLE if char not in chars]
    return rng.choice(chars) if chars else ""


def _emit(parsed, rng: random.Random, groups: dict[int, str]) -> str:
    out = []
    for op, arg in parsed:
        if op == C.LITERAL:
            out.append(chr(arg))
        elif op == C.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if ord(c) != arg]))
        elif op == C.ANY:
            out.append(rng.choice(_PRINTABLE))
        elif op == C.IN:
            out.append(_class(arg, rng))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            low, high, body = arg
            high = low + _MAX_REPEAT if high == C.MAXREPEAT else high
            out.extend(_emit(body, rng, groups) for _ in range(rng.randint(low, max(low, high))))
        elif op == C.SUBPATTERN:
            group, _, _, body = arg
            text = _emit(body, rng, groups)
            if group:
                groups[group] = text
            out.append(text)
        elif op == C.BRANCH:
            out.append(_emit(rng.choice(arg[1]), rng, groups))
        elif op == C.GROUPREF:
            out.append(groups.get(arg, ""))
        elif op == C.ATOMIC_GROUP:
            out.append(_emit(arg, rng, groups))
        # AT (anchors), ASSERT, ASSERT_NOT and CATEGORY outside a class emit nothing
        elif op == C.CATEGORY:
            out.append(rng.choice(_CATEGORIES.get(arg, "x")))
    return "".join(out)


def sample(pattern: str, rng: random.Random) -> str:
    """One random string the pattern describes (Go's `(?i)` and `\\z` are accepted)."""
    pattern = pattern.replace(r"\z", r"\Z")
    return _emit(P.parse(pattern), rng, {})
