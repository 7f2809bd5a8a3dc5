"""The Pipeline page in a real browser on a fresh demo world: nothing collected yet, then Run now on mining_code
mines the demo, and its result appears in the job's row, in the totals, and in the run history; and while a real
`scheduler start` process runs, a job run elsewhere shows up on the open page without a click."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from engine.config import PipelineConfig
from engine.demo import build_demo
from engine.ops import scheduler, stats
from tests.browser import wait_for_app
from tests.conftest import ROOT

pytestmark = pytest.mark.browser


def test_run_now_shows_the_result_in_the_row_the_totals_and_the_history(studio_url, browser_page, tmp_path):
    config = PipelineConfig.load(build_demo(tmp_path / "demo"))
    page = browser_page
    page.goto(studio_url({"STUDIO_CONFIG": str(config.path)}) + "/pipeline")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Pipeline", exact=True)).to_be_visible()
    nav = page.get_by_test_id("stSidebarNav")  # a deep link on a fresh server still goes through the router
    expect(nav.get_by_text("Validation", exact=True)).to_be_visible()
    expect(nav.get_by_text("app", exact=True)).to_have_count(0)
    expect(page.get_by_text("Nothing collected yet: press Run now on mining_code")).to_be_visible()
    row = page.locator(".st-key-job-mining_code")
    expect(row).to_contain_text("Last run: never run")
    expect(page.get_by_text("No job has run in this workspace yet.")).to_be_visible()

    row.get_by_role("button", name="Run now").click()
    expect(row.get_by_text(re.compile(r"^mining_code finished in \d+\.\d s: "))).to_be_visible(timeout=30_000)
    wait_for_app(page)
    (run,) = scheduler.job_history(config.workspace)
    assert (run["job_id"], run["status"], run["trigger"]) == ("mining_code", "ok", "manual")
    total = stats.summary(config.workspace)["overall"]["total_examples"]
    assert total > 0 and f"+{total:,} examples" in run["summary"]
    # "just now" on a quiet machine; a few seconds ago on a loaded one.
    expect(row).to_contain_text(re.compile(rf"Last run: ok (just now|\d+ s ago) · {re.escape(run['summary'])}"))
    expect(row).to_contain_text(f"run {run['run_id']} · ")
    examples = page.get_by_test_id("stMetric").filter(has_text=re.compile(r"^Examples")).get_by_test_id("stMetricValue")
    expect(examples).to_have_text(f"{total:,}")
    expect(page.get_by_text("Nothing collected yet")).to_have_count(0)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)

    cells = page.locator(".st-key-recent-runs [data-testid=stDataFrame] td")  # the grid's accessible table
    expect(cells.filter(has_text=re.compile(r"^mining_code$"))).to_have_count(1)
    expect(cells.filter(has_text=re.compile(r"^ok$"))).to_have_count(1)
    expect(cells.filter(has_text=run["summary"])).to_have_count(1)
    page.screenshot(path=str(tmp_path / "pipeline.png"), full_page=True)


def test_while_the_scheduler_runs_the_page_follows_new_runs(studio_url, browser_page, tmp_path):
    config = PipelineConfig.load(build_demo(tmp_path / "demo"))
    workspace = config.workspace
    assert scheduler.run_job(config, workspace, "mining_code")["status"] == "ok"
    for job_id in ("quality_check", "dedup_cleanup", "export_training"):  # nothing due: the test decides what runs
        scheduler.configure_job(config, workspace, job_id, enabled=False)
    process = subprocess.Popen([sys.executable, "-m", "engine", "scheduler", "start", "--config", str(config.path)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not scheduler.scheduler_status(config, workspace)["running"]:
            assert process.poll() is None and time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.3)
        page = browser_page
        page.goto(studio_url({"STUDIO_CONFIG": str(config.path)}) + "/pipeline")
        wait_for_app(page)
        expect(page.get_by_text(f"Scheduler running · pid {process.pid}")).to_be_visible()
        row = page.locator(".st-key-job-quality_check")
        expect(row).to_contain_text("Last run: never run")
        run = scheduler.run_job(config, workspace, "quality_check")  # elsewhere: as the API or the CLI would
        expect(row).to_contain_text(re.compile(rf"Last run: ok [^·]+ · {re.escape(run['summary'])}"), timeout=15_000)
        expect(page.locator(".st-key-recent-runs [data-testid=stDataFrame] td").filter(
            has_text=re.compile(r"^quality_check$"))).to_have_count(1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
