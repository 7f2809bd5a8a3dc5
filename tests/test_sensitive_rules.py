"""The provider table and the context rules, class by class, each where the studio reads text: source code, an
OCR'd screen and a commit message. Every class has positives (found, and covered whole, so redaction leaves no
piece behind) and negatives (nothing found). The values are written here from the documented formats; none comes
from another project's test files."""

from __future__ import annotations

import pytest

from engine.dataset.rules import load_provider_rules, parse_rules, scan_providers, shannon_entropy
from engine.dataset.sensitive import KINDS, detect_sensitive
from engine.errors import StudioError

RULES = {rule.name: rule for rule in load_provider_rules()}


def _value_of(rule_name: str) -> str:
    rule = RULES[rule_name]
    match = rule.pattern.search(rule.example_tp)
    start, end = rule.value_span(match)
    return rule.example_tp[start:end]


def _covered(text: str, value: str, kinds: set[str] | None = None) -> bool:
    """Every copy of `value` in `text` lies inside one finding (of one of `kinds`, when given)."""
    spans = detect_sensitive(text)
    start = text.find(value)
    assert start != -1, "the test planted nothing"
    while start != -1:
        end = start + len(value)
        if not any(s.start <= start and end <= s.end and (kinds is None or s.kind in kinds) for s in spans):
            return False
        start = text.find(value, end)
    return True


# ------------------------------------------------------------------------------------------------- the table

@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
def test_every_rule_finds_its_own_true_positive_whole(rule):
    match = rule.pattern.search(rule.example_tp)
    assert match, f"{rule.name}: its regex does not match its own example"
    start, end = rule.value_span(match)
    assert shannon_entropy(rule.example_tp[start:end]) >= rule.entropy
    spans = detect_sensitive(rule.example_tp)
    assert any(s.start <= start and end <= s.end and s.kind == rule.kind for s in spans), \
        f"{rule.name}: the detector does not cover its example as {rule.kind}"
    assert rule.kind in KINDS


@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
def test_every_rule_ignores_its_own_false_positive(rule):
    assert detect_sensitive(rule.example_fp) == [], f"{rule.name}: flags its own false-positive example"


def test_the_table_is_where_a_provider_is_added():
    before = len(scan_providers("ACME_KEY acme_live_Zq8kP2vLm7xR4tB9wQ1nH6jD3sF5gY0c"))
    document = [{"name": "acme-live-key", "kind": "acme_key", "provider": "Acme",
                 "regex": r"\bacme_live_[A-Za-z0-9]{32}\b", "keywords": ["acme_live_"], "entropy": 3.0,
                 "tp": "acme_live_Zq8kP2vLm7xR4tB9wQ1nH6jD3sF5gY0c",
                 "fp": "acme_live_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "docs": "https://acme.example/keys"}]
    (rule,) = parse_rules(document)
    assert rule.pattern.search(rule.example_tp) and before == 0


@pytest.mark.parametrize("mutation,message", [
    (lambda e: e.pop("docs"), "lacks docs"),
    (lambda e: e.update(regex="(unclosed"), "does not compile"),
    (lambda e: e.update(keywords=["UPPER"]), "lower-case"),
    (lambda e: e.update(entropy=12), "between 0 and 8"),
    (lambda e: e.update(kind="Not A Kind"), "snake_case"),
    (lambda e: e.update(colour="blue"), "unknown field"),
])
def test_a_malformed_rule_is_one_sentence_naming_it(mutation, message):
    entry = {"name": "broken", "kind": "acme_key", "provider": "Acme", "regex": "acme_[a-z]{8}", "keywords": [],
             "entropy": 2.0, "tp": "acme_abcdefgh", "fp": "acme_", "docs": "https://acme.example"}
    mutation(entry)
    with pytest.raises(StudioError, match=message) as raised:
        parse_rules([entry])
    assert "broken" in str(raised.value) or "entry 1" in str(raised.value)


def test_duplicate_rule_names_are_refused():
    entry = {"name": "twice", "kind": "acme_key", "provider": "Acme", "regex": "acme_[a-z]{8}", "keywords": [],
             "entropy": 2.0, "tp": "acme_abcdefgh", "fp": "acme_", "docs": "https://acme.example"}
    with pytest.raises(StudioError, match="more than once"):
        parse_rules([entry, dict(entry)])


# ----------------------------------------------------------------------------------- classes in three places

def _code(name: str, value: str) -> str:
    return f'import os\n\n{name} = "{value}"\nTIMEOUT = 30\n'


def _screen(line: str) -> str:
    return f"Terminal — zsh — 120×40\n{line}\n~/src/billing-api $ make run\n> billing-api@1.4.0 start"


def _commit(body: str) -> str:
    return f"Fix the nightly deploy\n\n{body}\n\nRefs #412"


# (class, code, screen, commit, value, kinds) — the value must be found and covered in all three texts.
_AWS_ID, _AWS_SECRET = "AKIA4HXQ7MZRT2WKBN5E", "q7Rm2Xv9KpL4tW8zN3cJ6yH1bF5sD0gA2eU7iO4k"
_VAULT, _UUID_KEY = "hvs.CAESIJq4mT8vK2xR9pL7wZ3nH6cB1fY5sD0gA2eU7iO4kQmXGh4KHGh2cy5aWmp0dU1GeE1XRmFXbDlxSmNsQ2tV", \
    "7c9e6679-7425-40de-944b-e07fc1f90ae7"
POSITIVES = [
    ("prompt-export", _code("CLOJARS_TOKEN", _value_of("clojars-token")),
     _screen(f"~/src $ export CLOJARS_TOKEN={_value_of('clojars-token')}"),
     _commit(f"$ export CLOJARS_TOKEN={_value_of('clojars-token')}"), _value_of("clojars-token"), None),
    ("prompt-password", _code("DB_PASSWORD", "Zq8#kP2vLm!x"),
     _screen("~/src $ export DB_PASSWORD=Zq8#kP2vLm!x"),
     _commit("user@build:~/app$ DB_PASSWORD=Zq8#kP2vLm!x ./migrate"), "Zq8#kP2vLm!x", None),
    ("vault-service-token", _code("vault_addr_token", _VAULT), _screen(f"$ vault login {_VAULT}"),
     _commit(f"Use {_VAULT} for the staging unseal"), _VAULT, {"vault_token"}),
    ("vault-legacy-token", _code("token", "s.Xk3h2Lp9Qz8mN4vB7cR1tY6w"),
     _screen("Token: s.Xk3h2Lp9Qz8mN4vB7cR1tY6w"),
     _commit("vault token s.Xk3h2Lp9Qz8mN4vB7cR1tY6w expired"), "s.Xk3h2Lp9Qz8mN4vB7cR1tY6w", {"vault_token"}),
    ("uuid-shaped-key", _code("HEROKU_API_KEY", _UUID_KEY), _screen(f"API key: {_UUID_KEY}"),
     _commit(f"Rotate the API key {_UUID_KEY}"), _UUID_KEY, None),
    ("curl-user", 'subprocess.run(["curl", "-u", "deploy:T9v#mQ2xLr8k", url])\nos.system("curl -u deploy:T9v#mQ2xLr8k '
     'https://ci.internal/api")', _screen("$ curl -u deploy:T9v#mQ2xLr8k https://ci.internal/api/jobs"),
     _commit("Reproduce with:\n    curl --user deploy:T9v#mQ2xLr8k https://ci.internal/api/jobs"),
     "T9v#mQ2xLr8k", {"http_credentials"}),
    ("authorization-bearer", 'headers = {"Authorization": "Bearer q7Rm2Xv9KpL4tW8zN3cJ6yH1bF5s"}',
     _screen('$ curl -H "Authorization: Bearer q7Rm2Xv9KpL4tW8zN3cJ6yH1bF5s" https://api.acme.io/v1/me'),
     _commit("curl -H 'Authorization: Bearer q7Rm2Xv9KpL4tW8zN3cJ6yH1bF5s' https://api.acme.io/v1/me fails"),
     "q7Rm2Xv9KpL4tW8zN3cJ6yH1bF5s", None),
    ("authorization-token", 'req.Header.Set("Authorization", "Token 5f1c9a3e7b2d8c4f6a0e1b3d5c7f9a2e")',
     _screen("Authorization: Token 5f1c9a3e7b2d8c4f6a0e1b3d5c7f9a2e"),
     _commit("The header was `Authorization: Token 5f1c9a3e7b2d8c4f6a0e1b3d5c7f9a2e`"),
     "5f1c9a3e7b2d8c4f6a0e1b3d5c7f9a2e", None),
    ("authorization-basic", 'headers["Authorization"] = "Basic ZGVwbG95OlQ5diNtUTJ4THI4aw=="',
     _screen("Authorization: Basic ZGVwbG95OlQ5diNtUTJ4THI4aw=="),
     _commit("Send Authorization: Basic ZGVwbG95OlQ5diNtUTJ4THI4aw== to the proxy"), "ZGVwbG95OlQ5diNtUTJ4THI4aw==",
     None),
    ("api-key-header", 'requests.get(url, headers={"X-Acme-Api-Key": "ak9Vq2LmX7rT4wZ8pN3c"})',
     _screen("X-Acme-Api-Key: ak9Vq2LmX7rT4wZ8pN3c"), _commit("curl -H 'X-Acme-Api-Key: ak9Vq2LmX7rT4wZ8pN3c' works"),
     "ak9Vq2LmX7rT4wZ8pN3c", None),
    ("url-credentials", 'DATABASE_URL = "postgres://app:Zq8kP2vLm7x@db.internal:5432/prod"',
     _screen("$ psql postgres://app:Zq8kP2vLm7x@db.internal:5432/prod"),
     _commit("Point staging at postgres://app:Zq8kP2vLm7x@db.internal:5432/prod"), "Zq8kP2vLm7x",
     {"connection_string"}),
    ("key-table", "KEYS = {\n    'ci-deploy': 'Xk3h2Lp9Qz8mN4vB7cR1tY6w',\n}",
     "Acme · Settings · API keys\nName    Secret key    Created\n"
     "ci-deploy    Xk3h2Lp9Qz8mN4vB7cR1tY6w    Mar 3, 2025",
     _commit("New keys\n\nName        Secret key\nci-deploy   Xk3h2Lp9Qz8mN4vB7cR1tY6w"),
     "Xk3h2Lp9Qz8mN4vB7cR1tY6w", None),
    ("azure-client-secret", _code("client_credential", _value_of("azure-ad-client-secret")),
     _screen(f"Value {_value_of('azure-ad-client-secret')}  Secret ID 2f1e9c3a"),
     _commit(f"Use {_value_of('azure-ad-client-secret')} for the app registration"),
     _value_of("azure-ad-client-secret"), {"azure_client_secret"}),
    ("aws-secret-without-label", f'creds = ("{_AWS_ID}", "{_AWS_SECRET}")',
     f"IAM · Access keys\nAccess key ID    Secret access key\n{_AWS_ID}    {_AWS_SECRET}",
     _commit(f"Rotate {_AWS_ID} / {_AWS_SECRET}"), _AWS_SECRET, None),
    ("secret-mid-name", _code("AZURE_CLIENT_SECRET_VALUE", "p8V~kQ2xLr9mT4wZ7nH3cJ6"),
     _screen("$ export AZURE_CLIENT_SECRET_VALUE=p8V~kQ2xLr9mT4wZ7nH3cJ6"),
     _commit("AZURE_CLIENT_SECRET_VALUE=p8V~kQ2xLr9mT4wZ7nH3cJ6"), "p8V~kQ2xLr9mT4wZ7nH3cJ6", None),
    ("gitlab-routable-tail", _code("x", _value_of("gitlab-token")), _screen(_value_of("gitlab-token")),
     _commit(f"Use {_value_of('gitlab-token')}"), _value_of("gitlab-token"), {"gitlab_token"}),
    ("databricks-suffix", _code("host_conf", _value_of("databricks-token")), _screen(_value_of("databricks-token")),
     _commit(f"Use {_value_of('databricks-token')} for the job"), _value_of("databricks-token"), {"databricks_token"}),
    ("jdbc-ampersand", 'url = "jdbc:sqlserver://db01;user=sa;password=Ab&cd12xY;encrypt=true"',
     _screen("jdbc:sqlserver://db01;user=sa;password=Ab&cd12xY;encrypt=true"),
     _commit("Connect with jdbc:sqlserver://db01;user=sa;password=Ab&cd12xY;encrypt=true"), "Ab&cd12xY", None),
    ("dankort", _code("pan", "5019 7170 1010 3742"), _screen("Betaling  5019 7170 1010 3742  12/27"),
     _commit("Refund 5019717010103742 twice"), "5019", {"credit_card"}),
    ("card-without-the-word", 'ROWS = [("Ana Ruiz", "4539148803436467")]',
     _screen("Ana Ruiz  4539 1488 0343 6467  Paid"),
     _commit("Fix import of 4539148803436467"), "4539", {"credit_card"}),
    ("ssn-dots-spaces", _code("ssn", "536.22.1987"), _screen("SSN  536 22 1987"), _commit("Employee 536.22.1987 moved"),
     "536", {"us_ssn"}),
    ("idn-email", _code("contact", "jose@xn--mnchen-3ya.de"), _screen("From: jose@xn--mnchen-3ya.de"),
     _commit("Reported by jose@xn--mnchen-3ya.de"), "jose@xn--mnchen-3ya.de", {"email"}),
    ("phone-non-us", _code("phone", "+44 7911 123456"), _screen("call me on +44 7911 123456"),
     _commit("Ask Ingrid (+49 30 901820) before merging"), "+", {"phone_number"}),
]
# Provider tokens whose prefix says what they are: found with no secret-named variable near.
PROVIDERS = ["openrouter-key", "nvidia-key", "notion-token", "atlassian-token", "sourcegraph-token",
             "facebook-access-token", "square-token", "dropbox-token", "figma-token", "sonar-token", "pinecone-key",
             "grafana-service-account-token", "doppler-token", "dynatrace-token", "pulumi-token", "planetscale-token",
             "newrelic-key", "sentry-token", "heroku-key", "terraform-cloud-token", "age-secret-key",
             "onepassword-service-token", "mailgun-key", "artifactory-api-key", "huggingface-org-token",
             "discord-webhook", "slack-webhook"]


@pytest.mark.parametrize("place", ["code", "screen", "commit"])
@pytest.mark.parametrize("case", POSITIVES, ids=[case[0] for case in POSITIVES])
def test_each_class_is_found_whole_in_code_on_screen_and_in_commit_messages(case, place):
    name, code, screen, commit, value, kinds = case
    text = {"code": code, "screen": screen, "commit": commit}[place]
    if value in ("5019", "4539", "536", "+"):  # PII: the whole number as written in this text
        spans = [s for s in detect_sensitive(text) if kinds is None or s.kind in kinds]
        assert spans and any(value in text[s.start:s.end] for s in spans), f"{name} not found in {place}"
        return
    assert _covered(text, value, kinds), f"{name}: {value!r} not covered whole in {place}: {detect_sensitive(text)}"


@pytest.mark.parametrize("place", ["code", "screen", "commit"])
@pytest.mark.parametrize("rule_name", PROVIDERS)
def test_provider_tokens_need_no_secret_named_variable(rule_name, place):
    value = _value_of(rule_name)
    if rule_name == "slack-webhook":
        value = value.replace("https://", "http://")  # the old http:// webhooks too
    text = {"code": f"client = Client({value!r})\n", "screen": f"Copied!\n{value}\nDone",
            "commit": f"Use {value} until the migration lands."}[place]
    assert _covered(text, value, {RULES[rule_name].kind}), f"{rule_name} not found whole in {place}"


NEGATIVES = [
    ("prompt-reference", _code("CLOJARS_TOKEN", "${CLOJARS_TOKEN}"), _screen("~/src $ export DB_PASSWORD=$DB_PASSWORD"),
     _commit("$ export DB_PASSWORD=$(cat /run/secrets/db)")),
    ("vault-lookalikes", "node = s.getElementsByTagName('div')", _screen("$ vault status  # hvs. tokens expire"),
     _commit("Bump vault to 1.15 (hvs.* tokens are the default now)")),
    ("uuid-ids", '"request_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",',
     _screen("Job 7c9e6679-7425-40de-944b-e07fc1f90ae7 done"),
     _commit("Fix job 7c9e6679-7425-40de-944b-e07fc1f90ae7 retry")),
    ("http-placeholders", 'os.system(f"curl -u {user}:{password} {url}")', _screen('$ curl -u "$USER:$PASS" https://x.io'),
     _commit("curl -u username:password https://localhost/api and Authorization: Bearer ${TOKEN}")),
    ("insert-key-here", _code("api_key", "insert_key_here"), _screen("OPENAI_API_KEY=sk-..."),
     _commit("Set GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX in your shell")),
    ("secret-manager-name", 'LLM_SECRET_NAME = "NEXUS-GPT4-API-KEY"', _screen("secret_name: prod/db/PASSWORD"),
     _commit("Read the key from TOKEN_URL=https://vault.internal/v1/token")),
    ("slack-placeholder", _code("token", "xoxe.xoxp-1-SlackAppConfigurationAccessTokenHere"),
     _screen("xoxb-xxxxxxxxx-xxxxxxxxxx-xxxxxxxxxxxx"), _commit("Document xoxe.xoxp-1-RANDOMSTRINGHERE placeholders")),
    ("all-caps-word", "MESSAGE = 'TODAYINASIAASACKOFRICEFELLOVER'", _screen("ASIAPACIFICHEADQUARTERSREGIONS"),
     _commit("Rename ACCAUNTINGSYSTEMSREPORTS to reports")),
    ("digests", 'rev = "9fceb02d0ae598e95dc970b74767f19372d61af8"',
     _screen("commit 9fceb02d0ae598e95dc970b74767f19372d61af8"),
     _commit("Reverts 9fceb02d0ae598e95dc970b74767f19372d61af8 (integrity sha512-kZlU1Tj8qP2mR5)")),
    ("not-pii", 'invoice = "4539148803436468"  # order id', _screen("IBAN DE44 5001 0517 5407 3249 32"),
     _commit("Write to support@example.com; build 20261124.3; SSN 000-12-3456")),
    ("names-not-values", "password_hash = bcrypt.hashpw(password.encode(), salt)", _screen("Password: required"),
     _commit("Add max_tokens = 4096 and token_type: bearer")),
]


@pytest.mark.parametrize("place", ["code", "screen", "commit"])
@pytest.mark.parametrize("case", NEGATIVES, ids=[case[0] for case in NEGATIVES])
def test_negatives_of_each_class_are_not_flagged(case, place):
    name, code, screen, commit = case
    text = {"code": code, "screen": screen, "commit": commit}[place]
    assert detect_sensitive(text) == [], f"{name} flagged in {place}: {detect_sensitive(text)}"


def test_every_copy_of_a_value_is_flagged():
    token = "Xk3h2Lp9Qz8mN4vB7cR1tY6w"
    text = f"STAGING_TOKEN={token}\n# the same key is used in prod: {token}\nprint('{token}')"
    assert _covered(text, token)
