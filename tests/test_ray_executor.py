"""The ray executor gives byte-identical results to the local one, on a real two-node Ray cluster on this machine.

One module-scoped cluster (a head node and a worker node, one CPU and a small object store each) serves every test;
the CLI runs as it would for a user (`python -m engine link|validate --executor ray --ray-address ADDR`) in a
subprocess that joins it. The local runs happen in a process that then checks it never imported Ray.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import socket
import sqlite3
import string
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import BASE_TIME, ROOT, GitRepoBuilder, sample_frames, write_screenpipe

if importlib.util.find_spec("ray") is None:  # found, not imported: collecting this file must not load Ray
    pytest.skip("the ray executor tests need Ray (requirements.txt pins it)", allow_module_level=True)

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's floor is 75 MiB; these worlds need a few MB
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_DISABLE_IMPORT_WARNING": "1"}
# Each side hashes strings differently (as two processes on two machines do): a result that depends on the
# iteration order of a set of strings shows up as a difference instead of passing by luck.
HASH_SEEDS = {"local": "1", "ray": "2"}
LOCAL_RUNNER = """
import json, sys
from engine.__main__ import main
codes = [main(args) for args in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "ray_modules": sorted(name for name in sys.modules if name.split(".")[0] == "ray")}))
"""


@pytest.fixture(scope="module")
def ray_address():
    """A real local Ray cluster: a head node and one worker node, one CPU each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


def run_local(*commands: list[str]) -> list[int]:
    """Run CLI verbs with --executor local in one fresh interpreter; assert Ray was never imported there."""
    done = subprocess.run([sys.executable, "-c", LOCAL_RUNNER, json.dumps(list(commands))], cwd=ROOT,
                          env={**ENV, "PYTHONHASHSEED": HASH_SEEDS["local"]}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ray_modules"] == [], f"the local executor imported {result['ray_modules'][:5]}"
    return result["codes"]


def run_ray(address: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args, "--executor", "ray", "--ray-address", address],
                          cwd=ROOT, env={**ENV, "PYTHONHASHSEED": HASH_SEEDS["ray"]}, capture_output=True, text=True,
                          timeout=600)


def config_pair(folder: Path, base: dict) -> tuple[Path, Path]:
    """Two configs over the same sources, writing their pairs to out-local/ and out-ray/."""
    paths = []
    for name in ("local", "ray"):
        config = json.loads(json.dumps(base))
        config.setdefault("paths", {})["output_file"] = f"out-{name}/training_data.jsonl"
        path = folder / f"config-{name}.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def stored_links(workspace: Path) -> list[tuple]:
    conn = sqlite3.connect(workspace / "studio.db")
    try:
        return conn.execute("SELECT commit_sha, k.content_hash, rank, confidence, semantic, keyword, time_score,"
                            " reference, evidence_json FROM links l JOIN knowledge k ON k.id = l.knowledge_id"
                            " ORDER BY commit_sha, rank").fetchall()
    finally:
        conn.close()


def assert_same_link_and_validate(folder: Path, tmp_path: Path, address: str, base_config: dict) -> dict:
    """link + validate with each executor on the same sources; every output byte-identical. Returns the pairs."""
    local_config, ray_config = config_pair(folder, base_config)
    workspaces = {name: tmp_path / f"ws-{name}" for name in ("local", "ray")}
    # validation in workspaces of its own: linking already scanned the pairs for the MLX folder, and a cached scan
    # would not exercise the executor
    checks = {name: tmp_path / f"validate-{name}" for name in ("local", "ray")}
    outputs = {name: {"findings": tmp_path / f"findings-{name}.json", "report": tmp_path / f"report-{name}.json"}
               for name in ("local", "ray")}
    pairs_local = folder / "out-local" / "training_data.jsonl"
    codes = run_local(
        ["link", "--config", str(local_config), "--workspace", str(workspaces["local"]), "--json",
         "--executor", "local"],
        ["validate", "--input", str(pairs_local), "--workspace", str(checks["local"]), "--findings",
         str(outputs["local"]["findings"]), "--json", str(outputs["local"]["report"]), "--executor", "local"])
    assert codes[0] == 0
    linked = run_ray(address, ["link", "--config", str(ray_config), "--workspace", str(workspaces["ray"]), "--json"])
    assert linked.returncode == 0, linked.stderr[-3000:]
    report = json.loads(linked.stdout)
    assert report["link"]["pairs"] > 0
    assert report["executor"] == {"name": "ray", "workers": 2}  # both nodes' CPUs
    for relative in ("training_data.jsonl", "data/train.jsonl", "data/valid.jsonl"):
        local_bytes = (folder / "out-local" / relative).read_bytes()
        assert local_bytes, relative
        assert (folder / "out-ray" / relative).read_bytes() == local_bytes, relative
    assert stored_links(workspaces["ray"]) == stored_links(workspaces["local"])

    validated = run_ray(address, ["validate", "--input", str(pairs_local), "--workspace", str(checks["ray"]),
                                  "--findings", str(outputs["ray"]["findings"]), "--json",
                                  str(outputs["ray"]["report"])])
    assert validated.returncode == codes[1], validated.stderr[-3000:]
    assert outputs["ray"]["findings"].read_bytes() == outputs["local"]["findings"].read_bytes()
    assert outputs["ray"]["report"].read_bytes() == outputs["local"]["report"].read_bytes()
    return {"report": report,
            "pairs": [json.loads(line) for line in pairs_local.read_text(encoding="utf-8").splitlines()],
            "findings": json.loads(outputs["local"]["findings"].read_text(encoding="utf-8"))}


def test_demo_links_and_validates_identically_on_ray(ray_address, tmp_path):
    from engine.demo import build_demo

    demo = build_demo(tmp_path / "demo").parent
    base = json.loads((demo / "pipeline_config.json").read_text(encoding="utf-8"))
    result = assert_same_link_and_validate(demo, tmp_path, ray_address, base)
    assert result["findings"], "the demo plants sensitive data the scan must find on both executors"


# -- a team of three, each with a screenpipe database and a repository --------------------------------------------
def _token(rng: random.Random) -> str:
    return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def build_team_world(root: Path) -> dict:
    """Three members' real screenpipe databases (current schema; one in the 2025 era) and git repositories, plus a
    repository two of them share. Their screens lead to their commits a few minutes later."""
    rng = random.Random(18)
    members = []
    shared = GitRepoBuilder(root / "shared-repo")
    for number, (name, era) in enumerate((("maya", "current"), ("lee", "current"), ("sam", "2025"))):
        start = BASE_TIME + timedelta(days=number)
        frames = [{**frame, "text": f"{frame['text']} ({name}'s screen)"}
                  for frame in sample_frames(80, start=start, seed=number)]
        frames.append({"moment": start + timedelta(minutes=5), "app": "Slack", "window": "#deploys", "url": None,
                       "text": f"{name}: the deploy token for the forecast cache is {_token(rng)}, please rotate "
                               "it after the retry fix lands; write to ops@example.com when done"})
        audio = [(start + timedelta(minutes=2), f"{name} here, so the retry on 503 needs exponential backoff with "
                                                "jitter, and the cache TTL must be computed in UTC not local time")]
        db = write_screenpipe(root / name / "db.sqlite", frames, era, audio)
        repo = GitRepoBuilder(root / name / "repo")
        repo.commit(f"Retry fetch_forecast on 503 with exponential backoff ({name})", {
            "client.py": "\n".join(f"def fetch_forecast_{i}(city, retries=3):\n    for attempt in range(retries):\n"
                                   f"        response = session.get(url_{i}, timeout=5)\n"
                                   "        if response.status_code != 503:\n            return response"
                                   for i in range(number + 2))}, when=start + timedelta(minutes=20))
        repo.commit(f"Compute the forecast cache TTL in UTC ({name})", {
            "cache.py": "\n".join(f"def ttl_{i}(now):\n    midnight = now.astimezone(UTC).replace(hour=0)\n"
                                  f"    expires = midnight + timedelta(days=1)\n    return (expires - now).seconds\n"
                                  for i in range(number + 2))}, when=start + timedelta(minutes=35))
        members.append({"name": name, "screenpipe_db": str(db.relative_to(root)),
                        "git_repo": [str(repo.path.relative_to(root))]})
        if number < 2:
            shared.commit(f"Add the {name} pytest fixtures for retries", {
                f"tests/test_{name}.py": "\n".join(f"def test_retry_{name}_{i}():\n    calls = []\n"
                                                   "    fetch_forecast('berlin', retries=3)\n"
                                                   "    assert len(calls) == 3\n" for i in range(3))},
                when=start + timedelta(minutes=10))
            members[-1]["git_repo"].append("shared-repo")
    return {"filtering": {"min_knowledge_length": 40, "min_code_lines": 3},
            "document_sources": {"directories": []}, "team": {"members": members}}


def test_team_world_links_and_validates_identically_on_ray(ray_address, tmp_path):
    world = tmp_path / "team"
    base = build_team_world(world)
    result = assert_same_link_and_validate(world, tmp_path, ray_address, base)
    # every member's screens reached the pairs, each tagged with who it came from
    source_ids = {source["source_id"] for pair in result["pairs"] for source in pair["metadata"]["sources"]}
    assert {source_id.split("/", 1)[0] for source_id in source_ids} == {"maya", "lee", "sam"}
    assert all(":" in source_id.split("/", 1)[1] for source_id in source_ids)
    assert {finding["kind"] for finding in result["findings"]} >= {"github_token"}, result["findings"][:3]
    # the repository maya and lee share is read once, under the first member who lists it
    read = [source["source"] for source in result["report"]["extract"]["sources"]]
    assert [label for label in read if label.endswith("git shared-repo")] == ["maya: git shared-repo"], read
    assert [label for label in read if "screenpipe frames" in label] == [
        "maya: screenpipe frames", "lee: screenpipe frames", "sam: screenpipe frames"]


def test_a_cluster_nobody_runs_is_one_sentence_at_once(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"instruction": "Add retries", "input": "", "output": "def f():\\n    return 1"}\n',
                     encoding="utf-8")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_ray(f"127.0.0.1:{port}", ["validate", "--input", str(pairs), "--workspace", str(tmp_path / "ws")])
    assert done.returncode == 1
    assert done.stderr == (f"error: No Ray cluster answers at 127.0.0.1:{port} (Connection refused); start one with "
                           "`ray start --head` there, or check --ray-address.\n")
