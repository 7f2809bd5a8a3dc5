"""The Linking page through AppTest, on a labelled world linked with the real model: run, relink, and sliders that
re-filter stored scores without embedding anything."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from engine.linking import embedder as embedder_module
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
    (chart,) = at.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    bars, rule = spec["layer"]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["x"]["bin"]
    assert rule["mark"]["type"] == "rule"
    return rule["encoding"]["x"]["datum"]


def metrics(at) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


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
    assert threshold_drawn_at(at) == 0.6
    commits_before = len(at.selectbox(key="commit").options)

    at.slider(key="min_confidence").set_value(0.85).run()
    assert not at.exception
    after = metrics(at)
    assert int(after["Links kept"]) < int(before["Links kept"])
    assert int(after["Training pairs"]) <= int(before["Training pairs"])
    assert len(at.selectbox(key="commit").options) <= commits_before
    assert threshold_drawn_at(at) == 0.85

    at.slider(key="min_confidence").set_value(0.3).run()
    at.slider(key="top_k").set_value(1).run()
    assert not at.exception
    assert int(metrics(at)["Links kept"]) == int(metrics(at)["Commits linked"].split(" of ")[0])
    assert calls == []


def test_pair_browser_shows_the_commit_beside_its_evidence(linked_env):
    at = linking_page().run()
    sha = at.selectbox(key="commit").value
    story = next(story for story in linked_env.stories if story.sha == sha)
    markdown = " ".join(item.value for item in at.markdown)
    assert story.message in markdown
    assert any(sha in caption.value for caption in at.caption)
    assert at.code[0].value.strip() in (linked_env.repo / story.component[1]).read_text()
    evidence = [item.value for item in at.markdown if item.value.startswith(":material/")]
    assert evidence and all("· " in item for item in evidence)
    parts = [caption.value for caption in at.caption if caption.value.startswith("semantic ")]
    assert parts and all("time" in part and "reference" in part for part in parts)


def test_run_linking_on_a_fresh_workspace_then_relink_uses_the_cache(tmp_path, monkeypatch, labelled):
    world = build_labelled_world(tmp_path / "fresh", commits=6, seed=5)
    monkeypatch.setenv("STUDIO_CONFIG", str(world.config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    at = linking_page().run()
    assert any("No links yet" in info.value for info in at.info)
    at.selectbox(key="mode").set_value("hybrid")
    at.button(key="run_link").click().run()
    assert not at.exception and not at.error
    assert "Commits linked" in metrics(at)
    encoded = []
    original = embedder_module.SentenceEmbedder.encode
    monkeypatch.setattr(embedder_module.SentenceEmbedder, "encode",
                        lambda self, texts: encoded.append(len(texts)) or original(self, texts))
    at.selectbox(key="mode").set_value("best")
    at.button(key="run_link").click().run()
    assert not at.exception and not at.error
    assert encoded == []  # relinking in another mode embeds nothing new
    assert any("· best ·" in caption.value for caption in at.caption)


def test_missing_config_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CONFIG", str(tmp_path / "nope.json"))
    at = linking_page().run()
    assert any("does not exist" in error.value for error in at.error)
    assert any("python -m engine demo" in info.value for info in at.info)
