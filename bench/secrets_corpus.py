"""`python -m bench secrets_corpus build|score`: a real-world corpus for sensitive-data detection, built from the
published test cases of four peers, and the studio's figures on it beside detect-secrets alone.

build  Reads fresh snapshots of gitleaks (rule true/false positives in cmd/generate/config/rules/*.go, value spans
       located with the rule's own regex from config/gitleaks.toml), trufflehog (pattern tests of every detector in
       pkg/detectors/**/*_test.go: inputs and the values they must yield), detect-secrets (tests/plugins/*_test.py
       parametrized lines) and presidio (the credit card, e-mail, phone, IBAN and US SSN recognizer tests), and writes
       /work/corpora/secrets/{real,generated}.jsonl and manifest.json OUTSIDE the repository. Every item records its
       source repository, commit, file and case. Each value is placed in the three places the studio reads text from
       (source code, an OCR'd screen, a commit message) plus the peer's own snippet ("original"). Values a peer
       generates at test time (gitleaks' `secrets.NewSecret(regex)`) are sampled from the same regex and kept apart
       in generated.jsonl: they are look-alikes, not real-world items.
       The snapshots come from the `fetch` tool (github:gitleaks/gitleaks, github:trufflesecurity/trufflehog,
       github:Yelp/detect-secrets, github:microsoft/presidio), by default under /work/.mirror/<owner>+<name>/repo.

score  Runs the studio detector and detect-secrets alone (every plugin, its default filters) over the corpus and
       prints recall, whole-value coverage and false-positive rate per kind, per place and per source; the
       per-source figures are leave-one-source-out, since no rule's example comes from any corpus source (checked:
       a rule example equal to a corpus value fails the run). `--write` puts the summary in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

MIRROR = Path("/work/.mirror")
CORPUS = Path("/work/corpora/secrets")
REPOS = {"gitleaks": "gitleaks/gitleaks", "trufflehog": "trufflesecurity/trufflehog",
         "detect-secrets": "Yelp/detect-secrets", "presidio": "microsoft/presidio"}
PLACES = ("original", "code", "ocr", "commit")


class GitTree:
    """Read-only access to one commit of a fetched repository (a bare git directory)."""

    def __init__(self, path: Path):
        self.path = path
        self.commit = self._git("rev-parse", "HEAD").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True, errors="replace").stdout

    def files(self, prefix: str) -> list[str]:
        return [line for line in self._git("ls-tree", "-r", "--name-only", self.commit, prefix).splitlines() if line]

    def read(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")


@dataclass
class Item:
    """One published test case: a positive with the value a detector must find, or a negative snippet."""

    source: str  # gitleaks | trufflehog | detect-secrets | presidio
    kind: str  # the peer's rule / detector / plugin / recognizer name, prefixed with the source
    positive: bool
    snippet: str  # the peer's own text
    value: str | None  # the secret inside `snippet` (positives)
    origin: dict  # repo, commit, path, case
    generated: bool = False
    self_identifying: bool = True  # the peer finds the value without a keyword nearby
    provider: str = ""
    core: bool = True  # scored in the main tables (see _core_providers)


@dataclass
class Sample:
    id: str
    source: str
    kind: str
    positive: bool
    place: str
    text: str
    spans: list[tuple[int, int]]
    filename: str
    origin: dict
    generated: bool
    self_identifying: bool
    value_sha1: str | None = None
    near_miss: bool = False  # a negative holding a credential-shaped string (see near_miss)
    core: bool = True


# ---------------------------------------------------------------------------------------------------- gitleaks

def _gitleaks_helpers(rng: random.Random) -> dict:
    from bench._go_literals import Value
    from bench._regex_sample import sample

    def pattern(template: str):
        return lambda args: [Value(template.format(args[0][0].text))]

    def sample_secret(args):
        identifier, secrets = args[0][0].text, args[1]
        return [Value(f'{identifier}_api_token = "{secret.text}"', secret.generated) for secret in secrets]

    helpers = {
        "utils.Numeric": pattern("[0-9]{{{}}}"), "utils.Hex": pattern("[a-f0-9]{{{}}}"),
        "utils.AlphaNumeric": pattern("[a-z0-9]{{{}}}"), "utils.AlphaNumericExtendedShort": pattern("[a-z0-9_-]{{{}}}"),
        "utils.AlphaNumericExtended": pattern(r"[a-z0-9=_\-]{{{}}}"),
        "utils.AlphaNumericExtendedLong": pattern(r"[a-z0-9\/=_\+\-]{{{}}}"),
        "utils.Hex8_4_4_4_12": lambda args: [Value("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")],
        "secrets.NewSecret": lambda args: [Value(sample(args[0][0].text, rng), True)],
        "utils.GenerateSampleSecret": sample_secret, "utils.GenerateSampleSecrets": sample_secret,
    }
    return helpers


def _gitleaks_rules(tree: GitTree) -> dict[str, dict]:
    config = tomllib.loads(tree.read("config/gitleaks.toml"))
    return {rule["id"]: rule for rule in config["rules"]}


def _compile_go_regex(pattern: str):
    import regex

    try:
        return regex.compile(pattern.replace(r"\z", r"\Z"), regex.V0)
    except regex.error:
        return None


def _locate(rule: dict | None, snippet: str) -> str | None:
    """The value gitleaks reports in `snippet`: its secretGroup, else the first non-empty group, else the match."""
    if not rule:
        return None
    compiled = _compile_go_regex(rule.get("regex", ""))
    if compiled is None:
        return None
    match = compiled.search(snippet)
    if not match:
        return None
    group = rule.get("secretGroup", 0)
    value = match.group(group) if group else next((value for value in match.groups() if value), match.group(0))
    # gitleaks' patterns end with the character after the token (a quote, a space): the token is inside it
    return value.strip().strip("\"'`;,") or None if value else None


def extract_gitleaks(tree: GitTree) -> tuple[list[Item], Counter]:
    from bench._go_literals import Evaluator, declarations, tokenize

    rules = _gitleaks_rules(tree)
    items, skipped = [], Counter()
    for path in tree.files("cmd/generate/config/rules"):
        if not path.endswith(".go") or path.endswith("_test.go"):
            continue
        tokens = tokenize(tree.read(path))
        functions = [index for index, token in enumerate(tokens) if token.text == "func"]
        for number, start in enumerate(functions):
            end = functions[number + 1] if number + 1 < len(functions) else len(tokens)
            body = tokens[start:end]
            rule_ids = [body[i + 2].text for i in range(len(body) - 2)
                        if body[i].text == "RuleID" and body[i + 1].text == ":" and body[i + 2].kind == "str"]
            if not rule_ids:
                continue
            rule_id = rule_ids[0]
            rng = random.Random(f"gitleaks:{rule_id}")
            evaluator = Evaluator(helpers=_gitleaks_helpers(rng))
            declarations(body, evaluator)
            provider = rule_id.split("-")[0]
            compiled = _compile_go_regex(rules.get(rule_id, {}).get("regex", ""))
            for list_name, positive in (("tps", True), ("fps", False)):
                for case, value in enumerate(evaluator.variables.get(list_name, [])):
                    origin = {"repo": REPOS["gitleaks"], "commit": tree.commit, "path": path,
                              "case": f"{rule_id} {list_name}[{case}]"}
                    if not value.text.strip():
                        continue
                    secret = None
                    if positive:
                        secret = _locate(rules.get(rule_id), value.text)
                        if not secret or secret not in value.text:
                            skipped["gitleaks: value not located by the rule's regex"] += 1
                            continue
                    # the value is self-identifying when the rule finds it with nothing around it
                    identifying = bool(compiled and secret and compiled.search(secret))
                    items.append(Item("gitleaks", f"gitleaks:{rule_id}", positive, value.text, secret, origin,
                                      value.generated, identifying, provider))
    return items, skipped


# -------------------------------------------------------------------------------------------------- trufflehog

def _enclosing_literal(tokens, index: int) -> tuple[int, int] | None:
    from bench._go_literals import matching

    depth = 0
    for back in range(index, -1, -1):
        text = tokens[back].text if tokens[back].kind == "op" else ""
        if text == "}":
            depth += 1
        elif text == "{":
            if depth == 0:
                return back, matching(tokens, back)
            depth -= 1
    return None


def _identifying_detector(source: str, values: list[str]) -> bool:
    """Whether a trufflehog detector finds its values by their shape alone: one of its patterns that is not built
    with `detectors.PrefixRegex` (a keyword that must come first) matches the whole value."""
    patterns = []
    for literal in re.findall(r"MustCompile\(\s*(`[^`]*`|\"(?:[^\"\\]|\\.)*\")\s*\)", source):
        compiled = _compile_go_regex(literal[1:-1] if literal.startswith("`") else json.loads(literal))
        if compiled is not None:
            patterns.append(compiled)
    return bool(values) and all(any(p.search(value) and len(p.search(value).group(0)) >= len(value) - 2
                                    for p in patterns) for value in values)


def extract_trufflehog(tree: GitTree) -> tuple[list[Item], Counter]:
    from bench._go_literals import Evaluator, declarations, field_value, tokenize

    items, skipped = [], Counter()
    paths = [path for path in tree.files("pkg/detectors") if path.endswith("_test.go")
             and "integration" not in path and path.count("/") >= 3]
    for path in paths:
        tokens = tokenize(tree.read(path))
        evaluator = Evaluator()
        declarations(tokens, evaluator)
        folder = path.rsplit("/", 1)[0]
        detector = folder.split("/", 2)[2]
        provider = detector.split("/")[0]
        sources = "".join(tree.read(other) for other in tree.files(folder)
                          if other.endswith(".go") and not other.endswith("_test.go") and other.count("/") ==
                          path.count("/"))
        seen = set()
        cases = []
        for index, token in enumerate(tokens):
            if token.text != "input" or index + 1 >= len(tokens) or tokens[index + 1].text != ":":
                continue
            literal = _enclosing_literal(tokens, index)
            if literal is None or literal in seen:
                continue
            seen.add(literal)
            body = tokens[literal[0] + 1:literal[1]]
            name = field_value(body, "name")
            case_name = name[0].text if name and name[0].kind == "str" else f"case {len(seen)}"
            input_tokens, want_tokens = field_value(body, "input"), field_value(body, "want")
            if input_tokens is None or want_tokens is None:
                continue
            inputs, wants = evaluator.evaluate(input_tokens), evaluator.evaluate(want_tokens)
            if inputs is None or wants is None or len(inputs) != 1:
                skipped["trufflehog: case not evaluable without Go"] += 1
                continue
            cases.append((case_name, inputs[0].text, [want.text for want in wants]))
        identifying = _identifying_detector(sources, [want for _, _, wanted in cases for want in wanted])
        for case_name, text, wanted in cases:
            origin = {"repo": REPOS["trufflehog"], "commit": tree.commit, "path": path, "case": case_name}
            if not text.strip():
                continue
            if not wanted:
                items.append(Item("trufflehog", f"trufflehog:{detector}", False, text, None, origin,
                                  self_identifying=identifying, provider=provider))
                continue
            for want in wanted:
                want = want.strip().strip("\"'`")  # a detector's capture may hold the quote that closes it
                if want and want in text:
                    items.append(Item("trufflehog", f"trufflehog:{detector}", True, text, want, origin,
                                      self_identifying=identifying, provider=provider))
                else:
                    skipped["trufflehog: wanted value is not verbatim in the input (a combined result)"] += 1
    return items, skipped


# ---------------------------------------------------------------------------------------------- detect-secrets

def _detect_secrets_value(plugin_name: str, line: str) -> str | None:
    """The value detect-secrets' own plugin reports on `line` (its test says the line must be flagged)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    plugin = classes.get(plugin_name)
    if plugin is None:
        return None
    for part in line.splitlines() or [line]:
        for secret in plugin().analyze_line(filename="mock_filename", line=part):
            value = secret.secret_value
            if value and value in part:
                # several plugins report only the token's prefix (`ghp`, `glpat`): the token runs on from there
                end = part.find(value) + len(value)
                while end < len(part) and (part[end].isalnum() or part[end] in "_-"):
                    end += 1
                return part[part.find(value):end]
    return None


_DS_PLUGINS = {
    "artifactory": "ArtifactoryDetector", "aws_key": "AWSKeyDetector", "azure_storage_key": "AzureStorageKeyDetector",
    "basic_auth": "BasicAuthDetector", "cloudant": "CloudantDetector", "discord": "DiscordBotTokenDetector",
    "github_token": "GitHubTokenDetector", "gitlab_token": "GitLabTokenDetector",
    "ibm_cloud_iam": "IbmCloudIamDetector",
    "ibm_cos_hmac": "IbmCosHmacDetector", "jwt": "JwtTokenDetector", "mailchimp_key": "MailchimpDetector",
    "npm": "NpmDetector", "openai": "OpenAIDetector", "private_key": "PrivateKeyDetector", "pypi_token":
    "PypiTokenDetector", "sendgrid": "SendGridDetector", "slack": "SlackDetector", "softlayer": "SoftlayerDetector",
    "square_oauth": "SquareOAuthDetector", "stripe_key": "StripeDetector", "telegram_token": "TelegramBotTokenDetector",
    "twilio": "TwilioKeyDetector",
}


def extract_detect_secrets(tree: GitTree) -> tuple[list[Item], Counter]:
    import ast

    from bench._py_literals import module_constants, parametrize_tables

    items, skipped = [], Counter()
    for path in tree.files("tests/plugins"):
        name = path.rsplit("/", 1)[-1].removesuffix("_test.py")
        source = tree.read(path)
        tree_ast = ast.parse(source)
        names = module_constants(tree_ast)
        if name == "keyword":
            for constant, cases in names.items():
                if not constant.endswith("_TEST_CASES") or not isinstance(cases, list):
                    continue
                for case, row in enumerate(cases):
                    if not (isinstance(row, (list, tuple)) and len(row) == 2 and isinstance(row[0], str)):
                        continue
                    line, secret = row
                    if len(line) > 2000:
                        continue
                    origin = {"repo": REPOS["detect-secrets"], "commit": tree.commit, "path": path,
                              "case": f"{constant}[{case}]"}
                    items.append(Item("detect-secrets", "detect-secrets:KeywordDetector", bool(secret), line,
                                      secret or None, origin, self_identifying=False, provider="keyword"))
            continue
        plugin = _DS_PLUGINS.get(name)
        if plugin is None:
            continue
        for function, params, rows in parametrize_tables(tree_ast, names):
            text_param = next((p for p in params if p in ("payload", "line", "file_content")), None)
            if text_param is None:
                continue
            for case, row in enumerate(rows):
                values = dict(zip(params, row, strict=False))
                text = values.get(text_param)
                if not isinstance(text, str) or not text.strip():
                    continue
                positive = bool(values.get("should_flag", True))
                origin = {"repo": REPOS["detect-secrets"], "commit": tree.commit, "path": path,
                          "case": f"{function}[{case}]"}
                secret = _detect_secrets_value(plugin, text) if positive else None
                if positive and not secret:
                    skipped["detect-secrets: plugin reports no value on its own positive line"] += 1
                    continue
                items.append(Item("detect-secrets", f"detect-secrets:{plugin}", positive, text, secret, origin,
                                  self_identifying=plugin not in ("BasicAuthDetector",), provider=name))
    return items, skipped


# ---------------------------------------------------------------------------------------------------- presidio

_PRESIDIO = {"test_credit_card_recognizer.py": "CREDIT_CARD", "test_email_recognizer.py": "EMAIL_ADDRESS",
             "test_phone_recognizer.py": "PHONE_NUMBER", "test_iban_recognizer.py": "IBAN_CODE",
             "test_us_ssn_recognizer.py": "US_SSN"}


def extract_presidio(tree: GitTree) -> tuple[list[Item], Counter]:
    import ast

    from bench._py_literals import module_constants, parametrize_tables

    items, skipped = [], Counter()
    for path in tree.files("presidio-analyzer/tests"):
        entity = _PRESIDIO.get(path.rsplit("/", 1)[-1])
        if entity is None:
            continue
        tree_ast = ast.parse(tree.read(path))
        names = module_constants(tree_ast)
        for function, params, rows in parametrize_tables(tree_ast, names):
            if not params or params[0] not in ("text", "iban") or "expected_len" not in params:
                continue
            positions_param = next((p for p in params if p in ("expected_positions", "expected_res")), None)
            for case, row in enumerate(rows):
                values = dict(zip(params, row, strict=False))
                text, count = values.get(params[0]), values.get("expected_len")
                if not isinstance(text, str) or not isinstance(count, int):
                    continue
                if "leniency" in values and values["leniency"] not in (None, 1):
                    continue  # a non-default leniency tests the matcher's settings, not what a number is
                origin = {"repo": REPOS["presidio"], "commit": tree.commit, "path": path,
                          "case": f"{function}[{case}]"}
                if count == 0:
                    items.append(Item("presidio", f"presidio:{entity}", False, text, None, origin,
                                      provider=entity.lower()))
                    continue
                positions = values.get(positions_param) or []
                for start, end in positions[:count]:
                    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
                        items.append(Item("presidio", f"presidio:{entity}", True, text, text[start:end], origin,
                                          provider=entity.lower()))
                    else:
                        skipped["presidio: expected position outside the text"] += 1
    return items, skipped


# --------------------------------------------------------------------------------------------------- placement

_PII_LABEL = {"credit_card": "Card", "email_address": "Email", "phone_number": "Phone", "iban_code": "IBAN",
              "us_ssn": "SSN"}
_SECRET_WORDS = ("API_KEY", "TOKEN", "SECRET", "ACCESS_TOKEN", "SECRET_KEY", "AUTH_TOKEN", "KEY")
_PEOPLE = ("Maya", "Tomás", "Priya", "Jon", "Aiko")
_PROJECTS = ("billing-api", "web", "infra", "ml-pipeline", "mobile")


def _names(item: Item, rng: random.Random) -> dict[str, str]:
    provider = re.sub(r"[^A-Za-z0-9]+", "_", item.provider or "service").strip("_") or "service"
    word = "PASSWORD" if "pass" in item.kind.lower() else rng.choice(_SECRET_WORDS)
    upper = f"{provider.upper()}_{word}"
    snake = upper.lower()
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), snake)
    label = {"PASSWORD": "password", "TOKEN": "token", "ACCESS_TOKEN": "access token", "AUTH_TOKEN": "auth token",
             "SECRET": "secret"}.get(word, "API key")
    return {"NAME": upper, "snake": snake, "camel": camel, "label": label,
            "Provider": provider.replace("_", " ").title(), "provider": provider.lower(),
            "person": rng.choice(_PEOPLE), "project": rng.choice(_PROJECTS)}


# Each template has {v} where the value goes; "labelled" templates name the secret (a variable or a label), the
# others rely on the value's own shape and are used only for values a peer finds without a keyword.
_CODE = [
    ("settings.py", True, 'import os\n\n{snake} = "{v}"\nTIMEOUT = 30\n'),
    ("client.js", True, "const {camel} = '{v}';\nexport default {{ timeout: 3000 }};\n"),
    (".env", True, "DEBUG=false\n{NAME}={v}\nPORT=8080\n"),
    ("config.yaml", True, "service:\n  name: {project}\n  {snake}: {v}\n  retries: 3\n"),
    ("main.go", True, 'func main() {{\n\t{camel} := "{v}"\n\trun({camel})\n}}\n'),
    ("config.json", True, '{{\n  "name": "{project}",\n  "{snake}": "{v}"\n}}\n'),
    ("deploy.sh", True, '#!/bin/sh\nexport {NAME}="{v}"\n./deploy --env staging\n'),
    ("Settings.java", True, 'class Settings {{\n  private static final String {NAME} = "{v}";\n}}\n'),
    ("client.py", False, 'from {provider} import Client\n\nclient = Client("{v}")\nclient.ping()\n'),
    ("test_client.rb", False, "describe Client do\n  let(:client) {{ Client.new('{v}') }}\nend\n"),
]
_OCR = [
    (True, "Terminal — zsh — 120×40\n{person}@mbp ~/src/{project} % export {NAME}={v}\n"
           "{person}@mbp ~/src/{project} % ./deploy.sh\nDeploying {project} ..."),
    (True, "~/src/{project} $ export {NAME}={v}\n~/src/{project} $ make run"),
    (True, "$ {NAME}={v} npm start\n> {project}@1.4.0 start\n> node server.js"),
    (True, "{Provider} · Settings · API keys\nName    {label}    Created    Last used\n"
           "ci-deploy    {v}    Mar 3, 2025    2 hours ago\n+ Create new key"),
    (True, "  1  # {Provider}\n  2  {NAME}={v}\n  3  LOG_LEVEL=info\n.env — {project} — Visual Studio Code"),
    (True, "#{project}  {person}  10:42 AM\nhere is the {label} for staging: {v}\n👍 2"),
    (False, "Personal access tokens\nMake sure to copy your new token now. You won't be able to see it again.\n"
            "{v}\nDelete    Regenerate"),
    (False, "{person}  9:15 AM\ncan you try {v} on the staging box?\nReply"),
]
_COMMIT = [
    (True, "Rotate the {provider} credentials\n\nThe {label} {v} was committed by mistake; it has been revoked."),
    (True, "Add staging configuration\n\n{NAME}={v}\n"),
    (True, "chore: update .env.example\n\n-{NAME}=\n+{NAME}={v}"),
    (False, "Fix the nightly deploy\n\nUse {v} until the vault integration lands."),
    (False, "Revert \"Hardcode the fallback\"\n\nThis reverts the change that added {v} to the client."),
]
_PII_CODE = [
    ("fixtures.py", 'CUSTOMERS = [\n    {{"name": "Ana Ruiz", "{field}": "{v}"}},\n]\n'),
    ("import.sql", "INSERT INTO contacts VALUES (42, 'Ana Ruiz', '{v}');\n"),
    ("parser_test.go", 'func TestParse(t *testing.T) {{\n\tgot := Parse("{v}")\n\t_ = got\n}}\n'),
]
_PII_OCR = [
    "Customer details\nName    Ana Ruiz\n{Label}    {v}\nSave changes",
    "Orders — Admin\n#1042    Ana Ruiz    {v}    Paid\n#1043    Li Wei    —    Pending",
    "{person}  11:03 AM\nit's {v}, can you add it to the ticket?",
]
_PII_COMMIT = [
    "Fix the import of contact records\n\nThe row for {v} was parsed twice.",
    "Add a customer fixture\n\nUses {v} from the support ticket.",
]
_NEGATIVE = {
    "code": [("snippet.txt", "{s}\n")],
    "ocr": ["Terminal — zsh — 120×40\n$ cat notes.txt\n{s}\n$ ",
            "  1  {s}\nnotes.txt — {project} — Visual Studio Code"],
    "commit": ["Update the configuration\n\n{s}", "Document the setup\n\n{s}\n"],
}


def _fill(template: str, names: dict[str, str], value: str) -> tuple[str, list[tuple[int, int]]]:
    """The template with names filled in and `value` planted; the spans of every planted copy."""
    parts = re.split(r"(\{v\}|\{s\})", template)
    text, spans = "", []
    for part in parts:
        if part in ("{v}", "{s}"):
            spans.append((len(text), len(text) + len(value)))
            text += value
        else:
            text += part.format_map(names)
    return text, spans


def _sample_id(item: Item, place: str) -> str:
    key = json.dumps([item.source, item.kind, item.positive, item.snippet, item.value, place], ensure_ascii=False)
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def place(item: Item) -> list[Sample]:
    """The item's samples: its own snippet, and its value (or negative snippet) in code, on a screen, in a commit."""
    rng = random.Random(_sample_id(item, "rng"))
    names = _names(item, rng)
    pii = item.source == "presidio"
    samples = []

    def add(where: str, text: str, spans: list[tuple[int, int]], filename: str) -> None:
        samples.append(Sample(_sample_id(item, where), item.source, item.kind, item.positive, where, text, spans,
                              filename, item.origin, item.generated, item.self_identifying,
                              hashlib.sha1(item.value.encode("utf-8", "surrogatepass")).hexdigest()
                              if item.value else None, not item.positive and near_miss(item.snippet), item.core))

    if item.positive:
        value = item.value or ""
        spans, start = [], item.snippet.find(value)
        quoted = len(value) > 2 and value[0] == value[-1] and value[0] in "\"'`"
        while start != -1:
            spans.append((start, start + len(value)))
            start = item.snippet.find(value, start + len(value))
        add("original", item.snippet, spans, "snippet.txt")
        if "\n" in value.strip() or (not pii and any(char.isspace() for char in value.strip())):
            return samples  # a key block or a phrase keeps its own layout: only the peer's snippet is used
        if quoted:
            value = value[1:-1]  # the templates quote where their language does
        if pii:
            names["field"] = _PII_LABEL.get(item.provider, "value").lower()
            names["Label"] = _PII_LABEL.get(item.provider, "Value")
            filename, template = rng.choice(_PII_CODE)
            add("code", *_fill(template, names, value), filename)
            add("ocr", *_fill(rng.choice(_PII_OCR), names, value), "screen.txt")
            add("commit", *_fill(rng.choice(_PII_COMMIT), names, value), "COMMIT_EDITMSG")
            return samples
        allowed = (lambda labelled: True) if item.self_identifying else (lambda labelled: labelled)
        filename, _, template = rng.choice([entry for entry in _CODE if allowed(entry[1])])
        add("code", *_fill(template, names, value), filename)
        add("ocr", *_fill(rng.choice([t for labelled, t in _OCR if allowed(labelled)]), names, value), "screen.txt")
        add("commit", *_fill(rng.choice([t for labelled, t in _COMMIT if allowed(labelled)]), names, value),
            "COMMIT_EDITMSG")
        return samples
    snippet = item.snippet.strip("\n")
    add("original", item.snippet, [], "snippet.txt")
    filename, template = rng.choice(_NEGATIVE["code"])
    add("code", _fill(template, names, snippet)[0], [], filename)
    add("ocr", _fill(rng.choice(_NEGATIVE["ocr"]), names, snippet)[0], [], "screen.txt")
    add("commit", _fill(rng.choice(_NEGATIVE["commit"]), names, snippet)[0], [], "COMMIT_EDITMSG")
    return samples


# ------------------------------------------------------------------------------------------------------- build

_EXTRACTORS = {"gitleaks": extract_gitleaks, "trufflehog": extract_trufflehog,
               "detect-secrets": extract_detect_secrets, "presidio": extract_presidio}


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]+")


def near_miss(text: str) -> bool:
    """The corpus' rule for peer false positives: one holding a credential-shaped string (a run of 16+ letters,
    digits, `_` and `-`, letters and digits both present, with at least 3.5 bits of entropy per character) is a
    NEAR MISS, a value a peer
    rejects for its own format (a wrong length, a checksum, a known public key) that a guard for training data
    may rightly flag; the rest (placeholders, names, words, short or repetitive strings, prose) are HARD
    negatives, which the false-positive rate counts. The rule looks at the text alone, never at a detector."""
    from engine.dataset.rules import shannon_entropy

    for run in _TOKEN_RUN.findall(text):
        if len(run) >= 16 and any(c.isdigit() for c in run) and any(c.isalpha() for c in run) \
                and shannon_entropy(run) >= 3.5:
            return True
    return False


def _core_providers(items: list[Item]) -> set[str]:
    """Providers in the main tables: every gitleaks, detect-secrets and presidio kind, and the trufflehog detectors
    that find a value by its shape alone or whose provider another peer also covers (or issue 13 names). The rest
    of trufflehog (hundreds of services whose keys are bare hex or alphanumeric strings found only next to the
    service's name) is scored on its own line."""
    names = {re.sub(r"[^a-z0-9]", "", item.provider.lower()) for item in items if item.source != "trufflehog"}
    names |= {"openrouter", "nvapi", "notion", "atlassian", "sourcegraph", "facebook", "square", "dropbox", "figma",
              "sonarcloud", "pinecone", "grafana", "doppler", "dynatrace", "pulumi", "planetscale", "newrelic",
              "sentry", "heroku", "terraform", "age", "onepassword", "mailgun", "artifactory", "huggingface",
              "discord", "slack", "vault", "hashicorp", "azure", "aws", "clojars", "databricks", "gitlab", "jdbc"}
    return {name for name in names if len(name) >= 3}


def _is_core(item: Item, providers: set[str]) -> bool:
    if item.source != "trufflehog" or item.self_identifying:
        return True
    name = re.sub(r"[^a-z0-9]", "", item.kind.split(":", 1)[1].split("/")[0].lower())
    return any(name == provider or (len(provider) >= 5 and name.startswith(provider)) for provider in providers)


def _relabel(item: Item) -> str | None:
    """The corpus' one labelling policy where peers disagree: a secret made of one repeated character (most of its
    letters and digits are the same one, `AKIAZZZZZZZZZZZZZZZZ`, or its longest run is, `.../Txxxxxxxx/xxxx...`)
    is a placeholder, whatever a peer's test says. Personal data is left as the peer labels it."""
    if not item.positive or not item.value or item.source == "presidio":
        return None  # digits repeat in real numbers (Luhn-valid test cards): the policy is for secrets
    alnum = [char for char in item.value.lower() if char.isalnum()]
    runs = _ALNUM_RUN.findall(item.value)
    longest = max(runs, key=len) if runs else ""
    if (len(alnum) >= 8 and max(alnum.count(char) for char in set(alnum)) >= 0.7 * len(alnum)) or \
            (len(longest) >= 12 and len(set(longest.lower())) == 1):
        return "value is one repeated character: a placeholder"
    return None


def build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"built_at": time.strftime("%Y-%m-%d %H:%M:%S"), "sources": {}, "skipped": {}, "relabelled": 0}
    real, generated = [], []
    seen: set[str] = set()
    extracted = {}
    for source, repo in REPOS.items():
        path = Path(args.mirror) / repo.replace("/", "+") / "repo"
        if not path.is_dir():
            print(f"{source}: no snapshot at {path}; bring it with the fetch tool (github:{repo})", file=sys.stderr)
            return 2
        tree = GitTree(path)
        items, skipped = _EXTRACTORS[source](tree)
        extracted[source] = (tree, items, skipped)
    providers = _core_providers([item for _, items, _ in extracted.values() for item in items])
    for source, (tree, items, skipped) in extracted.items():
        # A peer that labels the same text both ways (detect-secrets' keyword lines are positives in a .conf file
        # and negatives in a .py file; presidio's card numbers under two recognizer settings): the positive wins.
        positive_texts = {(item.kind, item.snippet) for item in items if item.positive}
        kept = [item for item in items if item.positive or (item.kind, item.snippet) not in positive_texts]
        skipped["negative text the same peer also labels positive"] = len(items) - len(kept)
        extracted[source] = (tree, kept, skipped)
    for source, (tree, items, skipped) in extracted.items():
        counts = Counter()
        for item in items:
            item.core = _is_core(item, providers)
            reason = _relabel(item)
            if reason:
                item.positive, item.value = False, None
                item.origin = {**item.origin, "relabelled": reason}
                manifest["relabelled"] += 1
            for sample in place(item):
                if sample.id in seen:
                    continue
                seen.add(sample.id)
                (generated if item.generated else real).append(sample)
                counts[("generated" if item.generated else "real", "positive" if item.positive else "negative")] += 1
        manifest["sources"][source] = {"repo": REPOS[source], "commit": tree.commit, "items": len(items),
                                       "samples": {f"{a} {b}": n for (a, b), n in sorted(counts.items())}}
        manifest["skipped"][source] = dict(skipped)
        print(f"{source} @ {tree.commit[:12]}: {len(items)} items, " + ", ".join(
            f"{a} {b} {n}" for (a, b), n in sorted(counts.items())) + (f"; skipped {dict(skipped)}" if skipped else ""))
    for name, samples in (("real", real), ("generated", generated)):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for sample in samples:
                handle.write(json.dumps(asdict(sample), ensure_ascii=False) + "\n")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'real.jsonl'} ({len(real)} samples) and {out / 'generated.jsonl'} ({len(generated)})")
    return 0


# ------------------------------------------------------------------------------------------------------- score

def load(path: Path) -> list[Sample]:
    samples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            data = json.loads(line)
            data["spans"] = [tuple(span) for span in data["spans"]]
            samples.append(Sample(**data))
    return samples


@dataclass
class Tally:
    positives: int = 0
    found: int = 0
    covered: int = 0
    negatives: int = 0
    flagged: int = 0

    def add(self, other: Tally) -> None:
        for name in ("positives", "found", "covered", "negatives", "flagged"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def recall(self) -> float | None:
        return self.found / self.positives if self.positives else None

    @property
    def coverage(self) -> float | None:
        return self.covered / self.positives if self.positives else None

    @property
    def fp_rate(self) -> float | None:
        return self.flagged / self.negatives if self.negatives else None


_PII = frozenset({"email", "phone_number", "credit_card", "iban", "us_ssn"})
_PRESIDIO_KIND = {"CREDIT_CARD": "credit_card", "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone_number",
                  "IBAN_CODE": "iban", "US_SSN": "us_ssn"}


def _counts_against(sample: Sample, kind: str) -> bool:
    """Which findings a negative can be wrong about: a peer's false positive speaks for what that test checks.
    gitleaks', trufflehog's and detect-secrets' say a text holds no secret (an e-mail address in them is still
    personal data); presidio's say a text holds no value of the tested entity."""
    if sample.source == "presidio":
        return kind == _PRESIDIO_KIND.get(sample.kind.split(":", 1)[1])
    return kind not in _PII


def judge(sample: Sample, spans) -> Tally:
    """One sample's outcome: a positive is found when a span overlaps a planted value and covered when the spans
    cover every character of every planted copy; a negative is flagged when something it speaks for is found."""
    tally = Tally()
    if sample.positive:
        tally.positives = 1
        tally.found = int(any(s.start < end and start < s.end for start, end in sample.spans for s in spans))
        covered = set()
        for span in spans:
            covered.update(range(span.start, span.end))
        tally.covered = int(all(all(i in covered for i in range(start, end)) for start, end in sample.spans))
    else:
        tally.negatives = 1
        tally.flagged = int(any(_counts_against(sample, span.kind) for span in spans))
    return tally


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rule_examples() -> list[str]:
    from engine.dataset.rules import load_provider_rules


    return [text for rule in load_provider_rules() for text in (rule.example_tp, rule.example_fp)]


def _group(samples: list[Sample], outcomes: list[Tally], key) -> dict[str, Tally]:
    grouped: dict[str, Tally] = defaultdict(Tally)
    for sample, outcome in zip(samples, outcomes, strict=True):
        grouped[key(sample)].add(outcome)
    return dict(sorted(grouped.items()))


def _total(outcomes: list[Tally]) -> Tally:
    result = Tally()
    for outcome in outcomes:
        result.add(outcome)
    return result


def _row(label: str, a: Tally, b: Tally) -> str:
    return (f"| {label} | {a.positives} | {_fmt(a.recall)} | {_fmt(a.coverage)} | {a.negatives} | {_fmt(a.fp_rate)} "
            f"| {_fmt(b.recall)} | {_fmt(b.coverage)} | {_fmt(b.fp_rate)} |")


_HEADER = ["| {} | positives | recall | coverage | hard negatives | false-positive rate | detect-secrets recall | "
           "detect-secrets coverage | detect-secrets FP rate |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]


def _pick(samples: list[Sample], outcomes: dict[str, list[Tally]], keep) -> tuple[list[Sample], dict]:
    chosen = [index for index, sample in enumerate(samples) if keep(sample)]
    return [samples[i] for i in chosen], {name: [result[i] for i in chosen] for name, result in outcomes.items()}


def score(args: argparse.Namespace) -> int:
    from engine.dataset.sensitive import detect_sensitive, rule_count, scan_with_detect_secrets

    corpus = Path(args.corpus)
    real_path = corpus / "real.jsonl"
    if not real_path.is_file():
        print(f"No corpus at {corpus}: run `python -m bench secrets_corpus build` first.", file=sys.stderr)
        return 2
    real = load(real_path)
    generated = load(corpus / "generated.jsonl") if (corpus / "generated.jsonl").is_file() else []
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    values = {s.text[a:b] for s in real for a, b in s.spans}
    leaked = [example for example in _rule_examples() if any(value and value in example for value in values
                                                               if len(value) >= 12)]
    if leaked:
        print(f"{len(leaked)} rule examples hold corpus values: the per-source figures would not be "
              "leave-one-source-out. Write the rule's examples from the provider's documented format instead.",
              file=sys.stderr)
        return 1
    detectors = {"studio": detect_sensitive,
                 "detect-secrets": lambda text, name: scan_with_detect_secrets(text, name, all_plugins=True)}
    outcomes: dict[str, list[Tally]] = {}
    generated_outcomes: dict[str, list[Tally]] = {}
    seconds = {}
    for name, detect in detectors.items():
        started = time.perf_counter()
        outcomes[name] = [judge(s, detect(s.text, s.filename)) for s in real]
        seconds[name] = time.perf_counter() - started
        generated_outcomes[name] = [judge(s, detect(s.text, s.filename)) for s in generated]

    main, main_out = _pick(real, outcomes, lambda s: s.core and (s.positive or not s.near_miss))
    near, near_out = _pick(real, outcomes, lambda s: s.core and not s.positive and s.near_miss)
    extra, extra_out = _pick(real, outcomes, lambda s: not s.core and (s.positive or not s.near_miss))
    chars = sum(len(s.text) for s in real)
    lines = ["## Sensitive data on a real-world corpus (issue 13)", "",
             f"`python -m bench secrets_corpus build && python -m bench secrets_corpus score --write`, "
             f"{time.strftime('%Y-%m-%d')}. Corpus: the published true/false-positive test cases of "
             + ", ".join(f"{source} ({info['repo']}@{info['commit'][:10]})"
                         for source, info in manifest["sources"].items())
             + f", extracted by bench/secrets_corpus.py into {corpus} (outside the repository), "
             f"{len(real):,} samples, {chars / 1e6:.2f} M characters. Each value is scored in the peer's own "
             "snippet (original) and placed in code, an OCR'd screen and a commit message; a negative is the "
             "peer's false-positive text in the same four places. Labelling policy, fixed before scoring: "
             f"{manifest['relabelled']} peer positives whose value is one repeated character after its prefix count "
             "as placeholders; a peer false positive holding a credential-shaped run (16+ letters and digits, "
             "both present, entropy >= 3.5 bits/char) is a near miss, reported apart, the rest are hard "
             "negatives. Recall: a finding overlaps the value; coverage: findings cover all of it; "
             "false-positive rate: share of hard-negative samples with a finding the negative speaks for (a secret "
             "for gitleaks', trufflehog's and detect-secrets' negatives, the tested entity for presidio's). Studio = "
             f"{rule_count()} provider formats (engine/dataset/rules/providers.yaml) + context rules + PII + "
             "detect-secrets' keyword and entropy plugins; detect-secrets alone = all its plugins, default "
             "filters.", ""]
    lines += [_HEADER[0].format("detector / set"), _HEADER[1]]
    lines.append(_row("studio, main set", _total(main_out["studio"]), _total(main_out["detect-secrets"])))
    for place in PLACES:
        subset, sub_out = _pick(main, main_out, lambda s, p=place: s.place == p)
        lines.append(_row(f"  in {place}", _total(sub_out["studio"]), _total(sub_out["detect-secrets"])))
    near_ours, near_theirs = _total(near_out["studio"]), _total(near_out["detect-secrets"])
    extra_ours, extra_theirs = _total(extra_out["studio"]), _total(extra_out["detect-secrets"])
    lines += ["", f"Near misses (peer false positives holding a credential-shaped run; not counted above): studio "
              f"flags {_fmt(near_ours.fp_rate)} of {near_ours.negatives}, detect-secrets alone "
              f"{_fmt(near_theirs.fp_rate)}.",
              f"Other trufflehog detectors (keys found only next to the service's name, providers no other peer "
              f"covers; values always placed beside a key label): studio recall {_fmt(extra_ours.recall)}, coverage "
              f"{_fmt(extra_ours.coverage)} over {extra_ours.positives} positives, false-positive rate "
              f"{_fmt(extra_ours.fp_rate)} over {extra_ours.negatives} hard negatives; detect-secrets alone recall "
              f"{_fmt(extra_theirs.recall)}, coverage {_fmt(extra_theirs.coverage)}, FP {_fmt(extra_theirs.fp_rate)}."]
    if generated:
        g = {name: _total(result) for name, result in generated_outcomes.items()}
        lines.append(f"Generated look-alikes (kept apart: gitleaks' `secrets.NewSecret(regex)` values sampled from "
                     f"the same regex, {g['studio'].positives} positives): studio recall {_fmt(g['studio'].recall)}, "
                     f"coverage {_fmt(g['studio'].coverage)}; detect-secrets alone recall "
                     f"{_fmt(g['detect-secrets'].recall)}, coverage {_fmt(g['detect-secrets'].coverage)}.")
    lines.append(f"Detector time over all {len(real):,} samples: studio {seconds['studio']:.1f} s, detect-secrets "
                 f"alone {seconds['detect-secrets']:.1f} s "
                 f"(ratio {seconds['studio'] / seconds['detect-secrets']:.2f}).")
    lines += ["", "Leave-one-source-out: each source scored alone (main set). The rules' examples are written from "
              "the providers' documented formats and hold no corpus value (the run fails if one does), so each row "
              "judges the rules on a source none of their examples came from.", "",
              _HEADER[0].format("held-out source"), _HEADER[1]]
    by_source = {name: _group(main, result, lambda s: s.source) for name, result in main_out.items()}
    for source, tally in by_source["studio"].items():
        lines.append(_row(source, tally, by_source["detect-secrets"][source]))
    kinds = {name: _group(main, result, lambda s: s.kind) for name, result in main_out.items()}
    below = [kind for kind, t in kinds["studio"].items()
             if (t.recall is not None and t.recall < 0.95) or (t.coverage is not None and t.coverage < 0.95)
             or (t.fp_rate is not None and t.fp_rate > 0.03)]
    lines += ["", f"Per kind: {len(kinds['studio']) - len(below)} of {len(kinds['studio'])} kinds meet every target "
              "(recall and coverage >= 0.95, false-positive rate <= 3%). Below a target:", "",
              _HEADER[0].format("kind"), _HEADER[1]]
    lines += [_row(kind, kinds["studio"][kind], kinds["detect-secrets"][kind]) for kind in below]
    lines += ["", "<details><summary>Every kind</summary>", "", _HEADER[0].format("kind"), _HEADER[1]]
    lines += [_row(kind, tally, kinds["detect-secrets"][kind]) for kind, tally in kinds["studio"].items()]
    lines += ["", "</details>", ""]
    text = "\n".join(lines)
    print(text)
    if args.misses:
        for sample, outcome in zip(real, outcomes["studio"], strict=True):
            if (sample.positive and not outcome.covered) or (not sample.positive and outcome.flagged):
                print(json.dumps({"kind": sample.kind, "place": sample.place, "positive": sample.positive,
                                  "core": sample.core, "near_miss": sample.near_miss, "found": outcome.found,
                                  "text": sample.text[:400], "spans": sample.spans}, ensure_ascii=False),
                      file=sys.stderr)
    if args.write:
        from bench._results import write_section

        print(f"wrote {write_section(text)}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench secrets_corpus")
    verbs = parser.add_subparsers(dest="verb", required=True)
    build_parser = verbs.add_parser("build", help="extract the peers' test cases into the corpus")
    build_parser.add_argument("--mirror", default=str(MIRROR), help="folder holding <owner>+<name>/repo snapshots")
    build_parser.add_argument("--out", default=str(CORPUS))
    score_parser = verbs.add_parser("score", help="score the studio and detect-secrets alone on the corpus")
    score_parser.add_argument("--corpus", default=str(CORPUS))
    score_parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    score_parser.add_argument("--misses", action="store_true", help="print the studio's misses and false alarms")
    args = parser.parse_args(argv)
    return build(args) if args.verb == "build" else score(args)
