"""Stage 1: downloads from a loopback server, hostile archives rejected and reported, the rest extracted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.errors import StudioError
from engine.uebersicht.download import DownloadLimits, download_widgets, extract_archive_safely
from engine.uebersicht.manifest import load_manifest, normalize_download_url, parse_manifest, select_widgets
from tests.widget_fixtures import LoopbackServer, build_gallery, tree, write_manifest, zip_bytes

LIMITS = DownloadLimits(max_expanded_bytes=1024 * 1024, timeout=5, retries=2, backoff=0.05, allow_loopback=True)


@pytest.fixture
def gallery(tmp_path):
    served = tmp_path / "served"
    with LoopbackServer(served) as server:
        yield build_gallery(served, server.url), server, tmp_path


def test_hostile_archives_are_reported_and_the_rest_succeed(gallery):
    built, server, tmp_path = gallery
    root = tmp_path / "work"
    manifest = load_manifest(write_manifest(root / "widget_list.json", built.manifest))
    assert ("../evil", "id '../evil' is not a plain name usable as a folder") in manifest.skipped
    before = tree(tmp_path)

    report = download_widgets(manifest.widgets, root / "downloads", LIMITS, log_path=root / "downloads" / ".log.json")

    results = {result.widget_id: result for result in report.results}
    for widget_id in built.good:
        assert results[widget_id].status == "downloaded", results[widget_id]
        assert (root / "downloads" / widget_id).is_dir()
    for widget_id, word in built.hostile.items():
        assert results[widget_id].status == "failed", results[widget_id]
        assert word in results[widget_id].reason, results[widget_id].reason
        assert not (root / "downloads" / widget_id).exists()
    # Nothing new outside downloads/, nothing escaped anywhere, no staging folder left behind.
    new = {path for path in tree(tmp_path) - before if not path.startswith("work/downloads")}
    assert new == set()
    assert not Path("/tmp", built.escape_marker).exists()
    assert not list(tmp_path.rglob(built.escape_marker))
    assert not [p for p in (root / "downloads").iterdir() if p.name.startswith(".partial-")]
    # Junk is dropped, in-archive links are not created, node_modules is kept on disk (it is the widget's).
    clock = root / "downloads" / "clock"
    assert sorted(str(p.relative_to(clock)) for p in clock.rglob("*")) == ["Clock.widget", "Clock.widget/index.jsx"]
    assert not (root / "downloads" / "battery" / "Battery.widget" / "same.jsx").exists()
    assert "1 in-archive links not created" in results["battery"].reason
    log = json.loads((root / "downloads" / ".log.json").read_text())
    assert log["bomb"]["status"] == "failed" and log["clock"]["status"] == "downloaded"


def test_second_run_skips_downloaded_widgets_without_fetching(gallery):
    built, server, tmp_path = gallery
    manifest = parse_manifest(built.manifest)
    widgets = select_widgets(manifest, ["clock", "battery"])
    download_widgets(widgets, tmp_path / "downloads", LIMITS)
    fetched = len(server.state.requests)
    report = download_widgets(widgets, tmp_path / "downloads", LIMITS)
    assert [r.status for r in report.results] == ["skipped", "skipped"]
    assert len(server.state.requests) == fetched


def test_server_errors_are_retried_and_client_errors_are_not(gallery):
    built, server, tmp_path = gallery
    manifest = parse_manifest(built.manifest)
    server.state.fail_first["/clock.widget.zip"] = 2  # two 503s, then the archive: needs both retries
    server.state.fail_first["/battery.widget.zip"] = 5  # more 503s than retries
    report = download_widgets(select_widgets(manifest, ["clock", "battery", "missing"]), tmp_path / "dl", LIMITS)
    by_id = {r.widget_id: r for r in report.results}
    assert by_id["clock"].status == "downloaded"
    assert by_id["battery"].status == "failed" and "after 3 attempts (last: HTTP 503)" in by_id["battery"].reason
    assert by_id["missing"].status == "failed"
    assert server.state.requests.count("/clock.widget.zip") == 3
    assert server.state.requests.count("/battery.widget.zip") == 3
    assert server.state.requests.count("/missing.widget.zip") == 1


def test_local_archives_only_from_inside_the_manifests_folder(tmp_path):
    """A manifest is a stranger's file: it may name archives in its own folder, never file:// URLs, absolute
    paths, `..` or a link leading out (issue 15, defect 7)."""
    folder = tmp_path / "widgets"
    (folder / "archives").mkdir(parents=True)
    (folder / "archives" / "a.zip").write_bytes(zip_bytes({"A.widget/index.jsx": "export const render = () => 1"}))
    (tmp_path / "private.zip").write_bytes(zip_bytes({"P.widget/index.jsx": "export const render = () => 2"}))
    (folder / "archives" / "out.zip").symlink_to(tmp_path / "private.zip")
    manifest = parse_manifest({"widgets": [
        {"id": "relative", "downloadUrl": "archives/a.zip"},
        {"id": "file-url", "downloadUrl": (folder / "archives" / "a.zip").as_uri()},
        {"id": "absolute", "downloadUrl": str(tmp_path / "private.zip")},
        {"id": "parent", "downloadUrl": "../private.zip"},
        {"id": "home", "downloadUrl": "~/private.zip"},
        {"id": "link-out", "downloadUrl": "archives/out.zip"},
        {"id": "absent", "downloadUrl": "archives/none.zip"},
        {"id": "ftp", "downloadUrl": "ftp://example.invalid/a.zip"},
    ]})
    report = download_widgets(manifest.widgets, tmp_path / "downloads", LIMITS, base_dir=folder)
    by_id = {r.widget_id: r for r in report.results}
    assert by_id["relative"].status == "downloaded"
    assert "only http(s) URLs and paths inside the manifest's folder" in by_id["file-url"].reason
    for widget_id in ("absolute", "parent", "home"):
        assert "outside the manifest's folder" in by_id[widget_id].reason, widget_id
    assert "leads outside the manifest's folder" in by_id["link-out"].reason
    assert "does not exist" in by_id["absent"].reason
    assert "only http(s) URLs" in by_id["ftp"].reason
    assert sorted(path.name for path in (tmp_path / "downloads").iterdir() if not path.name.startswith(".")) == [
        "relative"]


def test_archive_declaring_false_small_sizes_is_rejected(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"x.bin": b"\0" * 400_000, "y.bin": b"\0" * 400_000}))
    # Every member declares 1 byte, as a forged bomb would to pass the declared-size check: zipfile stops reading
    # at the declared size, the CRC then fails, and the archive is rejected as corrupt (nothing past the cap).
    import zipfile

    original = zipfile.ZipFile.infolist

    def lying(self):
        infos = original(self)
        for info in infos:
            info.file_size = 1
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying)
    with pytest.raises(StudioError, match="corrupt at member 'x.bin'"):
        extract_archive_safely(archive, tmp_path / "out", DownloadLimits(max_expanded_bytes=500_000))
    assert sum(path.stat().st_size for path in (tmp_path / "out").rglob("*") if path.is_file()) <= 500_000


def test_url_oddities_are_repaired():
    assert normalize_download_url("https://raw.githubusercontent.com/u/r/master/./My Widget.zip") == (
        "https://raw.githubusercontent.com/u/r/master/My%20Widget.zip"
    )
    assert normalize_download_url("https://github.com/u/r/blob/master/w.zip") == (
        "https://raw.githubusercontent.com/u/r/master/w.zip"
    )


def test_too_many_entries_is_rejected(tmp_path):
    archive = tmp_path / "many.zip"
    archive.write_bytes(zip_bytes({f"W.widget/d{i}/": b"" for i in range(30)}))
    with pytest.raises(StudioError, match="holds 30 entries, more than the cap of 20"):
        extract_archive_safely(archive, tmp_path / "out", DownloadLimits(max_files=20))
    assert not (tmp_path / "out").exists()


def test_github_folder_links_extract_only_that_folder(tmp_path):
    entry = parse_manifest({"widgets": [{"id": "w", "downloadUrl": "https://github.com/u/widgets/tree/main/My Clock"}]})
    widget = entry.widgets[0]
    assert widget.download_url == "https://github.com/u/widgets/archive/refs/heads/main.zip"
    assert widget.archive_subdir == "My Clock"
    archive = tmp_path / "repo.zip"
    archive.write_bytes(zip_bytes({"widgets-main/README.md": "x", "widgets-main/My Clock/index.jsx": "a",
                                   "widgets-main/My Clock/lib/x.js": "b", "widgets-main/Other/index.jsx": "c"}))
    result = extract_archive_safely(archive, tmp_path / "out", LIMITS, subdir=widget.archive_subdir)
    assert result.files == 2
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.js*")) == [
        "index.jsx", "lib/x.js"]
    with pytest.raises(StudioError, match="has no folder 'Nope'"):
        extract_archive_safely(archive, tmp_path / "out2", LIMITS, subdir="Nope")


def test_cli_download_and_report_with_seed_default_paths(gallery, monkeypatch, capsys):
    built, server, tmp_path = gallery
    work = tmp_path / "cli"
    write_manifest(work / "widget_list.json", built.manifest)
    monkeypatch.chdir(work)
    code = main(["widgets", "download", "--widgets", "clock,zipslip", "--max-expanded-mb", "1", "--allow-loopback"])
    captured = capsys.readouterr()
    assert code == 1  # one widget failed
    assert "failed: zipslip: The archive member" in captured.err
    assert "1 downloaded, 0 already there, 1 failed" in captured.out
    assert main(["widgets", "report"]) == 0
    header = (work / "widget_processing_results.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "OS_id" and {"PS_iscoffee", "PS_isJSX", "PS_widgetfoldername"} <= set(header)
    assert main(["widgets", "download", "--widgets", "nope"]) == 1
    assert "error: The manifest has no widget with id nope." in capsys.readouterr().err


def test_bad_manifests_are_one_sentence(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "shape.json").write_text('{"items": []}')
    assert main(["widgets", "download", "--manifest", str(tmp_path / "bad.json")]) == 1
    assert main(["widgets", "download", "--manifest", str(tmp_path / "shape.json")]) == 1
    assert main(["widgets", "download", "--manifest", str(tmp_path / "none.json")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: The widget manifest") for line in errors)
    assert "Traceback" not in "".join(errors)


def test_background_download_job_reports_progress_until_done(tmp_path):
    import os
    import time

    from engine.uebersicht import WidgetPaths
    from engine.uebersicht.jobs import download_job, progress_path, start_download_job

    built = build_gallery(tmp_path / "widgets" / "served", "served", extra_small=2)
    paths = WidgetPaths.under(tmp_path / "widgets")
    write_manifest(paths.manifest, built.manifest)
    assert download_job(paths) is None
    start_download_job(paths)
    deadline = time.monotonic() + 60
    while (job := download_job(paths)).running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.finished and job.problem is None and job.done == job.total == len(built.manifest["widgets"]) - 1
    # The 3 MB "bomb" is under the default 200 MB cap, so only the other hostile archives fail here.
    assert job.summary == f"{len(built.good) + 1} downloaded, 0 already there, {len(built.hostile) - 1} failed"
    assert (paths.downloads / "clock" / "Clock.widget" / "index.jsx").exists()

    # A job whose process is alive and unfinished blocks a second start; one that died says so.
    progress_path(paths).write_text(json.dumps({"pid": os.getpid(), "done": 1, "total": 9, "finished": False}))
    with pytest.raises(StudioError, match="already running"):
        start_download_job(paths)
    progress_path(paths).write_text(json.dumps({"pid": 2**22 + 12345, "done": 1, "total": 9, "finished": False}))
    assert download_job(paths).problem.startswith("The download process stopped before finishing")


def test_saving_an_uploaded_manifest_checks_it_first(tmp_path):
    from engine.uebersicht.manifest import save_manifest

    with pytest.raises(StudioError, match="The uploaded manifest is not JSON"):
        save_manifest(b"\xff\xfe not json", tmp_path / "widget_list.json")
    with pytest.raises(StudioError, match='has no "widgets" list'):
        save_manifest(b'{"items": []}', tmp_path / "widget_list.json")
    assert not (tmp_path / "widget_list.json").exists()
    saved = save_manifest(b'{"widgets": [{"id": "a", "downloadUrl": "a.zip"}]}', tmp_path / "widget_list.json")
    assert [w.id for w in saved.widgets] == ["a"] and (tmp_path / "widget_list.json").exists()


def test_cli_widget_file_selects_widgets(gallery, monkeypatch, capsys):
    built, server, tmp_path = gallery
    work = tmp_path / "pick"
    write_manifest(work / "widget_list.json", built.manifest)
    (work / "mine.txt").write_text("# my widgets\nclock\n\nbattery\n")
    monkeypatch.chdir(work)
    assert main(["widgets", "download", "--widget-file", "mine.txt", "--allow-loopback"]) == 0
    assert "2 downloaded, 0 already there, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in (work / "downloads").iterdir() if not p.name.startswith(".")) == ["battery", "clock"]
