"""Sensitive data in training text: secrets (API keys, tokens, passwords, private keys) and PII.

Detectors, each returning `Span`s (kind, start, end, source) over the sensitive VALUE:
- the provider table (engine/dataset/rules/providers.yaml): one entry per documented token format, with its
  keywords, entropy floor and an example true and false positive. Adding a provider is adding an entry there;
- context rules (engine/dataset/context_rules.py): secrets known by what surrounds them on screens, in terminals,
  code and commit messages (assignments behind shell prompts, labels, key tables, HTTP auth, URLs with credentials);
- PEM / PGP private key blocks as a whole, also when OCR breaks the header or the body across lines;
- secrets spoken in transcripts ("the staging password is blue-falcon-42");
- PII (engine/dataset/pii.py): e-mail, phone numbers, payment cards, IBANs, US SSNs;
- detect-secrets (Yelp), for what it does that the rules above do not: its language-aware keyword detector, its
  high-entropy string detectors and the IBM/Cloudant/SoftLayer credential detectors. Its provider regexes are left
  out: the table has each of them anchored at token boundaries (its AWS rule, unanchored, fires inside all-caps
  words).

Overlapping spans merge into one covering all of them, so redaction never leaves a piece of a secret behind.
Nothing here logs or returns the secret value: callers get offsets, kinds and rule names.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from dataclasses import asdict, dataclass

from engine.dataset import context_rules, pii
from engine.dataset.rules import load_provider_rules, provider_kinds, scan_providers
from engine.dataset.secret_values import is_code_reference, is_natural_language, is_placeholder
from engine.dataset.spans import Span

__all__ = ["DETECTOR_VERSION", "Finding", "KINDS", "PII_KINDS", "Span", "detect_sensitive", "mask",
           "placeholder_tag", "scan_record", "scan_with_detect_secrets"]

# Bump when a rule changes: cached scan results keyed by an older version are recomputed. The provider table's
# content is part of the version, so editing providers.yaml invalidates the cache by itself.
_DETECTOR_BASE = "studio-sensitive-8"

# kind -> (placeholder tag, what it is). The placeholder tag names the `<TAG_n>` a redaction writes.
_BUILTIN_KINDS: dict[str, tuple[str, str]] = {
    "aws_secret_key": ("AWS_SECRET_KEY", "AWS secret access key"),
    "cloud_credential": ("CLOUD_CREDENTIAL", "other cloud credential (IBM, SoftLayer, Cloudant)"),
    "private_key": ("PRIVATE_KEY", "private key block"),
    "http_credentials": ("HTTP_CREDENTIALS", "HTTP credentials (curl -u, Authorization header)"),
    "connection_string": ("CONNECTION_STRING", "connection string or URL holding a password"),
    "password": ("PASSWORD", "password assigned in code, config or a terminal"),
    "secret": ("SECRET", "key, token or secret assigned or labelled in code, config or on a screen"),
    "spoken_secret": ("SPOKEN_SECRET", "secret said aloud in a transcript"),
    "high_entropy_string": ("SECRET", "high-entropy string"),
    "email": ("EMAIL", "e-mail address"),
    "phone_number": ("PHONE", "phone number"),
    "credit_card": ("CARD_NUMBER", "payment card number"),
    "iban": ("IBAN", "bank account (IBAN)"),
    "us_ssn": ("SSN", "US social security number"),
}


def _kinds() -> dict[str, tuple[str, str]]:
    kinds = {kind: (kind.upper(), f"{provider} credential") for kind, provider in provider_kinds().items()}
    kinds.update(_BUILTIN_KINDS)
    return kinds


KINDS: dict[str, tuple[str, str]] = _kinds()
PII_KINDS = frozenset({"email", "phone_number", "credit_card", "iban", "us_ssn"})


def _version() -> str:
    import hashlib

    from engine.dataset.rules import TABLE

    return f"{_DETECTOR_BASE}+{hashlib.sha1(TABLE.read_bytes()).hexdigest()[:10]}"


DETECTOR_VERSION = _version()

_DETECT_SECRETS_KIND = {
    "Base64 High Entropy String": "high_entropy_string",
    "Hex High Entropy String": "high_entropy_string",
    "Secret Keyword": "password",
    "Artifactory Credentials": "artifactory_token",
    "AWS Access Key": "aws_access_key",
    "Azure Storage Account access key": "azure_storage_key",
    "Basic Auth Credentials": "connection_string",
    "Discord Bot Token": "discord_token",
    "GitHub Token": "github_token",
    "GitLab Token": "gitlab_token",
    "JSON Web Token": "jwt",
    "Mailchimp Access Key": "mailchimp_key",
    "NPM tokens": "npm_token",
    "OpenAI Token": "openai_key",
    "Private Key": "private_key",
    "PyPI Token": "pypi_token",
    "SendGrid API Key": "sendgrid_key",
    "Slack Token": "slack_token",
    "Stripe Access Key": "stripe_key",
    "Telegram Bot Token": "telegram_token",
    "Twilio API Key": "twilio_key",
    "Square OAuth Secret": "square_token",
    "Public IP (ipv4)": "ip_address",
}
_CLOUD_TYPES = frozenset({"Cloudant Credentials", "IBM Cloud IAM Key", "IBM COS HMAC Credentials",
                          "SoftLayer Credentials"})

# When spans overlap, the more specific kind names the merged span (lower number wins).
_GENERIC_RANK = {"http_credentials": 3, "connection_string": 4, "aws_secret_key": 1, "password": 5,
                 "spoken_secret": 5, "secret": 6, "high_entropy_string": 9}


def _rank(kind: str) -> int:
    if kind == "private_key":
        return 0
    return _GENERIC_RANK.get(kind, 2 if kind in PII_KINDS else 1)


@dataclass(frozen=True, slots=True)
class Finding:
    """A span located in a record: line `pair_index` (0-based) of a JSONL, `field` the path of the text in the
    record (`output`, `messages[1].content`, `metadata.sources[0].window_name`)."""

    pair_index: int
    field: str
    kind: str
    start: int
    end: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def placeholder_tag(kind: str) -> str:
    return KINDS.get(kind, (kind.upper(), ""))[0]


# ---------------------------------------------------------------------------------------------- detect-secrets

# What detect-secrets adds to the rules here: its keyword detector (language-aware `password = ...`), its
# high-entropy string detectors, and IBM / SoftLayer / Cloudant credentials. IPPublicDetector is left out:
# addresses on a developer's screen are hosts, not secrets.
_STUDIO_PLUGINS = ("Base64HighEntropyString", "CloudantDetector", "HexHighEntropyString", "IbmCloudIamDetector",
                   "IbmCosHmacDetector", "KeywordDetector", "SoftlayerDetector")

# detect-secrets keeps its configuration in a process-wide singleton; one lock serialises every use of it.
_DETECT_SECRETS_LOCK = threading.Lock()
_configured_plugins: tuple[str, ...] | None = None
_MAX_LINE = 4000  # longer lines are scanned in overlapping windows (minified code, base64 blobs)


def _configure(plugins: tuple[str, ...]) -> None:
    global _configured_plugins
    if _configured_plugins == plugins:
        return
    from detect_secrets.settings import get_filters, get_plugins, get_settings

    settings = get_settings()
    settings.clear()
    settings.configure_plugins([{"name": name} for name in plugins])
    get_plugins.cache_clear()
    get_filters.cache_clear()
    _configured_plugins = plugins


def _all_detect_secrets_plugins() -> tuple[str, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return tuple(sorted(cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()))


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    """(offset, line) pairs; lines longer than _MAX_LINE become overlapping windows."""
    out, offset = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if len(body) <= _MAX_LINE:
            out.append((offset, body))
        else:
            step = _MAX_LINE - 200
            for window_start in range(0, len(body), step):
                out.append((offset + window_start, body[window_start:window_start + _MAX_LINE]))
        offset += len(line)
    return out


def _detect_secrets_findings(numbered: list[tuple[int, str]], filename: str):
    """detect-secrets' per-line scan (scan.py's `_process_line_based_plugins`) with the same plugins and filters,
    but its per-line filters and code snippets are computed only for lines where a plugin found something: the
    bookkeeping it does for every line is most of its time, and most lines hold nothing."""
    from detect_secrets.core.scan import _is_filtered_out
    from detect_secrets.settings import get_plugins
    from detect_secrets.util.code_snippet import get_code_snippet
    from detect_secrets.util.inject import call_function_with_arguments

    line_content = [line for _, line in numbered]
    plugins = get_plugins()
    for index, (number, line) in enumerate(numbered):
        line = line.rstrip()
        context = None
        for plugin in plugins:
            found = call_function_with_arguments(plugin.analyze_line, filename=filename, line=line,
                                                 line_number=number, context=None)
            for secret in found or ():
                if context is None:
                    context = get_code_snippet(lines=line_content, line_number=index + 1)
                    if _is_filtered_out(required_filter_parameters=["line"], filename=filename, line=line,
                                        context=context):
                        break
                if _is_filtered_out(required_filter_parameters=["secret"], filename=secret.filename,
                                    secret=secret.secret_value, plugin=plugin, line=line):
                    continue
                if _is_filtered_out(required_filter_parameters=["context"], filename=secret.filename,
                                    secret=secret.secret_value, plugin=plugin, line=line, context=context):
                    continue
                secret.line_number = index + 1
                yield secret


def scan_with_detect_secrets(text: str, filename: str = "capture.txt", all_plugins: bool = False) -> list[Span]:
    """Run detect-secrets over `text` line by line, as it scans a file named `filename` (the name selects its
    keyword rules for that language). `all_plugins=True` runs every plugin with no studio rule at all, through
    detect-secrets' own scan loop: the baseline the benchmarks compare with. Spans cover every occurrence of each
    reported value on its line."""
    from detect_secrets.core.scan import _process_line_based_plugins  # the per-line core of scan_file

    plugins = _all_detect_secrets_plugins() if all_plugins else _STUDIO_PLUGINS
    lines = _lines_with_offsets(text)
    if not all_plugins:
        # only lines that name a secret or hold a long token can give the studio's plugins a finding
        lines = [(offset, line) for offset, line in lines if _DETECT_SECRETS_LINE.search(line)]
        if not lines:
            return []
    spans = []
    with _DETECT_SECRETS_LOCK:
        _configure(plugins)
        numbered = [(number, line) for number, (_, line) in enumerate(lines, start=1)]
        found = _process_line_based_plugins(lines=numbered, filename=filename) if all_plugins \
            else _detect_secrets_findings(numbered, filename)
        for secret in found:
            offset, line = lines[secret.line_number - 1]
            value = secret.secret_value or ""
            kind = _DETECT_SECRETS_KIND.get(secret.type, secret.type.lower().replace(" ", "_"))
            if kind == "aws_access_key" and not _AWS_KEY_ID.fullmatch(value):
                kind = "aws_secret_key"
            if secret.type in _CLOUD_TYPES:
                kind = "cloud_credential"
            plugin = _plugin_names().get(secret.type, "detect-secrets")
            start = line.find(value) if value else -1
            while start != -1:
                begin, end = start, start + len(value)
                if kind not in _VALUE_KINDS:
                    # Several plugins report only a capture group ("ghp" of a GitHub token, a JWT without its
                    # signature): widen to the end of the token so redaction removes all of it.
                    while end < len(line) and line[end] in _TOKEN_CHARS:
                        end += 1
                spans.append(Span(kind, offset + begin, offset + end, f"detect-secrets:{plugin}"))
                start = line.find(value, start + len(value))
    return _dedupe(spans)


_AWS_KEY_ID = re.compile(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}")
# What a line needs for the studio's detect-secrets plugins to report anything: a word of the keyword detector's
# or the IBM / SoftLayer / Cloudant detectors', or a run long enough for the entropy detectors.
_DETECT_SECRETS_LINE = re.compile(r"(?i)pass|pwd|secret|token|key|auth|api|cred|private|ibm|cloudant|softlayer|sl_|"
                                  r"hmac|[A-Za-z0-9+/=_-]{20}")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
# Kinds whose reported value is exactly the secret (a password after `=`), never widened.
_VALUE_KINDS = frozenset({"password", "connection_string", "high_entropy_string", "aws_secret_key", "private_key",
                          "cloud_credential"})


@functools.lru_cache(maxsize=1)
def _plugin_names() -> dict[str, str]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return {secret_type: cls.__name__ for secret_type, cls in get_mapping_from_secret_type_to_class().items()}


def _dedupe(spans: list[Span]) -> list[Span]:
    return sorted(set(spans), key=lambda span: (span.start, span.end, span.kind))


# ----------------------------------------------------------------------------- allowlist for detect-secrets

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGEST_CONTEXT = re.compile(
    r"(?i)(?:sha(?:1|224|256|384|512)[-:=]|integrity|checksum|\bhash\b|digest|resolved|commit|\bsha\b|\brev\b|"
    r"revision|merge|parent|tree|blob|index [0-9a-f]{7}|etag|fingerprint|\bid\b)")
_SECRET_WORD = re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
                          r"private[_-]?key|credential|auth)")
_LOCKFILE_LINE = re.compile(r"(?i)\b(?:integrity|checksum|resolved|sha(?:1|256|384|512))\b|\bhash\s*=|--hash=")


def _line_around(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start: line_end if line_end != -1 else len(text)]


def _keep_detect_secrets_span(text: str, span: Span) -> bool:
    """detect-secrets' findings pass the studio's allowlist: placeholders, UUIDs, code references, digests
    (git SHAs, lockfile hashes) and names of secrets are dropped."""
    value = text[span.start:span.end]
    if span.kind == "private_key":
        return True
    if is_placeholder(value):
        return False
    line = _line_around(text, span.start, span.end)
    if any(value.lower() in uuid.lower() for uuid in _UUID.findall(line)):
        return False  # a UUID, or one of its hex groups
    if span.kind in {"password", "high_entropy_string"}:
        if is_code_reference(value) or is_natural_language(value):
            return False
        if re.fullmatch(r"[A-Z0-9]+(?:[-_][A-Z0-9]+)+", value) and re.search(
                r"(?:^|[-_])(?:KEY|SECRET|TOKEN|PASSWORD|API|NAME)(?:[-_]|$)", value):
            return False  # the name of a secret (in a secret manager), not its value
    if span.kind == "high_entropy_string":
        if _HEX.fullmatch(value):
            # Hex strings are digests (git SHAs, lockfile hashes) unless assigned to something named like a secret.
            before = line[: line.find(value)] if value in line else line
            return bool(_SECRET_WORD.search(before)) and not _DIGEST_CONTEXT.search(before)
        if _LOCKFILE_LINE.search(line):
            return False
    if span.kind == "password" and _HEX.fullmatch(value) and len(value) in (7, 8, 10, 12, 40, 64):
        before = line[: line.find(value)] if value in line else line
        if _DIGEST_CONTEXT.search(before) and not re.search(r"(?i)(?:pass|pwd|secret|token|key)\s*[:=]", before):
            return False
    return True


# ------------------------------------------------------------------------------------------------- detectors

_DASHES = r"[-\u2010-\u2015_~=]{2,6}"
_PEM_BEGIN = re.compile(
    _DASHES + r"[ \t]*BEGIN[\s_]+((?:[A-Z0-9]+[\s_]+){0,3})PRIVATE[\s_]+KEY(?:[\s_]+BLOCK)?[ \t]*" + _DASHES,
    re.IGNORECASE,
)
_PEM_END = re.compile(
    _DASHES + r"[ \t]*END[\s_]+(?:[A-Z0-9]+[\s_]+){0,3}PRIVATE[\s_]+KEY(?:[\s_]+BLOCK)?[ \t]*" + _DASHES,
    re.IGNORECASE,
)
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=: \t-]{16,}")


_SPOKEN = re.compile(
    r"(?i)\b(?:(?:admin|root|db|database|wi-?fi|vpn|staging|prod(?:uction)?|master|account|server|router|"
    r"laptop|login|ssh|sudo|email|alarm|door|safe|bank)\s+)?"
    r"(password|pass\s?word|passphrase|pass\s?code|pin(?:\s+code|\s+number)?|(?:api|secret|access|private|license)"
    r"\s+key|secret|access\s+token|auth\s+token|token)"
    r"(?:\s+(?:for|to|on|of)\s+(?:the\s+)?[\w.-]+(?:\s+[\w.-]+)?)?"
    r"\s*(?:is|was|'s|’s|will\s+be|should\s+be|would\s+be)\s+"
    r"((?:just\s+|literally\s+|actually\s+)?)"
    r"([^\s.,;!?\n](?:[^\n.,;!?]|[.,;!?](?=\S)){0,79}?)"
    r"(?=[.!?,;]\s|[.!?,;]?$|\s+(?:and|but|so|okay|ok|then|which|because|right|alright|all\s+caps|"
    r"lower\s*case|upper\s*case)\b|\n)",
)
_SPOKEN_STOP = frozenset("""
a an the not no none null nil empty blank wrong incorrect invalid expired correct right stored saved kept set
reset changed updated rotated hashed encrypted masked hidden required missing needed optional in on at from for to
of with by under behind inside into still being too also just only there here what that this it its them they
same different now then managed shared available long short weak strong secure insecure fine ok okay good bad
like probably going gonna supposed used generated random really very pretty hard easy case sensitive leaked
compromised part one something anything nothing whatever all both either configured defined read loaded passed
sent handled checked validated verified cached logged printed displayed shown undefined somewhere where written
in-memory valid working broken fixed different separate per being already never always usually actually
literally basically totally probably definitely exactly simply done gone out up off over available your my our
his her their unique unchanged visible pasted copied rotating expiring expires expire changing
""".split())
_NUMBER_WORDS = frozenset("zero oh one two three four five six seven eight nine ten".split())
_SPOKEN_REFERENCE = re.compile(r"(?i)\b(?:vault|1password|keychain|keepass|secrets?\s+manager|env(?:ironment)?|"
                               r"slack|dm|email|config|file|ticket|wiki|readme|docs?)\b")



def _pem_spans(text: str) -> list[Span]:
    spans = []
    for begin in _PEM_BEGIN.finditer(text):
        if "PUBLIC" in begin.group(0).upper():
            continue
        end_match = _PEM_END.search(text, begin.end(), begin.end() + 20000)
        if end_match:
            if len(re.sub(r"\s", "", text[begin.end():end_match.start()])) < 16:
                continue  # BEGIN ... END around nothing (or `anything`): a template, not a key
            end = end_match.end()
        else:
            # No END marker on screen (scrolled away or cut by OCR): take the base64-looking lines that follow.
            end = begin.end()
            position = begin.end()
            for _ in range(200):
                newline = text.find("\n", position)
                if newline == -1:
                    break
                next_end = text.find("\n", newline + 1)
                next_end = len(text) if next_end == -1 else next_end
                line = text[newline + 1: next_end]
                if line.strip() and not _BASE64_LINE.fullmatch(line.strip()):
                    break
                if line.strip():
                    end = next_end
                position = next_end
                if next_end >= len(text):
                    break
            if end == begin.end():
                tail = re.match(r"[ \t]*[A-Za-z0-9+/=]{16,}", text[end:])
                end += tail.end() if tail else 0
        spans.append(Span("private_key", begin.start(), end, "studio:pem_block"))
    return spans


def _spoken_spans(text: str) -> list[Span]:
    spans = []
    for match in _SPOKEN.finditer(text):
        value = match.group(3)
        words = value.split()
        first = words[0].lower().strip("'\"") if words else ""
        if all(word.lower() in _NUMBER_WORDS or word.isdigit() for word in words):
            spans.append(Span("spoken_secret", match.start(3), match.end(3), "studio:spoken_secret"))
            continue  # a PIN read out digit by digit
        if not first or first in _SPOKEN_STOP or re.fullmatch(r"[a-z]+(?:ing|ed)", first):
            continue  # "the password is wrong / expiring / rotated": talk about a secret, not the secret
        if _SPOKEN_REFERENCE.search(value) and not re.search(r"\d", value):
            continue
        if match.group(1).lower().startswith("token") and len(words) == 1 and words[0].isalpha() and len(value) < 8:
            continue
        end = match.end(3)
        while end < len(text) and text[end] in "!#$%&*" and re.search(r"\d", value):
            end += 1  # "Ember5634!": a symbol glued to a password-like token belongs to it
        spans.append(Span("spoken_secret", match.start(3), end, "studio:spoken_secret"))
    return spans


def _provider_spans(text: str, lowered: str) -> list[Span]:
    spans = []
    for rule, start, end in scan_providers(text, lowered):
        value = text[start:end]
        # a webhook URL's secret is its last segment: `.../services/TAGGINGEXAMPLE/...` names no placeholder
        if not is_placeholder(value.rstrip("/").rsplit("/", 1)[-1] if "://" in value else value):
            spans.append(Span(rule.kind, start, end, f"rule:{rule.name}"))
    return spans


def _repeats(text: str, spans: list[Span]) -> list[Span]:
    """Every other verbatim copy of a flagged value (8+ characters) is flagged too: redaction must not leave the
    second copy of a key behind because only the first stood next to its name."""
    extra = []
    for span in spans:
        value = text[span.start:span.end]
        if len(value) < 8:
            continue
        start = text.find(value)
        while start != -1:
            if start != span.start:
                extra.append(Span(span.kind, start, start + len(value), span.source))
            start = text.find(value, start + 1)
    return extra


def _context_spans(text: str) -> list[Span]:
    return [*context_rules.assignment_spans(text), *context_rules.label_spans(text),
            *context_rules.http_auth_spans(text), *context_rules.url_credential_spans(text)]


def _pii_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for detector in pii.DETECTORS:
        spans.extend(detector(text))
    return spans


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping spans become one covering both; the most specific kind names it."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            best = last if _rank(last.kind) <= _rank(span.kind) else span
            merged[-1] = Span(best.kind, last.start, max(last.end, span.end), best.source)
        else:
            merged.append(span)
    return merged


def detect_sensitive(text: str, filename: str = "capture.txt") -> list[Span]:
    """All sensitive spans in `text` (non-overlapping, sorted by start). `filename` is the file the text comes
    from (its extension selects detect-secrets' keyword rules); OCR text and transcripts use the default."""
    if not text:
        return []
    lowered = text.lower()
    candidates = [span for span in scan_with_detect_secrets(text, filename)
                  if span.kind != "ip_address" and _keep_detect_secrets_span(text, span)]
    candidates += _provider_spans(text, lowered)
    candidates += _context_spans(text)
    candidates += _pem_spans(text)
    candidates += _spoken_spans(text)
    candidates += _pii_spans(text)
    candidates = [span for span in candidates if span.end > span.start]
    candidates += _repeats(text, [span for span in candidates if span.kind not in PII_KINDS])
    return _merge(candidates)


def scan_record(record: dict, pair_index: int) -> list[Finding]:
    """Findings in every text of one record (its fields, chat messages and metadata); see engine.dataset.gate."""
    from engine.dataset.gate import record_findings

    return record_findings(record, pair_index)


def mask(value: str) -> str:
    """What a person may see of a secret: its length, never its characters."""
    return "•" * min(len(value), 24) + (f" ({len(value)} chars)" if len(value) > 24 else "")


def rule_count() -> int:
    """How many provider formats the table holds (the report and the bench name it)."""
    return len(load_provider_rules())
