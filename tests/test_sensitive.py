"""Sensitive-data detection on the labelled set (planted secrets and PII in OCR text, transcripts and diffs, plus
hard negatives), and the detector's specific promises: whole PEM blocks, spoken secrets, allowlisted examples."""

from __future__ import annotations

import pytest

from engine.dataset.redact import masked_segments, redact_record
from engine.dataset.sensitive import KINDS, Finding, detect_sensitive, scan_record, scan_with_detect_secrets
from tests.data_sensitive import build_labelled_set, score


@pytest.fixture(scope="module")
def labelled():
    return build_labelled_set(seed=4242, per_kind=24)


def test_labelled_set_covers_at_least_15_kinds_in_all_three_contexts(labelled):
    positives = {sample.label for sample in labelled if sample.positive}
    assert len(positives) >= 15
    assert positives <= set(KINDS)
    assert {sample.context for sample in labelled if sample.positive} == {"ocr", "transcript", "diff"}
    negatives = {sample.label for sample in labelled if not sample.positive}
    assert {"git_sha", "uuid", "lockfile_hash", "example_key", "placeholder"} <= negatives
    for sample in labelled:
        for start, end in sample.spans:
            assert 0 <= start < end <= len(sample.text)


def test_recall_and_false_positives_per_kind_meet_the_acceptance_bar(labelled):
    scores = score(labelled, detect_sensitive)
    misses = {label: round(s.rate, 3) for label, s in scores.items() if s.positive and s.rate < 0.95}
    partial = {label: round(s.coverage, 3) for label, s in scores.items() if s.positive and s.coverage < 0.95}
    noisy = {label: round(s.rate, 3) for label, s in scores.items() if not s.positive and s.rate > 0.05}
    assert not misses, f"recall below 0.95: {misses}"
    assert not partial, f"findings leave part of the secret uncovered: {partial}"
    assert not noisy, f"false positives above 5%: {noisy}"


def test_detect_secrets_alone_is_the_weaker_baseline(labelled):
    """The comparison in bench/RESULTS.md is real: detect-secrets by itself misses PII and spoken secrets and
    flags git SHAs; the studio's rules exist for exactly those."""
    baseline = score(labelled, lambda text, name: scan_with_detect_secrets(text, name, all_plugins=True))
    assert baseline["email"].rate == 0 and baseline["spoken_secret"].rate == 0
    assert baseline["private_key"].coverage < 0.5  # it marks the BEGIN line, not the key
    assert baseline["git_sha"].rate > 0.05


def test_pem_block_broken_across_ocr_lines_is_covered_whole():
    body = ["MIIEowIBAAKCAQEAx3Vq0cDk5xTQm2b7Xo9Yp1Lr8sUq3nWf6hJt0ZaB4cD5eF6g",
            "H7iJ8kL9mN0oP1qR2sT3uV4wX5yZ6aB7cD8eF9gH0iJ1kL2mN3oP4qR5sT6uV7w",
            "X8yZ9aB0cD1eF2gH3iJ4kL5mN6oP7qR8sT9uV0wX1yZ2aB3cD4eF5gH6iJ7kL8m"]
    text = "Terminal  ~/deploy\n$ cat id_rsa\n-----BEGIN RSA PRIVATE\nKEY-----\n" + "\n".join(body) + "\n$ "
    spans = detect_sensitive(text)
    assert [span.kind for span in spans] == ["private_key"]
    covered = text[spans[0].start:spans[0].end]
    assert covered.startswith("-----BEGIN") and all(line in covered for line in body)


@pytest.mark.parametrize("text", [
    "the password is wrong on staging so login fails",
    "the token is expired, refresh it",
    "the key is to cache embeddings by content hash",
    "OPENAI_API_KEY=${OPENAI_API_KEY}",
    'password: "{{ vault_db_password }}"',
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    '    rev: "9fceb02d0ae598e95dc970b74767f19372d61af8"',
    '"id": "de305d54-75b4-431b-adb2-eb6b9e546014"',
    'checksum = "3b1c6f0e2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"',
    "invoice 4539148803436468 paid",  # fails the Luhn check
    "IBAN DE44 5001 0517 5407 3249 32",  # wrong check digits
    "git clone git@github.com:acme/api.git",
])
def test_hard_negatives_are_not_flagged(text):
    assert detect_sensitive(text, "notes.txt") == []


@pytest.mark.parametrize("text,value,kind", [
    ("so um the staging password is blue-falcon-42. ok next", "blue-falcon-42", "spoken_secret"),
    # the whole URL: redacting only the password would leave the user, host and database next to a placeholder
    ("DATABASE_URL=postgres://app:Zq8#kP2vLm@db.internal:5432/prod", "postgres://app:Zq8#kP2vLm@db.internal:5432/prod",
     "connection_string"),
    ("invoice card 4539 1488 0343 6467 exp 09/28", "4539 1488 0343 6467", "credit_card"),
    ("wire it to DE44 5001 0517 5407 3249 31 please", "DE44 5001 0517 5407 3249 31", "iban"),
    ("call me at +1 415 867 5309 tomorrow", "+1 415 867 5309", "phone_number"),
    ("ping maria.gonzalez@fastmail.com about it", "maria.gonzalez@fastmail.com", "email"),
    ('client = anthropic.Anthropic(api_key="sk-ant-api03-Qm7vT2xK9pLr4WcZ8nHs1JdY6bGf3AeU5oViR0kN2tXq7MwE9yBz4Lc8Pj'
     'Sa1DhF6gKu3Tn5Rv0Wx2Ym7Ze9Qb4Nc1Vd8Af3Gh6Jk2Lm5Pq0AA")', None, "anthropic_key"),
])
def test_planted_values_are_found_with_exact_offsets(text, value, kind):
    spans = detect_sensitive(text)
    assert [span.kind for span in spans] == [kind]
    if value is not None:
        assert text[spans[0].start:spans[0].end] == value


def test_redaction_uses_one_typed_placeholder_per_value_across_fields():
    key, other = "AKIAZ3MHQK7TVPW4B6XE", "AKIAQ7RTWXZ2M4N5P6YB"
    record = {"instruction": "Rotate key", "input": f"screen shows AWS_ACCESS_KEY_ID={key} and {other}",
              "output": f'KEY = "{key}"\n', "metadata": {"file_path": "src/settings.py"}}
    findings = scan_record(record, 7)
    assert {(f.field, f.kind) for f in findings} == {("input", "aws_access_key"), ("output", "aws_access_key")}
    assert all(isinstance(f, Finding) and f.pair_index == 7 for f in findings)
    redacted = redact_record(record, findings)
    assert redacted["input"] == "screen shows AWS_ACCESS_KEY_ID=<AWS_ACCESS_KEY_1> and <AWS_ACCESS_KEY_2>"
    assert redacted["output"] == 'KEY = "<AWS_ACCESS_KEY_1>"\n'
    assert redacted["metadata"] == record["metadata"]
    shown = "".join(piece for piece, _ in masked_segments(record["input"], [f for f in findings if f.field == "input"]))
    assert key not in shown and other not in shown and "screen shows" in shown


def test_findings_never_carry_the_value():
    record = {"instruction": "x", "input": "token ghp_" + "a1B2" * 9, "output": "pass"}
    for finding in scan_record(record, 0):
        assert "ghp_" not in str(finding.to_dict())
        assert set(finding.to_dict()) == {"pair_index", "field", "kind", "start", "end", "source"}
