"""The flow in one place (engine.pipeline): linking stores scored runs and writes no dataset; the pipeline builds
the pairs and writes them; one threshold rule decides which links count, and the Linking page's slider value is the
one its Relink writes at, saved or not."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.config import PipelineConfig
from engine.linking.link import filter_links, link, link_counts, load_links, load_run_tables
from engine.linking.threshold import passes
from engine.pipeline import link_and_write
from engine.processes import task_status
from engine.store import Workspace
from tests.conftest import ROOT
from tests.linking_fixtures import copy_world, prepared_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("labelled"))


def test_passes_keeps_a_link_at_the_threshold_and_within_top_k():
    ranks = np.array([1, 2, 3, 1])
    confidences = np.array([0.6, 0.8, 0.9, 0.59999], dtype=np.float64)
    assert passes(ranks, confidences, 0.6, 2).tolist() == [True, True, False, False]
    assert passes(1, 0.6, 0.6, 1) and not passes(2, 0.99, 0.6, 1)
    assert passes(np.int32(1), np.float32(0.6), 0.6, 1)  # a float32 confidence at the threshold is kept too


def test_linking_alone_writes_no_dataset_and_the_pipeline_writes_what_it_counts(labelled, tmp_path):
    world = copy_world(labelled[0], tmp_path / "world")
    config = PipelineConfig.load(world.config)
    config.output_file.unlink()
    data = config.output_file.parent / "data"
    for stale in data.glob("*.jsonl"):
        stale.unlink()

    stage = link(config, world.workspace, "best", min_confidence=0.7)
    assert not config.output_file.exists() and not any(data.glob("*.jsonl"))
    assert stage.output_file is None and stage.mlx_folder is None
    counts = link_counts(load_run_tables(world.workspace, stage.run_id), 0.7, stage.top_k)
    assert stage.pairs == counts["pairs"] and stage.kept_links == counts["links"]

    result = link_and_write(config, world.workspace, "best", min_confidence=0.7)
    pairs = [json.loads(line) for line in config.output_file.read_text().splitlines()]
    assert len(pairs) == result.pairs == link_counts(load_run_tables(world.workspace, result.run_id), 0.7,
                                                     result.top_k)["pairs"] > 0
    with Workspace.open(world.workspace).connection() as conn:
        kept = filter_links(load_links(conn, result.run_id), 0.7, result.top_k)
        stored = json.loads(conn.execute("SELECT stats_json FROM link_runs WHERE id = ?",
                                         (result.run_id,)).fetchone()[0])
    assert {pair["metadata"]["commit_sha"] for pair in pairs} == set(kept["commit_sha"])
    assert all(source["confidence"] >= 0.7 for pair in pairs for source in pair["metadata"]["sources"])
    assert stored["output_file"] == str(config.output_file) and stored["pairs"] == len(pairs)
    mlx = sum(len((data / f"{name}.jsonl").read_text().splitlines()) for name in ("train", "valid"))
    assert mlx == result.mlx_counts["train"] + result.mlx_counts["valid"] == len(pairs) - \
        result.mlx_counts["held_for_review"]


def test_relink_writes_the_pairs_at_the_slider_value_even_unsaved(labelled, tmp_path, monkeypatch):
    world = copy_world(labelled[0], tmp_path / "world")
    monkeypatch.setenv("STUDIO_CONFIG", str(world.config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    saved = PipelineConfig.load(world.config).min_confidence
    at = AppTest.from_file(str(ROOT / "views" / "linking.py"), default_timeout=60).run()
    at.slider(key="min_confidence").set_value(0.85).run()
    at.button(key="run_link").click().run()
    assert not at.exception and not at.error
    deadline = time.monotonic() + 600
    while (status := task_status(world.workspace, "link")) is None or status.running:
        assert time.monotonic() < deadline, "the linking task did not finish"
        time.sleep(0.5)
    assert status.state == "done", status.error
    result = status.result["link"]
    assert result["min_confidence"] == 0.85
    config = PipelineConfig.load(world.config)
    assert config.min_confidence == saved  # not saved: the relink used the slider's value, not the config's
    pairs = [json.loads(line) for line in config.output_file.read_text().splitlines()]
    assert len(pairs) == result["pairs"] == link_counts(load_run_tables(world.workspace, result["run_id"]), 0.85,
                                                        result["top_k"])["pairs"]
    assert all(source["confidence"] >= 0.85 for pair in pairs for source in pair["metadata"]["sources"])
