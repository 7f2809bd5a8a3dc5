"""What a commit and a piece of knowledge offer beyond their meaning: tech keywords (seed v1) and explicit
references (issue numbers, file names, identifiers from the diff) that `best` looks for on screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

# Seed v1's idea: a list of technical words a commit and a discussion can share. Editable in the config
# (`linking.keywords`); this is the list used when the config gives none.
TECH_KEYWORDS = (
    "api endpoint route handler request response status http https rest graphql grpc websocket "
    "auth authentication authorization login logout oauth token jwt session cookie password permission role "
    "cache caching invalidation ttl redis memcached "
    "database db sql query index migration schema table column transaction postgres sqlite mysql mongodb orm "
    "retry backoff timeout rate limit throttle circuit breaker queue worker job scheduler cron async await "
    "concurrency thread lock deadlock race "
    "bug fix crash error exception panic traceback stacktrace regression flaky "
    "test tests unit integration e2e mock fixture coverage ci pipeline build deploy deployment release rollback "
    "docker kubernetes helm terraform config configuration env environment flag feature "
    "performance latency memory leak cpu profiling benchmark optimize pagination search filter sort "
    "ui ux component button modal form input layout css style theme dark mode responsive accessibility "
    "onboarding notification email webhook upload download export import csv json yaml parser serializer "
    "logging logs metrics monitoring alert tracing dashboard "
    "security vulnerability encryption secret key signing certificate tls "
    "refactor cleanup rename deprecate upgrade dependency version typescript python rust react"
).split()

_WORD = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_ISSUE = re.compile(r"(?:#|\bissues?/|\bpull/|\bgh-)(\d{1,6})\b", re.IGNORECASE)
_TICKET = re.compile(r"\b([A-Z][A-Z0-9]{1,9}-\d{1,6})\b")
_FILE = re.compile(r"[\w./-]*\w\.[A-Za-z]{1,5}\b")
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_DEFINITION = re.compile(
    r"\b(?:def|class|fn|func|function|struct|enum|trait|interface|type|const|let|var|impl)\s+([A-Za-z_][A-Za-z0-9_]*)"
)
_COMMON_IDENTIFIERS = frozenset(
    "self this none null true false return import from class def function const let var print main test tests "
    "init new get set value data result error response request config args kwargs string number object list dict "
    "index item items name type async await".split()
)


def normalized_keywords(keywords: list[str] | None) -> frozenset[str]:
    return frozenset(word.lower().strip() for word in (keywords or TECH_KEYWORDS) if word.strip())


def words(text: str) -> set[str]:
    """Lower-case word tokens (hyphen/underscore compounds kept whole)."""
    return set(_WORD.findall(text.lower()))


def keyword_set(text: str, keywords: frozenset[str]) -> set[str]:
    found = set()
    for word in words(text):
        if word in keywords:
            found.add(word)
        for part in re.split(r"[-_]", word):
            if part in keywords:
                found.add(part)
    return found


def _split_identifier(identifier: str) -> bool:
    """A specific-looking identifier: snake_case or camelCase, long enough not to be a common word."""
    has_shape = "_" in identifier.strip("_") or re.search(r"[a-z][A-Z]", identifier) is not None
    return has_shape and len(identifier) >= 6 and identifier.lower() not in _COMMON_IDENTIFIERS


@dataclass
class CommitReferences:
    """Explicit things a commit names: issue numbers, changed file names, identifiers it defines or adds."""

    issues: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)

    def tokens(self) -> dict[str, str]:
        """token -> kind, in the form `reference_tokens` finds them in knowledge text."""
        result = {f"#{number}": "issue" for number in self.issues}
        result.update({name: "file" for name in self.files})
        result.update({name: "identifier" for name in self.identifiers})
        return result


def commit_references(message: str, paths: list[str], added_code: list[str]) -> CommitReferences:
    refs = CommitReferences()
    for match in _ISSUE.finditer(message):
        refs.issues.add(match.group(1))
    refs.issues.update(ticket.lower() for ticket in _TICKET.findall(message))
    for path in paths:
        name = PurePosixPath(path).name.lower()
        refs.files.add(name)
    for code in added_code:
        for name in _DEFINITION.findall(code):
            if _split_identifier(name):
                refs.identifiers.add(name.lower())
    for identifier in _IDENTIFIER.findall(message):
        if _split_identifier(identifier):
            refs.identifiers.add(identifier.lower())
    return refs


def reference_tokens(text: str) -> set[str]:
    """Every token of a knowledge text (plus its window name / URL) a commit reference could match."""
    tokens = {f"#{number}" for number in _ISSUE.findall(text)}
    tokens.update(ticket.lower() for ticket in _TICKET.findall(text))
    tokens.update(PurePosixPath(match).name.lower() for match in _FILE.findall(text))
    tokens.update(identifier.lower() for identifier in _IDENTIFIER.findall(text) if len(identifier) >= 6)
    return tokens


def identifiers_in_code(code: str, limit: int = 12) -> list[str]:
    """Distinct specific-looking identifiers in added code, most frequent first: words for the commit query."""
    counts: dict[str, int] = {}
    for identifier in _IDENTIFIER.findall(code):
        if _split_identifier(identifier):
            counts[identifier] = counts.get(identifier, 0) + 1
    return [name for name, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]
