"""Shared fixtures: real screenpipe databases, real git repositories, a real Streamlit server, a real browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# -- git -------------------------------------------------------------------------------------------------------
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dana Dev", "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Dev", "GIT_COMMITTER_EMAIL": "dana@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepoBuilder:
    """Make a real git repository and commit files to it with fixed dates."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, when: datetime | None = None) -> str:
        env = {**os.environ, **GIT_ENV}
        if when:
            stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
            env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        return subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=self.path, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def commit(self, message: str, files: dict[str, str | bytes | None], when: datetime) -> str:
        """Write (str/bytes) or delete (None) files, commit them all; return the full sha."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
            self.git("add", name)
        self.git("commit", "-q", "-m", message, when=when)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path):
    """A factory: git_repo("name") -> GitRepoBuilder for a new repository under tmp_path."""
    return lambda name="repo": GitRepoBuilder(tmp_path / name)


# -- screenpipe -------------------------------------------------------------------------------------------------
BASE_TIME = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)


def sample_frames(count: int, start: datetime = BASE_TIME, seed: int = 0) -> list[dict]:
    """Realistic frames with screenpipe-like repetition: each screen is captured several times in a row."""
    screens = [
        ("Google Chrome", "Issue #42 · retry on 503 · acme/weatherly", "https://github.com/acme/weatherly/issues/42",
         "acme/weatherly Issues #42 Client does not retry on 503 Service Unavailable. When the upstream API returns "
         "503 the fetch_forecast call fails at once; we should retry with exponential backoff and jitter."),
        ("Code", "client.py — weatherly", None,
         "def fetch_forecast(city: str, retries: int = 3) -> Forecast:\n    for attempt in range(retries):\n"
         "        response = session.get(url, timeout=5)\n        if response.status_code != 503: break"),
        ("iTerm2", "pytest — weatherly", None,
         "FAILED tests/test_client.py::test_retry_on_503 - AssertionError: expected 3 calls, got 1\n"
         "========= 1 failed, 41 passed in 2.31s ========="),
        ("Slack", "#weatherly-dev", None,
         "maria: the forecast cache returns stale data after midnight UTC, can someone look at cache invalidation? "
         "dana: on it, I think the TTL is computed from local time"),
        ("Finder", "Downloads", None, "Finder File Edit View"),
    ]
    frames = []
    for index in range(count):
        app, window, url, text = screens[(index // 4 + seed) % len(screens)]
        moment = start + timedelta(seconds=3 * index, microseconds=(index * 137_000) % 1_000_000)
        frames.append({"moment": moment, "text": f"{text} (view {index // 20})", "app": app, "window": window,
                       "url": url})
    return frames


def write_screenpipe(path: Path, frames: list[dict], era: str = "current", audio: list[tuple] = ()) -> Path:
    from engine.demo.screenpipe_builder import ScreenpipeWriter

    with ScreenpipeWriter(path, era=era) as writer:
        for frame in frames:
            writer.add_frame(frame["moment"], frame["text"], frame["app"], frame["window"], frame.get("url"))
        for moment, text in audio:
            writer.add_audio(moment, text)
    return path


@pytest.fixture
def screenpipe_db(tmp_path):
    """A factory: screenpipe_db(frames=..., era=..., audio=..., name=...) -> path of a real screenpipe database."""
    def make(frames=None, era="current", audio=(), name="db.sqlite"):
        return write_screenpipe(tmp_path / era / name, sample_frames(120) if frames is None else frames, era, audio)
    return make


# -- the studio in a real server and a real browser ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def studio_url(tmp_path):
    """A factory: studio_url({"STUDIO_WORKSPACE": ...}, [serve flags]) starts the studio as `make run` does
    (`python -m engine serve`: the app behind the Host allow-list) and returns its URL."""
    servers = []

    def start(env: dict | None = None, args: list[str] | tuple[str, ...] = (), port: int | None = None) -> str:
        port = port or _free_port()
        log = open(tmp_path / f"streamlit-{port}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--port", str(port), *args],
            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )
        servers.append((process, log))
        deadline = time.time() + 60
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited: {(tmp_path / f'streamlit-{port}.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return f"http://localhost:{port}"
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("streamlit did not become healthy within 60 s")

    yield start
    for process, log in servers:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def _browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; `make test` installs it with apt-get (package chromium).")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make test does) to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser):
    """A fresh Playwright page (1400x1000) in Debian chromium."""
    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
