"""Secrets found by what surrounds them rather than by their own shape: how they appear in code, config, terminals,
settings pages and commit messages.

- assignments to a secret-named variable, key, flag or header, anywhere on a line: `DB_PASSWORD=...`,
  `$ export X_TOKEN=...`, `~/src $ export ...`, `"apiKey": "..."`, `--password=...`, `X-Acme-Api-Key: ...`,
  `setenv TOKEN ...`, `<password>...</password>`, `if (api_key == "...")`; the secret word may sit anywhere in
  the name (`AZURE_CLIENT_SECRET_VALUE`), and names of things ABOUT a secret (`LLM_SECRET_NAME`, `token_url`,
  `password_hash`, `max_tokens`) are not secrets;
- labels in prose and on screens: `API key: ...`, `the token for staging is ...`, a label on the line above a
  value (token reveal pages), a key table whose header names a key/token/secret column (settings pages);
- HTTP credentials: `curl -u user:pass`, `--user`, `Authorization: Bearer|Basic|Token ...`;
- credentials in URLs and connection strings: `scheme://user:pass@host`, `?password=...&`, `;Password=...;`
  (a `;`-separated string keeps `&` inside the password), AWS secret keys beside their access key id.
Each returns Spans over the secret value only (quotes and names stay), so redaction keeps the code readable.
"""

from __future__ import annotations

import re

from engine.dataset.rules import shannon_entropy
from engine.dataset.secret_values import (
    credential_shaped,
    is_code_reference,
    is_natural_language,
    is_placeholder,
    looks_like_code,
)
from engine.dataset.spans import Span

# ----------------------------------------------------------------------------------------------- secret names

_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "passcode", "pwd", "pass", "pw", "secret", "token", "apikey", "credential",
    "credentials", "creds", "privatekey", "accesskey", "secretkey", "authtoken", "accesstoken", "authkey",
    "refreshtoken", "bearertoken", "masterkey", "signingkey", "encryptionkey", "sessionkey", "licensekey", "appkey",
    "accountkey", "storagekey", "sharedkey", "clientsecret", "apisecret", "apitoken", "sas", "dsn",
})
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("auth", "key"), ("signing", "key"),
    ("encryption", "key"), ("master", "key"), ("session", "key"), ("license", "key"), ("app", "key"),
    ("account", "key"), ("storage", "key"), ("shared", "key"), ("consumer", "key"), ("client", "key"),
    ("subscription", "key"), ("functions", "key"), ("service", "key"), ("admin", "key"), ("deploy", "key"),
    ("webhook", "key"), ("ssh", "key"), ("gpg", "key"), ("hmac", "key"), ("jwt", "key"), ("x", "key"),
})
# `<anything>_KEY` holds a secret unless the first part says what kind of (non-secret) key it is.
_NON_SECRET_KEYS = frozenset("""primary foreign sort partition cache hash public publishable pub site map i18n
translation message lookup row dict object group unique composite index idempotency dedup dedupe shard routing range
cluster local global react list item query state redis s3 bucket file path config setting env event metric feature
flag label column field attr join lock mutex cursor page next prev previous parent child node tree sequence version
order customer user account_id storage_class api_version""".split())
_SUBSTRINGS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey")
_PLURALS = ("secrets", "tokens", "passwords", "keys")  # a vault, a store or a list of them, not one
_NOT_SECRET_WORDS = frozenset({
    "tokenizer", "tokenize", "tokenized", "tokenizers", "tokenization", "detokenize", "secretary", "passenger",
    "passport", "compass", "bypass", "passive", "passthrough", "passage", "password_reset", "tokenomics",
})
# Words after the secret word that make the name describe a secret instead of holding one.
_META = frozenset("""
name names id ids arn path paths file filename dir folder url uri urls endpoint type types length len size ttl timeout
expiry expires expiration expired lifetime age header headers param params field fields env var vars variable
prefix suffix format count min max version region host port user username email mode policy provider store manager
location ref refs hash hashed digest hint label placeholder prompt input text message msg error errors regex
pattern strength complexity rule rules required enabled disabled status reset changed updated created at date time
valid validator validation limit rotation source kind class key_id fingerprint index idx len_ number num column col
selector element elem button link route handler callback method fn func function service client_id schema model
enum constant const attr attribute property prop flag option opt setting template tpl title description doc docs
help example sample test mock fake stub encoder decoder parser serializer storage cache loader reader writer
generator strategy scope scopes audience aud issuer iss claims claim budget usage used left remaining
""".split())
# First words that make the name a question or a quantity about secrets.
_NEG_PREFIX = frozenset("""is has show hide use using enable disable require requires allow validate check verify reset
forgot max min num n count total no get should can need needs must with without generate generated toggle
missing invalid""".split())
_SECRET_HIT = re.compile(r"(?i)pass|pwd|\bpw\b|secret|token|api[_.\-]?key|credential|creds|(?:private|access|auth|"
                         r"signing|encryption|master|session|license|app|account|storage|shared|consumer|client|"
                         r"subscription|functions|service|admin|deploy|webhook|ssh|gpg|hmac|jwt|x)[_.\-]?key\b|\bsas\b"
                         r"|\bdsn\b|[_.\-]key\b|[a-z0-9]Key\b")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.$-]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def name_words(name: str) -> list[str]:
    """`AZURE_CLIENT_SECRET_VALUE` / `apiKey` / `x-acme-api-key` -> lower-case words."""
    return [word for word in re.split(r"[_.\-$@\s]+", _CAMEL.sub("_", name).lower()) if word]


def secret_name(name: str) -> str | None:
    """'password' when `name` names a password, 'secret' when it names another secret, 'key' for `<service>_KEY`
    (a secret when its value looks generated), None when it does not name a secret or names something about
    one (`TOKEN_URL`, `LLM_SECRET_NAME`, `max_tokens`, `SORT_KEY`)."""
    words = name_words(name)
    if not words or words[0] in _NEG_PREFIX:
        return None
    hit = -1
    kind = None
    for index, word in enumerate(words):
        pair = (word, words[index + 1]) if index + 1 < len(words) else None
        if word in _NOT_SECRET_WORDS:
            continue
        if word in _SECRET_WORDS:
            hit, kind = index, "password" if word.startswith(("pass", "pw")) else "secret"
        elif pair in _SECRET_PAIRS:
            hit, kind = index + 1, "secret"
        elif word == "key" and index == len(words) - 1 and index > 0 and hit < 0 \
                and not any(part in _NON_SECRET_KEYS for part in words[:index]):
            hit, kind = index, "key"
        elif any(part in word for part in _SUBSTRINGS) and not any(bad in word for bad in _NOT_SECRET_WORDS) \
                and not word.endswith(_PLURALS):
            hit, kind = index, "password" if "pass" in word else "secret"
    if hit < 0:
        return None
    if any(word in _META for word in words[hit + 1:]):
        return None
    return kind


# ------------------------------------------------------------------------------------------------ assignments

_OPERATOR = re.compile(r"[ \t]*(===|!==|==|!=|:::=|::=|:=|\?=|\|\|=|\.=|\+=|=>|=|:(?![:/\\])"
                       r"|,(?=[ \t]*[\"'`])|\((?=[\"'`]))[ \t]*")
_FLAG_VALUE = re.compile(r"[ \t]+(?=[^\s-])")
_QUOTES = "\"'`"
_STOP_UNQUOTED = re.compile(r"[\s\"'`<]")
_VERSION_IN = re.compile(r"\d+\.\d+\.\d+|SNAPSHOT|RELEASE")
_XML_VALUE = re.compile(r"""(?i)\bvalue\s*=\s*(["'])(.*?)\1""")


def _quoted_value(text: str, start: int) -> tuple[int, int] | None:
    quote = text[start]
    index = start + 1
    while index < len(text) and text[index] != "\n":
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return start + 1, index
        index += 1
    return None


def _unquoted_value(text: str, start: int, before: str) -> tuple[int, int]:
    """An unquoted value runs to white space; `,` and `;` end it too, and `&` in a query string (`?a=1&b=2`)."""
    match = _STOP_UNQUOTED.search(text, start)
    end = match.start() if match else len(text)
    stops = ",;&" if before in "?&" else ",;"
    cuts = [index for index in (text.find(char, start, end) for char in stops) if index != -1]
    if cuts:
        end = min(cuts)
    while end > start and text[end - 1] in ".,;:)]}>!?" and not _balanced_closer(text[start:end]):
        end -= 1
    return start, end


def _balanced_closer(value: str) -> bool:
    """True when the value's last character closes a bracket opened inside it (so it belongs to the value)."""
    pairs = {")": "(", "]": "[", "}": "{", ">": "<"}
    last = value[-1]
    return last in pairs and value.count(pairs[last]) >= value.count(last)


def _value_ok(value: str, kind: str, quoted: bool) -> bool:
    value = value.strip()
    if len(value) < (4 if kind == "password" and quoted else 6) or is_placeholder(value):
        return False
    if quoted:
        if re.fullmatch(r"\$\{[^}]*\}|\{\{.*\}\}|%\(\w+\)s|#\{.*\}", value) or is_natural_language(value):
            return False
    else:
        if is_code_reference(value) or value.startswith(("$", "%", "<", "{", "(", "[", "!", "&", "*")):
            return False
        if value.lower() in ("true", "false", "none", "null", "nil", "undefined", "required", "optional"):
            return False
        if value.isalpha() and (value.islower() or value.istitle()) and len(value) < 12:
            return False  # TOKEN_TYPE=bearer, password: Required: words, not secrets
        if re.fullmatch(r"[a-z]+(?:[-_][a-z]+)+", value):
            return False  # pwd = shorter-version: words joined, not a secret
        if re.fullmatch(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*(?:\(\))?", value) and not any(c.isdigit() for c in value) \
                and ("_" in value or "." in value or re.search(r"[a-z][A-Z]", value)):
            return False  # token = user_token, secret: settings.API_SECRET: names, not values
    if value.replace(".", "").replace("_", "").isdigit() and len(value) < 12:
        return False  # TOKEN_TTL=3600, password_min_length: 12
    if _VERSION_IN.search(value):
        return False  # jjwt-jackson-0.11.2, rc0.15.0_20231217-SNAPSHOT: versions, not secrets
    if re.fullmatch(r"[A-Z0-9]+(?:[-_][A-Z0-9]+)+", value) and re.search(
            r"(?:^|[-_])(?:KEY|SECRET|TOKEN|PASSWORD|PASS|API|NAME)(?:[-_]|$)", value):
        return False  # "NEXUS-GPT4-API-KEY": the name of a secret in a secret manager, not its value
    if kind == "key":
        return credential_shaped(value, min_length=12, min_entropy=3.0) or symbol_secret(value)
    if kind == "secret":
        return credential_shaped(value, min_length=10, min_entropy=2.5) or symbol_secret(value)
    return True


def symbol_secret(value: str) -> bool:
    """Symbols count as randomness too: `m{{h}o)p${e]nob(ody[finds>-_$#thisone}}` is a secret someone typed."""
    return (len(value) >= 10 and bool(re.search(r"[^A-Za-z0-9_.\-/]", value)) and bool(re.search(r"[A-Za-z]", value))
            and not re.search(r"\{\d*\}|%[sd]|\s|^https?:|^[\w.-]+\(", value) and not is_placeholder(value)
            and not re.fullmatch(r"[\w.$-]+[>)\]};,:]*", value)  # a dotted name closing a tag or a call
            and not looks_like_code(value)
            and shannon_entropy(value) >= 3.0)


def assignment_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    seen_names: set[tuple[int, int]] = set()
    for hit in _SECRET_HIT.finditer(text):
        start, end = hit.start(), hit.end()
        while start > 0 and _NAME_CHARS.match(text[start - 1]):
            start -= 1
        while end < len(text) and _NAME_CHARS.match(text[end]):
            end += 1
        if start > 0 and text[start - 1] == "@":
            start -= 1  # Ruby's @password, Kotlin's @Value
        if (start, end) in seen_names:
            continue
        seen_names.add((start, end))
        if re.search(r"://[^\s/@]*$", text[max(0, start - 100):start]) or text[end:end + 1] == "@":
            continue  # user:password@host: the URL rule's
        raw_name = text[start:end]
        name = raw_name.strip(".-$@")
        is_flag = raw_name.startswith("--") or (raw_name.startswith("-") and len(raw_name) > 2)
        kind = secret_name(name)
        if kind is None:
            continue
        before = text[start - 1] if start > 0 else "\n"
        cursor = end
        quoted_name = before in _QUOTES and cursor < len(text) and text[cursor] == before
        if quoted_name:
            cursor += 1
        if cursor < len(text) and text[cursor] == "]":
            cursor += 1
        if before == "<" and cursor < len(text) and text[cursor] == ">":
            close = text.find("<", cursor + 1)
            if close != -1 and "\n" not in text[cursor + 1:close].strip("\n"):
                value = text[cursor + 1:close].strip()
                offset = text.find(value, cursor + 1) if value else -1
                if value and _value_ok(value, kind, True):
                    spans.append(Span(kind, offset, offset + len(value), "studio:assignment"))
                elif value:  # `<secret>{AQAAABAAA token}</secret>`: a secret among other words of the element
                    for token in re.finditer(r"[^\s{}]{10,}", value):
                        if credential_shaped(token.group(), min_length=10, min_entropy=3.0):
                            spans.append(Span(kind, offset + token.start(), offset + token.end(), "studio:assignment"))
            continue
        if quoted_name and text[max(0, start - 5):start - 1].lower().rstrip().endswith(("key=", "name=")):
            tag_end = text.find(">", cursor)
            xml = _XML_VALUE.search(text, cursor, tag_end if tag_end != -1 else min(len(text), cursor + 300))
            if xml and _value_ok(xml.group(2), kind, True):
                spans.append(Span(kind, xml.start(2), xml.end(2), "studio:assignment"))
            continue
        operator = _OPERATOR.match(text, cursor)
        if operator is None and is_flag:
            operator = _FLAG_VALUE.match(text, cursor)
        if operator is None and text[max(0, start - 8):start].lower().rstrip().endswith(("setenv", "env", "set -x",
                                                                                           "set -gx")):
            operator = _FLAG_VALUE.match(text, cursor)
        if operator is None:
            _reversed_comparison(text, start, kind, spans)
            continue
        symbol = operator.group(1) if operator.lastindex else ""
        value_start = operator.end()
        if value_start >= len(text) or text[value_start] == "\n":
            continue
        if symbol == "," and not quoted_name:
            continue
        if symbol == "(" and text[value_start] not in _QUOTES:
            continue
        if text[value_start] in _QUOTES:
            bounds = _quoted_value(text, value_start)
            quoted = bounds is not None
            if bounds is None:
                bounds = _unquoted_value(text, value_start + 1, before)
        else:
            if symbol in ("==", "!=", "===", "!=="):
                continue  # a comparison with a variable, not a literal
            quoted = False
            bounds = _unquoted_value(text, value_start, before)
        value = text[bounds[0]:bounds[1]]
        if _value_ok(value, kind, quoted):
            spans.append(Span("secret" if kind == "key" else kind, bounds[0], bounds[1], "studio:assignment"))
    spans.extend(_generated_value_spans(text))
    return spans


# Any name given a value that can only have been generated: long, mixed case with digits, high entropy. Names of
# digests, ids and media (whose values look the same and are not secret) are left out, as are base64 files.
_ANY_ASSIGNMENT = re.compile(r"(?<![\w.$@-])(?P<name>[A-Za-z_][\w.-]{1,60})[\"']?[ \t]*(?::=|=>|=|:)[ \t]*[\"'`]?"
                             r"(?P<value>[A-Za-z0-9+/_=.~-]{24,500})(?![A-Za-z0-9+/_=.~-])")
_NOT_SECRET_NAMES = re.compile(
    r"(?i)sha|hash|digest|checksum|integrity|etag|commit|\brev|revision|(?:^|[_.-])ids?$|uuid|guid|fingerprint|image|"
    r"icon|logo|avatar|thumbnail|data|content|body|blob|src|href|url|uri|path|file|version|build|public|publishable|"
    r"nonce|salt|iv$|cursor|page|state|trace|span|request|correlation|session_?id|video|playlist|channel|doc|sheet|"
    r"name|title|label|description|https?$|ftp$")
_LOCKFILE = re.compile(r"(?i)\b(?:integrity|checksum|resolved|sha(?:1|256|384|512))\b|\bhash\s*=|--hash=|"
                       r"\sv\d+\.\d+\.\d+(?:/go\.mod)?\s+h1|@sha256")
_FILE_MAGIC = ("iVBOR", "/9j/", "R0lGOD", "UklGR", "PHN2Zy", "JVBER", "AAAA", "UEsDB", "H4sI")


def _generated_value_spans(text: str) -> list[Span]:
    spans = []
    for match in _ANY_ASSIGNMENT.finditer(text):
        name, value = match.group("name"), match.group("value").rstrip(".")
        if "=" in value.rstrip("="):
            continue  # NAME=value inside: the assignment rule's, with the name kept
        if _NOT_SECRET_NAMES.search(name) or value.startswith(_FILE_MAGIC + ("//",)) or _VERSION_IN.search(value):
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        if _LOCKFILE.search(text, line_start, match.start("value")):
            continue
        if not (any(c.islower() for c in value) and any(c.isupper() for c in value)
                and any(c.isdigit() for c in value)):
            continue
        if re.fullmatch(r"\w{8}-\w{4}-\w{4}-\w{4}-\w{12}", value):
            continue  # shaped like a UUID: an id unless a name says it is a key
        if "/" in value.strip("/") and re.fullmatch(r"[\w.-]+(?:/[\w.-]+)+/?", value):
            continue  # a path
        if shannon_entropy(value) >= 3.7 and credential_shaped(value, min_length=24, min_entropy=3.7):
            start = match.start("value")
            spans.append(Span("secret", start, start + len(value), "studio:generated_value"))
    return spans


def _reversed_comparison(text: str, name_start: int, kind: str, spans: list[Span]) -> None:
    """`if ("s3cr3t-value" == password)`: the literal before the comparison."""
    match = re.search(r"([\"'`])([^\"'`\n]{4,200})\1[ \t]*(?:===|!==|==|!=)[ \t]*$", text[max(0, name_start - 220):
                                                                                          name_start])
    if match:
        offset = max(0, name_start - 220)
        if _value_ok(match.group(2), kind, True):
            spans.append(Span(kind, offset + match.start(2), offset + match.end(2), "studio:assignment"))


# ------------------------------------------------------------------------------------------------------ labels

# What may stand before "key", "token", "password" ... in a label ("API key", "Wi-Fi password", "deploy token").
_LABEL_QUALIFIERS = (
    r"api secret access private client auth(?:entication)? bearer refresh personal\s+access service\s+account "
    r"app(?:lication)? license signing encryption master root admin db database wi-?fi vpn ssh smtp ftp account "
    r"user login deploy webhook integration secret\s+access").split()
_LABEL_NOUNS = "key token secret password passphrase passcode pwd credentials?".split()
_LABEL = re.compile(
    rf"(?i)(?<![\w-])(?P<label>(?:(?:{'|'.join(_LABEL_QUALIFIERS)})\s+)?(?:{'|'.join(_LABEL_NOUNS)}))s?\b"
    r"(?:[ \t]*\([^)\n]{0,30}\))?(?:[ \t]+(?:for|of|on|to|in)[ \t]+(?:the[ \t]+)?[\w.-]+(?:[ \t]+[\w.-]+)?)?"
    r"[ \t]*(?:[:=]|\bis\b|\bwas\b|->|→|–|—|-)?[ \t]*[\"'`]?(?P<value>[^\s\"'`<]{8,300})")
_LABEL_LINE = re.compile(
    r"(?i)^(?:[\W_]*)(?:your\s+|new\s+|the\s+)*(?:(?:api|secret|access|personal\s+access|client|auth|bearer|"
    r"refresh|private|deploy|service\s+account)\s+)?(?:key|token|secret|password|credentials?)s?\b[^\n]{0,100}$")
_TABLE_SPLIT = re.compile(r"\t+|[ \t]{2,}|[ \t]*\|[ \t]*")
_TABLE_HEADER = re.compile(r"(?i)^(?:(?:api|secret|access|client|private|auth|personal\s+access)\s+)?(?:key|token|"
                           r"secret|password|credential)s?(?:\s+(?:id|value))?$")


def _label_value_ok(label: str, value: str) -> bool:
    label = label.lower()
    if any(word in label for word in ("password", "passphrase", "passcode", "pwd")):
        return credential_shaped(value, min_length=8, min_entropy=2.5) or (
            len(value) >= 8 and not is_placeholder(value) and bool(re.search(r"\d", value))
            and bool(re.search(r"[A-Za-z]", value)) and bool(re.search(r"[^A-Za-z0-9]", value)))
    bare = label.split()[-1] in ("key", "token", "keys", "tokens") and len(label.split()) == 1
    return credential_shaped(value, min_length=16 if bare else 10, min_entropy=3.3 if bare else 3.0) or (
        not bare and symbol_secret(value))


def label_spans(text: str) -> list[Span]:
    spans = []
    for match in _LABEL.finditer(text):
        start, end = match.span("value")
        if text[match.end("label"):match.end("label") + 1] == "@" or text[max(0, match.start() - 1):match.start()] in (
                ":", "/"):
            continue  # user:password@host is a URL's, not a label
        while end > start and text[end - 1] in ".,;:)!?]}":
            end -= 1
        value = text[start:end]
        if "=" in value and not value.endswith("="):
            continue  # `key=value` pairs are the assignment rule's
        if _label_value_ok(match.group("label"), value):
            spans.append(Span("secret", start, end, "studio:label"))
    lines = text.split("\n")
    offsets, position = [], 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        cells = [cell for cell in _TABLE_SPLIT.split(stripped) if cell]
        if len(cells) >= 2 and any(_TABLE_HEADER.match(cell) for cell in cells):
            _table_rows(lines, offsets, index, spans)
        elif _LABEL_LINE.match(stripped) and len(stripped) < 120:
            for following in range(index + 1, min(index + 4, len(lines))):
                candidate = lines[following].strip().strip("\"'`")
                if candidate and " " not in candidate and credential_shaped(candidate, min_length=16,
                                                                              min_entropy=3.3):
                    start = offsets[following] + lines[following].find(candidate)
                    spans.append(Span("secret", start, start + len(candidate), "studio:label"))
    return spans


def _table_rows(lines: list[str], offsets: list[int], header: int, spans: list[Span]) -> None:
    for row in range(header + 1, min(header + 16, len(lines))):
        line = lines[row]
        if not line.strip():
            break
        position = 0
        for cell in _TABLE_SPLIT.split(line):
            where = line.find(cell, position)
            position = where + len(cell)
            cell_value = cell.strip().strip("\"'`")
            if cell_value and " " not in cell_value and (credential_shaped(cell_value, min_length=16, min_entropy=3.0)
                                                          or symbol_secret(cell_value)):
                start = offsets[row] + line.find(cell_value, where)
                spans.append(Span("secret", start, start + len(cell_value), "studio:key_table"))


# ------------------------------------------------------------------------------------------------ HTTP auth

# The schemes an Authorization header names before its credential (RFC 9110's and the providers' own).
_AUTH_SCHEMES = ("bearer basic token digest api-?token apikey api-key key sso-key jwt hmac negotiate ntlm splunk ssws "
                 "klaviyo-api-key dsn genieKey zoho-oauthtoken oauth client-id signature").split()
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authorization\b[\"'\]]{0,2}[ \t]*[:=,][ \t]*[\"'`]?[ \t]*"
    rf"(?:(?P<scheme>{'|'.join(_AUTH_SCHEMES)})[ \t]+)?(?P<value>[A-Za-z0-9+/=._~:@%$!-]{{8,2000}})")
# Command-line options that take user:password (curl, wget, httpie, ab, hey), and their argument, quoted or not.
_USER_OPTIONS = ("-u", "--user", "--proxy-user", "--http-user", "--auth", "-a")
_SHELL_WORD = r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'|;&<>]+)+"
_CURL_USER = re.compile(rf"(?<![\w-])(?:{'|'.join(_USER_OPTIONS)})(?:=|[ \t]+)(?P<arg>{_SHELL_WORD})")
_HTTP_COMMAND = re.compile(r"(?i)\b(?:curl|wget|http|https|httpie|xh|ab|hey)\b")
_PLACEHOLDER_PASSWORD = frozenset("""pass password passwd pwd secret token test testing changeme changeit admin user
username login guest demo example sample default apikey api_key key null none""".split())


def http_auth_spans(text: str) -> list[Span]:
    spans = []
    for match in _AUTH_HEADER.finditer(text):
        value = match.group("value")
        start, end = match.span("value")
        while end > start and text[end - 1] in ".,;:)!?]}\"'":
            end -= 1
        value = text[start:end]
        if is_placeholder(value) or value.startswith(("$", "%", "{")) or re.search(r"\$\{|\{\{|%s|\+$", value):
            continue
        scheme = (match.group("scheme") or "").lower()
        if scheme == "basic":
            if not re.fullmatch(r"[A-Za-z0-9+/]{6,}={0,3}", value):
                continue
        elif scheme:
            if len(value) < 8 or not credential_shaped(value, min_length=8, min_entropy=2.5):
                continue
        elif not credential_shaped(value, min_length=16, min_entropy=3.0):
            continue
        spans.append(Span("http_credentials", start, end, "studio:authorization_header"))
    for match in _CURL_USER.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        command = text[max(0, line_start - 600):match.start()]
        # the command may continue over lines ending in a backslash: look back over them for curl/wget/http
        lines = command.split("\n")
        scope = [lines[-1]]
        for previous in reversed(lines[:-1]):
            if previous.rstrip().endswith("\\"):
                scope.append(previous)
            else:
                break
        if not _HTTP_COMMAND.search(" ".join(scope)):
            continue
        arg = match.group("arg")
        plain = arg.replace('"', "").replace("'", "")
        if ":" not in plain:
            continue
        user, _, password = plain.partition(":")
        if not _credential_pair_ok(user, password):
            continue
        spans.append(Span("http_credentials", match.start("arg"), match.end("arg"), "studio:curl_user"))
    return spans


def _credential_pair_ok(user: str, password: str) -> bool:
    secret = password or user  # `-u ":pass"` or `-u "token:"` (an API key as the user name)
    if len(secret) < 3 or is_placeholder(secret) or is_placeholder(user + ":" + password):
        return False
    if secret.lower() in _PLACEHOLDER_PASSWORD or (password and password.lower() == user.lower()):
        return False
    if re.fullmatch(r"\$\{?\w+\}?|\$\(.*\)|.*\$\{.*|.*\{\{.*|%\w+%|\[.*\]|<.*>", secret):
        return False
    return not (secret.isalpha() and secret.islower() and len(secret) <= 4)


# --------------------------------------------------------------------------------------------- URLs and DSNs

_URL_USERINFO = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,24}://(?P<user>[^\s:/@'\"<>]{0,128}):(?P<password>[^\s@/'\"<>]{1,256})@"
    r"(?=[A-Za-z0-9.\-\[\]_]+)")
_URL_PARAM = re.compile(
    r"(?i)(?P<sep>[?&;])(?P<name>password|passwd|pwd|pass|token|access_token|refresh_token|id_token|auth_token|"
    r"api_key|apikey|api-key|secret|client_secret|sig|signature|private_token|key|auth|sessionid|session_token)="
    r"(?P<value>[^\s'\"<>#]{1,512})")
_ADO_PASSWORD = re.compile(r"(?i)(?:^|[;\"'\s])(?:password|pwd)\s*=\s*(?P<value>[^;'\"\r\n]{1,256}?)\s*(?=;|[\"']|$)",
                           re.MULTILINE)
_ADO_CONTEXT = re.compile(r"(?i)\b(?:server|data source|host|user id|uid|database|initial catalog|port)\s*=")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_NEAR = re.compile(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}|(?i:\baws|amazon|secret[ _-]?access)")


_URL_TOKEN_END = re.compile(r"[\s\"'`<>()\[\]{}|,]")
_URL_START = re.compile(r"(?i)(?:[a-z][a-z0-9+.-]{1,24}://|jdbc:[a-z0-9]+:|(?:server|data source|host)\s*=)")


def _whole_url(text: str, start: int, end: int) -> tuple[int, int]:
    """The whole URL or connection string around a password found inside it: redacting all of it leaves neither
    the password nor a piece of one (a `;`-separated password may hold `&`, a JDBC URL may hold both)."""
    line_start = text.rfind("\n", 0, start) + 1
    scheme = None
    for match in _URL_START.finditer(text, line_start, start):
        scheme = match
    if scheme is None:
        return start, end
    stop = _URL_TOKEN_END.search(text, end)
    # `Endpoint=https://...;Id=...;Secret=...`: the first key belongs to the connection string too
    lead = re.search(r"(?<![\w.-])[A-Za-z][\w.-]{0,40}=$", text[line_start:scheme.start()])
    joined = re.search(r";\s*\w+=", text[scheme.start():stop.start() if stop else len(text)])
    scheme_start = line_start + lead.start() if lead and joined else scheme.start()
    url_end = stop.start() if stop else len(text)
    if "=" in text[scheme.start():scheme.end()]:  # ADO.NET `Server=...;Password=...;`: to the string's end
        quote = re.search(r"[\"'\n]", text[end:])
        url_end = end + quote.start() if quote else len(text)
    if _URL_TOKEN_END.search(text, scheme.start(), start):
        return start, end  # something between the scheme and the password breaks the URL: keep the value alone
    while url_end > end and text[url_end - 1] in ".,;:!?":
        url_end -= 1
    return scheme_start, max(url_end, end)


def url_credential_spans(text: str) -> list[Span]:
    spans = []
    for match in _URL_USERINFO.finditer(text):
        password = match.group("password")
        if not is_placeholder(password) and password.lower() not in _PLACEHOLDER_PASSWORD \
                and not re.match(r"\$\{?\w|\{\{|%\(", password):
            spans.append(Span("connection_string", *_whole_url(text, match.start("password"), match.end("password")),
                              "studio:url_credentials"))
    for match in _URL_PARAM.finditer(text):
        start, _ = match.span("value")
        stops = ";" if match.group("sep") == ";" else "&;"
        value = match.group("value")
        cut = min((value.find(char) for char in stops if char in value), default=len(value))
        end = start + cut
        value = text[start:end].rstrip(".,)")
        end = start + len(value)
        name = match.group("name").lower()
        minimum = 4 if name in ("password", "passwd", "pwd", "pass") else 12
        if len(value) < minimum or is_placeholder(value) or re.match(r"\$\{?\w|\{\{|%\(|<", value):
            continue
        if name in ("key", "auth", "sig", "signature", "token") and not credential_shaped(value, min_length=12,
                                                                                            min_entropy=3.0):
            continue
        spans.append(Span("connection_string", *_whole_url(text, start, end), "studio:url_parameter"))
    for match in _ADO_PASSWORD.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", match.end())
        line = text[line_start: line_end if line_end != -1 else len(text)]
        value = match.group("value")
        if _ADO_CONTEXT.search(line) and not is_placeholder(value) and len(value) >= 4:
            spans.append(Span("connection_string", *_whole_url(text, match.start("value"), match.end("value")),
                              "studio:connection_string"))
    for match in _AWS_SECRET.finditer(text):
        value = match.group()
        if not (any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit()
                                                                                           for c in value)):
            continue
        window = text[max(0, match.start() - 300):match.end() + 300]
        if _AWS_NEAR.search(window) and credential_shaped(value, min_length=40, min_entropy=4.0):
            spans.append(Span("aws_secret_key", match.start(), match.end(), "studio:aws_secret_key"))
    return spans
