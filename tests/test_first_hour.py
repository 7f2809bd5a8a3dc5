"""A newcomer's first hour, for real: a fresh copy of the repository, `make run` (the demo prepared, the server with
OpenBLAS preloaded, a few lines before the URL), then a real browser walks the demo end to end without forcing
anything: link, review a planted secret, export, train the default short run, deploy it, and see its answer differ
from the base model's on Compare. Afterwards the CLI, typed with no flags in the copy, says what the pages said."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from engine.processes import openblas_library
from tests.browser import wait_for_app
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow]
URL_LINE = re.compile(r"http://localhost:(\d+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_copy(target: Path) -> Path:
    """What a clone holds (tracked files and new files not ignored; no data/, no caches), with the shared
    virtualenv linked in so `make` finds its packages installed."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    return target


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """`make run` in a fresh copy: (copy, URL, the lines printed before the URL, the server's pid)."""
    clone = fresh_copy(tmp_path_factory.mktemp("clone"))
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDIO_")}
    log_path = clone.parent / "make-run.log"
    log = open(log_path, "w")
    process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=clone, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            lines = log_path.read_text().splitlines()
            if any(URL_LINE.search(line) for line in lines):
                break
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.5)
        else:
            raise AssertionError(f"make run printed no URL within 600 s:\n{log_path.read_text()}")
        before = lines[:next(index for index, line in enumerate(lines) if URL_LINE.search(line))]
        url = f"http://localhost:{port}"
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        import psutil

        server = next(child for child in psutil.Process(process.pid).children(recursive=True)
                      if "streamlit" in " ".join(child.cmdline()))
        yield clone, url, before, server.pid, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_make_run_on_a_fresh_copy_serves_with_openblas_after_a_few_lines(make_run):
    clone, _, before, pid, log_path = make_run
    assert len(before) < 50, "\n".join(before)
    assert any(line.startswith("Demo ready in") for line in before), "\n".join(before)
    assert not [line for line in log_path.read_text().splitlines() if "Inotify" in line or "Traceback" in line]
    blas = openblas_library()
    if blas is None:
        pytest.skip("no OpenBLAS on this machine (make run installs libopenblas0-pthread on Linux)")
    assert os.path.realpath(blas) in Path(f"/proc/{pid}/maps").read_text()


def _cli(clone: Path, *args: str) -> str:
    done = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "engine", *args], cwd=clone,
                          capture_output=True, text=True, timeout=300,
                          env={key: value for key, value in os.environ.items() if not key.startswith("STUDIO_")})
    assert done.returncode in (0, 3), done.stderr  # 3: validate and review say sensitive data waits
    return done.stdout


@pytest.mark.browser
@pytest.mark.timeout(1800)  # a real training run, a deploy and two generations on 2 cores: about 10 minutes
def test_a_browser_walks_the_demo_from_linking_to_a_changed_answer(make_run, browser_page, tmp_path):
    clone, url, _, _, _ = make_run
    page = browser_page
    page.set_default_timeout(60_000)

    # 1. Link again: a background task with progress, then its summary
    page.goto(f"{url}/linking")
    wait_for_app(page)
    page.get_by_role("button", name="Relink").click()
    expect(page.get_by_text(re.compile(r"Linked in \d+ s"))).to_be_visible(timeout=180_000)

    # 2. Review a planted secret: the Slack webhook pasted in the team's channel, redacted
    page.goto(f"{url}/validation")
    wait_for_app(page)
    page.get_by_role("tab", name="Review queue").click()
    wait_for_app(page)
    picker = page.get_by_role("combobox", name=re.compile(r"^Item \("))
    picker.scroll_into_view_if_needed()  # at the bottom edge, its list would not open
    picker.click()
    page.get_by_role("option", name=re.compile(r" line \d+ · .*slack_webhook.* · pending")).first.click()
    wait_for_app(page)
    page.get_by_role("button", name="Redact").click()
    recorded = page.get_by_text(re.compile(r"Recorded \S+ line (\d+): redact by "))
    expect(recorded).to_be_visible()
    redacted_line = int(re.search(r"line (\d+)", recorded.inner_text()).group(1))

    # 3. Export: enough pairs to train on without forcing anything
    page.get_by_role("tab", name="Export").click()
    page.get_by_role("button", name="Export MLX folder").click()
    exported = page.get_by_text(re.compile(r"Exported to .*: train (\d+), valid \d+, test \d+ \(1 redacted\)"))
    expect(exported).to_be_visible()
    assert int(re.search(r"train (\d+)", exported.inner_text()).group(1)) >= 100

    # 4. Train the default short run on it, watching one status everywhere
    page.goto(f"{url}/training")
    wait_for_app(page)
    page.get_by_role("combobox", name="Dataset").click()
    page.get_by_role("option", name="datasets/default").click()
    wait_for_app(page)
    expect(page.get_by_text(re.compile(r"^1\d\d training samples, \d+ validation"))).to_be_visible()
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Live run")).to_be_visible()
    expect(page.get_by_role("button", name="Start training")).to_be_disabled()
    expect(page.locator(".st-key-live-run [data-testid=stProgress]")).to_contain_text(
        re.compile(r"(converting|loading|training|evaluating)"))
    expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=1_200_000)
    wait_for_app(page)
    expect(page.get_by_text(re.compile(r"the adapter answers [1-9]\d* of \d+ held-out prompts? differently")
                            ).first).to_be_visible()

    # 5. Deploy it (the comparison with the base model runs in the background)
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_text(re.compile(r"v1 from run \S+ is now the current version"))).to_be_visible(
        timeout=600_000)

    # 6. Compare: the same held-out prompt, base beside the deployed adapter, and the answers differ
    page.goto(f"{url}/compare")
    wait_for_app(page)
    page.get_by_role("combobox", name="Example prompt from the training and held-out data").click()
    page.get_by_role("option", name=re.compile(r"^test #1: ")).click()
    wait_for_app(page)
    # the example filled the prompt
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).not_to_have_value("")
    page.get_by_role("button", name="Send to both").click()
    left = page.get_by_test_id("stColumn").filter(has_text="base smollm2-135m-instruct").filter(
        has=page.get_by_test_id("stCode")).last
    right = page.get_by_test_id("stColumn").filter(has_text="v1 (current)").filter(
        has=page.get_by_test_id("stCode")).last
    for column in (left, right):
        expect(column.get_by_text(re.compile(r"\d+ tokens · "))).to_be_visible(timeout=600_000)
    answers = [column.get_by_test_id("stCode").inner_text().strip() for column in (left, right)]
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert answers[0] and answers[1] and answers[0] != answers[1], answers

    # 7. The CLI, with no flags in the copy, says what the pages said
    page.goto(f"{url}/pipeline")
    wait_for_app(page)
    examples = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text("Examples", exact=True)).get_by_test_id("stMetricValue")
    shown_examples = int(examples.inner_text().replace(",", ""))
    stats = json.loads(_cli(clone, "stats", "json"))
    assert stats["overall"]["total_examples"] == shown_examples
    runs = _cli(clone, "train", "--list")
    (run_line,) = [line for line in runs.splitlines() if line.strip()]
    assert "completed" in run_line
    assert re.search(rf"^v1\s+active\s+run {run_line.split()[0]}", _cli(clone, "deploy", "list"), re.M)
    assert re.search(rf"^\s*{redacted_line}\b.*\bredact \(", _cli(clone, "review"), re.M)
