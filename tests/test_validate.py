"""`python -m engine validate` and export on real files: broken JSONL gives a report, sensitive data blocks the exit
status and the export until a reviewer decides, duplicates and tiers carry reasons, the MLX folder loads."""

from __future__ import annotations

import json
import random

import pytest

from engine.__main__ import main
from engine.dataset.dedup import find_duplicates
from engine.dataset.export import export_dataset
from engine.dataset.quality import assess, brackets_balanced, is_repetitive
from engine.dataset.review import record_decision
from engine.dataset.split import split_by_hash
from engine.dataset.validate import analyze_dataset, validate_dataset
from engine.errors import StudioError
from engine.store import Workspace
from tests.data_sensitive import training_pair, write_training_jsonl


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "training_data.jsonl"
    planted = write_training_jsonl(path, pairs=24)
    return path, planted, Workspace.open(tmp_path / "ws")


def test_broken_jsonl_gives_a_report_not_a_traceback(tmp_path, capsys):
    rng = random.Random(1)
    good = [json.dumps(training_pair(i, rng)) for i in range(3)]
    huge = json.dumps({**training_pair(9, rng), "output": "x = 1\n" * 1_800_000})  # ~10.8 MB on one line
    lines = [
        good[0].encode(),
        good[1][: len(good[1]) // 2].encode(),  # truncated mid-object
        b'{"instruction": 42, "input": ["not", "text"], "output": null, "metadata": "oops"}',  # wrong types
        b'{"instruction": "caf\xe9 \xff\xfe", "output": "x"}',  # Latin-1 bytes: not UTF-8
        b"[1, 2, 3]",  # valid JSON, not an object
        b"",  # blank line
        huge.encode(),
        good[2].encode(),
    ]
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert len(huge) > 10_000_000
    code = main(["validate", "--input", str(path), "--workspace", str(tmp_path / "ws"),
                 "--json", str(tmp_path / "report.json")])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    errors = {bad["line"]: bad["error"] for bad in report["bad_lines"]}
    assert set(errors) == {2, 4, 5, 6}
    assert "not valid JSON" in errors[2] and "truncated" in errors[2]
    assert "not valid UTF-8" in errors[4]
    assert "array, expected an object" in errors[5]
    assert "blank" in errors[6]
    assert report["valid_pairs"] == 4 and report["usable_pairs"] == 2
    assert any(reason.startswith("invalid format: instruction is a int") for reason in report["reasons"])
    assert any(reason.startswith("too long") for reason in report["reasons"])
    assert "line 2 is not valid JSON" in out.out


def test_missing_file_is_one_sentence(tmp_path, capsys):
    code = main(["validate", "--input", str(tmp_path / "nope.jsonl"), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: The training data file") and err.count("\n") == 1


def test_exit_status_stays_nonzero_until_every_flagged_pair_is_decided(dataset, tmp_path, capsys):
    path, planted, workspace = dataset
    args = ["validate", "--input", str(path), "--workspace", str(workspace.root), "--report",
            str(tmp_path / "report.txt"), "--json", str(tmp_path / "report.json"), "--findings",
            str(tmp_path / "findings.json")]
    assert main(args) == 3
    out = capsys.readouterr().out
    written = out + "".join((tmp_path / name).read_text() for name in ("report.txt", "report.json", "findings.json"))
    for value in (planted["aws"], planted["stripe"], planted["spoken"]):
        assert value not in written  # the secret itself never appears in a report
    findings = json.loads((tmp_path / "findings.json").read_text())
    by_line = {finding["pair_index"] + 1: finding for finding in findings}
    assert set(by_line) == {planted["lines"]["aws"], planted["lines"]["stripe"], planted["lines"]["spoken"]}
    lines = path.read_text().splitlines()
    aws = by_line[planted["lines"]["aws"]]
    assert json.loads(lines[aws["pair_index"]])[aws["field"]][aws["start"]:aws["end"]] == planted["aws"]
    assert "Pairs with potential sensitive data: 3" in out and "Confidence Distribution:" in out
    assert "█" in out and "RECOMMENDATIONS" in out and "manual review required" in out

    for name, decision in (("aws", "redact"), ("stripe", "bad"), ("spoken", "good")):
        assert main(["review", "--input", str(path), "--workspace", str(workspace.root), "--line",
                     str(planted["lines"][name]), "--decision", decision, "--reviewer", "ana"]) == 0
    assert main(args) == 0
    assert "Unresolved (no keep/redact/drop decision yet): 0" in capsys.readouterr().out


def test_export_refuses_unresolved_pairs_and_redacts_on_decision(dataset):
    path, planted, workspace = dataset
    first = export_dataset(path, workspace, name="v1")
    assert first.excluded["unresolved sensitive data (needs keep or redact)"] == 3
    assert first.excluded["exact duplicate"] == 1
    exported = "".join((workspace.root / "datasets/v1" / f"{s}.jsonl").read_text() for s in ("train", "valid", "test"))
    assert planted["aws"] not in exported and planted["stripe"] not in exported

    _, analysis = validate_dataset(path, workspace)
    hashes = {pair.line_number: pair.pair_hash for pair in analysis.pairs}
    record_decision(workspace, hashes[planted["lines"]["aws"]], "redact", "ana")
    record_decision(workspace, hashes[planted["lines"]["stripe"]], "redact", "bo")
    record_decision(workspace, hashes[planted["lines"]["spoken"]], "skip", "bo")
    second = export_dataset(path, workspace, name="v1")
    assert second.redacted_pairs == 2
    assert second.excluded == {"unresolved sensitive data (needs keep or redact)": 1, "exact duplicate": 1}
    folder = workspace.root / "datasets/v1"
    exported = "".join((folder / f"{s}.jsonl").read_text() for s in ("train", "valid", "test"))
    assert planted["aws"] not in exported and planted["stripe"] not in exported and planted["spoken"] not in exported
    assert "<AWS_ACCESS_KEY_1>" in exported and "<STRIPE_KEY_1>" in exported
    assert sum(second.counts.values()) == 24 + 2
    for split in ("train", "valid", "test"):
        text = (folder / f"{split}.jsonl").read_text()
        assert text.endswith("\n") and "\n\n" not in text
        assert all(set(json.loads(line)) == {"prompt", "completion"} for line in text.splitlines())
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["counts"] == second.counts and manifest["format"] == "completions"


def test_exported_folder_loads_in_mlx_lm_as_completions(dataset, tmp_path):
    datasets = pytest.importorskip("mlx_lm.tuner.datasets")
    path, _, workspace = dataset
    result = export_dataset(path, workspace, name="mlx")

    class Tokenizer:  # the completions loader only needs these to build the dataset object
        eos_token_id = 0
        chat_template = None

        def encode(self, text, **_):
            return list(text.encode())

    import types

    args = types.SimpleNamespace(data=result.folder, train=True, test=False, hf_dataset=None, mask_prompt=False,
                                 prompt_feature="prompt", completion_feature="completion", text_feature="text",
                                 chat_feature="messages")
    train, valid, _ = datasets.load_dataset(args, Tokenizer())
    assert type(train).__name__ == "CompletionsDataset"
    assert len(train) == result.counts["train"] and len(valid) == result.counts["valid"]


def test_export_name_and_tier_are_checked(dataset):
    path, _, workspace = dataset
    with pytest.raises(StudioError, match="dataset name"):
        export_dataset(path, workspace, name="../outside")
    with pytest.raises(StudioError, match="min_tier"):
        export_dataset(path, workspace, min_tier="platinum")


def test_duplicates_keep_the_best_pair():
    rng = random.Random(3)
    base = training_pair(0, rng, confidence=0.65)
    better = {**base, "metadata": {**base["metadata"], "confidence": 0.9}}
    near = {**base, "input": base["input"].replace("users complain", "users really complain"), "metadata": {
        **base["metadata"], "confidence": 0.7}}
    other = training_pair(1, rng)
    records = [base, other, better, near]
    found = find_duplicates(records, better=lambda i: (records[i]["metadata"]["confidence"],))
    assert {(d.index, d.kept, d.kind) for d in found} == {(0, 2, "exact"), (3, 2, "near")}


def test_quality_tiers_and_reasons():
    rng = random.Random(5)
    pair = training_pair(2, rng, confidence=0.85)
    assert assess(pair).tier == "silver"  # automatic scores stop short of gold
    assert assess(pair, decision="good").tier == "gold"
    assert assess(pair, decision="bad").dropped
    low = training_pair(2, rng, confidence=0.4)
    quality = assess(low)
    assert "link confidence below 0.6" in quality.reasons and quality.tier == "bronze"
    repetitive = {**pair, "output": "print('hello')\n" * 40}
    assert "repetitive output" in assess(repetitive).reasons
    assert is_repetitive("x = 1\n" * 10) and not is_repetitive(pair["output"])
    assert brackets_balanced("def f(a):\n    return [a, {1: (2)}]\n") and not brackets_balanced("f(a]")
    assert assess({"instruction": "hi", "output": "x"}).reasons == ["too short (under 20 characters)"]
    assert assess({"instruction": 3, "output": "y" * 40}).reasons[0].startswith("invalid format")


def test_split_is_stable_when_data_grows():
    hashes = [f"{i:040x}" for i in range(200)]
    before = split_by_hash(hashes)
    after = split_by_hash(hashes + [f"{i:040x}" for i in range(200, 400)])
    for name in ("train", "valid", "test"):
        assert set(before[name]) <= set(after[name])
    assert 5 <= len(before["valid"]) <= 40 and 5 <= len(before["test"]) <= 40
    assert split_by_hash(hashes[:2])["valid"]  # mlx-lm needs a validation set even for tiny data


def test_rescans_come_from_the_cache(dataset, monkeypatch):
    path, _, workspace = dataset
    first = analyze_dataset(path, workspace)
    conn = workspace.connect()
    cached = conn.execute("SELECT COUNT(*) FROM sensitive_scans").fetchone()[0]
    stored = " ".join(row[0] for row in conn.execute("SELECT spans_json FROM sensitive_scans"))
    conn.close()
    assert cached > 0 and "AKIA" not in stored and "sk_live" not in stored

    def no_scanning(*_args, **_kwargs):
        raise AssertionError("text seen before was scanned again")

    monkeypatch.setattr("engine.dataset.gate.detect_sensitive", no_scanning)
    again = analyze_dataset(path, workspace)
    assert [pair.findings for pair in again.pairs] == [pair.findings for pair in first.pairs]
    assert sum(len(pair.findings) for pair in again.pairs) == 3
