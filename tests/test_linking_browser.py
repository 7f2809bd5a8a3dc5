"""The Linking page in a real browser: the min_confidence slider changes the counts, Save as default writes it to the
config, and Relink (a background run the page polls) writes the pairs filtered at the saved value."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser import wait_for_app
from tests.linking_fixtures import copy_world, prepared_world

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("labelled"))


def _metric(page, label: str) -> str:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue").inner_text()


def test_slider_save_and_relink_write_pairs_at_the_saved_threshold(studio_url, browser_page, labelled, tmp_path):
    world = copy_world(labelled[0], tmp_path / "world")
    page = browser_page
    page.goto(studio_url({"STUDIO_CONFIG": str(world.config)}) + "/linking")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Linking", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"Run \d+ · best · all-MiniLM-L6-v2"))).to_be_visible()
    before = int(_metric(page, "Links kept").replace(",", ""))
    assert before > 0
    slider = page.get_by_role("slider", name="min_confidence")
    slider.focus()
    for _ in range(39):  # 0.60 -> 0.99
        slider.press("ArrowRight")
    expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text("0.99", timeout=10_000)
    wait_for_app(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Links kept")).not_to_contain_text(
        re.compile(rf"^Links kept\s*{before}$"), timeout=10_000)
    assert int(_metric(page, "Links kept").replace(",", "")) < before
    expect(page.get_by_text("Not saved yet", exact=False)).to_be_visible()

    page.get_by_role("button", name="Save as default").click()
    wait_for_app(page)
    expect(page.get_by_text("Not saved yet", exact=False)).to_have_count(0, timeout=10_000)
    assert json.loads(world.config.read_text())["confidence"]["min_confidence"] == 0.99

    page.get_by_role("button", name="Relink").click()
    expect(page.get_by_text(re.compile(r"Linked in \d+ s"))).to_be_visible(timeout=300_000)
    wait_for_app(page)
    pairs_shown = int(_metric(page, "Training pairs").replace(",", ""))
    output = world.config.parent / "output" / "training_data.jsonl"
    pairs = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(pairs) == pairs_shown > 0
    for pair in pairs:
        assert all(source["confidence"] >= 0.99 for source in pair["metadata"]["sources"])
    page.screenshot(path=str(tmp_path / "linking.png"), full_page=True)
