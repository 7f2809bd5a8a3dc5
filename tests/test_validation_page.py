"""The Validation page under AppTest: it explains a missing dataset, shows the report, records review decisions
and exports the cleaned dataset, showing masked secrets only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.dataset.review import latest_decisions
from engine.store import Workspace
from tests.data_sensitive import write_training_jsonl

PAGE = str(Path(__file__).resolve().parent.parent / "views" / "validation.py")


@pytest.fixture
def studio(tmp_path, monkeypatch):
    config = tmp_path / "pipeline_config.json"
    config.write_text(json.dumps({"paths": {"output_file": "output/training_data.jsonl", "git_repo": str(tmp_path)},
                                  "studio": {"workspace": "ws"}}))
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    monkeypatch.setenv("STUDIO_REVIEWER", "dana")
    return tmp_path


def test_missing_training_data_says_how_to_make_it(studio):
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    assert "No training data at" in at.info[0].value and "Linking page" in at.info[0].value


def test_report_review_and_export(studio):
    (studio / "output").mkdir()
    planted = write_training_jsonl(studio / "output" / "training_data.jsonl", pairs=24)
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Lines"] == "28" and metrics["Unresolved sensitive"] == "3" and metrics["Usable pairs"] == "27"
    assert len(at.get("vega_lite_chart")) == 2
    assert any("manual review required" in warning.value for warning in at.warning)

    picker = at.selectbox(key="review_pick")
    assert picker.format_func(picker.value).startswith(f"line {planted['lines']['aws']} · flagged · aws_access_key")
    shown = " ".join(markdown.value for markdown in at.markdown)
    assert planted["aws"] not in shown and "aws_access_key" in shown and "•" in shown

    at.button(key="decide_redact").click().run()
    assert not at.exception
    workspace = Workspace.open(studio / "ws")
    decisions = latest_decisions(workspace)
    assert [(d.decision, d.reviewer) for d in decisions.values()] == [("redact", "dana")]
    assert {metric.label: metric.value for metric in at.metric}["Unresolved sensitive"] == "2"
    assert any(f"Recorded line {planted['lines']['aws']}: redact by dana" in c.value for c in at.caption)
    picker = at.selectbox(key="review_pick")  # moved on to the next pending pair
    assert picker.format_func(picker.value).startswith(f"line {planted['lines']['stripe']} · flagged")

    at.text_input(key="export_name").set_value("reviewed")
    at.button(key="export").click().run()
    assert not at.exception
    assert any("Exported to" in success.value and "(1 redacted)" in success.value for success in at.success)
    exported = "".join((studio / "ws" / "datasets" / "reviewed" / f"{split}.jsonl").read_text()
                       for split in ("train", "valid", "test"))
    assert planted["aws"] not in exported and "<AWS_ACCESS_KEY_1>" in exported


def test_a_broken_file_gets_a_report_on_the_page(studio):
    broken = studio / "broken.jsonl"
    broken.write_bytes(b'{"instruction": "Fix the retry loop in the client", "output": "x = 1\\n' + b"\n"
                       + b"\xff\xfe not utf-8\n" + b"[1, 2]\n")
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    at.text_input(key="input_path").set_value(str(broken)).run()
    assert not at.exception and not at.error
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Lines"] == "3" and metrics["Valid pairs"] == "0"
    assert any("3 lines could not be read" in warning.value for warning in at.warning)
    assert [text.value for text in at.text][:3] == [
        "line 1 is not valid JSON (Unterminated string starting at column 63, the line looks truncated)",
        "line 2 is not valid UTF-8 (byte 0xff at position 0)",
        "line 3 is a JSON array, expected an object",
    ]
