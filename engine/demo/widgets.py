"""A small Übersicht widget gallery for the demo: real-looking widgets (JSX, CoffeeScript, multi-file, one too big
for the 4,095-token budget) as zip archives, and a manifest in the gallery's format pointing at them, so the
Widgets page has something to download, analyse, budget and turn into a dataset on a fresh machine."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

ZIP_TIME = (2026, 10, 1, 12, 0, 0)

CLOCK = """\
import { css } from "uebersicht"

export const command = "date '+%H:%M|%A, %d %B'"
export const refreshFrequency = 10 * 1000

export const className = css`
  top: 24px;
  left: 32px;
  color: rgba(255, 255, 255, 0.92);
  font-family: -apple-system, "SF Pro Display", sans-serif;
  text-shadow: 0 1px 3px rgba(0, 0, 0, 0.35);
`

const time = css`font-size: 64px; font-weight: 200; letter-spacing: -2px;`
const day = css`font-size: 15px; text-transform: uppercase; opacity: 0.75;`

export const render = ({ output, error }) => {
  if (error) return <div>clock: {String(error)}</div>
  const [hhmm, date] = (output || "").trim().split("|")
  return (
    <div>
      <div className={time}>{hhmm}</div>
      <div className={day}>{date}</div>
    </div>
  )
}
"""

BATTERY = """\
export const command = "pmset -g batt | grep -Eo '[0-9]+%|charging|discharging|charged' | paste -sd ' ' -"
export const refreshFrequency = 60 * 1000

export const className = `
  bottom: 16px;
  right: 20px;
  font: 13px Menlo, monospace;
  color: #e8e8e8;
  background: rgba(20, 20, 20, 0.55);
  padding: 6px 10px;
  border-radius: 8px;
`

const color = (percent) => (percent < 20 ? "#ff5f56" : percent < 50 ? "#ffbd2e" : "#27c93f")

export const render = ({ output }) => {
  const [level = "0%", state = "unknown"] = (output || "").trim().split(" ")
  const percent = parseInt(level, 10)
  return (
    <div>
      <span style={{ color: color(percent) }}>&#9646;</span> {level} <small>{state}</small>
    </div>
  )
}
"""

WEATHER_COFFEE = """\
# Current weather from wttr.in, refreshed every 15 minutes.
command: "curl -s 'https://wttr.in/Berlin?format=%c+%t+%w'"

refreshFrequency: 900000

style: \"\"\"
  top: 24px
  right: 32px
  color: #fff
  font-family: Helvetica Neue
  font-size: 22px
  font-weight: 300
\"\"\"

render: (output) -> \"\"\"
  <div class="weather">#{output}</div>
\"\"\"

update: (output, domEl) ->
  $(domEl).find('.weather').text(output.trim() or 'offline')
"""

CPU_JSX = """\
import { run } from "uebersicht"

export const command = "sh cpu.widget/cpu.sh"
export const refreshFrequency = 2000

export const initialState = { samples: [] }

export const updateState = (event, previous) => {
  if (event.error) return previous
  const value = parseFloat(event.output)
  return { samples: [...previous.samples.slice(-29), isNaN(value) ? 0 : value] }
}

export const className = `
  left: 32px;
  bottom: 24px;
  width: 180px;
  font: 11px Menlo, monospace;
  color: #cfd8dc;
`

const bar = (value, index) => (
  <div key={index} style={{ display: "inline-block", width: 5, marginRight: 1, height: Math.max(1, value * 0.4),
    background: value > 80 ? "#ef5350" : "#4fc3f7", verticalAlign: "bottom" }} />
)

export const render = ({ samples }) => (
  <div onClick={() => run("open -a 'Activity Monitor'")}>
    <div>CPU {samples.length ? samples[samples.length - 1].toFixed(0) : "--"}%</div>
    <div style={{ height: 40 }}>{samples.map(bar)}</div>
  </div>
)
"""

CPU_SH = """\
#!/bin/sh
# Sum of %CPU over all processes, divided by the number of cores.
cores=$(sysctl -n hw.ncpu)
ps -A -o %cpu | awk -v cores="$cores" 'NR > 1 { total += $1 } END { printf "%.1f", total / cores }'
"""

NOW_PLAYING = """\
export const command = `osascript -e '
  if application "Music" is running then
    tell application "Music"
      if player state is playing then return (name of current track) & " — " & (artist of current track)
    end tell
  end if
  return ""'`

export const refreshFrequency = 5000

export const className = `
  top: 120px;
  left: 32px;
  max-width: 420px;
  color: white;
  font: 14px -apple-system, sans-serif;
  opacity: 0.85;
`

export const render = ({ output }) => {
  const song = (output || "").trim()
  return song ? <div>&#9835; {song}</div> : null
}
"""


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
    index_jsx = """\
import { formatMetric0, formatMetric1 } from "./lib/format.js"

export const command = "sh dashboard.widget/stats.sh"
export const refreshFrequency = 30 * 1000

export const className = `
  top: 200px;
  right: 32px;
  width: 320px;
  padding: 12px 16px;
  border-radius: 12px;
  background: rgba(15, 23, 42, 0.7);
  color: #e2e8f0;
  font: 12px -apple-system, sans-serif;
`

export const render = ({ output }) => {
  const [latency = 0, errors = 0] = (output || "").trim().split(",").map(Number)
  return (
    <div>
      <h3>Service health</h3>
      <div>p95 latency: {formatMetric0(latency)}</div>
      <div>errors/min: {formatMetric1(errors, "")}</div>
    </div>
  )
}
"""
    return {
        "Dashboard.widget/index.jsx": index_jsx,
        "Dashboard.widget/format.helpers.jsx": "".join(helpers) * 3,
        "Dashboard.widget/stats.sh": "#!/bin/sh\ncurl -s http://localhost:9090/stats.csv\n",
    }


WIDGETS = [
    ("Minimal-Clock", "Minimal Clock", "Ana Lopes", "A large thin clock with the weekday and date",
     {"Minimal-Clock.widget/index.jsx": CLOCK}),
    ("Battery-Pill", "Battery Pill", "Kenji Sato", "Battery level and charging state, colour coded",
     {"Battery-Pill.widget/index.jsx": BATTERY, "Battery-Pill.widget/.DS_Store": "\x00\x00\x00\x01Bud1"}),
    ("wttr-weather", "wttr weather", None, "Current weather from wttr.in in the corner of the desktop",
     {"wttr-weather.widget/index.coffee": WEATHER_COFFEE}),
    ("cpu-sparkline", "CPU Sparkline", "Priya N", "A CPU usage sparkline; click to open Activity Monitor",
     {"cpu.widget/index.jsx": CPU_JSX, "cpu.widget/cpu.sh": CPU_SH, "__MACOSX/cpu.widget/._index.jsx": "\x00"}),
    ("Now-Playing", "Now Playing", "Lena Hoffmann", "The song playing in Music, with its artist",
     {"index.jsx": NOW_PLAYING}),
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
