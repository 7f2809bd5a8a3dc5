"""The provider token table (providers.yaml): one entry per documented token format, loaded and checked once.

`load_provider_rules()` returns the compiled rules; a malformed table is a StudioError naming the entry and field,
so adding a provider is editing one YAML file. `scan_providers(text)` runs every rule whose keywords occur in the
text and keeps the matches whose value clears the rule's entropy floor.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudioError

TABLE = Path(__file__).with_name("providers.yaml")
_FIELDS = ("name", "kind", "provider", "regex", "keywords", "entropy", "tp", "fp", "docs")
_KIND = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class ProviderRule:
    name: str
    kind: str
    provider: str
    pattern: re.Pattern
    keywords: tuple[str, ...]
    entropy: float
    example_tp: str
    example_fp: str
    docs: str

    def value_span(self, match: re.Match) -> tuple[int, int]:
        """The secret's offsets in a match: the `secret` group when the rule has one and it matched."""
        if "secret" in self.pattern.groupindex and match.group("secret") is not None:
            return match.span("secret")
        return match.span()


def shannon_entropy(value: str) -> float:
    """Bits per character of `value` (0 for an empty string)."""
    if not value:
        return 0.0
    counts, total = Counter(value), len(value)
    return -sum(count / total * math.log2(count / total) for count in counts.values())


def _rule(entry: object, index: int) -> ProviderRule:
    where = f"providers.yaml entry {index + 1}"
    if not isinstance(entry, dict):
        raise StudioError(f"{where} is not a mapping of {', '.join(_FIELDS)}.")
    name = entry.get("name")
    where = f"providers.yaml rule {name!r}" if isinstance(name, str) else where
    missing = [field for field in _FIELDS if field not in entry]
    if missing:
        raise StudioError(f"{where} lacks {', '.join(missing)}.")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise StudioError(f"{where} has unknown field(s) {', '.join(unknown)}; the fields are {', '.join(_FIELDS)}.")
    if not isinstance(entry["kind"], str) or not _KIND.fullmatch(entry["kind"]):
        raise StudioError(f"{where}: kind must be snake_case letters and digits, got {entry['kind']!r}.")
    keywords = entry["keywords"] or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k == k.lower() and k for k in keywords):
        raise StudioError(f"{where}: keywords must be a list of non-empty lower-case strings.")
    if not isinstance(entry["entropy"], (int, float)) or not 0 <= entry["entropy"] <= 8:
        raise StudioError(f"{where}: entropy must be a number of bits per character between 0 and 8.")
    for field in ("name", "provider", "regex", "tp", "fp", "docs"):
        if not isinstance(entry[field], str) or not entry[field]:
            raise StudioError(f"{where}: {field} must be a non-empty string.")
    try:
        pattern = re.compile(entry["regex"])
    except re.error as exc:
        raise StudioError(f"{where}: the regex does not compile ({exc}).") from exc
    return ProviderRule(entry["name"], entry["kind"], entry["provider"], pattern, tuple(keywords),
                        float(entry["entropy"]), entry["tp"], entry["fp"], entry["docs"])


def parse_rules(document: object) -> tuple[ProviderRule, ...]:
    """Rules from the table's parsed YAML (a list of entries); names must be unique."""
    if not isinstance(document, list) or not document:
        raise StudioError("providers.yaml must be a non-empty list of rules.")
    rules = tuple(_rule(entry, index) for index, entry in enumerate(document))
    names = Counter(rule.name for rule in rules)
    repeated = [name for name, count in names.items() if count > 1]
    if repeated:
        raise StudioError(f"providers.yaml names rule {repeated[0]!r} more than once.")
    return rules


@functools.lru_cache(maxsize=1)
def load_provider_rules() -> tuple[ProviderRule, ...]:
    import yaml

    try:
        document = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StudioError(f"The provider table {TABLE} cannot be read ({exc}).") from exc
    return parse_rules(document)


def provider_kinds() -> dict[str, str]:
    """kind -> the provider that issues it (the first rule of that kind names it)."""
    kinds: dict[str, str] = {}
    for rule in load_provider_rules():
        kinds.setdefault(rule.kind, rule.provider)
    return kinds


def scan_providers(text: str, lowered: str | None = None) -> list[tuple[ProviderRule, int, int]]:
    """(rule, start, end) of every provider token in `text` whose value clears its rule's entropy floor."""
    lowered = text.lower() if lowered is None else lowered
    found = []
    for rule in load_provider_rules():
        if rule.keywords and not any(keyword in lowered for keyword in rule.keywords):
            continue
        for match in rule.pattern.finditer(text):
            start, end = rule.value_span(match)
            if end > start and shannon_entropy(text[start:end]) >= rule.entropy:
                found.append((rule, start, end))
    return found
