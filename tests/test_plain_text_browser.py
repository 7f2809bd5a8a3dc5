"""Nothing from the data is read as Markdown or HTML on any page: a world whose folder names, commit message, screen
window names, doc headings and conversation carry emphasis, HTML, headings, links, images, shortcodes and math is
shown on every page of the studio, in a real browser, and each planted piece reads exactly as written: no bold, no
italics, no heading, no link, no image, no request for the image."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from engine.collect import collect
from engine.extract import extract
from tests.browser import wait_for_app
from tests.conftest import BASE_TIME, sample_frames
from tests.test_collect import world_config, write_log

pytestmark = pytest.mark.browser

# Every planted string carries a marker (Zq + a digit) so the page's formatted elements can be searched for it.
FOLDER = "**Zq1** <i>Zq2</i> __Zq3__ [Zq4](x) ana@zq5.test"
SUBJECT = "Add **Zq6** <img src=x onerror=alert(1)> support to __init__ loading"
HEADING = "Setup **Zq7** <b>Zq8</b> :red[Zq9] $Zq0$"
WINDOW = "# Zq1w <em>notes</em> www.zq.test"
PAGES = {"Sources": "", "Linking": "linking", "Validation": "validation", "Review": "review", "Widgets": "widgets",
         "Training": "training", "Pipeline": "pipeline"}
FORMATTED = ("strong, em, b, i, h1, h2, h3, h4, h5, h6, img, a, table, .katex, "
             "[data-testid=stMarkdownContainer] span[style*='color']")


@pytest.fixture
def hostile_world(tmp_path, git_repo, screenpipe_db):
    root = tmp_path / FOLDER
    repo = git_repo("repo")
    code = "\n".join(f"def load_{index}(path):\n    return open(path).read() + '{index}'\n" for index in range(4))
    repo.commit(f"{SUBJECT}\n\nThe loader now reads **every** file; see <a href=x>Zq2b</a>.", {"loader.py": code},
                BASE_TIME + timedelta(hours=2))
    frames = sample_frames(8)
    for frame in frames:
        frame["window"] = WINDOW
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "guide.md").write_text(
        f"# Guide\n\n## {HEADING}\n\nThe loader keeps every file it read in a cache keyed by path and modification "
        "time, so a second read of the same file never touches the disk again; clear it with `loader.reset()`.\n",
        encoding="utf-8")
    write_log(root / "logs" / "chat.jsonl", [{"messages": [
        {"role": "user", "content": "How do I reset the **Zq3c** loader <br> cache?"},
        {"role": "assistant", "content": "Call loader.reset() — it empties the cache __Zq4c__ at once."}]}])
    config = world_config(root, git_repo=str(repo.path), screenpipe_db=str(screenpipe_db(frames=frames)),
                          document_sources={"directories": ["docs"], "extensions": [".md"]},
                          collect={"conversation_logs": ["logs"], "export_min_tier": "raw"})
    extract(config, config.workspace)
    collect(config, config.workspace)
    return config


def test_every_page_shows_the_data_as_plain_text(hostile_world, studio_url, browser_page, tmp_path):
    config = hostile_world
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    url = studio_url({"STUDIO_CONFIG": str(config.path), "STUDIO_REVIEWER": "dana"})
    for name, path in PAGES.items():
        page.goto(f"{url}/{path}")
        wait_for_app(page)
        page.wait_for_timeout(500)
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
        main = page.locator("[data-testid=stMain]")
        formatted = [element.inner_text() for element in main.locator(FORMATTED).all()]
        assert not [text for text in formatted if re.search(r"Zq\d", text)], (name, formatted)
        text = main.inner_text().replace("\u2060", "")
        assert FOLDER in text, name  # every page names its config or workspace folder, verbatim
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)

    # The Review page shows the collected commit, doc and conversation examples as they will be trained.
    page.goto(f"{url}/review")
    wait_for_app(page)
    texts = []
    for number in range(1, 4):
        expect(page.get_by_text(re.compile(rf"^Item {number} of 3 ·"))).to_be_visible()
        page.wait_for_timeout(1_000)  # the previous item's elements are replaced after the run ends
        texts.append("\n".join(element.inner_text() for element in page.locator("pre[data-field]").all()))
        assert not [text for text in (element.inner_text() for element in
                                      page.locator("[data-testid=stMain]").locator(FORMATTED).all())
                    if re.search(r"Zq\d", text)]
        if page.get_by_role("button", name="Next").is_enabled():
            page.get_by_role("button", name="Next").click()
            wait_for_app(page)
    shown = "\n".join(texts)
    assert SUBJECT in shown and "see <a href=x>Zq2b</a>." in shown  # the commit message is the answer
    # the doc section's heading in its instruction (the doc collector drops the heading's own ** markers)
    assert 'say about "Setup Zq7 <b>Zq8</b> :red[Zq9] $Zq0$"?' in shown
    assert "How do I reset the **Zq3c** loader <br> cache?" in shown and "__Zq4c__" in shown
    assert not [url for url in requested if url.endswith("/x") or "zq.test" in url or "zq5.test" in url]
