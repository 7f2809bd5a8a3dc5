"""The one readiness (engine.ops.stats): what the collected examples allow, and with `with_exported` what the
exported folder holds, as the API's /api/training and /api/self report it; folder_readiness is the gate POST
/api/train applies to a folder. Real folders on disk, an empty real workspace."""

from __future__ import annotations

import json

from engine.config import PipelineConfig
from engine.ops import stats
from engine.store import Workspace


def _lines(folder, split: str, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": f"question {n}", "completion": f"answer {n}"} for n in range(count)]
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_the_exported_folder_is_part_of_readiness_only_when_asked(tmp_path):
    workspace = Workspace.open(tmp_path / "ws").root
    config = PipelineConfig(raw={"collect": {"min_examples_for_training": 5}}, base_dir=tmp_path)
    plain = stats.training_readiness(config, workspace)
    assert "exported" not in plain
    exported = stats.training_readiness(config, workspace, with_exported=True)
    assert {key: value for key, value in exported.items() if key != "exported"} == plain
    assert exported["exported"] == {"data_folder": str(workspace / "datasets" / "collected"), "exists": False,
                                    "train": 0, "valid": 0, "test": 0, "examples": 0, "min_for_training": 5,
                                    "ready_to_train": False}

    collected = workspace / "datasets" / "collected"
    _lines(collected, "train", 3)
    _lines(collected, "valid", 1)
    _lines(collected, "test", 1)
    folder = stats.training_readiness(config, workspace, with_exported=True)["exported"]
    assert (folder["exists"], folder["examples"], folder["ready_to_train"]) == (True, 5, True)
    assert folder == stats.folder_readiness(config, workspace)


def test_a_broken_exported_folder_is_a_problem_in_the_answer_not_an_error(tmp_path):
    workspace = Workspace.open(tmp_path / "ws").root
    config = PipelineConfig(raw={"collect": {"min_examples_for_training": 5}}, base_dir=tmp_path)
    collected = workspace / "datasets" / "collected"
    collected.mkdir(parents=True)
    (collected / "train.jsonl").write_text("not json\n", encoding="utf-8")
    exported = stats.training_readiness(config, workspace, with_exported=True)["exported"]
    assert exported["ready_to_train"] is False and exported["examples"] == 0
    assert "train.jsonl" in exported["problem"]


def test_a_given_folder_is_counted_before_the_split(tmp_path):
    config = PipelineConfig(raw={"collect": {"min_examples_for_training": 4}}, base_dir=tmp_path)
    data = tmp_path / "data"
    _lines(data, "train", 2)
    _lines(data, "valid", 2)
    readiness = stats.folder_readiness(config, tmp_path / "ws", str(data))
    assert (readiness["train"], readiness["valid"], readiness["test"], readiness["examples"]) == (2, 2, 0, 4)
    assert readiness["ready_to_train"] and readiness["data_folder"] == str(data.resolve())
