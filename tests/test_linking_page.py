"""The Linking page through AppTest, on a labelled world linked with the real model: sliders that re-filter stored
scores without embedding anything, Save as default, runs in a background process the page polls, and commit text
shown exactly as it is."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.linking import embedder as embedder_module
from engine.processes import task_status
from tests.conftest import ROOT
from tests.linking_fixtures import build_labelled_world, copy_world, prepared_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("labelled"))


@pytest.fixture
def linked_env(labelled, tmp_path, monkeypatch):
    world = copy_world(labelled[0], tmp_path / "world")
    monkeypatch.setenv("STUDIO_CONFIG", str(world.config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    return world


def linking_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "views" / "linking.py"), default_timeout=60)


def threshold_drawn_at(at) -> float:
    """The x of the red rule layered on the confidence histogram."""
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        layers = spec.get("layer", [])
        if len(layers) == 2 and layers[0]["mark"]["type"] == "bar":
            assert layers[0]["encoding"]["x"]["bin"] and layers[1]["mark"]["type"] == "rule"
            return layers[1]["encoding"]["x"]["datum"]
    raise AssertionError("no confidence histogram on the page")


def metrics(at) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def wait_for_task(workspace, timeout: float = 600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = task_status(workspace, "link")
        if status is not None and not status.running:
            return status
        time.sleep(0.5)
    raise AssertionError("the linking task did not finish")


def test_slider_moves_refilter_counts_histogram_and_browser_without_embedding(linked_env, monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the embedder was called on a slider move")

    monkeypatch.setattr(embedder_module.SentenceEmbedder, "encode", refuse)
    monkeypatch.setattr(embedder_module, "_load_model", refuse)
    at = linking_page().run()
    assert not at.exception and not at.error
    before = metrics(at)
    assert int(before["Links kept"]) > 0
    assert before["Expected precision"].endswith("%")
    assert threshold_drawn_at(at) == 0.6
    commits_before = len(at.selectbox(key="commit").options)

    at.slider(key="min_confidence").set_value(0.99).run()
    assert not at.exception
    after = metrics(at)
    assert int(after["Links kept"]) < int(before["Links kept"])
    assert int(after["Training pairs"]) <= int(before["Training pairs"])
    assert int(after["Expected precision"].rstrip("%")) >= int(before["Expected precision"].rstrip("%"))
    assert len(at.selectbox(key="commit").options) <= commits_before
    assert threshold_drawn_at(at) == 0.99
    assert any("Not saved yet" in caption.value for caption in at.caption)

    at.slider(key="min_confidence").set_value(0.3).run()
    at.slider(key="top_k").set_value(1).run()
    assert not at.exception
    assert int(metrics(at)["Links kept"]) == int(metrics(at)["Commits linked"].split(" of ")[0])
    assert calls == []


def test_save_as_default_writes_the_threshold_everyone_uses(linked_env):
    at = linking_page().run()
    assert at.button(key="save_default").disabled  # nothing to save yet
    at.slider(key="min_confidence").set_value(0.75).run()
    at.slider(key="top_k").set_value(2).run()
    at.button(key="save_default").click().run()
    assert not at.exception and not at.error
    saved = json.loads(linked_env.config.read_text())
    assert saved["confidence"]["min_confidence"] == 0.75 and saved["filtering"]["top_k_matches"] == 2
    assert saved["paths"]["git_repo"] == "repo"  # the rest of the config is kept as it was
    fresh = linking_page().run()  # a new session starts at the saved values
    assert fresh.slider(key="min_confidence").value == 0.75 and fresh.slider(key="top_k").value == 2
    assert not any("Not saved yet" in caption.value for caption in fresh.caption)


def test_pair_browser_shows_the_commit_beside_its_evidence(linked_env):
    at = linking_page().run()
    sha = at.selectbox(key="commit").value
    story = next(story for story in linked_env.stories if story.sha == sha)
    texts = " ".join(item.value for item in at.text)
    assert story.message in texts
    assert any(sha in caption.value.replace("\\", "") for caption in at.caption)
    assert at.code[0].value.strip() in (linked_env.repo / story.component[1]).read_text()
    evidence = [item.value for item in at.text if item.value.startswith("#1 · confidence ")]
    assert evidence
    parts = [caption.value for caption in at.caption if "cos subject" in caption.value]
    assert parts and all("seen" in part for part in parts)


def test_run_linking_in_the_background_then_relink_from_the_cache(tmp_path, monkeypatch):
    world = build_labelled_world(tmp_path / "fresh", commits=6, seed=5)
    monkeypatch.setenv("STUDIO_CONFIG", str(world.config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    at = linking_page().run()
    assert any("No links yet" in info.value for info in at.info)
    at.selectbox(key="mode").set_value("hybrid")
    at.button(key="run_link").click().run()
    assert not at.exception and not at.error
    assert at.button(key="run_link").disabled  # a second click cannot start a second run
    assert any("Linking in the background" in bar.proto.text for bar in at.get("progress"))
    first = wait_for_task(world.workspace)
    assert first.state == "done", first.error
    at.run()
    assert "Commits linked" in metrics(at) and not at.button(key="run_link").disabled
    assert any("· hybrid ·" in caption.value for caption in at.caption)

    at.selectbox(key="mode").set_value("best")
    at.button(key="run_link").click().run()
    second = wait_for_task(world.workspace)
    assert second.state == "done", second.error
    assert second.result["link"]["embedded_texts"] == 0 or second.result["link"]["cached_texts"] > 0
    at.run()
    assert not at.exception and not at.error
    assert any("· best ·" in caption.value for caption in at.caption)
    assert any("Linked in" in success.value for success in at.success)


def test_commit_text_is_shown_verbatim_never_as_markdown(tmp_path, monkeypatch):
    from tests.linking_fixtures import _git

    world = build_labelled_world(tmp_path / "md", commits=6, seed=5)
    monkeypatch.setenv("STUDIO_CONFIG", str(world.config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    message = "Fix **bold** __init__ in <img src=x onerror=alert(1)> # heading -> arrow"
    _git(world.repo, "commit", "-q", "--amend", "-m", message)
    from engine.config import PipelineConfig
    from engine.extract import extract
    from engine.pipeline import link_and_write

    config = PipelineConfig.load(world.config)
    extract(config, world.workspace)
    link_and_write(config, world.workspace, "best", min_confidence=0.0)
    sha = _git(world.repo, "rev-parse", "HEAD")
    at = linking_page().run()
    at.slider(key="min_confidence").set_value(0.0).run()
    at.selectbox(key="commit").set_value(sha).run()
    assert not at.exception
    assert any(item.value == message for item in at.text)
    assert not any("<img" in item.value for item in at.markdown)


def test_missing_config_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CONFIG", str(tmp_path / "nope.json"))
    at = linking_page().run()
    assert any("does not exist" in error.value for error in at.error)
    assert any("python -m engine demo" in info.value for info in at.info)
