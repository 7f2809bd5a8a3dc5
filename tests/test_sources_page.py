"""The Sources page through AppTest: what a person sees, with a real config, database and repository."""

import json
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import BASE_TIME, ROOT, sample_frames, write_screenpipe
from tests.page_text import shown


@pytest.fixture
def studio_env(tmp_path, git_repo, monkeypatch):
    repo = git_repo("weatherly")
    repo.commit("Add forecast client", {"client.py": "\n".join(f"x{i} = {i}" for i in range(9))}, BASE_TIME)
    repo.commit("Add cache", {"cache.py": "\n".join(f"c{i} = {i}" for i in range(7))}, BASE_TIME + timedelta(hours=1))
    db = write_screenpipe(tmp_path / "db.sqlite", sample_frames(90))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n" + "How the forecast cache expires entries. " * 5)
    config = tmp_path / "pipeline_config.json"
    config.write_text(json.dumps({
        "paths": {"screenpipe_db": "db.sqlite", "git_repo": "weatherly", "output_file": "out/training_data.jsonl"},
        "document_sources": {"directories": ["docs"], "extensions": [".md"]},
        "studio": {"workspace": "ws"}, "team": {"keep": "me"},
    }))
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    return config, db


def sources_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "views" / "sources.py"), default_timeout=30)


def test_page_shows_each_source_with_real_counts(studio_env):
    at = sources_page().run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["frames"] == "90"
    assert metrics["non-merge commits"] == "2"
    assert metrics["files"] == "1"
    assert any("schema era 2026-03" in shown(caption.value) for caption in at.caption)
    assert any("Nothing extracted" in info.value for info in at.info)


def test_extract_button_fills_the_workspace_and_shows_skips(studio_env):
    at = sources_page().run()
    at.button(key="extract").click().run()
    assert not at.exception and not at.error
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Commits"] == "2"
    assert int(metrics["Source rows behind them"]) == 74 + 1  # 74 long frames + 1 doc
    frames = at.dataframe[0].value
    assert list(frames["source"])[:2] == ["screenpipe frames", "screenpipe audio"]
    assert int(frames.loc[0, "read"]) == 90 and int(frames.loc[0, "skipped"]) == 16
    reasons = at.dataframe[1].value
    assert "shorter than min_knowledge_length (100)" in set(reasons["reason"])


def test_saving_the_config_keeps_unknown_keys_and_rejects_bad_values(studio_env):
    config, _ = studio_env
    at = sources_page().run()
    at.number_input(key="min_length").set_value(150)
    at.text_input(key="apps_exclude").set_value("Slack")
    at.button(key="save").click().run()
    assert not at.exception
    saved = json.loads(config.read_text())
    assert saved["filtering"]["min_knowledge_length"] == 150
    assert saved["screenpipe"]["apps_exclude"] == ["Slack"]
    assert saved["team"] == {"keep": "me"}
    at.text_input(key="since").set_value("next week")
    at.button(key="save").click().run()
    assert any("`screenpipe.since` must be a date" in shown(error.value) for error in at.error)
    assert json.loads(config.read_text())["screenpipe"].get("since") is None


def test_missing_config_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CONFIG", str(tmp_path / "nope.json"))
    at = sources_page().run()
    assert any("does not exist" in error.value for error in at.error)
    assert any("python -m engine demo" in info.value for info in at.info)


def test_broken_source_is_shown_not_raised(studio_env):
    _, db = studio_env
    db.write_bytes(b"garbage" * 100)
    at = sources_page().run()
    assert not at.exception
    assert any("is not an SQLite database" in error.value for error in at.error)


def test_app_routes_every_page_and_unbuilt_pages_say_what_they_will_do(studio_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Sources"
    source = (ROOT / "app.py").read_text()
    for page in ("sources", "linking", "validation", "widgets", "training", "compare", "pipeline"):
        assert f"views/{page}.py" in source
