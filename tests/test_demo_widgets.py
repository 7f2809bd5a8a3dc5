"""The demo's widget gallery goes through the whole widget pipeline from the workspace folder the page uses."""

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.demo import build_demo
from engine.uebersicht.apple_format import validate_jsonl

ROOT = Path(__file__).resolve().parent.parent


def widgets(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "widgets", *args], cwd=folder, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_demo_gallery_downloads_budgets_and_builds_an_apple_dataset(tmp_path):
    build_demo(tmp_path / "demo")
    folder = tmp_path / "demo" / "workspace" / "widgets"
    manifest = json.loads((folder / "widget_list.json").read_text())
    assert len(manifest["widgets"]) == 6
    done = widgets(folder, "download")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (folder / "downloads").iterdir() if not p.name.startswith(".")) == sorted(
        w["id"] for w in manifest["widgets"])
    assert widgets(folder, "report").returncode == 0
    assert widgets(folder, "prompts").returncode == 0
    assert widgets(folder, "evaluate").returncode == 0
    strategy = json.loads((folder / "training_data_strategy.json").read_text())
    assert strategy["strategy"]["Service-Dashboard"]["action"] == "exclude"  # its helper file blows the budget
    assert strategy["summary"] == {"keep": 4, "exclude": 1}
    assert widgets(folder, "evaluate", "--trim").returncode == 0
    strategy = json.loads((folder / "training_data_strategy.json").read_text())
    assert strategy["strategy"]["Service-Dashboard"]["action"] == "trim"
    done = widgets(folder, "create-dataset", "--set", "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    files = [folder / "datasets" / "demo" / f"{split}.jsonl" for split in ("train", "valid", "test")]
    assert sum(len(path.read_text().splitlines()) for path in files if path.exists()) == 5
    assert all(validate_jsonl(path) == [] for path in files if path.exists())
