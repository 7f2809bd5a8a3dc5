import json
import math
from pathlib import Path

import pytest

from engine.config import PipelineConfig
from engine.errors import ConfigError

SEED_CONFIG = {
    "paths": {
        "screenpipe_db": "~/.screenpipe/db.sqlite",
        "git_repo": "~/ai/screenpipe",
        "output_file": "~/ai/screenpipe/training_pipeline/output/training_data.jsonl",
    },
    "document_sources": {
        "directories": ["~/ai/screenpipe/.github/workflows", "~/ai/screenpipe/docs"],
        "extensions": [".md", ".txt", ".rst", ".yml", ".yaml"],
    },
    "filtering": {"min_knowledge_length": 100, "min_code_lines": 5, "max_commits": 500, "top_k_matches": 3},
    "confidence": {"min_confidence": 0.6},
    "code_extensions": [".rs", ".py", ".ts", ".tsx", ".js", ".jsx"],
}


def write(tmp_path, data, name="pipeline_config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_seed_config_loads_unchanged_with_home_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = PipelineConfig.load(write(tmp_path, SEED_CONFIG))
    assert config.raw == SEED_CONFIG
    assert config.screenpipe_db == tmp_path / "home/.screenpipe/db.sqlite"
    assert config.git_repos == [tmp_path / "home/ai/screenpipe"]
    assert config.doc_directories[1] == tmp_path / "home/ai/screenpipe/docs"
    assert (config.min_knowledge_length, config.min_code_lines, config.max_commits, config.top_k) == (100, 5, 500, 3)
    assert config.min_confidence == 0.6
    assert config.code_extensions == [".rs", ".py", ".ts", ".tsx", ".js", ".jsx"]


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = PipelineConfig.load(write(tmp_path, {"paths": {"screenpipe_db": "sp/db.sqlite", "git_repo": ["a", "/b"]}}))
    assert config.screenpipe_db == tmp_path / "sp/db.sqlite"
    assert config.git_repos == [tmp_path / "a", Path("/b")]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"filtering": {"min_code_lines": "5"}}, "`filtering.min_code_lines` must be a whole number"),
        ({"filtering": {"max_commits": 0}}, "`filtering.max_commits` must be a whole number, 1 or more"),
        ({"confidence": {"min_confidence": 1.5}}, "`confidence.min_confidence` must be a number between 0 and 1"),
        ({"code_extensions": ["py"]}, "`code_extensions` must be a list of file extensions"),
        ({"paths": {"git_repo": 7}}, "`paths.git_repo` must be a path string or a list of path strings"),
        ({"paths": "db.sqlite"}, "`paths` must be an object"),
        ({"filtering": {"min_knowledge_length": True}}, "`filtering.min_knowledge_length` must be a whole number"),
        ({"screenpipe": {"since": "last tuesday"}}, "`screenpipe.since` must be a date or time"),
    ],
)
def test_wrong_types_name_the_key_and_what_is_expected(tmp_path, patch, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        PipelineConfig.load(write(tmp_path, {**SEED_CONFIG, **patch}))
    assert "pipeline_config.json" in str(info.value)


def test_malformed_json_and_missing_file_say_so(tmp_path):
    with pytest.raises(ConfigError, match="not valid JSON: .* line 1, column"):
        PipelineConfig.load(write(tmp_path, '{"paths": '))
    with pytest.raises(ConfigError, match="does not exist"):
        PipelineConfig.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        PipelineConfig.load(write(tmp_path, "[1, 2]"))


def test_saving_keeps_unknown_keys(tmp_path):
    data = {**SEED_CONFIG, "my_team": {"owner": "dana"}, "filtering": {**SEED_CONFIG["filtering"], "extra": 1}}
    path = write(tmp_path, data)
    updates = {"filtering.min_code_lines": 3, "screenpipe.apps_exclude": ["Slack"]}
    config = PipelineConfig.load(path).with_values(updates)
    config.save()
    saved = json.loads(path.read_text())
    assert saved["my_team"] == {"owner": "dana"}
    assert saved["filtering"]["extra"] == 1
    assert saved["filtering"]["min_code_lines"] == 3
    assert saved["screenpipe"] == {"apps_exclude": ["Slack"]}
    assert saved["paths"]["screenpipe_db"] == "~/.screenpipe/db.sqlite"  # stored as written, not expanded


def test_invalid_update_is_refused_before_saving(tmp_path):
    path = write(tmp_path, SEED_CONFIG)
    before = path.read_text()
    with pytest.raises(ConfigError, match="min_confidence"):
        PipelineConfig.load(path).with_values({"confidence.min_confidence": "high"}).save()
    assert path.read_text() == before


def test_one_resolution_of_config_and_workspace_for_pages_and_verbs(tmp_path, monkeypatch, capsys):
    """--config, else $STUDIO_CONFIG, else the studio's active config (data/workspace/pipeline_config.json), else
    the demo's; the workspace: --workspace, else $STUDIO_WORKSPACE, else the config's studio.workspace."""
    from engine.__main__ import main
    from engine.settings import active_config_path, active_workspace

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STUDIO_CONFIG", raising=False)
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    assert main(["stats", "summary"]) == 1  # nothing yet: one sentence that says how to get a config
    assert "No pipeline config yet" in capsys.readouterr().err

    def config(path: str, workspace: str) -> Path:
        file = tmp_path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps({"paths": {"git_repo": "."}, "studio": {"workspace": workspace}}))
        return file

    config("data/demo/pipeline_config.json", "demo-ws")
    assert active_config_path() == Path("data/demo/pipeline_config.json")
    assert active_workspace() == tmp_path / "data/demo/demo-ws"
    config("data/workspace/pipeline_config.json", "mine")
    assert active_config_path() == Path("data/workspace/pipeline_config.json")  # your own config wins over the demo
    other = config("elsewhere/cfg.json", "other-ws")
    monkeypatch.setenv("STUDIO_CONFIG", str(other))
    assert active_config_path() == other and active_workspace() == tmp_path / "elsewhere/other-ws"
    assert active_config_path("flag.json") == Path("flag.json")
    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "env-ws"))
    assert active_workspace() == tmp_path / "env-ws"
    assert active_workspace(flag=tmp_path / "flag-ws") == tmp_path / "flag-ws"
    monkeypatch.delenv("STUDIO_WORKSPACE")

    # every verb follows it, with no flag: the workspace the stats, versions and runs come from is the same
    assert main(["stats", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["workspace"] == str(tmp_path / "elsewhere/other-ws")
    assert main(["train", "--list"]) == 0 and "No training runs yet" in capsys.readouterr().out
    assert (tmp_path / "elsewhere/other-ws/studio.db").exists()
    assert main(["deploy", "list"]) == 0 and "No versions yet" in capsys.readouterr().out
    assert main(["train", "--config", str(tmp_path / "missing.json"), "--list"]) == 1  # --config is the pipeline config
    assert "missing.json does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"filtering": {"top_k_matches": 1001}},
         "`filtering.top_k_matches` must be a whole number from 1 to 1000, but it is a number (1001)."),
        ({"filtering": {"top_k_matches": 0}}, "`filtering.top_k_matches` must be a whole number from 1 to 1000"),
        ({"linking": {"time_window_days": float("inf")}},
         "`linking.time_window_days` must be a number of days above 0 and at most 36,500, but it is a number "
         "(Infinity)."),
        ({"confidence": {"min_confidence": float("nan")}},
         "`confidence.min_confidence` must be a number between 0 and 1, but it is a number (NaN)."),
        ({"scheduler": {"debounce_seconds": -float("inf")}}, "`scheduler.debounce_seconds` must be a number of "
         "seconds from 0 to 604,800 (a week)"),
        ({"team": {"roles": {"dana@example.com": "admin"}}}, '`team.roles` must be an object mapping e-mail '
         'addresses, "*@domain" or "*" to "owner", "reviewer" or "viewer", but it is an object'),
        ({"collect": {"export_min_tier": "platinum"}},
         '`collect.export_min_tier` must be "gold", "silver", "bronze" or "raw", but it is a string ("platinum").'),
    ],
)
def test_numbers_are_finite_and_bounded_and_errors_name_the_declared_key(tmp_path, patch, message):
    """JSON as Python reads it allows NaN and Infinity; the schema refuses them, and an error deep inside a value
    (a role, a list item) names the key the schema declares, in one sentence."""
    with pytest.raises(ConfigError) as info:
        PipelineConfig.load(write(tmp_path, {**SEED_CONFIG, **patch}))
    assert message in str(info.value)
    assert str(info.value).count("\n") == 0


def test_top_k_at_its_bound_and_unknown_keys_of_any_value_load(tmp_path):
    config = PipelineConfig.load(write(tmp_path, {**SEED_CONFIG, "filtering": {"top_k_matches": 1000},
                                                  "linking": {"extra": float("nan")}, "later": [None]}))
    assert config.top_k == 1000
    assert math.isnan(config.get("linking.extra"))  # an unknown key is kept as written, never checked


def test_every_key_declares_what_it_must_be_and_the_defaults_pass_their_own_schema():
    """The defaults, the ranges and the error phrases come from one declaration: a default outside its own range,
    or a key without the phrase its error sentence needs, fails here."""
    from pydantic import BaseModel

    from engine.config import DEFAULTS, ConfigSchema

    def undescribed(model: type[BaseModel], prefix: str) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():
            if not info.description:
                missing.append(prefix + name)
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                missing += undescribed(info.annotation, f"{prefix}{name}.")
        return missing

    assert undescribed(ConfigSchema, "") == []
    ConfigSchema.model_validate(DEFAULTS)
    assert PipelineConfig(raw={}, base_dir=Path(".")).get("filtering") == DEFAULTS["filtering"]
