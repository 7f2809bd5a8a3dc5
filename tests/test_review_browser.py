"""Review in a real browser: an answer lands on the pair shown, even right after an upload reorders the file (the
case where a picker bound to a position recorded "skip" on another line and replaced an earlier redact); pair
text is shown verbatim (HTML, Markdown, blank lines, a remote image link) with the finding masked in place and the
view scrolled to it; the Validation tab survives an upload."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from engine.dataset.review import decision_history, item_statuses
from engine.formats import pair_hash
from engine.store import Workspace
from tests.browser import wait_for_app
from tests.data_sensitive import write_training_jsonl

pytestmark = pytest.mark.browser


def settle(page) -> None:
    """Wait for the script run to finish and the new buttons to take their keyboard shortcuts."""
    wait_for_app(page)
    page.wait_for_timeout(1_000)


def _world(tmp_path, records: list[dict] | None = None, pairs: int = 6):
    (tmp_path / "output").mkdir()
    output = tmp_path / "output" / "training_data.jsonl"
    planted = write_training_jsonl(output, pairs=pairs) if records is None else None
    if records is not None:
        output.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    config = tmp_path / "pipeline_config.json"
    config.write_text(json.dumps({"paths": {"output_file": "output/training_data.jsonl", "git_repo": str(tmp_path)},
                                  "studio": {"workspace": "ws"}}))
    return config, output, planted


def _pick(page, label: str) -> None:
    picker = page.get_by_role("combobox", name=re.compile(r"^Item \("))
    picker.click()
    if not page.get_by_role("option").count():
        picker.press("ArrowDown")
    page.get_by_role("option", name=label, exact=True).click()
    settle(page)


def test_after_an_upload_the_answer_lands_on_the_pair_shown(studio_url, browser_page, tmp_path):
    config, output, planted = _world(tmp_path)
    records = [json.loads(line) for line in output.read_text().splitlines()]
    aws_line, stripe_line = planted["lines"]["aws"], planted["lines"]["stripe"]
    aws_key, stripe_key = pair_hash(records[aws_line - 1]), pair_hash(records[stripe_line - 1])
    page = browser_page
    page.goto(studio_url({"STUDIO_CONFIG": str(config), "STUDIO_REVIEWER": "dana"}) + "/validation")
    settle(page)
    page.get_by_role("tab", name="Review queue").click()
    settle(page)
    # The first pair waiting is the AWS one: its key is masked in place and marked; X (redact) answers it.
    expect(page.locator("pre[data-field=input] mark[data-kind=aws_access_key]")).to_have_count(1)
    page.keyboard.press("x")
    settle(page)
    expect(page.get_by_text(f"Recorded training_data.jsonl line {aws_line}: redact by dana.")).to_be_visible()

    # Upload the same pairs in reverse order: every line number changes under the picker.
    reordered = tmp_path / "reordered.jsonl"
    reordered.write_text("".join(json.dumps(record) + "\n" for record in reversed(records)), encoding="utf-8")
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(reordered))
    settle(page)
    expect(page.get_by_role("tab", name="Review queue")).to_have_attribute("aria-selected", "true")
    new_stripe_line = len(records) - stripe_line + 1
    _pick(page, f"reordered.jsonl line {len(records) - aws_line + 1} · aws_access_key · redact · you: redact")
    expect(page.locator("pre[data-field=input] mark[data-kind=aws_access_key]")).to_have_count(1)
    _pick(page, f"reordered.jsonl line {new_stripe_line} · stripe_key · pending")
    expect(page.locator("pre[data-field=output] mark[data-kind=stripe_key]")).to_have_count(1)
    expect(page.locator("mark[data-kind=aws_access_key]")).to_have_count(0)
    page.get_by_role("button", name="Skip").click()
    settle(page)
    expect(page.get_by_text(f"Recorded reordered.jsonl line {new_stripe_line}: skip by dana.")).to_be_visible()

    workspace = Workspace.open(tmp_path / "ws")
    assert [(d.decision, d.reviewer) for d in decision_history(workspace, stripe_key)] == [("skip", "dana")]
    assert [(d.decision, d.reviewer) for d in decision_history(workspace, aws_key)] == [("redact", "dana")]
    assert item_statuses(workspace)[aws_key].decision == "redact"  # the earlier redact stands
    assert planted["aws"] not in page.content() and planted["stripe"] not in page.content()


class _Pixel(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Pixel.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_pair_text_is_shown_verbatim_with_the_finding_in_view(studio_url, browser_page, tmp_path):
    pixel = ThreadingHTTPServer(("127.0.0.1", 0), _Pixel)
    threading.Thread(target=pixel.serve_forever, daemon=True).start()
    image = f"http://127.0.0.1:{pixel.server_port}/tracker.png"
    hostile = {
        "instruction": "Handle <img src=x onerror=alert(1)> in **bold** titles for __init__",
        "input": (f"# general\n\nfrom __future__ import annotations -> fine\n\n\n![logo]({image})\n"
                  "<script>document.title='owned'</script> | a | b |\n|---|---|\n$x^2$ :red[alert] :material/home:"),
        "output": "def __init__(self):\n    self.x = 1  # **not bold**\n",
        "metadata": {"commit_sha": "a" * 40, "confidence": 0.81, "file_path": "app.py"},
    }
    token = "ghp_" + "Q7mZ2xK9vL4rT8wN3cJ6yH1bF5sD0gA2eU7p"
    long_input = "".join(f"line {n}: the cache keeps answers for ten minutes\n" for n in range(80))
    deep = {"instruction": "Rotate the deploy token", "input": long_input + f"export GITHUB_TOKEN={token}\ndone\n",
            "output": "deploy()\n", "metadata": {"commit_sha": "b" * 40, "confidence": 0.7, "file_path": "d.py"}}
    config, output, _ = _world(tmp_path, [hostile, deep])
    page = browser_page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    url = studio_url({"STUDIO_CONFIG": str(config), "STUDIO_REVIEWER": "dana"})
    page.goto(url + "/validation")  # validation queues the file's pairs for review
    settle(page)
    page.goto(url + "/review")
    settle(page)
    try:
        _pick(page, "training_data.jsonl line 1 · no findings · pending")
        for field in ("instruction", "input", "output"):
            shown = page.locator(f"pre[data-field={field}]")
            assert shown.inner_text() == hostile[field], field  # every character, blank lines included
        assert page.locator("pre img, pre strong, pre script, pre h1, pre table, pre em").count() == 0
        assert not any("tracker.png" in url for url in requests) and _Pixel.hits == []
        assert page.title() != "owned"

        _pick(page, "training_data.jsonl line 2 · github_token · pending")
        box = page.locator("pre[data-field=input]")
        mark = box.locator("mark[data-kind=github_token]")
        expect(mark).to_have_count(1)
        offset = deep["input"].index(token)
        assert offset > 3000  # far below the top of the field: the box is scrolled to it
        page.wait_for_function("() => document.querySelector('pre[data-field=input]').scrollTop > 0")
        inside = page.evaluate("""() => { const box = document.querySelector('pre[data-field=input]');
            const mark = box.querySelector('mark'); const b = box.getBoundingClientRect();
            const m = mark.getBoundingClientRect(); return m.top >= b.top && m.bottom <= b.bottom; }""")
        assert inside
        assert token not in page.content()
        text = box.inner_text()
        assert text.startswith("line 0: the cache") and "\nexport GITHUB_TOKEN=••" in text and "[github_token]" in text
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    finally:
        pixel.shutdown()
