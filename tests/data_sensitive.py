"""A labelled set for sensitive-data detection, built from a seed: planted secrets and PII in OCR text, audio
transcripts and unified diffs, plus hard negatives (git SHAs, UUIDs, lockfile hashes, documented example keys,
placeholders, timestamps, code that merely names a secret).

Every planted value is generated here (random, well-formed: tokens with their real prefixes and lengths, JWTs that
decode, PEM bodies of real base64, Luhn-valid card numbers, IBANs with correct check digits, phone numbers that
libphonenumber calls valid), so no real secret is ever involved. `build_labelled_set(seed, per_kind)` returns
`Sample`s; a positive sample knows the exact character spans of what was planted.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


@dataclass
class Sample:
    sample_id: str
    context: str  # ocr | transcript | diff
    label: str  # the planted kind for positives, the negative category otherwise
    positive: bool
    text: str
    filename: str
    spans: list[tuple[int, int]] = field(default_factory=list)


class _Text:
    """Builds a text while remembering where the planted values went."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[int, int]] = []
        self.length = 0

    def add(self, text: str) -> _Text:
        self.parts.append(text)
        self.length += len(text)
        return self

    def plant(self, value: str) -> _Text:
        self.spans.append((self.length, self.length + len(value)))
        return self.add(value)

    def render(self, template: str, **values: str) -> _Text:
        """`template` with `{v}` (planted) and other `{name}` fields (plain)."""
        import re

        for piece in re.split(r"(\{\w+\})", template):
            if piece == "{v}":
                self.plant(values["v"])
            elif piece.startswith("{") and piece.endswith("}") and piece[1:-1] in values:
                self.add(values[piece[1:-1]])
            else:
                self.add(piece)
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _pick(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _hex(rng: random.Random, length: int) -> str:
    return _pick(rng, "0123456789abcdef", length)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ------------------------------------------------------------------------------------------------ value makers

def _password(rng: random.Random) -> str:
    while True:
        value = _pick(rng, string.ascii_letters + string.digits + "!#%^*-_+", rng.randint(10, 22))
        if any(c.isdigit() for c in value) and any(c.isupper() for c in value) and any(c.islower() for c in value):
            return value


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit)
        if index % 2 == 0:
            value *= 2
            value -= 9 if value > 9 else 0
        total += value
    return body + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    from stdnum import iban

    while True:  # national check digits (Belgium, Spain, ...) must hold too, as in every real IBAN
        value = _iban_candidate(rng)
        if iban.is_valid(value):
            return value


def _iban_candidate(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 22), ("FR", 27), ("NL", 18), ("ES", 24), ("IT", 27), ("BE", 16)])
    if country == "NL":
        bban = _pick(rng, string.ascii_uppercase, 4) + _pick(rng, string.digits, 10)
    elif country == "IT":
        bban = rng.choice(string.ascii_uppercase) + _pick(rng, string.digits, 22)
    else:
        bban = _pick(rng, string.digits, length - 4)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def _phone(rng: random.Random) -> str:
    import phonenumbers

    while True:
        style = rng.choice(["us_paren", "us_dash", "us_plus", "uk", "de", "fr"])
        if style.startswith("us"):
            area = rng.choice(["415", "212", "646", "312", "617", "206", "512", "303", "718", "408"])
            exchange = str(rng.randint(200, 999))
            line = f"{rng.randint(0, 9999):04d}"
            text = {"us_paren": f"({area}) {exchange}-{line}", "us_dash": f"{area}-{exchange}-{line}",
                    "us_plus": f"+1 {area} {exchange} {line}"}[style]
            region = "US"
        elif style == "uk":
            text, region = f"+44 7{rng.randint(400, 999)} {rng.randint(100000, 999999)}", "GB"
        elif style == "de":
            text, region = f"+49 30 {rng.randint(1000000, 99999999)}", "DE"
        else:
            text, region = f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} " \
                           f"{rng.randint(10, 99)}", "FR"
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                return text
        except phonenumbers.NumberParseException:
            continue


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": str(rng.randint(10**6, 10**9)), "email_verified": True,
                                  "iat": rng.randint(1_700_000_000, 1_800_000_000), "scope": "read write"}).encode())
    return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"


def _pem_body(rng: random.Random) -> list[str]:
    raw = base64.b64encode(b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + rng.randbytes(600)).decode()
    return [raw[i:i + 64] for i in range(0, len(raw), 64)]


_FIRST = ["maria", "john", "wei", "aisha", "lukas", "priya", "tom", "sofia", "kenji", "olga", "diego", "fatima"]
_LAST = ["gonzalez", "smith", "zhang", "khan", "meyer", "patel", "oconnor", "rossi", "tanaka", "ivanova", "silva"]
_DOMAINS = ["gmail.com", "fastmail.com", "acme-corp.io", "outlook.com", "proton.me", "northwind.co.uk", "hey.com"]


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}+billing", f"{first}{rng.randint(1, 99)}"])
    return f"{local}@{rng.choice(_DOMAINS)}"


_SPOKEN_VALUES = [
    lambda r: f"{rng_word(r)}-{rng_word(r)}-{r.randint(10, 99)}",
    lambda r: f"{rng_word(r).capitalize()}{r.randint(100, 9999)}{r.choice('!#%&')}",
    lambda r: " ".join(r.choice(["four", "seven", "one", "nine", "two", "eight", "zero", "three"]) for _ in range(4)),
    lambda r: f"{rng_word(r)} {rng_word(r)} {r.randint(2000, 2030)}",
    lambda r: _pick(r, string.ascii_letters + string.digits, r.randint(8, 12)),
]
_WORDS = ["falcon", "maple", "copper", "orbit", "tundra", "velvet", "harbor", "pixel", "nimbus", "cobalt", "saffron",
          "quartz", "ember", "glacier", "juniper", "marble", "raven", "willow"]


def rng_word(rng: random.Random) -> str:
    return rng.choice(_WORDS)


def _card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "53", "55", "37", "6011"])
    return _format_card(rng, _luhn_complete(prefix, 15 if prefix == "37" else 16, rng))


def _format_card(rng: random.Random, digits: str) -> str:
    if len(digits) == 15:  # American Express: 4-6-5
        return rng.choice([digits, f"{digits[:4]} {digits[4:10]} {digits[10:]}"])
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain":
        return digits
    sep = " " if style == "space" else "-"
    return sep.join(digits[i:i + 4] for i in range(0, 16, 4))


# kind -> (value maker, OCR/diff line templates, transcript templates); `{v}` is the planted value.
POSITIVE_KINDS: dict[str, tuple[Callable[[random.Random], str], list[str], list[str]]] = {
    "aws_access_key": (
        lambda r: "AKIA" + _pick(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
        ["AWS_ACCESS_KEY_ID={v}", "aws_access_key_id = {v}", '    "accessKeyId": "{v}",',
         's3 = boto3.client("s3", aws_access_key_id="{v}", region_name="eu-west-1")'],
        ["ok so the access key id is {v} and the secret is in the other message"]),
    "aws_secret_key": (
        lambda r: _pick(r, B64, 40),
        ["aws_secret_access_key = {v}", 'AWS_SECRET_ACCESS_KEY="{v}"', "    secretAccessKey: '{v}',"],
        []),
    "github_token": (
        lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _pick(r, ALNUM, 36) if r.random() < 0.7
        else "github_pat_" + _pick(r, ALNUM, 22) + "_" + _pick(r, ALNUM, 59),
        ["GITHUB_TOKEN={v}", "git remote set-url origin https://{v}@github.com/acme/billing-api.git",
         '    headers = {"Authorization": "token {v}"}', "export GH_TOKEN={v}"],
        []),
    "gitlab_token": (
        lambda r: "glpat-" + _pick(r, URLSAFE, 20),
        ["GITLAB_TOKEN={v}", '  private_token: "{v}"', "curl --header \"PRIVATE-TOKEN: {v}\" https://gitlab.acme.io/api/v4/projects"],
        []),
    "slack_token": (
        lambda r: f"xoxb-{r.randint(10**10, 10**12)}-{r.randint(10**10, 10**12)}-{_pick(r, ALNUM, 24)}"
        if r.random() < 0.7 else
        f"https://hooks.slack.com/services/T{_pick(r, string.ascii_uppercase + string.digits, 8)}/"
        f"B{_pick(r, string.ascii_uppercase + string.digits, 10)}/{_pick(r, ALNUM, 24)}",
        ["SLACK_BOT_TOKEN={v}", 'slack = WebClient(token="{v}")', "  webhook_url: {v}"],
        []),
    "stripe_key": (
        lambda r: r.choice(["sk_live_", "rk_live_"]) + _pick(r, ALNUM, r.choice([24, 34, 99])),
        ["STRIPE_SECRET_KEY={v}", 'stripe.api_key = "{v}"', "const stripe = require('stripe')('{v}');"],
        []),
    "openai_key": (
        lambda r: "sk-proj-" + _pick(r, URLSAFE, 74) + "T3BlbkFJ" + _pick(r, URLSAFE, 74) if r.random() < 0.5
        else r.choice(["sk-svcacct-", "sk-admin-"]) + _pick(r, URLSAFE, 120),
        ["OPENAI_API_KEY={v}", 'client = OpenAI(api_key="{v}")', '  "openai": {{ "key": "{v}" }}'],
        []),
    "anthropic_key": (
        lambda r: "sk-ant-api03-" + _pick(r, URLSAFE, 93) + "AA",
        ["ANTHROPIC_API_KEY={v}", 'client = anthropic.Anthropic(api_key="{v}")', "x-api-key: {v}"],
        []),
    "google_api_key": (
        lambda r: "AIza" + _pick(r, URLSAFE, 35),
        ["GOOGLE_MAPS_KEY={v}", '<script src="https://maps.googleapis.com/maps/api/js?key={v}"></script>',
         '    apiKey: "{v}",'],
        []),
    "huggingface_token": (
        lambda r: "hf_" + _pick(r, string.ascii_letters, 34),
        ["HF_TOKEN={v}", 'login(token="{v}")', "huggingface-cli login --token {v}"],
        []),
    "npm_token": (
        lambda r: "npm_" + _pick(r, ALNUM, 36),
        ["//registry.npmjs.org/:_authToken={v}", "NPM_TOKEN={v}"],
        []),
    "sendgrid_key": (
        lambda r: "SG." + _pick(r, URLSAFE, 22) + "." + _pick(r, URLSAFE, 43),
        ["SENDGRID_API_KEY={v}", "sg = SendGridAPIClient('{v}')"],
        []),
    "jwt": (
        _jwt,
        ["Authorization: Bearer {v}", 'const session = "{v}";', "    token={v}"],
        []),
    "connection_string": (
        _password,
        ["DATABASE_URL=postgres://app_user:{v}@db.prod.internal:5432/orders",
         'MONGO_URI = "mongodb+srv://svc-reporting:{v}@cluster0.x7k2p.mongodb.net/analytics"',
         "    redis_url: redis://:{v}@cache-01.internal:6379/0",
         '"ConnectionStrings": {{ "Crm": "Server=tcp:sql.acme.net,1433;Database=crm;User ID=svc;Password={v};" }}',
         "jdbc:mysql://db.internal:3306/shop?user=shop&password={v}&useSSL=true"],
        ["so the connection string is postgres://admin:{v}@10.0.4.12:5432/prod just paste that in"]),
    "password": (
        _password,
        ['DB_PASSWORD = "{v}"', "  password: {v}", '    "smtp_password": "{v}",', "SMTP_PASSWORD={v}",
         'conn = psycopg2.connect(host="db", user="etl", password="{v}")'],
        []),
    "spoken_secret": (
        lambda r: r.choice(_SPOKEN_VALUES)(r),
        [],
        ["yeah the staging password is {v}. I'll rotate it after the demo",
         "okay so the wifi password's {v}, and the guest one is on the whiteboard",
         "for the jenkins box the admin password is {v} but don't write that down",
         "the vpn passphrase is {v}. make sure you use the new client",
         "my pin is {v}. no wait, don't put that in the notes"]),
    "private_key": (
        lambda r: "",  # built whole by _private_key_text
        [], []),
    "email": (
        _email,
        ["From: {v}", "Reviewer: {v}  (2 approvals)", '    "contact": "{v}",', "Signed-off-by: Maria Gonzalez <{v}>"],
        ["just email {v} and she'll send you the invoice", "can you cc {v} on that thread"]),
    "phone_number": (
        _phone,
        ["Phone: {v}", "Mobile {v}", '    "phone": "{v}",', "Call me back at {v} after 3pm"],
        ["call me at {v} if the deploy breaks", "his cell is {v}, he's on call this week"]),
    "credit_card": (
        _card,
        ["Card number {v}   Exp 09/28   CVC 123", '    card_number: "{v}",', "Charged to card {v}"],
        ["the company card is {v}, expiry is september twenty eight"]),
    "iban": (
        _iban,
        ["IBAN: {v}", "Beneficiary account {v}  BIC DEUTDEFF", '    "iban": "{v}",'],
        ["wire it to {v} that's the supplier account"]),
    "us_ssn": (
        _ssn,
        ["SSN: {v}", "Social Security No. {v}", '    "ssn": "{v}",'],
        ["her social is {v} for the background check form"]),
}


# ---------------------------------------------------------------------------------------------- surroundings

def _ocr(rng: random.Random, build: Callable[[_Text], None]) -> tuple[_Text, str]:
    out = _Text()
    screen = rng.choice(["editor", "terminal", "browser", "chat"])
    if screen == "editor":
        name = rng.choice(["settings.py", ".env", "config.yml", "deploy.sh", "index.ts"])
        out.add(f"File Edit Selection View Go Run Terminal Help\n{name} — billing-api — Visual Studio Code\n"
                f"EXPLORER  OPEN EDITORS  {name}  README.md\n{rng.randint(3, 60)}  ")
        build(out)
        out.add(f"\n{rng.randint(61, 90)}  \nPROBLEMS  OUTPUT  DEBUG CONSOLE  TERMINAL\nLn {rng.randint(1, 90)}, "
                f"Col {rng.randint(1, 40)}  Spaces: 4  UTF-8  LF  Python 3.12.1")
    elif screen == "terminal":
        out.add(f"iTerm2  ~/src/billing-api (main)\n$ git log -1 --oneline\n{_hex(rng, 7)} Fix retry backoff\n"
                "$ cat .env.production\n")
        build(out)
        out.add("\nLOG_LEVEL=info\n$ ")
    elif screen == "browser":
        out.add(f"Google Chrome  admin.acme-corp.io/customers/{rng.randint(1000, 99999)}\nCustomers  Orders  "
                "Billing  Settings\nCustomer details\n")
        build(out)
        out.add(f"\nCreated 2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 14:0{rng.randint(0, 9)}  Status Active")
    else:
        out.add(f"Slack  # backend  {rng.randint(3, 40)} members\n{rng.choice(_FIRST).title()}  "
                f"{rng.randint(9, 11)}:{rng.randint(10, 59)} AM\nhere you go\n")
        build(out)
        out.add("\nthanks! :+1:\nMessage #backend")
    return out, "capture.txt"


def _transcript(rng: random.Random, build: Callable[[_Text], None]) -> tuple[_Text, str]:
    out = _Text()
    out.add(rng.choice(["so um, ", "right, ", "okay. ", "yeah so for the migration ", ""]))
    build(out)
    out.add(rng.choice([". anyway let's look at the pagination ticket next",
                        ". and then we can ship the retry fix on thursday", ". cool, thanks everyone", ""]))
    return out, "capture.txt"


_DIFF_FILES = ["src/config.py", "config/settings.yml", "app/.env.example", "src/clients/payments.ts",
               "deploy/values.yaml", "scripts/seed_db.py", "src/main/resources/application.properties"]


def _diff(rng: random.Random, build: Callable[[_Text], None], path: str | None = None) -> tuple[_Text, str]:
    path = path or rng.choice(_DIFF_FILES)
    out = _Text()
    start = rng.randint(3, 120)
    out.add(f"diff --git a/{path} b/{path}\nindex {_hex(rng, 7)}..{_hex(rng, 7)} 100644\n--- a/{path}\n"
            f"+++ b/{path}\n@@ -{start},6 +{start},7 @@\n LOG_LEVEL = \"info\"\n-TIMEOUT = 30\n+TIMEOUT = 45\n+")
    build(out)
    out.add("\n RETRIES = 3\n")
    return out, path.rsplit("/", 1)[-1]


def _private_key_text(rng: random.Random, context: str) -> tuple[_Text, str]:
    algo = rng.choice(["RSA ", "", "EC ", "OPENSSH "])
    body = _pem_body(rng)
    header, footer = f"-----BEGIN {algo}PRIVATE KEY-----", f"-----END {algo}PRIVATE KEY-----"
    variant = rng.choice(["whole", "split_header", "merged_body", "gutter", "no_end"]) if context == "ocr" else "whole"
    if variant == "whole":
        block = "\n".join([header, *body, footer])
    elif variant == "split_header":  # OCR wraps the header line
        block = "\n".join([f"-----BEGIN {algo}PRIVATE", "KEY-----", *body, footer])
    elif variant == "merged_body":  # OCR joins wrapped lines with spaces
        block = "\n".join([header, " ".join(body[:3]), " ".join(body[3:]), footer])
    elif variant == "gutter":  # editor line numbers read as text
        block = "\n".join(f"{n} {line}" for n, line in enumerate([header, *body, footer], start=1))
        block = block[block.index("-"):]
    else:  # the END line scrolled off screen
        block = "\n".join([header, *body[:6]])
    if context == "diff":
        lines = block.split("\n")
        builder = _Text()
        builder.add("diff --git a/deploy/id_rsa b/deploy/id_rsa\nnew file mode 100600\nindex 0000000.."
                    f"{_hex(rng, 7)}\n--- /dev/null\n+++ b/deploy/id_rsa\n@@ -0,0 +1,{len(lines)} @@\n+")
        builder.plant("\n+".join(lines))
        builder.add("\n")
        return builder, "id_rsa"
    return _ocr(rng, lambda out: out.plant(block))


# ------------------------------------------------------------------------------------------------ negatives

def _negative_lines(rng: random.Random) -> dict[str, list[str]]:
    sha, sha2 = _hex(rng, 40), _hex(rng, 40)
    uuid = f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    sha256 = _hex(rng, 64)
    integrity = "sha512-" + base64.b64encode(rng.randbytes(64)).decode()
    gosum = base64.b64encode(rng.randbytes(32)).decode()
    return {
        "git_sha": [f"commit {sha}", f'    rev: "{sha}"', f"Merge {sha[:7]} into main", f'  "sha": "{sha}",',
                    f"Reverts {sha}. (cherry picked from commit {sha2})", f"pip install git+https://github.com/acme/"
                    f"lib.git@{sha}"],
        "uuid": [f'  "id": "{uuid}",', f"request_id={uuid} status=200 duration_ms=41",
                 f"trace_id: '{uuid}'", f"DELETE /api/v1/jobs/{uuid}"],
        "lockfile_hash": [f'      "integrity": "{integrity}",', f'    {{file = "requests-2.32.3-py3-none-any.whl", '
                          f'hash = "sha256:{sha256}"}},', f'checksum = "{sha256}"',
                          f'  resolved "https://registry.yarnpkg.com/lodash/-/lodash-4.17.21.tgz#{sha}"',
                          f"github.com/pkg/errors v0.9.1 h1:{gosum}", f"    --hash=sha256:{sha256}",
                          f"FROM python:3.12-slim@sha256:{sha256}"],
        # Documented examples that are no one's secret. (Stripe's test key, jwt.io's token, test card numbers
        # and the IBAN of the ISO standard are flagged: the peers whose tests the real-world corpus is built from
        # count them as findings, and redacting them costs a training pair nothing.)
        "example_key": ["AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
                        "export AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE", "contact: jane.doe@example.com",
                        "SSN: 078-05-1120 (the Woolworth wallet card)", "api_key = \"<your-api-key>\""],
        "placeholder": ["OPENAI_API_KEY=${OPENAI_API_KEY}", '  password: "{{ vault_db_password }}"',
                        'token = "<your-token-here>"', 'DATABASE_URL=postgres://user:password@localhost:5432/app',
                        'AWS_SECRET_ACCESS_KEY=your-secret-access-key', '    "apiKey": "YOUR_API_KEY",',
                        "SMTP_PASSWORD=changeme", "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                        "secret: ********", 'api_key = os.environ["STRIPE_API_KEY"]',
                        "DB_PASSWORD=$(cat /run/secrets/db_password)"],
        "code_reference": ["password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt())",
                           "def reset_password(user_id: int, token: str) -> None:", "TOKEN_TTL_SECONDS = 3600",
                           "secret_key = settings.SECRET_KEY", "const apiKey = process.env.API_KEY;",
                           'auth_token = request.headers.get("Authorization")', "AUTH_BACKEND=oauth2",
                           "if not verify_password(form.password.data, user.password_hash):"],
        "numbers": [f"Build {rng.randint(2024, 2026)}{rng.randint(10, 12)}{rng.randint(10, 28)}.{rng.randint(1, 9)}",
                    f"ts={rng.randint(1_700_000_000, 1_800_000_000)}  latency_ms={rng.randint(5, 900)}",
                    f"2026-11-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:07.123456+00:00",
                    f"Order #{rng.randint(10**7, 10**8)}  total $1,{rng.randint(100, 999)}.00",
                    f"version 10.{rng.randint(0, 20)}.{rng.randint(0, 20)}.1", f"  File \"src/app.py\", line "
                    f"{rng.randint(10, 999)}, in handler", f"invoice_id = {rng.randint(10**15, 10**16 - 1)}",
                    f"epoch_ms: {rng.randint(1_700_000_000_000, 1_800_000_000_000)}",
                    f"listening on 0.0.0.0:{rng.randint(3000, 9999)} pid {rng.randint(1000, 65000)}"],
        "not_pii": ["git clone git@github.com:acme/billing-api.git", "Co-authored-by: dependabot[bot] "
                    "<49699333+dependabot[bot]@users.noreply.github.com>", 'img src="logo@2x.png"',
                    "npm install @types/node@20.11.5", "From: GitHub <noreply@github.com>",
                    "   @app.route(\"/users/<int:user_id>\")"],
        "assets": ['background: #1e1e2e; color: #cdd6f4;', "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"
                   + _pick(rng, B64, 43) + " deploy@ci", f'<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA'
                   f'{_pick(rng, B64, 60)}==" />', "-----BEGIN PUBLIC KEY-----\n" + _pick(rng, B64, 64) +
                   "\n-----END PUBLIC KEY-----"],
    }


_SPOKEN_NEGATIVES = [
    "the password is wrong on staging so the login fails",
    "the token is expired, that's why the job keeps failing",
    "the api key is in 1Password under billing",
    "the password is stored in vault, don't put it in the env file",
    "the key is to cache the embeddings by content hash",
    "the secret is making it incremental, honestly",
    "the password is rotated every ninety days by the script",
    "so the access token is refreshed when it has less than a minute left",
    "the pin is on the sticky note, ask Tom",
    "the password is the same as the old one, I think",
    "the token is a JWT so we can decode it client side",
    "and the password is hashed with bcrypt before it's saved",
]


def build_labelled_set(seed: int = 20261125, per_kind: int = 36) -> list[Sample]:
    """`per_kind` positives per planted kind (spread over the contexts that kind occurs in) and `per_kind`
    negatives per negative category, all reproducible from `seed`."""
    rng = random.Random(seed)
    samples: list[Sample] = []

    def add(context: str, label: str, positive: bool, built: _Text, filename: str) -> None:
        samples.append(Sample(f"{label}-{context}-{len(samples)}", context, label, positive, built.text,
                              filename, list(built.spans)))

    for kind, (make, lines, spoken) in POSITIVE_KINDS.items():
        contexts = ["ocr", "diff"] if kind != "spoken_secret" else []
        contexts += ["transcript"] if spoken else []
        for index in range(per_kind):
            context = contexts[index % len(contexts)] if kind != "private_key" else ["ocr", "ocr", "diff"][index % 3]
            if kind == "private_key":
                built, filename = _private_key_text(rng, context)
                add(context, kind, True, built, filename)
                continue
            value = make(rng)
            if context == "transcript":
                template = rng.choice(spoken)
                built, filename = _transcript(rng, lambda out, t=template, v=value: out.render(t, v=v))
            else:
                template = rng.choice(lines)
                wrap = _ocr if context == "ocr" else _diff
                built, filename = wrap(rng, lambda out, t=template, v=value: out.render(t, v=v))
            add(context, kind, True, built, filename)

    for index in range(per_kind):
        categories = _negative_lines(rng)
        for category, options in categories.items():
            line = options[index % len(options)]
            context = ["ocr", "diff"][index % 2]
            wrap = _ocr if context == "ocr" else _diff
            built, filename = wrap(rng, lambda out, line=line: out.add(line))
            add(context, category, False, built, filename)
        built, filename = _transcript(rng, lambda out, i=index: out.add(_SPOKEN_NEGATIVES[i % len(_SPOKEN_NEGATIVES)]))
        add("transcript", "spoken_negative", False, built, filename)
    return samples


@dataclass
class KindScore:
    label: str
    positive: bool
    samples: int = 0
    hits: int = 0  # positives: a finding overlaps every planted span; negatives: any finding at all
    covered: int = 0  # positives: findings cover every planted character (what redaction needs)
    stray: int = 0  # positives: samples with a finding away from anything planted (a false positive there)

    @property
    def rate(self) -> float:
        return self.hits / self.samples if self.samples else 0.0

    @property
    def coverage(self) -> float:
        return self.covered / self.samples if self.samples else 0.0


def score(samples: list[Sample], detect: Callable[[str, str], list]) -> dict[str, KindScore]:
    """Recall per planted kind and false-positive rate per negative category for a detector
    `detect(text, filename) -> spans` (objects with .start and .end)."""
    scores: dict[str, KindScore] = {}
    for sample in samples:
        entry = scores.setdefault(sample.label, KindScore(sample.label, sample.positive))
        entry.samples += 1
        found = detect(sample.text, sample.filename)
        if not sample.positive:
            entry.hits += bool(found)
            continue
        overlaps = all(any(s.start < end and start < s.end for s in found) for start, end in sample.spans)
        covered = set()
        for s in found:
            covered.update(range(s.start, s.end))
        entry.hits += overlaps
        entry.stray += any(not any(s.start < end and start < s.end for start, end in sample.spans) for s in found)
        entry.covered += all(set(range(start, end)) <= covered for start, end in sample.spans)
    return scores


# ------------------------------------------------------------------------------------------ training JSONL files

_TASKS = [
    ("Add retry with exponential backoff to fetch_forecast", "src/weatherly/client.py",
     "def fetch_forecast(city, retries=3):\n    delay = 0.5\n    for attempt in range(retries):\n"
     "        response = session.get(f\"{BASE}/forecast\", params={\"q\": city})\n"
     "        if response.status_code != 503:\n            return response.json()\n"
     "        time.sleep(delay * (2 ** attempt))\n    raise ServiceUnavailable(city)\n"),
    ("Paginate the search endpoint", "src/api/search.py",
     "def search(query, limit=20, offset=0):\n    limit = min(limit, 100)\n"
     "    rows = db.execute(SEARCH_SQL, (query, limit, offset)).fetchall()\n"
     "    return {\"items\": rows, \"next\": offset + limit if len(rows) == limit else None}\n"),
    ("Cache embeddings by content hash", "src/linking/embedder.py",
     "def embed(texts):\n    keys = [sha1(t.encode()).hexdigest() for t in texts]\n"
     "    missing = [t for t, k in zip(texts, keys) if k not in cache]\n"
     "    for text, vector in zip(missing, model.encode(missing)):\n"
     "        cache[sha1(text.encode()).hexdigest()] = vector\n"
     "    return [cache[k] for k in keys]\n"),
    ("Validate webhook signatures", "src/hooks/verify.ts",
     "export function verify(body: string, signature: string, secret: string): boolean {\n"
     "  const expected = createHmac('sha256', secret).update(body).digest('hex');\n"
     "  return timingSafeEqual(Buffer.from(expected), Buffer.from(signature));\n}\n"),
]
_DISCUSSIONS = [
    "users complain search is slow with 1000 results, we need pagination with a hard cap of one hundred",
    "the upstream weather API returns 503 under load; retry with exponential backoff and jitter",
    "embedding is the expensive part of linking, so cache every vector by the hash of its text",
    "someone replayed a webhook last week; verify the HMAC signature with a constant-time compare",
]


def training_pair(index: int, rng: random.Random, context_extra: str = "", output_extra: str = "",
                  confidence: float | None = None) -> dict:
    """One pair in the ARCHITECTURE contract's shape (instruction, input, output, metadata)."""
    message, path, code = _TASKS[index % len(_TASKS)]
    discussion = _DISCUSSIONS[index % len(_DISCUSSIONS)]
    sha = _hex(rng, 40)
    confidence = round(rng.uniform(0.6, 0.92), 3) if confidence is None else confidence
    source_id = f"audio:{rng.randint(1, 9999)}"
    return {
        "instruction": f"{message} (#{index})",
        "input": f"Business Context from team discussions:\n\n{discussion} {context_extra}".rstrip()
                 + f"\n\nTask: Modify {path}",
        "output": code + output_extra + f"# change {index}\n",
        "metadata": {"commit_sha": sha, "commit_timestamp": f"2026-11-{1 + index % 27:02d}T10:00:00+00:00",
                     "file_path": path, "knowledge_type": "audio", "confidence": confidence, "source_id": source_id,
                     "sources": [{"source_id": source_id, "knowledge_type": "audio", "confidence": confidence,
                                  "timestamp": "2026-11-01T09:00:00+00:00", "app_name": None,
                                  "window_name": "MacBook Pro Microphone"}]},
    }


def write_training_jsonl(path, pairs: int = 24, seed: int = 7, secrets: bool = True) -> dict:
    """Write a training_data.jsonl of `pairs` clean pairs plus, with `secrets`, three planted secrets (an AWS key
    in the input, a Stripe key in the output, a spoken password) and one exact duplicate. Returns what was
    planted: {"aws": value, "stripe": value, "spoken": value, "lines": {name: line_number}}."""
    rng = random.Random(seed)
    records = [training_pair(i, rng) for i in range(pairs)]
    planted: dict = {"lines": {}}
    if secrets:
        aws = "AKIA" + _pick(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        stripe = "sk_live_" + _pick(rng, ALNUM, 24)
        spoken = f"{rng_word(rng)}-{rng_word(rng)}-{rng.randint(10, 99)}"
        records.append(training_pair(pairs, rng, context_extra=f"(screen: AWS_ACCESS_KEY_ID={aws} in .env)"))
        records.append(training_pair(pairs + 1, rng, output_extra=f'STRIPE_KEY = "{stripe}"\n'))
        records.append(training_pair(pairs + 2, rng, context_extra=f"oh and the staging password is {spoken}. ok"))
        records.append(dict(records[0]))
        planted.update(aws=aws, stripe=stripe, spoken=spoken)
        planted["lines"] = {"aws": pairs + 1, "stripe": pairs + 2, "spoken": pairs + 3, "duplicate": pairs + 4}
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return planted


# ------------------------------------------------------------------------------------------------ held-out set
# Written once, before running the detector on them, in phrasings the generator does not use; the benchmark
# reports them apart from the generated set and they are not tuned against. `{v}` marks the planted value.

def build_held_out_set() -> list[Sample]:
    rng = random.Random(99)
    card = _luhn_complete("54", 16, rng)
    card = " ".join(card[i:i + 4] for i in range(0, 16, 4))
    positives = [
        ("transcript", "spoken_secret", "yeah the root password on the nas is {v}, I'll change it later",
         "Gr33nTea!2024"),
        ("transcript", "phone_number", "if it pages you at night just ring me, {v}, any time", "(206) 342-8831"),
        ("transcript", "email", "send the signed contract to {v} by friday", "lena.kowalski@proton.me"),
        ("ocr", "slack_token", "Slack  # ops-bots\nkai  3:12 PM\nhere's the token for the bot {v}\n:eyes: 2",
         "xoxb-20394857261-99887766554-Zq1W2e3R4t5Y6u7I8o9P0aSd"),
        ("ocr", "openai_key", "zsh  ~/ml\n$ export OPENAI_API_KEY={v}\n$ python eval.py",
         "sk-proj-" + _pick(rng, URLSAFE, 64) + "T3BlbkFJ" + _pick(rng, URLSAFE, 64)),
        ("diff", "google_api_key", "+++ b/web/firebase.json\n@@ -1,3 +1,4 @@\n {\n+  \"apiKey\": \"{v}\",\n",
         "AIzaSy" + _pick(rng, URLSAFE, 33)),
        ("diff", "connection_string", "+++ b/.env\n@@ -0,0 +1 @@\n+DATABASE_URL=\"mysql://root:{v}@10.1.2.3/app\"\n",
         "pR0d-Db!pass"),
        ("ocr", "private_key", "Slack DM · ravi\ncan you add this to the deploy box\n{v}\nthx",
         "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
         "QyNTUxOQAAACBq1Xz9YkM3nTb8c2R4vW7pL0sE5hJ6gK1fD3aQ9uN2mAAAAJgx7Yk2Me2J\n"
         "-----END OPENSSH PRIVATE KEY-----"),
        ("ocr", "credit_card", "Checkout · Pay\nCard Number\n{v}\nExpiry 04/27   CVV ***", card),
        ("ocr", "iban", "Payee details\nName: Northwind GmbH\nIBAN {v}\nReference INV-2211", _iban(rng)),
        ("diff", "password", "+++ b/config/prod.yml\n@@ -4,2 +4,3 @@\n redis:\n+    secret_key: \"{v}\"\n",
         "q8X2pL0vR5tY7uN3mK9jH4gF6dS1aZ0c"),
        ("transcript", "spoken_secret", "uh the door code is {v} for the side entrance", "4 8 1 5 2"),
        ("ocr", "github_token", "Settings / Developer settings / Tokens\nNew personal access token\n{v}\n"
         "Make sure to copy your token now.", "ghp_" + _pick(rng, ALNUM, 36)),
        ("transcript", "spoken_secret", "the jira api token is {v} but it expires monday",
         "ATATT3xFfGF0" + _pick(rng, ALNUM, 20)),
        ("ocr", "us_ssn", "Employee onboarding\nSSN {v}\nStart date 2026-12-01", "536-22-1987"),
        ("diff", "huggingface_token", "+++ b/train.py\n@@ -1,2 +1,3 @@\n import os\n+HF_TOKEN = \"{v}\"\n",
         "hf_" + _pick(rng, string.ascii_letters, 34)),
        ("ocr", "email", "Inbox\nFrom: Priya Patel <{v}>\nSubject: Q4 invoice", "priya.patel@northwind.co.uk"),
        ("transcript", "phone_number", "you can text me on {v} while I'm in london", "+44 7911 123456"),
        ("diff", "stripe_key", "+++ b/server.js\n@@ -2 +2 @@\n-const stripe = Stripe(process.env.KEY)\n"
         "+const stripe = Stripe(\"{v}\")\n", "sk_live_" + _pick(rng, ALNUM, 24)),
        ("diff", "connection_string", "+++ b/appsettings.json\n@@ -3 +3 @@\n+  \"Default\": \"Data Source=sql01;"
         "Initial Catalog=Sales;User Id=app;Password={v};\"\n", "Kx!92hf-Lm"),
    ]
    negatives = [
        ("transcript", "the password reset email goes out at nine every morning"),
        ("transcript", "what's the token budget for this model, like four thousand?"),
        ("diff", "+++ b/cli.py\n@@ -9 +9 @@\n+    password = getpass.getpass(\"Password: \")\n"),
        ("ocr", "GitHub · acme/api\nLast commit: 4f2c9e1 by dana · 2 hours ago\n12 contributors"),
        ("diff", "+++ b/Dockerfile\n@@ -3 +3 @@\n+ENV SECRET_KEY_BASE=${SECRET_KEY_BASE}\n"),
        ("ocr", "AWS docs\nSet AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE and AWS_SECRET_ACCESS_KEY="
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in your shell"),
        ("diff", "+++ b/package-lock.json\n@@ -80 +80 @@\n+      \"integrity\": \"sha512-"
                 + base64.b64encode(rng.randbytes(64)).decode() + "\",\n"),
        ("ocr", "CI · Build #48213 · duration 00:04:31 · 2026-11-24 22:10 · passed"),
        ("transcript", "the key is in the ignition, just kidding, the key point is latency"),
        ("ocr", "Request details\nuuid: 123e4567-e89b-12d3-a456-426614174000\nstatus 200"),
        ("diff", "+++ b/config.yml\n@@ -1 +1 @@\n+  api_key: <REPLACE_ME>\n"),
        ("ocr", "Contact support@example.com or call +1 (555) 010-0000"),
        ("diff", "+++ b/.env.example\n@@ -1,3 +1,3 @@\n+PORT=5432\n+DB_HOST=localhost\n+DB_USER=postgres\n"),
        ("ocr", "Shipment\nTracking number 1Z999AA10123456784\nOut for delivery"),
        ("transcript", "my pin is somewhere in my notes app, I'll look it up"),
        ("diff", "+++ b/auth.py\n@@ -2 +2 @@\n+    token_url = \"https://oauth2.googleapis.com/token\"\n"),
        ("ocr", "About\nVersion 3.12.1 (build 20261101.2)\nCheck for updates"),
        ("diff", "+++ b/package-lock.json\n@@ -5 +5 @@\n+  \"resolved\": "
                 "\"https://registry.npmjs.org/react/-/react-18.3.1.tgz\",\n"),
        ("ocr", "Pull request #1432 merged\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("diff", "+++ b/settings.py\n@@ -7 +7 @@\n+# TODO: move the secret to vault before launch\n"),
    ]
    samples = []
    for context, label, template, value in positives:
        built = _Text().render(template, v=value)
        samples.append(Sample(f"held-{len(samples)}", context, label, True, built.text,
                              "capture.txt" if context != "diff" else "changed.py", list(built.spans)))
    for context, text in negatives:
        samples.append(Sample(f"held-{len(samples)}", context, "held_out_negative", False, text,
                              "capture.txt" if context != "diff" else "changed.py"))
    return samples
