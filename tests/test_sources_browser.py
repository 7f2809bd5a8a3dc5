"""The real app in a real browser: the Sources page shows real counts, extract runs, unbuilt pages explain."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser import wait_for_app
from tests.conftest import BASE_TIME, sample_frames, write_screenpipe

pytestmark = pytest.mark.browser


@pytest.fixture
def config_env(tmp_path, git_repo):
    repo = git_repo("weatherly")
    repo.commit("Add forecast client", {"client.py": "\n".join(f"x{i} = {i}" for i in range(9))}, BASE_TIME)
    write_screenpipe(tmp_path / "db.sqlite", sample_frames(130))
    (tmp_path / "docs").mkdir()
    config = tmp_path / "pipeline_config.json"
    config.write_text(json.dumps({
        "paths": {"screenpipe_db": "db.sqlite", "git_repo": "weatherly"},
        "document_sources": {"directories": ["docs"], "extensions": [".md"]}, "studio": {"workspace": "ws"},
    }))
    return {"STUDIO_CONFIG": str(config)}


def test_sources_page_counts_and_extract_in_the_browser(studio_url, browser_page, config_env, tmp_path):
    page = browser_page
    page.goto(studio_url(config_env))
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Sources", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="frames")).to_contain_text("130")
    expect(page.get_by_text("schema era 2026-03 (frames.full_text)")).to_be_visible()
    page.get_by_role("button", name="Extract into workspace").click()
    expect(page.get_by_text(re.compile(r"Done in \d+\.\d s"))).to_be_visible(timeout=30_000)
    wait_for_app(page)
    expect(page.get_by_test_id("stMetric").filter(has_text=re.compile(r"^Commits"))).to_contain_text("1")
    expect(page.get_by_text("Skipped, and why")).to_be_visible()
    page.screenshot(path=str(tmp_path / "sources.png"), full_page=True)
