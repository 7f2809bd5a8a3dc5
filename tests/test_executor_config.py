"""The executor switch and team members in the config: bad values are one sentence, team sources resolve, and the
local executor runs the same steps in order (without Ray)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.config import PipelineConfig, member_of
from engine.errors import ConfigError
from engine.executor import LocalExecutor, executor_choice
from tests.conftest import BASE_TIME, ROOT


def _config(tmp_path, raw: dict):
    path = tmp_path / "pipeline_config.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize("raw, expected", [
    ({"executor": {"name": "dask"}}, '`executor.name` must be "local" or "ray", but it is a string ("dask").'),
    ({"executor": {"ray_address": ""}}, "`executor.ray_address` must be a Ray address"),
    ({"team": {"members": [{"name": "maya lee", "git_repo": "repo"}]}}, "`team.members` must be a list of members"),
    ({"team": {"members": [{"name": "maya"}]}}, "at least one source"),
    ({"team": {"members": [{"name": "maya", "git_repo": "a"}, {"name": "maya", "git_repo": "b"}]}}, "distinct name"),
    ({"team": {"members": [{"name": "maya", "git_repo": "a", "laptop": "x"}]}}, "`team.members` must be"),
])
def test_bad_executor_and_member_values_are_one_sentence(tmp_path, raw, expected):
    path = _config(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        PipelineConfig.load(path)
    assert expected in str(caught.value)
    done = subprocess.run([sys.executable, "-m", "engine", "link", "--config", str(path), "--workspace",
                           str(tmp_path / "ws")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: pipeline_config.json: ") and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "ws").exists()


def test_team_members_are_sources_tagged_by_name(tmp_path):
    config = PipelineConfig.load(_config(tmp_path, {"team": {"members": [
        {"name": "maya", "screenpipe_db": "maya/db.sqlite", "git_repo": ["maya/repo", "shared"]},
        {"name": "lee", "git_repo": "shared"}]}}))
    assert config.screenpipe_sources == [("maya", tmp_path / "maya/db.sqlite")]
    assert config.git_sources == [("maya", tmp_path / "maya/repo"), ("maya", tmp_path / "shared"),
                                  ("lee", tmp_path / "shared")]
    # the config's own paths count in a team config only when the file names them
    config = config.with_values({"paths.screenpipe_db": "mine.sqlite"})
    assert config.screenpipe_sources[0] == (None, tmp_path / "mine.sqlite")
    assert config.git_sources[0][0] == "maya"
    solo = PipelineConfig.load(_config(tmp_path, {}))
    assert solo.screenpipe_sources == [(None, solo.screenpipe_db)] and solo.git_sources == [(None, solo.git_repos[0])]
    assert [member_of(source) for source in ("maya/ocr:12", "lee/audio:3", "ocr:12", "doc:docs/a/b.md")] == [
        "maya", "lee", None, None]


def test_executor_choice_flag_over_config_and_local_address_refused(tmp_path, capsys):
    config = PipelineConfig.load(_config(tmp_path, {"executor": {"name": "ray", "ray_address": "auto"}}))
    assert executor_choice(config) == ("ray", "auto")
    assert executor_choice(config, "local") == ("local", None)
    assert executor_choice(config, None, "head:6379") == ("ray", "head:6379")
    assert executor_choice(None) == ("local", None)
    from engine.__main__ import main

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("", encoding="utf-8")
    code = main(["validate", "--input", str(pairs), "--workspace", str(tmp_path / "ws"), "--executor", "local",
                 "--ray-address", "auto"])
    assert code == 1
    assert capsys.readouterr().err == ("error: --ray-address applies only to --executor ray; drop it or add "
                                       "--executor ray.\n")


def test_local_executor_maps_in_order_and_lazily():
    executor = LocalExecutor()
    seen = []

    def double(batch):
        seen.append(list(batch))
        return [item * 2 for item in batch]

    batches = executor.imap_batches(double, list(range(7)), 3)
    assert seen == []  # nothing runs before it is asked for
    assert next(batches) == [0, 2, 4] and seen == [[0, 1, 2]]
    assert executor.map_batches(double, list(range(7)), 3) == [0, 2, 4, 6, 8, 10, 12]
    assert list(executor.stream_tasks(lambda a, b: a + b, [(1, 2), (3, 4)])) == [3, 7]


def test_a_members_missing_source_is_named_by_the_member(tmp_path, git_repo):
    repo = git_repo("lee-repo")
    repo.commit("Add the client", {"client.py": "def fetch():\n    return 1\n"},
                when=BASE_TIME)
    path = _config(tmp_path, {"team": {"members": [{"name": "lee", "git_repo": str(repo.path)},
                                                    {"name": "maya", "screenpipe_db": "maya/db.sqlite"}]}})
    done = subprocess.run([sys.executable, "-m", "engine", "extract", "--config", str(path), "--workspace",
                           str(tmp_path / "ws")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == (f"error: `team.members` maya's screenpipe_db: no screenpipe database at "
                           f"{tmp_path / 'maya/db.sqlite'}; point it at your screenpipe db.sqlite (usually "
                           "~/.screenpipe/db.sqlite).\n")
    assert not (tmp_path / "ws").exists()
