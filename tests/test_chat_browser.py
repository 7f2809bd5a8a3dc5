"""The Compare page in a real browser: a prompt sent to the base model and the deployed adapter fills both columns
(tiny model, adapter trained on distinctive data), and the probe mode scores both on real pairs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import wait_for_app
from tests.chat_fixtures import ANSWER, LEARNED, trained_chat_adapter

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="session")
def chat_adapter(tmp_path_factory):
    return trained_chat_adapter(tmp_path_factory)


def test_compare_page_fills_both_columns_and_probes(chat_adapter, studio_url, browser_page):
    url = studio_url({"STUDIO_WORKSPACE": str(chat_adapter.workspace),
                      "STUDIO_CHAT_BASE_MODEL": str(chat_adapter.model_dir)})
    page = browser_page
    page.goto(f"{url}/compare")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()

    # an example prompt drawn from the held-out data fills the prompt box
    page.get_by_role("combobox", name="Example prompt from the training and held-out data").click()
    page.get_by_role("option", name=re.compile(r"^test #1: Instruction: update")).click()
    wait_for_app(page)
    prompt = page.get_by_label("Prompt", exact=True)
    expect(prompt).to_have_value(re.compile(r"Task: Modify src/\w+\.py\nOutput:$"))

    page.get_by_role("button", name="Send to both").click()
    left = page.get_by_test_id("stColumn").filter(has_text=f"base {chat_adapter.model_dir.name}").filter(
        has=page.get_by_test_id("stCode")).last
    right = page.get_by_test_id("stColumn").filter(has_text="v1 (current)").filter(
        has=page.get_by_test_id("stCode")).last
    expect(right.get_by_test_id("stCode")).to_contain_text(LEARNED, timeout=60_000)
    wait_for_app(page, 60_000)
    left_answer = left.get_by_test_id("stCode").inner_text().strip()
    assert left_answer and "canary deploy" not in left_answer
    for column in (left, right):
        expect(column.get_by_text(re.compile(r"\d+ tokens · [\d.]+ tok/s · first token [\d.]+ s"))).to_be_visible()

    page.get_by_role("tab", name="Probe").click()
    page.get_by_role("button", name="Run probe").click()
    expect(page.get_by_text(re.compile(r"v1 \(current\) is closer to the real code"))).to_be_visible(timeout=60_000)
    wait_for_app(page, 60_000)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=30_000)
    page.get_by_text("test #1: answers").click()
    details = page.get_by_test_id("stExpander").filter(has_text="test #1: answers")
    expect(details.get_by_test_id("stCode")).to_have_count(3)
    expect(details.get_by_test_id("stCode").nth(0)).to_have_text(ANSWER)  # the real answer from test.jsonl
    expect(details.get_by_test_id("stCode").nth(2)).to_contain_text(LEARNED)  # the fine-tuned model's answer
