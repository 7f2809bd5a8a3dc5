"""A small Übersicht widget gallery for the demo: real-looking widgets (JSX, CoffeeScript, multi-file, one too big
for the 4,095-token budget) as zip archives, and a manifest in the gallery's format pointing at them, so the
Widgets page has something to download, analyse, budget and turn into a dataset on a fresh machine."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import yaml

ZIP_TIME = (2026, 10, 1, 12, 0, 0)

SOURCES: dict[str, str] = yaml.safe_load(Path(__file__).with_name("widget_sources.yaml").read_text(encoding="utf-8"))


def _big_dashboard() -> dict[str, str]:
    """A multi-file widget whose helper library pushes it past the token budget (for exclude and trim)."""
    helpers = ["// Formatting helpers shared by the dashboard panels.\n"]
    for index in range(60):
        helpers.append(
            f"export const formatMetric{index} = (value, unit = \"ms\") => {{\n"
            f"  // panel {index}: round, add thousands separators and the unit\n"
            f"  const rounded = Math.round(value * 100) / 100\n"
            f"  return `${{rounded.toLocaleString(\"en-US\")}} ${{unit}}`\n"
            f"}}\n"
        )
    return {
        "Dashboard.widget/index.jsx": SOURCES["DASHBOARD_INDEX"],
        "Dashboard.widget/format.helpers.jsx": "".join(helpers) * 3,
        "Dashboard.widget/stats.sh": "#!/bin/sh\ncurl -s http://localhost:9090/stats.csv\n",
    }


WIDGETS = [
    ("Minimal-Clock", "Minimal Clock", "Ana Lopes", "A large thin clock with the weekday and date",
     {"Minimal-Clock.widget/index.jsx": SOURCES["CLOCK"]}),
    ("Battery-Pill", "Battery Pill", "Kenji Sato", "Battery level and charging state, colour coded",
     {"Battery-Pill.widget/index.jsx": SOURCES["BATTERY"], "Battery-Pill.widget/.DS_Store": "\x00\x00\x00\x01Bud1"}),
    ("wttr-weather", "wttr weather", None, "Current weather from wttr.in in the corner of the desktop",
     {"wttr-weather.widget/index.coffee": SOURCES["WEATHER_COFFEE"]}),
    ("cpu-sparkline", "CPU Sparkline", "Priya N", "A CPU usage sparkline; click to open Activity Monitor",
     {"cpu.widget/index.jsx": SOURCES["CPU_JSX"], "cpu.widget/cpu.sh": SOURCES["CPU_SH"],
      "__MACOSX/cpu.widget/._index.jsx": "\x00"}),
    ("Now-Playing", "Now Playing", "Lena Hoffmann", "The song playing in Music, with its artist",
     {"index.jsx": SOURCES["NOW_PLAYING"]}),
    ("Service-Dashboard", "Service Dashboard", "Ops Team", "Latency and error rate from a local stats endpoint",
     _big_dashboard()),
]


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(members.items()):
            archive.writestr(zipfile.ZipInfo(name, date_time=ZIP_TIME), text.encode("utf-8"))
    return buffer.getvalue()


def build_widget_gallery(widgets_folder: Path) -> Path:
    """Write the archives into `widgets_folder`/gallery and the manifest (the seed's widget_list.json) into
    `widgets_folder`, with download URLs relative to the manifest's folder (the downloader reads local archives only
    from inside it). Returns the manifest path."""
    gallery = widgets_folder / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (widget_id, name, author, description, members) in enumerate(WIDGETS):
        archive = gallery / f"{widget_id}.widget.zip"
        archive.write_bytes(_zip(members))
        entry = {"id": widget_id, "name": name, "author": author, "user": widget_id.lower(), "repo": widget_id,
                 "description": description, "screenshotUrl": f"https://example.invalid/{widget_id}.png",
                 "downloadUrl": Path(gallery.name, archive.name).as_posix(),
                 "repoUrl": f"https://github.com/{widget_id.lower()}/{widget_id}",
                 "modifiedAt": 1_759_300_000_000 + index * 86_400_000}
        entries.append({key: value for key, value in entry.items() if value is not None})
    manifest = widgets_folder / "widget_list.json"
    manifest.write_text(json.dumps({"widgets": entries}, indent=2) + "\n", encoding="utf-8")
    return manifest
