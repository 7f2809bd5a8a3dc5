"""The Training page: AppTest for what a person sees, and a real browser starting a run and watching the loss chart
gain points."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect
from streamlit.testing.v1 import AppTest

from engine.store import Workspace
from engine.training import deploy as versions
from engine.training.runs import list_runs
from tests.browser import wait_for_app
from tests.conftest import ROOT
from tests.page_text import shown
from tests.tiny_model import build_tiny_model, stop_active_runs, train_tiny, write_data_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    return build_tiny_model(root / "model"), root


def training_page(monkeypatch, workspace) -> AppTest:
    monkeypatch.setenv("STUDIO_WORKSPACE", str(workspace))
    return AppTest.from_file(str(ROOT / "views" / "training.py"), default_timeout=30)


def test_empty_workspace_says_how_to_get_a_dataset(tmp_path, monkeypatch):
    at = training_page(monkeypatch, tmp_path / "ws").run()
    assert not at.exception
    assert any("No MLX data folder in" in info.value and "Validation page" in info.value for info in at.info)
    assert any("No runs yet" in info.value for info in at.info)
    start = next(button for button in at.button if button.label == "Start training")
    start.click().run()
    assert [shown(error.value) for error in at.error] == [
        "Choose a data folder first: an MLX data folder holding train.jsonl and valid.jsonl."]
    at.text_input(key="data_folder").set_value(str(tmp_path / "nowhere")).run()
    next(button for button in at.button if button.label == "Start training").click().run()
    assert [shown(error.value) for error in at.error] == [f"The data folder {tmp_path / 'nowhere'} does not exist."]
    assert not at.exception


def test_history_chart_evaluation_and_rollback(tmp_path, monkeypatch, tiny):
    model, _ = tiny
    ws = Workspace.open(tmp_path / "ws")
    data = write_data_folder(ws.path("datasets", "tiny"))
    run = train_tiny(ws, data, model)
    versions.deploy(ws, run.id, force=True, margin=None)
    at = training_page(monkeypatch, ws.root).run()
    assert not at.exception
    assert at.selectbox[0].options == ["datasets/tiny", "Another folder…"]
    assert len(at.get("vega_lite_chart")) == 2  # the runs compared (one here) and the picked run's loss chart
    assert at.multiselect(key="compared_runs").value == [run.id]
    assert any(shown(caption.value).startswith("Loss reports: 6 train, 4 validation") for caption in at.caption)
    # the dataset preview before training: counts, format and the first samples
    assert any(shown(caption.value).startswith("120 training samples, 12 validation, 8 test · format: chat")
               for caption in at.caption)
    assert any(expander.label == "The first 3 training samples" for expander in at.expander)
    history = at.dataframe[0].value
    assert list(history["run"]) == [run.id] and list(history["status"]) == ["completed"]
    evaluation = at.dataframe[1].value
    assert list(evaluation["split"]) == ["valid", "test"]
    assert (evaluation["adapter loss"] < evaluation["base loss"]).all()
    assert any(caption.value.startswith("Served now: v1") for caption in at.caption)
    next(button for button in at.button if button.label == "Roll back").click().run()
    assert not at.exception
    assert [shown(success.value) for success in at.success] == ["Rolled back: the base model is served now."]
    assert versions.current_version(ws) is None
    assert any(caption.value.startswith("Served now: the base model alone") for caption in at.caption)


def _points(page) -> int:
    return page.locator(".st-key-live-run [data-testid=stVegaLiteChart] svg .mark-symbol path").count()


def wait_for_points(page, above: int, timeout: float = 60) -> int:
    """Poll the live chart until it draws more than `above` points; return the count seen."""
    deadline = time.monotonic() + timeout
    while (count := _points(page)) <= above:
        assert time.monotonic() < deadline, f"the loss chart stayed at {above} points or fewer"
        time.sleep(0.5)
    return count


@pytest.fixture
def browser_workspace(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    write_data_folder(ws.path("datasets", "tiny"))
    yield ws
    stop_active_runs(ws)  # a failed assertion must not leave a 200,000-iteration run going


@pytest.mark.browser
def test_browser_starts_a_run_and_the_loss_chart_grows(tmp_path, tiny, browser_workspace, studio_url, browser_page):
    model, _ = tiny
    ws = browser_workspace
    url = studio_url({"STUDIO_WORKSPACE": str(ws.root), "HF_HUB_OFFLINE": "1"})
    page = browser_page
    page.goto(f"{url}/training")
    wait_for_app(page)
    # the studio works offline: its favicon is drawn by the browser, not fetched from a font CDN
    assert page.locator("link[rel='shortcut icon']").get_attribute("href").startswith("data:image/svg+xml")
    page.get_by_role("textbox", name="Base model").fill(str(model))
    page.get_by_role("textbox", name="Base model").press("Enter")
    wait_for_app(page)
    page.get_by_text("Parameters", exact=True).click()
    for label, value in (("iters", "200000"), ("num layers", "2"), ("steps per report", "50"),
                         ("steps per eval", "500")):
        field = page.get_by_role("spinbutton", name=label, exact=True)
        field.fill(value)
        field.press("Enter")
        wait_for_app(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Live run").wait_for(timeout=30_000)
    first = wait_for_points(page, above=1)  # a redraw can briefly show 0 points: keep the value that was seen
    # one status, everywhere: the progress bar names the phase and steps; Start waits while the run goes
    progress = page.locator(".st-key-live-run [data-testid=stProgress]").inner_text()
    assert re.search(r"Run \S+: training [\d,]+ of 200,000 · \d+ s", progress), progress
    assert page.get_by_role("button", name="Start training").is_disabled()
    grown = wait_for_points(page, above=first)
    assert grown > first >= 2
    # the caption under the chart counts the reports; it is redrawn with the chart, so wait for the next redraw
    expect(page.locator(".st-key-live-run").get_by_text(re.compile(r"Loss reports: [1-9][\d,]* train"))).to_be_visible(
        timeout=60_000)
    page.locator("[data-testid=stVegaLiteChart]").first.screenshot(path=str(tmp_path / "live-chart.png"))
    page.locator(".st-key-live-run").get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped by the user.").first.wait_for(timeout=30_000)
    (run,) = list_runs(ws)
    assert run.status == "stopped" and 50 <= run.iterations_done < 200000


def test_a_preset_saved_on_the_page_is_offered_and_fills_the_parameters(tmp_path, monkeypatch):
    at = training_page(monkeypatch, tmp_path / "ws").run()
    assert at.selectbox(key="preset").value == "quick"  # the short first run is the default
    at.number_input(key="quick-iters").set_value(7).run()
    at.text_input(key="preset_name").set_value("seven steps").run()
    next(button for button in at.button if button.label == "Save preset").click().run()
    assert not at.exception
    assert "Saved the preset 'seven steps'." in [shown(info.value) for info in at.info]
    assert at.selectbox(key="preset").options[-1] == "seven steps"
    assert at.selectbox(key="preset").value == "seven steps"
    assert at.number_input(key="seven steps-iters").value == 7
    assert any(caption.value.startswith("Saved in this workspace: ") and "iters 7" in caption.value
               for caption in at.caption)
