"""The Validation page under AppTest: it explains a missing dataset, shows the report, records review decisions
and exports the cleaned dataset, showing masked secrets only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.dataset.review import item_statuses
from engine.store import Workspace
from tests.data_sensitive import write_training_jsonl
from views.ui import escape_markdown

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

    at.session_state["validation_tab"] = "Review queue"  # the tab a person clicks (tracked: on_change="rerun")
    at.run()
    assert not at.exception
    picker = next(box for box in at.selectbox if box.label.startswith("Item ("))
    aws_line = planted["lines"]["aws"]
    assert picker.format_func(picker.value) == f"training_data.jsonl line {aws_line} · aws_access_key · pending"
    shown = " ".join(html.proto.body for html in at.get("html"))
    assert planted["aws"] not in shown and 'data-kind="aws_access_key"' in shown and "•" in shown

    at.button(key="validation_review_answer_redact").click().run()
    assert not at.exception
    workspace = Workspace.open(studio / "ws")
    statuses = item_statuses(workspace)
    assert [(s.decision, list(s.answers)) for s in statuses.values()] == [("redact", ["dana"])]
    recorded = escape_markdown(f"Recorded training_data.jsonl line {planted['lines']['aws']}: redact by dana.")
    assert recorded in [success.value for success in at.success]  # escaped: file names are data too
    picker = next(box for box in at.selectbox if box.label.startswith("Item ("))  # on to the next pending pair
    assert picker.format_func(picker.value).startswith(f"training_data.jsonl line {planted['lines']['stripe']} ·")
    at.session_state["validation_tab"] = "Report"
    at.run()
    assert {metric.label: metric.value for metric in at.metric}["Unresolved sensitive"] == "2"

    at.session_state["validation_tab"] = "Export"
    at.run()
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
