"""Sensitive data in training pairs: secrets (API keys, tokens, passwords, private keys) and PII.

The maintained detector is detect-secrets (Yelp): its plugins and heuristic filters run line by line, as when it
scans a file. This module adds what that misses in screen captures, transcripts and diffs:

- secrets spoken in transcripts ("the staging password is blue-falcon-42"),
- PEM private keys as a whole block, also when OCR breaks the header or the body across lines (detect-secrets
  only marks the `BEGIN ... PRIVATE KEY` words, so redacting its finding would leave the key itself),
- connection strings with passwords (URLs, ADO/ODBC `Password=...;`, JDBC `?password=`),
- provider tokens it does not know (Anthropic, Google, Hugging Face, new OpenAI, GitHub fine-grained, ...),
- `.env`-style assignments without quotes (`DB_PASSWORD=...`) as OCR shows them,
- PII: e-mail addresses, phone numbers (Google's libphonenumber via `phonenumbers`), payment card numbers (Luhn,
  via `python-stdnum`), IBANs (ISO 7064 mod 97, via `python-stdnum`) and US social security numbers.

False positives are kept down by one allowlist applied to every detector: documented example keys
(AKIAIOSFODNN7EXAMPLE, jwt.io's token, Stripe's test cards, ...), placeholders (`${API_KEY}`, `{{ token }}`,
`<your-key>`, `****`), hex digests (git SHAs, lockfile hashes) outside a secret assignment, lockfile integrity
lines and UUIDs.

A `Span` is (kind, start, end, source) with character offsets into the scanned text; `source` names the detector
(`detect-secrets:AWSKeyDetector`, `studio:spoken_secret`, ...). Nothing here logs or returns the secret value.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from dataclasses import asdict, dataclass

# Bump when a rule changes: cached scan results keyed by an older version are recomputed.
DETECTOR_VERSION = "studio-sensitive-7"

# kind -> (placeholder tag, what it is). The placeholder tag names the `<TAG_n>` a redaction writes.
KINDS: dict[str, tuple[str, str]] = {
    "aws_access_key": ("AWS_ACCESS_KEY", "AWS access key id"),
    "aws_secret_key": ("AWS_SECRET_KEY", "AWS secret access key"),
    "github_token": ("GITHUB_TOKEN", "GitHub token"),
    "gitlab_token": ("GITLAB_TOKEN", "GitLab token"),
    "slack_token": ("SLACK_TOKEN", "Slack token or webhook"),
    "stripe_key": ("STRIPE_KEY", "Stripe live key"),
    "openai_key": ("OPENAI_KEY", "OpenAI API key"),
    "anthropic_key": ("ANTHROPIC_KEY", "Anthropic API key"),
    "google_api_key": ("GOOGLE_API_KEY", "Google API key"),
    "huggingface_token": ("HF_TOKEN", "Hugging Face token"),
    "npm_token": ("NPM_TOKEN", "npm token"),
    "pypi_token": ("PYPI_TOKEN", "PyPI token"),
    "sendgrid_key": ("SENDGRID_KEY", "SendGrid API key"),
    "twilio_key": ("TWILIO_KEY", "Twilio API key"),
    "discord_token": ("DISCORD_TOKEN", "Discord bot token"),
    "telegram_token": ("TELEGRAM_TOKEN", "Telegram bot token"),
    "mailchimp_key": ("MAILCHIMP_KEY", "Mailchimp key"),
    "azure_storage_key": ("AZURE_STORAGE_KEY", "Azure storage key"),
    "cloud_credential": ("CLOUD_CREDENTIAL", "other cloud credential (IBM, SoftLayer, Artifactory, Square, ...)"),
    "provider_token": ("API_TOKEN", "other provider token (Shopify, DigitalOcean, Postman, Linear, ...)"),
    "jwt": ("JWT", "JSON web token"),
    "private_key": ("PRIVATE_KEY", "private key block"),
    "connection_string": ("DB_PASSWORD", "password in a connection string or URL"),
    "password": ("PASSWORD", "password or secret assigned in code or config"),
    "spoken_secret": ("SPOKEN_SECRET", "secret said aloud in a transcript"),
    "high_entropy_string": ("SECRET", "high-entropy string"),
    "email": ("EMAIL", "e-mail address"),
    "phone_number": ("PHONE", "phone number"),
    "credit_card": ("CARD_NUMBER", "payment card number"),
    "iban": ("IBAN", "bank account (IBAN)"),
    "us_ssn": ("SSN", "US social security number"),
}

PII_KINDS = frozenset({"email", "phone_number", "credit_card", "iban", "us_ssn"})

_DETECT_SECRETS_KIND = {
    "AWS Access Key": "aws_access_key",
    "Azure Storage Account access key": "azure_storage_key",
    "Basic Auth Credentials": "connection_string",
    "Discord Bot Token": "discord_token",
    "GitHub Token": "github_token",
    "GitLab Token": "gitlab_token",
    "Base64 High Entropy String": "high_entropy_string",
    "Hex High Entropy String": "high_entropy_string",
    "JSON Web Token": "jwt",
    "Secret Keyword": "password",
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
    "Public IP (ipv4)": "ip_address",
}

# When spans overlap, the more specific kind names the merged span (lower number wins).
_GENERIC_RANK = {"password": 5, "spoken_secret": 5, "connection_string": 4, "high_entropy_string": 9}


def _rank(kind: str) -> int:
    if kind == "private_key":
        return 0
    return _GENERIC_RANK.get(kind, 2 if kind in PII_KINDS else 1)


@dataclass(frozen=True, slots=True)
class Span:
    """One sensitive stretch of a text: its kind, character offsets [start, end) and the detector that found it."""

    kind: str
    start: int
    end: int
    source: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A span located in a JSONL file: line `pair_index` (0-based), field instruction|input|output."""

    pair_index: int
    field: str
    kind: str
    start: int
    end: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- detect-secrets

# IPPublicDetector is left out: addresses on a developer's screen are hosts, not secrets, and the studio's
# labelled set showed it flagging version numbers such as 10.2.14.1.
_STUDIO_PLUGINS = [name for name in (
    "ArtifactoryDetector", "AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "CloudantDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "Base64HighEntropyString",
    "HexHighEntropyString", "IbmCloudIamDetector", "IbmCosHmacDetector", "JwtTokenDetector", "KeywordDetector",
    "MailchimpDetector", "NpmDetector", "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector",
    "SendGridDetector", "SlackDetector", "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector",
    "TelegramBotTokenDetector", "TwilioKeyDetector",
)]

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


def scan_with_detect_secrets(text: str, filename: str = "capture.txt", all_plugins: bool = False) -> list[Span]:
    """Run detect-secrets over `text` line by line, as it scans a file named `filename` (the name selects its
    keyword rules for that language). `all_plugins=True` runs every plugin with no studio rule at all: the
    baseline the benchmark compares with. Spans cover every occurrence of each reported value on its line."""
    from detect_secrets.core.scan import _process_line_based_plugins  # the per-line core of scan_file

    plugins = _all_detect_secrets_plugins() if all_plugins else tuple(_STUDIO_PLUGINS)
    lines = _lines_with_offsets(text)
    spans = []
    with _DETECT_SECRETS_LOCK:
        _configure(plugins)
        numbered = [(number, line) for number, (_, line) in enumerate(lines, start=1)]
        for secret in _process_line_based_plugins(lines=numbered, filename=filename):
            offset, line = lines[secret.line_number - 1]
            value = secret.secret_value or ""
            plugin = type(secret).__name__
            kind = _DETECT_SECRETS_KIND.get(secret.type, secret.type.lower().replace(" ", "_"))
            if kind == "aws_access_key" and not _AWS_KEY_ID.fullmatch(value):
                kind = "aws_secret_key"
            if secret.type in {"Artifactory Credentials", "Cloudant Credentials", "IBM Cloud IAM Key",
                               "IBM COS HMAC Credentials", "SoftLayer Credentials", "Square OAuth Secret"}:
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


_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
# Kinds whose reported value is exactly the secret (a password after `=`), never widened.
_VALUE_KINDS = frozenset({"password", "connection_string", "high_entropy_string", "aws_secret_key", "private_key"})


@functools.lru_cache(maxsize=1)
def _plugin_names() -> dict[str, str]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return {secret_type: cls.__name__ for secret_type, cls in get_mapping_from_secret_type_to_class().items()}


def _dedupe(spans: list[Span]) -> list[Span]:
    return sorted(set(spans), key=lambda span: (span.start, span.end, span.kind))


# ------------------------------------------------------------------------------------------------- studio rules

_AWS_KEY_ID = re.compile(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}")

_TOKEN_RULES: list[tuple[str, re.Pattern]] = [
    ("aws_access_key", re.compile(r"(?<![A-Z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("aws_secret_key", re.compile(
        r"(?i)aws.{0,24}?(?:secret|private).{0,24}?[=:]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")),
    ("anthropic_key", re.compile(r"sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_-]{80,120}")),
    ("openai_key", re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}|sk-[A-Za-z0-9]{48}(?![A-Za-z0-9])")),
    ("google_api_key", re.compile(r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    ("huggingface_token", re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34,40}(?![A-Za-z0-9])")),
    ("github_token", re.compile(
        r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}|(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9])")),
    ("gitlab_token", re.compile(r"(?<![A-Za-z0-9_])gl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_-]{20,64}")),
    ("slack_token", re.compile(
        r"xox[abposr]-[0-9A-Za-z-]{10,120}|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,120}")),
    ("stripe_key", re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_live_[0-9A-Za-z]{20,99}")),
    ("npm_token", re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])")),
    ("pypi_token", re.compile(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}")),
    ("sendgrid_key", re.compile(r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")),
    ("twilio_key", re.compile(r"(?<![A-Za-z0-9])(?:SK|AC)[0-9a-f]{32}(?![A-Za-z0-9])")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")),
    ("provider_token", re.compile(
        r"(?<![A-Za-z0-9_])(?:shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|dop_v1_[a-f0-9]{64}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}"
        r"|lin_api_[A-Za-z0-9]{40}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|dapi[a-f0-9]{32}|xai-[A-Za-z0-9]{60,90}"
        r"|gsk_[A-Za-z0-9]{52})(?![A-Za-z0-9])")),
]

_DASHES = r"[-\u2010-\u2015_~=]{2,}"
_PEM_BEGIN = re.compile(
    _DASHES + r"[ \t]*BEGIN[\s_]+((?:[A-Z0-9]+[\s_]+){0,3})PRIVATE[\s_]+KEY(?:[\s_]+BLOCK)?[ \t]*" + _DASHES,
    re.IGNORECASE,
)
_PEM_END = re.compile(
    _DASHES + r"[ \t]*END[\s_]+(?:[A-Z0-9]+[\s_]+){0,3}PRIVATE[\s_]+KEY(?:[\s_]+BLOCK)?[ \t]*" + _DASHES,
    re.IGNORECASE,
)
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=: \t-]{16,}")

_CONNECTION_URL = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,24}://[^\s:/@'\"<>]{0,64}:([^\s@/'\"<>]{1,128})@[A-Za-z0-9.\-\[\]_]+")
_CONNECTION_PARAM = re.compile(r"(?i)[?&;](?:password|passwd|pwd|pass)=([^&;\s'\"]{1,128})")
_ADO_PASSWORD = re.compile(r"(?i)(?:^|[;\"'\s])(?:password|pwd)\s*=\s*([^;'\"\r\n]{1,128}?)\s*(?=;|[\"']|$)")
_ADO_CONTEXT = re.compile(r"(?i)\b(?:server|data source|host|user id|uid|database|initial catalog)\s*=")

_SECRET_NAME = (r"[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|PASSPHRASE|PWD|SECRET|TOKEN|API_?KEY|APIKEY|ACCESS_?KEY"
                r"|PRIVATE_?KEY|SECRET_?KEY|CREDENTIALS?)(?:_?\d+)?")
# NAME=value lines of .env files and shell exports as OCR and diffs show them (diff "+" and gutter numbers allowed).
_ENV_ASSIGNMENT = re.compile(
    r"(?im)^[ \t+]*(?:\d{1,5}[ \t]+)?(?:export[ \t]+)?(" + _SECRET_NAME
    + r")[ \t]*[:=][ \t]*[\"']?([^\s\"',;]{6,200})")  # '#' starts a comment only after a space
# name = "value", name: 'value', "name": "value", name="value" (keyword arguments), name => "value".
_QUOTED_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(" + _SECRET_NAME + r")[\"']?[ \t]*(?:=|:|=>|:=)[ \t]*([\"'])([^\"'\s]{6,200})\2")
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

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])")
_NOT_TLDS = frozenset("png jpg jpeg gif svg webp ico js jsx ts tsx mjs cjs py rs go rb java kt css scss json map "
                      "lock yml yaml toml md txt html wasm so dll exe zip gz".split())
_EXAMPLE_DOMAIN = re.compile(
    r"(?i)(?:^|\.)(?:example\.(?:com|org|net|edu)|[a-z0-9-]+\.(?:example|test|invalid|localhost|local|internal)"
    r"|localhost|users\.noreply\.github\.com|noreply\.github\.com)$")
_NOREPLY = re.compile(r"(?i)^(?:no-?reply|donotreply|do-not-reply|git|mailer-daemon|postmaster)$")

_CARD = re.compile(r"(?<![\w.-])(?:\d[ -]?){12,18}\d(?![\w-]|\.\d)")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9])|35|3(?:0[0-5]|[68]))")
_DOCUMENTED_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222",
    "5200828282828210", "5105105105105100", "378282246310005", "371449635398431", "6011111111111117",
    "6011000990139424", "3056930009020004", "36227206271667", "3566002020360505", "4012888888881881",
    "4000000000000002", "4000000000009995", "5454545454545454", "4444333322221111",
})
_CARD_CONTEXT = re.compile(r"(?i)card|visa|master|amex|\bcc\b|credit|debit|payment|\bpan\b|charged")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_DOCUMENTED_IBANS = frozenset({"GB82WEST12345698765432", "DE89370400440532013000", "GB29NWBK60161331926819",
                               "FR1420041010050500013M02606", "NL91ABNA0417164300", "CH9300762011623852957"})
_SSN = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_DOCUMENTED_SSNS = frozenset({"078-05-1120", "123-45-6789", "219-09-9999", "457-55-5462"})
_PHONE_DIGITS = re.compile(r"\d")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text\s+me|"
                            r"number|reach\s+me|contact)\b")
_DATEISH = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$|^\d{1,2}:\d{2}")

# ------------------------------------------------------------------------------------------------- allowlist

_DOCUMENTED_VALUES = frozenset({
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AKIAI44QH8DHBEXAMPLE",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", "ASIAIOSFODNN7EXAMPLE", "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIy"
    "fQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
})
_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
        \$\{?[A-Za-z_][A-Za-z0-9_.:-]*\}?      # ${API_KEY}, $TOKEN
      | \{\{.*\}\} | \{%.*%\} | \$\(.*\) | %\(?\w*\)?s | %[A-Z_]+%
      | <[^<>]{1,60}> | \[[A-Z_ -]{3,60}\]
      | [*x•#.\-_]{3,} | (?:x{3,}|X{3,}).* | .*(?:x{6,}|X{6,}|\*{3,}).*
      | .*(?:example|placeholder|changeme|change[_-]me|dummy|redacted|sample|your[_-]?(?:api|secret|token|key|pass)
           |insert[_-]?here|replace[_-]?me|fake|not[_-]?a[_-]?real|xxxx|todo|fixme).*
      | (?:password|passwd|pass|secret|token|apikey|api_key|test|testing|admin|root|postgres|mysql|guest|user
           |none|null|nil|undefined|empty|true|false|string|str|bytes|optional|required|default|value|mypassword
           |foobar|foo|bar|s3cr3t)
    )$""")
_CODE_REFERENCE = re.compile(
    r"(?x)^(?:[A-Za-z_][\w]*\s*\(|[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+(?:\(|\[|$)|(?:os|process|self|this|config|"
    r"settings|env|request|args|opts|options|params|ctx|context)[.\[]|[A-Za-z_]\w*\[)")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGEST_CONTEXT = re.compile(
    r"(?i)(?:sha(?:1|224|256|384|512)[-:=]|integrity|checksum|\bhash\b|digest|resolved|commit|\bsha\b|\brev\b|"
    r"revision|merge|parent|tree|blob|index [0-9a-f]{7}|etag|fingerprint|\bid\b)")
_SECRET_WORD = re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
                          r"private[_-]?key|credential|auth)")
_LOCKFILE_LINE = re.compile(r"(?i)\b(?:integrity|checksum|resolved|sha(?:1|256|384|512))\b|\bhash\s*=|--hash=")


def _is_documented_or_placeholder(value: str) -> bool:
    stripped = value.strip().strip("\"'`")
    if not stripped or stripped in _DOCUMENTED_VALUES:
        return True
    return bool(_PLACEHOLDER.match(stripped))


def _line_around(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start: line_end if line_end != -1 else len(text)]


def _keep_span(text: str, span: Span) -> bool:
    """The allowlist: False for documented examples, placeholders, digests, lockfile hashes, UUIDs, code refs."""
    value = text[span.start:span.end]
    if span.kind in PII_KINDS:
        return True  # PII rules validate their own matches (checksums, domains)
    if span.kind == "private_key":
        return True  # a key block is never an example worth keeping in training data
    if _is_documented_or_placeholder(value):
        return False
    line = _line_around(text, span.start, span.end)
    if any(value.lower() in uuid.lower() for uuid in _UUID.findall(line)):
        return False  # a UUID, or one of its hex groups
    if span.kind in {"password", "high_entropy_string", "connection_string", "aws_secret_key"}:
        if _CODE_REFERENCE.match(value):
            return False
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


def _pem_spans(text: str) -> list[Span]:
    spans = []
    for begin in _PEM_BEGIN.finditer(text):
        if "PUBLIC" in begin.group(0).upper():
            continue
        end_match = _PEM_END.search(text, begin.end(), begin.end() + 20000)
        if end_match:
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


def _token_spans(text: str) -> list[Span]:
    spans = []
    for kind, pattern in _TOKEN_RULES:
        for match in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            spans.append(Span(kind, match.start(group), match.end(group), f"studio:{kind}"))
    return spans


def _connection_spans(text: str) -> list[Span]:
    spans = []
    for pattern in (_CONNECTION_URL, _CONNECTION_PARAM):
        for match in pattern.finditer(text):
            spans.append(Span("connection_string", match.start(1), match.end(1), "studio:connection_string"))
    for match in _ADO_PASSWORD.finditer(text):
        line = _line_around(text, match.start(1), match.end(1))
        if _ADO_CONTEXT.search(line):
            spans.append(Span("connection_string", match.start(1), match.end(1), "studio:connection_string"))
    return spans


def _env_spans(text: str) -> list[Span]:
    spans = []
    for match in _ENV_ASSIGNMENT.finditer(text):
        value = match.group(2)
        if value.startswith(("$", "%", "<", "{", "(", "[", "!")) or _CODE_REFERENCE.match(value):
            continue
        if value.isalpha() and value.islower() and len(value) < 12:
            continue  # TOKEN_TYPE=bearer, AUTH=required: words, not secrets
        if value.replace(".", "").isdigit():
            continue  # TOKEN_TTL=3600
        spans.append(Span("password", match.start(2), match.end(2), "studio:env_assignment"))
    for match in _QUOTED_ASSIGNMENT.finditer(text):
        spans.append(Span("password", match.start(3), match.end(3), "studio:quoted_assignment"))
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


def _email_spans(text: str) -> list[Span]:
    spans = []
    for match in _EMAIL.finditer(text):
        local, _, domain = match.group(0).rpartition("@")
        if domain.rsplit(".", 1)[-1].lower() in _NOT_TLDS or _EXAMPLE_DOMAIN.search(domain) or _NOREPLY.match(local):
            continue
        if text[match.end(): match.end() + 1] == ":" and local == "git":
            continue  # git@github.com:org/repo.git is an ssh remote
        spans.append(Span("email", match.start(), match.end(), "studio:email"))
    return spans


def _card_spans(text: str) -> list[Span]:
    from stdnum import luhn

    spans = []
    for match in _CARD.finditer(text):
        raw = match.group(0)
        digits = raw.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits) or digits in _DOCUMENTED_CARDS:
            continue
        if len(set(digits)) < 4 or not luhn.is_valid(digits):
            continue
        groups = re.split(r"[ -]", raw)
        if len(groups) > 1 and not all(3 <= len(group) <= 6 for group in groups):
            continue  # "2026 11 25 1234 5678" is not how cards are written
        if len(groups) == 1 and not _CARD_CONTEXT.search(text[max(0, match.start() - 40): match.start()]):
            continue  # one in ten long ids passes Luhn: a bare digit run is a card only where something says so
        spans.append(Span("credit_card", match.start(), match.end(), "studio:credit_card"))
    return spans


def _iban_spans(text: str) -> list[Span]:
    from stdnum import iban

    spans = []
    for match in _IBAN.finditer(text):
        raw = match.group(0).rstrip()
        compact = raw.replace(" ", "")
        if compact in _DOCUMENTED_IBANS:
            continue
        # A trailing word glued by a space ("DE44 5001 0517 5407 3249 31 and") is not part of the IBAN.
        while compact and not iban.is_valid(compact) and " " in raw:
            raw = raw.rsplit(" ", 1)[0]
            compact = raw.replace(" ", "")
        if compact and iban.is_valid(compact):
            spans.append(Span("iban", match.start(), match.start() + len(raw), "studio:iban"))
    return spans


def _ssn_spans(text: str) -> list[Span]:
    spans = []
    for match in _SSN.finditer(text):
        area, group, serial = match.groups()
        if area in {"000", "666"} or area.startswith("9") or group == "00" or serial == "0000":
            continue
        if match.group(0) in _DOCUMENTED_SSNS:
            continue
        spans.append(Span("us_ssn", match.start(), match.end(), "studio:us_ssn"))
    return spans


def _phone_spans(text: str) -> list[Span]:
    if len(_PHONE_DIGITS.findall(text)) < 7:
        return []
    import phonenumbers

    spans = []
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
        raw = match.raw_string
        if _DATEISH.match(raw):
            continue
        before = text[max(0, match.start - 1): match.start]
        after = text[match.end: match.end + 1]
        if (before and (before.isalnum() or before in "._-/:#")) or (after and (after.isalnum() or after in "_/")):
            continue  # part of an id, a path, a version or a hash
        formatted = raw.startswith("+") or re.search(r"[\s().-]", raw.strip())
        if not formatted and not _PHONE_CONTEXT.search(text[max(0, match.start - 40): match.start]):
            continue  # a bare run of digits is an id or a timestamp unless someone calls it a number
        line = _line_around(text, match.start, match.end)
        if re.search(r"(?i)\b(?:version|v\d|sha|commit|build|port|pid|id|uuid|timestamp|epoch|ms)\b", line) and \
                not _PHONE_CONTEXT.search(line):
            continue
        spans.append(Span("phone_number", match.start, match.end, "studio:phone_number"))
    return spans


_STUDIO_DETECTORS = (_pem_spans, _token_spans, _connection_spans, _env_spans, _spoken_spans, _email_spans,
                     _card_spans, _iban_spans, _ssn_spans, _phone_spans)


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
    candidates = [span for span in scan_with_detect_secrets(text, filename) if span.kind != "ip_address"]
    for detector in _STUDIO_DETECTORS:
        candidates.extend(detector(text))
    kept = [span for span in candidates if span.end > span.start and _keep_span(text, span)]
    return _merge(kept)


def filename_for_field(record: dict, field: str) -> str:
    """The file name detect-secrets should assume: the changed file for the code output, a text file otherwise."""
    if field == "output":
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        path = metadata.get("file_path")
        if isinstance(path, str) and path:
            return path.rsplit("/", 1)[-1]
    return "capture.txt"


FIELDS = ("instruction", "input", "output")


def scan_record(record: dict, pair_index: int) -> list[Finding]:
    """Findings in the instruction, input and output of one training pair (fields that are not text are skipped)."""
    findings = []
    for field in FIELDS:
        text = record.get(field)
        if isinstance(text, str) and text:
            for span in detect_sensitive(text, filename_for_field(record, field)):
                findings.append(Finding(pair_index, field, span.kind, span.start, span.end, span.source))
    return findings


def mask(value: str) -> str:
    """What a person may see of a secret: its length, never its characters."""
    return "•" * min(len(value), 24) + (f" ({len(value)} chars)" if len(value) > 24 else "")
