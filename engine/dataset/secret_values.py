"""What a candidate secret VALUE looks like, independent of where it was found: a placeholder, a code reference,
a natural-language word, or something credential-shaped. Shared by the provider table, the context rules and the
detect-secrets glue, so the same value is judged the same way whichever rule proposed it."""

from __future__ import annotations

import re

from engine.dataset.rules import shannon_entropy

_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
        \$\{?[A-Za-z_][A-Za-z0-9_.:-]*\}?          # ${API_KEY}, $TOKEN
      | \$env:[A-Za-z_]\w*                          # $env:TOKEN (PowerShell)
      | [#@$]?\{\{.*\}\} | \{%.*%\} | \$\(.*\) | %\(?\w*\)?[sd] | %[A-Z_]+% | \#\{.*\} | @\{.*\}
      | \{[A-Za-z_][\w.]*\}                         # {token} (f-strings, str.format)
      | <[^<>]{1,80}> | \[[A-Za-z_ -]{3,60}\] | \([A-Z_ -]{3,60}\)
      | [*x•#.\-_=]{3,} | .*(?:x{4,}|X{4,}|\*{3,}|•{3,}|\#{4,}|\.{3}|…).*
      | .*(?:example|placeholder|changeme|change[_-]?it|change[_-]?me|dummy|redacted|sample|your[_-]?(?:api|secret|token
           |key|pass|own|app|access|client|personal)|insert[_-]?|replace[_-]?(?:me|with|this)|fake|not[_-]?a[_-]?real
           |todo|fixme|here$|[_-]here|goes[_-]here|notreal|foobar|lorem|ipsum).*
      | (?:password|passwd|pass|secret|token|apikey|api_key|key|test|testing|tests|admin|root|postgres|mysql|guest
           |user|username|none|null|nil|undefined|empty|true|false|string|str|bytes|optional|required|default|value
           |mypassword|mysecret|mytoken|foo|bar|baz|qux|s3cr3t|secret123|password123|letmein|hello|world|demo
           |sometoken|somesecret|somepassword|abc|abc123|abcdef|qwerty|asdf|asdfgh|1234|12345|123456|1234567
           |12345678|123456789|1234567890)
    )$""")
_ENV_NAME = re.compile(r"[A-Z][A-Z]*(?:_[A-Z]+)+")  # ACCESS_TOKEN, DB_PASSWORD: the name of a variable
_SEQUENCES = ("0123456789abcdefghijklmnopqrstuvwxyz", "0123456789", "abcdefghijklmnopqrstuvwxyz",
              "qwertyuiopasdfghjklzxcvbnm", "9876543210")
_WORD_PIECE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")
_CODE_REFERENCE = re.compile(
    r"(?x)^(?:[A-Za-z_$][\w$]*\s*\(|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(|\[|$)|(?:os|process|self|this|config|cfg"
    r"|settings|env|ENV|request|req|args|opts|options|params|ctx|context|props|secrets|vars|inputs|data|Deno)[.\[]"
    r"|[A-Za-z_]\w*\[|new\s|await\s|function\b|lambda\b|\w+::\w+|!?\w+\s*\?\s*)")
_CODE_SHAPE = re.compile(r"[A-Za-z_]\w*\(|\)\.|\(\)|\.[A-Za-z_]\w*\(|\[[A-Za-z_]|=>|->")  # calls, methods, indexing
_EMAILISH = re.compile(r"[^@\s]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_VERSIONISH = re.compile(r"v?\d+(?:[.:/-]\d+)*[a-z]?"
                         r"|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?.*)?")
_PATHISH = re.compile(r"(?:~|\.{1,2})?/[\w.@-]+(?:/[\w.@-]+)*/?"
                      r"|[\w.-]+\.(?:py|js|ts|json|ya?ml|toml|txt|md|pem|key|crt|env|cfg|ini|conf|sh|go|rs|rb|php|html"
                      r"|css|png|jpg|svg|lock)")


def strip_quotes(value: str) -> str:
    return value.strip().strip("\"'`")


def main_run(value: str) -> str:
    """The longest run of letters and digits: the random part of a token (`ghp_<run>`, `xoxe.xoxp-1-<run>`)."""
    runs = _ALNUM_RUN.findall(value)
    return max(runs, key=len) if runs else ""


def wordish(run: str) -> bool:
    """Letters that read as words in any case style (`SlackAppConfigurationAccessTokenHere`, `RANDOMSTRINGHERE`,
    `initial`), not random letters (`xKqPzLmN`). Linear: no backtracking however long the run."""
    if not run or not run.isalpha() or not run.isascii():
        return False
    pieces = _WORD_PIECE.findall(run)
    return "".join(pieces) == run and all(len(piece) >= 2 for piece in pieces)


def repeated_character(value: str) -> bool:
    """A stand-in made of one character: most of its letters and digits are the same one (`ghp_XXXX...`,
    `AKIAZZZZZZZZZZZZZZZZ`, `sk-or-v1-0000...`), or its longest run of letters and digits is (`.../Txxxxxxxx/...`)."""
    alnum = [char for char in value.lower() if char.isalnum()]
    if len(alnum) >= 8 and max(alnum.count(char) for char in set(alnum)) >= 0.7 * len(alnum):
        return True
    run = main_run(value)
    return len(run) >= 12 and len(set(run.lower())) == 1


def is_placeholder(value: str) -> bool:
    """Documented examples and stand-ins: `${API_KEY}`, `<your-key>`, `sk-...`, `insert_key_here`, a run of one
    character (`ghp_XXXX...`), `1234567890`, words where random characters belong (`...TokenHere`)."""
    stripped = strip_quotes(value)
    if not stripped:
        return True
    if stripped.upper().endswith(("EXAMPLE", "EXAMPLEKEY")):
        return True  # AWS's documented example keys (AKIAIOSFODNN7EXAMPLE, ...EXAMPLEKEY)
    if _PLACEHOLDER.match(stripped) or _ENV_NAME.fullmatch(stripped):
        return True
    if repeated_character(stripped):
        return True
    compact = re.sub(r"[^A-Za-z0-9]", "", stripped).lower()
    run = main_run(stripped)
    for candidate in (compact, run.lower() if len(run) >= 0.7 * len(compact) else ""):
        if len(candidate) >= 8 and any(candidate in sequence * 2 for sequence in _SEQUENCES):
            return True  # 1234567890, xoxp-1234567890, abcdefgh: typed in order, not generated
    if len(run) >= 10 and wordish(run):
        vowels = sum(char in "aeiouAEIOU" for char in run)
        if vowels / len(run) >= 0.3:
            return True  # SlackAppConfigurationAccessTokenHere, RANDOMSTRINGHERE: words, not random characters
    return False


def is_code_reference(value: str) -> bool:
    """An expression or name standing for the secret (`os.environ["X"]`, `getenv(...)`, `self.token`, `None`)."""
    return bool(_CODE_REFERENCE.match(value.strip()))


def is_natural_language(value: str) -> bool:
    """Words, not a secret: `Mot de passe`, `Enter your password`, `required`."""
    words = value.split()
    return len(words) >= 2 and all(word.strip(".,:;!?'\"()").isalpha() for word in words)


def looks_like_code(value: str) -> bool:
    """`[sha1(t.encode()).hexdigest()`: calls, methods and indexing with few of the symbols a typed secret is
    full of (`m{{h}o)p${e]nob(ody[finds>-_$#thisone}}` has a call's shape and is still a password)."""
    return bool(_CODE_SHAPE.search(value)) and sum(char in "$#{}<>!^~|;@%&*?" for char in value) < 2


def is_uuid(value: str) -> bool:
    return bool(_UUID.fullmatch(value))


def credential_shaped(value: str, *, min_length: int = 8, min_entropy: float = 3.0, allow_hex: bool = True,
                      allow_uuid: bool = True) -> bool:
    """Whether `value` could be a key, token or password someone generated: long enough, no spaces, mixed
    characters with a digit (or long and mixed-case), enough entropy, and not a placeholder, a path, a URL, an
    address, a version, a date or a code name."""
    value = strip_quotes(value)
    if len(value) < min_length or any(char.isspace() for char in value):
        return False
    if is_placeholder(value) or "://" in value or _EMAILISH.fullmatch(value):
        return False
    if _VERSIONISH.fullmatch(value) or _PATHISH.fullmatch(value) or looks_like_code(value):
        return False
    if is_uuid(value):
        return allow_uuid
    if _HEX.fullmatch(value):
        if not allow_hex:
            return False
        min_entropy = min(min_entropy, 2.5)  # 16 symbols: a random hex string has less entropy than base62
    has_digit = any(char.isdigit() for char in value)
    has_lower = any(char.islower() for char in value)
    has_upper = any(char.isupper() for char in value)
    if not has_digit and not (has_lower and has_upper and len(value) >= 16):
        return False
    if not has_lower and not has_upper:
        return len(value) >= 16 and not value.isdigit()  # digits and symbols only: a long PIN-like secret at most
    if all(wordish(part) or (part.isdigit() and len(part) <= 4)
           for part in re.split(r"[_.-]+", value) if part):
        return False  # SECRET_KEY_BASE, getSecretValue, DOC_Vector_5_32: names, not values
    return shannon_entropy(value) >= min_entropy
