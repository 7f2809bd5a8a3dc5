"""Team mode in a real browser, with a real OIDC provider started by the test (oidc-provider-mock): two reviewers log
in through it, answer the same items with keyboard shortcuts, and the agreement, Cohen's kappa and conflicts the
Review page shows are the engine's numbers; every answer carries the logged-in identity; a viewer can read but not
decide; someone the config gives no role gets nothing."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from engine.dataset.review import agreement, count_decisions, item_statuses, save_review_settings
from engine.dataset.validate import validate_dataset
from engine.store import Workspace
from tests.browser import wait_for_app
from tests.conftest import _free_port
from tests.data_sensitive import write_training_jsonl
from tests.test_review_browser import settle

pytestmark = pytest.mark.browser

ROLES = {"ana@example.com": "reviewer", "bo@example.com": "reviewer", "vic@example.com": "viewer",
         "dana@example.com": "owner"}


@pytest.fixture
def oidc_provider():
    """A real OpenID Connect provider on a free loopback port; any client id and secret are accepted, and whoever
    types a subject on its authorization form is logged in as that subject (e-mail claim = subject)."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=0) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def team_studio(oidc_provider, studio_url, tmp_path):
    (tmp_path / "output").mkdir()
    output = tmp_path / "output" / "training_data.jsonl"
    write_training_jsonl(output, pairs=6)
    config = tmp_path / "pipeline_config.json"
    config.write_text(json.dumps({"paths": {"output_file": "output/training_data.jsonl", "git_repo": str(tmp_path)},
                                  "studio": {"workspace": "ws"}, "team": {"roles": ROLES}}))
    workspace = Workspace.open(tmp_path / "ws")
    validate_dataset(output, workspace)  # queues the flagged pairs and a sample
    save_review_settings(workspace, "dana@example.com", answers_per_item=2,
                         guidelines="Redact any **token**; <b>keep</b> false alarms.")
    port = _free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        'cookie_secret = "a-cookie-secret-for-this-test-only-0123456789"\n'
        'client_id = "training-data-studio"\n'
        'client_secret = "not-a-real-secret"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n')
    url = studio_url({"STUDIO_CONFIG": str(config), "HOME": str(tmp_path)}, ["--secrets", str(secrets)], port=port)
    return url, workspace


def log_in(browser, url: str, identity: str):
    """A fresh browser context (its own cookies) logged in as `identity` through the provider's form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.goto(f"{url}/review")
    wait_for_app(page)
    expect(page.get_by_text("This studio is shared by a team")).to_be_visible()
    page.get_by_role("button", name="Log in").click()
    page.locator("input[name=sub]").fill(identity)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(re.escape(url)))
    wait_for_app(page)
    page.goto(f"{url}/review")
    settle(page)
    expect(page.get_by_text(re.compile(f"^Signed in as {as_shown(identity)} ·"))).to_be_visible()
    return context, page


def as_shown(identity: str) -> str:
    """A pattern for an e-mail address as the page writes it: a word joiner after the @ keeps it from becoming a
    mailto link (views.ui.escape_markdown)."""
    return re.escape(identity).replace("@", "@\u2060?")


def answer_with_keys(page, identity: str, keys: str) -> None:
    """Press each answer key on the item shown; each answer moves the page on to the next item waiting for me."""
    for key in keys:
        shown = page.locator("[data-testid=stDataFrame]").first
        expect(shown).to_be_visible()
        page.keyboard.press(key)
        settle(page)
        expect(page.get_by_text(re.compile(rf"^Recorded .*: \w+ by {as_shown(identity)}\.$"))).to_be_visible()


def test_two_reviewers_answer_with_keys_and_the_page_shows_the_engines_agreement(team_studio, _browser, tmp_path):
    url, workspace = team_studio
    ana_context, ana = log_in(_browser, url, "ana@example.com")
    bo_context, bo = log_in(_browser, url, "bo@example.com")
    try:
        expect(ana.get_by_text("Guidelines")).to_be_visible()
        answer_with_keys(ana, "ana@example.com", "gbxg")
        answer_with_keys(bo, "bo@example.com", "ggxb")

        statuses = item_statuses(workspace)
        assert {reviewer for status in statuses.values() for reviewer in status.answers} == \
            {"ana@example.com", "bo@example.com"}  # the identity the provider vouched for, never a typed name
        found = agreement(statuses.values())
        # ana g b x g, bo g g x b on the same four items: 2 of 4 agree; p_e = (2*2 + 1*1 + 1*1) / 16 = 0.375
        assert (found.items, found.agreeing, found.percent) == (4, 2, 50.0)
        assert found.kappa == pytest.approx((0.5 - 0.375) / (1 - 0.375))
        conflicts = sorted(status.key for status in statuses.values() if status.state == "conflict")
        assert len(conflicts) == 2

        bo.get_by_role("tab", name="Agreement").click()
        settle(bo)
        metrics = bo.get_by_test_id("stMetric")
        expect(metrics.filter(has_text="Items with two or more answers")).to_contain_text(str(found.items))
        expect(metrics.filter(has_text="Agreement")).to_contain_text(f"{found.percent:.1f}%")
        expect(metrics.filter(has_text="Cohen's kappa")).to_contain_text(f"{found.kappa:.3f}")
        bo.get_by_role("tab", name="Conflicts").click()
        settle(bo)
        expect(bo.get_by_text(f"{len(conflicts)} items where reviewers disagree")).to_be_visible()
        expect(bo.get_by_text("Only an owner can settle a conflict")).to_be_visible()
        bo.screenshot(path=str(tmp_path / "conflicts.png"), full_page=True)
    finally:
        ana_context.close()
        bo_context.close()

    viewer_context, vic = log_in(_browser, url, "vic@example.com")
    try:
        before = count_decisions(workspace)
        expect(vic.get_by_role("button", name="Good (keep)")).to_be_disabled()
        expect(vic.get_by_text("Your role (viewer) cannot review.")).to_be_visible()
        vic.keyboard.press("g")
        settle(vic)
        assert count_decisions(workspace) == before
        expect(vic.locator("pre[data-field=instruction]")).to_be_visible()  # reading is allowed
    finally:
        viewer_context.close()


def test_someone_without_a_role_gets_nothing(team_studio, _browser):
    url, workspace = team_studio
    context, page = None, None
    context = _browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{url}/review")
        wait_for_app(page)
        page.get_by_role("button", name="Log in").click()
        page.locator("input[name=sub]").fill("mallory@elsewhere.test")
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(re.compile(re.escape(url)))
        wait_for_app(page)
        expect(page.get_by_text("who has no role in this studio")).to_be_visible()
        expect(page.get_by_role("heading", name="Review")).to_have_count(0)
        assert page.locator("pre[data-field]").count() == 0
    finally:
        context.close()
