"""The Compare page with AppTest: what a person sees before sending anything (no model is loaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.chat_fixtures import ANSWER, trained_chat_adapter

PAGE = str(Path(__file__).resolve().parent.parent / "views" / "compare.py")


@pytest.fixture(scope="session")
def chat_adapter(tmp_path_factory):
    return trained_chat_adapter(tmp_path_factory)


def test_empty_workspace_says_how_to_get_an_adapter(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("STUDIO_CHAT_BASE_MODEL", "/models/some-base")
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    assert any("No fine-tuned adapter in this workspace yet" in info.value for info in at.info)
    assert [box.value for box in at.selectbox] == ["base some-base", "base some-base"]
    assert any("Probing needs an adapter" in info.value for info in at.info)


@pytest.mark.slow
def test_versions_runs_and_examples_are_offered(chat_adapter, monkeypatch):
    monkeypatch.setenv("STUDIO_WORKSPACE", str(chat_adapter.workspace))
    monkeypatch.setenv("STUDIO_CHAT_BASE_MODEL", str(chat_adapter.model_dir))
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    left, right, examples = at.selectbox
    assert (left.value, right.value) == (f"base {chat_adapter.model_dir.name}", "Deployed version (canary-routed)")
    assert f"run {chat_adapter.run_id}" in right.options and "v1 (current)" in right.options
    held_out = [title for title in examples.options if title.startswith("test #")]
    assert held_out and any(title.startswith("train #") for title in examples.options)
    examples.set_value(held_out[0]).run()
    assert at.text_area(key="prompt").value.endswith("Output:")
    assert any(code.value == ANSWER for code in at.code), "the real answer of the example is shown"
    right.set_value(f"run {chat_adapter.run_id}").run()
    assert at.toggle(key="adapter_right").value is True
    at.toggle(key="adapter_right").set_value(False).run()
    assert not at.exception
