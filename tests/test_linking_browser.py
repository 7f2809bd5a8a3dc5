"""The Linking page in a real browser: stored links load, moving the min_confidence slider changes the counts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import wait_for_app
from tests.linking_fixtures import copy_world, prepared_world

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("labelled"))


def _links_kept(page) -> int:
    text = page.get_by_test_id("stMetric").filter(has_text="Links kept").get_by_test_id("stMetricValue").inner_text()
    return int(text.replace(",", ""))


def test_moving_the_slider_changes_the_count(studio_url, browser_page, labelled, tmp_path):
    world = copy_world(labelled[0], tmp_path / "world")
    page = browser_page
    page.goto(studio_url({"STUDIO_CONFIG": str(world.config)}) + "/linking")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Linking", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"Run \d+ · best · all-MiniLM-L6-v2"))).to_be_visible()
    before = _links_kept(page)
    assert before > 0
    slider = page.get_by_role("slider", name="min_confidence")
    slider.focus()
    for _ in range(25):  # 0.60 -> 0.85
        slider.press("ArrowRight")
    expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text("0.85", timeout=10_000)
    wait_for_app(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Links kept")).not_to_contain_text(
        re.compile(rf"^Links kept\s*{before}$"), timeout=10_000)
    after = _links_kept(page)
    assert after < before
    expect(page.get_by_test_id("stVegaLiteChart")).to_be_visible()
    page.screenshot(path=str(tmp_path / "linking.png"), full_page=True)
