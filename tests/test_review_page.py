"""The Review page under AppTest: answers go to the item on screen under the member's identity, a bulk answer is one
action that one undo takes back, owners change the settings, and the server refuses a viewer's answer even when
the (disabled) button is pressed anyway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.dataset.review import count_decisions, item_statuses, review_settings
from engine.dataset.validate import validate_dataset
from engine.store import Workspace
from engine.team import Member
from tests.data_sensitive import write_training_jsonl
from tests.page_text import shown

PAGE = str(Path(__file__).resolve().parent.parent / "views" / "review.py")


@pytest.fixture
def studio(tmp_path, monkeypatch):
    (tmp_path / "output").mkdir()
    output = tmp_path / "output" / "training_data.jsonl"
    planted = write_training_jsonl(output, pairs=6)
    config = tmp_path / "pipeline_config.json"
    config.write_text(json.dumps({"paths": {"output_file": "output/training_data.jsonl", "git_repo": str(tmp_path)},
                                  "studio": {"workspace": "ws"}}))
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    monkeypatch.setenv("STUDIO_REVIEWER", "dana")
    workspace = Workspace.open(tmp_path / "ws")
    validate_dataset(output, workspace)
    return workspace, planted


def picker(at):
    return next(box for box in at.selectbox if box.label.startswith("Item ("))


def test_answers_bulk_and_undo(studio):
    workspace, planted = studio
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    shown_first = picker(at)
    first = shown_first.value
    assert shown_first.format_func(first).startswith(f"training_data.jsonl line {planted['lines']['aws']} ·")
    at.button(key="review_answer_good").click().run()
    assert item_statuses(workspace)[first].answers["dana"].decision == "good"
    assert picker(at).value != first  # on to the next item waiting for dana

    at.checkbox(key="review_flagged").check().run()
    at.selectbox(key="review_bulk_decision").set_value("redact")
    at.button(key="review_bulk").click().run()
    assert not at.exception
    flagged = [key for key, status in item_statuses(workspace).items()]
    assert len(flagged) == 3 and {item_statuses(workspace)[key].decision for key in flagged} == {"redact"}
    assert "Recorded redact on 3 items as one action" in shown(at.success[0].value)
    at.button(key="review_undo").click().run()
    statuses = item_statuses(workspace)
    assert list(statuses) == [first] and statuses[first].decision == "good"  # the bulk went whole


def test_owner_settings_and_guidelines_as_plain_text(studio):
    workspace, _ = studio
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["review_tab"] = "Settings"
    at.run()
    at.number_input(key="answers_per_item").set_value(2)
    at.text_area(key="guidelines").set_value("Redact **every** <b>token</b>")
    at.button(key="FormSubmitter:review_settings-Save settings").click().run()
    assert not at.exception
    assert review_settings(workspace).answers_per_item == 2
    assert at.text[0].value == "Redact **every** <b>token</b>"  # st.text: shown as written


def test_a_viewers_answer_is_refused_by_the_server(studio):
    workspace, _ = studio
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["_studio_member"] = Member("vic@example.com", "viewer", True)
    at.run()
    assert at.button(key="review_answer_good").disabled and at.button(key="review_bulk").disabled
    # The button is drawn for a reviewer; an owner changes the config and the next click comes from a viewer:
    # the server checks the role when the answer is recorded, not only when it draws the button.
    at.session_state["_studio_member"] = Member("vic@example.com", "reviewer", True)
    at.run()
    at.session_state["_studio_member"] = Member("vic@example.com", "viewer", True)
    at.button(key="review_answer_good").click().run()
    assert count_decisions(workspace) == 0
    assert "Your role (viewer) cannot review." in [shown(error.value) for error in at.error]
    at.session_state["review_tab"] = "Settings"
    at.run()
    assert at.number_input(key="answers_per_item").disabled
