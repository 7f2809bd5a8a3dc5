"""Linking with the real all-MiniLM-L6-v2 model and the shipped link model, on labelled data: the labelled world of
tests/linking_fixtures.py and the demo workspace (the link model is trained on real histories; these generated worlds
are held out). `best` must beat both seed modes; the CLI writes the pairs and an MLX folder that mlx-lm's own loader
reads; the link model's fitting is calibrated on data it was not fitted on."""

from __future__ import annotations

import json
import re

import pytest

from engine.config import PipelineConfig
from engine.linking.accuracy import evaluate_run, load_truth
from engine.pipeline import link_and_write
from tests.linking_fixtures import copy_world, prepared_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("labelled"))


def test_best_beats_both_seed_modes_on_the_labelled_set(labelled):
    """A generated world the link model never saw (it is trained on real histories only): editors, chat and docs
    explain commits here too, not only issue pages, so this pins that it still finds them."""
    world, runs = labelled
    truth = {sha: set(sources) for sha, sources in world.truth.items()}
    quality = {mode: evaluate_run(world.workspace, run.run_id, truth, 0.6, 3) for mode, run in runs.items()}
    semantic, hybrid, best = quality["semantic"], quality["hybrid"], quality["best"]
    assert best.precision >= 0.85
    assert best.recall >= max(semantic.recall, hybrid.recall) + 0.15
    assert best.commits_with_correct_link == best.commits  # every commit gets at least one right screen
    # the seed modes really ran and scored something (their calibrated confidences may all sit under 0.6)
    everything = {mode: evaluate_run(world.workspace, run.run_id, truth, 0.0, 3) for mode, run in runs.items()}
    assert everything["semantic"].correct_links > 0 and everything["hybrid"].correct_links > 0


def test_a_second_run_embeds_nothing_and_ranks_the_same(labelled, tmp_path):
    world, runs = labelled
    copy = copy_world(world, tmp_path / "copy")
    again = link_and_write(PipelineConfig.load(copy.config), copy.workspace, "best", write_outputs=False)
    assert again.embedded_texts == 0
    assert again.cached_texts == runs["best"].embedded_texts + runs["best"].cached_texts
    assert again.kept_links == runs["best"].kept_links


def test_cli_writes_pairs_with_the_metadata_contract_and_an_mlx_folder_mlx_lm_loads(labelled, tmp_path, capsys):
    from engine.__main__ import main

    world, _ = labelled
    copy = copy_world(world, tmp_path / "cli")
    assert main(["link", "--config", str(copy.config), "--mode", "best", "--min-confidence", "0.5",
                 "--top-k", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Average confidence: 0\.\d{3} \(range 0\.\d{3} - [01]\.\d{3}\)", out)
    pairs_line = re.search(r"Created (\d+) training entries from (\d+) linked commits", out)
    output = copy.config.parent / "output" / "training_data.jsonl"
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(lines) == int(pairs_line.group(1)) > 0
    shas = {story.sha for story in copy.stories}
    for pair in lines:
        assert set(pair) == {"instruction", "input", "output", "metadata"}
        meta = pair["metadata"]
        assert meta["commit_sha"] in shas and len(meta["commit_sha"]) == 40
        assert pair["input"].endswith(f"Task: Modify {meta['file_path']}")
        assert meta["confidence"] >= 0.5 and 1 <= len(meta["sources"]) <= 4
        assert meta["sources"][0]["confidence"] == meta["confidence"]
        assert meta["source_id"] == meta["sources"][0]["source_id"]
        assert meta["knowledge_type"] in ("ocr", "audio", "document")
        for source in meta["sources"]:
            assert {"source_id", "knowledge_type", "confidence", "timestamp", "app_name", "window_name"} <= set(source)
            assert source["source_id"] in source["source_ids"]
        assert pair["output"].strip() and pair["instruction"] == next(
            story.message for story in copy.stories if story.sha == meta["commit_sha"])

    from mlx_lm.tuner.datasets import load_dataset
    from transformers import AutoTokenizer

    from tests.tiny_model import build_tiny_model

    folder = copy.config.parent / "output" / "data"
    assert sorted(path.name for path in folder.iterdir()) == ["train.jsonl", "valid.jsonl"]
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))

    class Args:
        data = str(folder)
        train, test = True, False
        hf_dataset = None
        mask_prompt = False

    train, valid, test = load_dataset(Args(), tokenizer)
    assert len(train) + len(valid) == len(lines) and len(valid) >= 1
    tokens, offset = train.process(train[0])
    assert len(tokens) > 20 and offset == 0


def test_demo_workspace_links_each_commit_to_the_screens_that_discussed_it(tmp_path):
    from engine.demo import build_demo
    from engine.extract import extract

    config_path = build_demo(tmp_path / "demo")
    config = PipelineConfig.load(config_path)
    workspace = config.workspace
    extract(config, workspace)
    result = link_and_write(config, workspace, "best")
    truth = load_truth(config_path.parent / "ground_truth.json")
    from engine.linking.link import filter_links, load_links
    from engine.store import Workspace

    conn = Workspace.open(workspace).connect()
    try:
        kept = filter_links(load_links(conn, result.run_id), result.min_confidence, result.top_k)
        sources: dict[int, set[str]] = {}
        for representative, source_id in conn.execute(
            "SELECT g.representative_id, s.source_id FROM knowledge_groups g"
            " JOIN knowledge_sources s ON s.knowledge_id = g.knowledge_id"
        ):
            sources.setdefault(representative, set()).add(source_id)
        kind_of = dict(conn.execute("SELECT id, knowledge_type FROM knowledge").fetchall())
    finally:
        conn.close()
    explained, found = 0, 0
    for sha, wanted in truth.items():
        true_items = {item for item, seen in sources.items() if seen & wanted}
        linked = kept[kept["commit_sha"] == sha]["knowledge_id"].tolist()
        if true_items:
            explained += 1
            found += bool(true_items & set(linked))
        else:
            # No screen or audio explains it; a team doc may still be linked on meaning alone (documents have no
            # time, and the demo's onboarding guide does describe `python -m skycast`).
            kinds = {kind_of[item] for item in linked}
            assert kinds <= {"document"}, f"commit {sha[:10]} has no true knowledge but was linked to {linked}"
    assert explained >= len(truth) - 2  # the demo has two commits nothing on screen explains
    # Most are linked at the default threshold; the few whose evidence is only an editor or a terminal stay under
    # it (the demo shows links on both sides of the threshold).
    assert found >= explained - 4
    quality = evaluate_run(workspace, result.run_id, truth, result.min_confidence, result.top_k)
    assert quality.precision >= 0.9
    assert quality.commits_with_correct_link == found
