"""Builders for the widget tests: realistic widget archives (incl. hostile ones), a manifest, and a loopback
HTTP server that serves them (127.0.0.1 only) and counts requests."""

from __future__ import annotations

import io
import json
import stat
import threading
import zipfile
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CLOCK_JSX = """\
import { css } from "uebersicht"

export const command = "date +%H:%M"
export const refreshFrequency = 1000 * 60

export const className = `
  top: 20px;
  left: 20px;
  color: white;
  font-family: Helvetica Neue;
`

export const render = ({ output }) => <div className="clock">{output}</div>
"""

BATTERY_JSX = """\
export const command = "pmset -g batt | egrep -o '[0-9]+%'"
export const refreshFrequency = 30000

export const className = `
  bottom: 10px;
  right: 10px;
`

export const render = ({ output }) => (
  <div style={{ fontSize: 14 }} onClick={() => null}>Battery: {output}</div>
)
"""

WEATHER_JS = """\
export const command = "curl -s 'https://wttr.in/?format=3'"
export const refreshFrequency = 600000
export const render = ({ output }) => {
  return (<p>{output}</p>)
}
"""

COFFEE = """\
command: "osascript -e 'tell application \\"Music\\" to name of current track'"
refreshFrequency: 5000
render: (output) -> "<div>#{output}</div>"
"""


def small_widget(index: int) -> str:
    return f"""\
export const command = "uptime"
export const refreshFrequency = {1000 * (index + 1)}
export const render = ({{ output }}) => <span id="w{index}">{{output}}</span>
"""


def multi_file_widget() -> dict[str, str]:
    """Over a 1,500-token limit, but trimming (comments, the icons helper) brings it under."""
    comment = "/*\n" + "".join(f" * Changelog entry {i}: tweaked the layout and colours again.\n" for i in range(60))
    comment += " */\n"
    icons = "export const ICONS = {\n" + "".join(f'  icon{i}: "M{i} {i}L{i + 1} {i + 2}Z",\n' for i in range(200))
    icons += "}\n"
    index = (
        'import { ICONS } from "./lib/icons.jsx"\n\n' + comment
        + 'export const command = "top -l 1 | head -n 10"\nexport const refreshFrequency = 2000\n'
        + "export const render = ({ output }) => <pre>{output}</pre>\n"
    )
    return {"SysInfo.widget/index.jsx": index, "SysInfo.widget/lib/icons.jsx": icons}


def giant_widget() -> str:
    """A single render section far over the limit: trimming cannot save it."""
    rows = "".join(f"      <li key={{{i}}}>Row number {i} of the giant table with some text</li>\n" for i in range(400))
    return 'export const command = "ls"\nexport const render = () => (\n  <ul>\n' + rows + "  </ul>\n)\n"


def zip_bytes(members: dict[str, str | bytes], links: dict[str, str] | None = None) -> bytes:
    """A zip with the given members (names written verbatim, so hostile names work) and unix symlinks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


@dataclass
class Gallery:
    """What build_gallery made: the manifest entries, and which widgets are good and which hostile."""

    manifest: dict
    good: list[str]
    hostile: dict[str, str]  # id -> a word the failure reason must contain
    jsx: list[str]
    escape_marker: str  # a file name that must never appear anywhere
    files: dict[str, bytes] = field(default_factory=dict)


def build_gallery(serve_dir: Path, base_url: str, extra_small: int = 8) -> Gallery:
    """Write the archives into `serve_dir` and return the manifest pointing at `base_url`."""
    marker = "ESCAPED_FROM_ARCHIVE.txt"
    archives: dict[str, bytes] = {
        "clock": zip_bytes({"Clock.widget/index.jsx": CLOCK_JSX, "Clock.widget/.DS_Store": b"\0\1",
                            "__MACOSX/Clock.widget/._index.jsx": b"junk"}),
        "battery": zip_bytes({"Battery.widget/index.jsx": BATTERY_JSX, "Battery.widget/battery.sh": "pmset -g batt",
                              "Battery.widget/node_modules/dep/index.js": "module.exports = 1"},
                             links={"Battery.widget/same.jsx": "index.jsx"}),
        "weather-js": zip_bytes({"index.js": WEATHER_JS, "lib/helper.js": "export const x = 1"}),
        "music-coffee": zip_bytes({"Music.widget/index.coffee": COFFEE}),
        "sysinfo-multi": zip_bytes(multi_file_widget()),
        "giant": zip_bytes({"Giant.widget/index.jsx": giant_widget()}),
        "zipslip": zip_bytes({"Slip.widget/index.jsx": CLOCK_JSX, f"Slip.widget/../../{marker}": "owned"}),
        "absolute": zip_bytes({"Abs.widget/index.jsx": CLOCK_JSX, f"/tmp/{marker}": "owned"}),
        "linkout": zip_bytes({"Link.widget/index.jsx": CLOCK_JSX}, links={"Link.widget/escape": "../../../../etc"}),
        "bomb": zip_bytes({"Bomb.widget/index.jsx": CLOCK_JSX, "Bomb.widget/zeros.bin": b"\0" * (3 * 1024 * 1024)}),
    }
    truncated = zip_bytes({"Trunc.widget/index.jsx": CLOCK_JSX * 50, "Trunc.widget/more.jsx": BATTERY_JSX * 50})
    archives["truncated"] = truncated[: len(truncated) // 2]
    for index in range(extra_small):
        archives[f"extra-{index:02d}"] = zip_bytes({f"Extra{index}.widget/index.jsx": small_widget(index)})
    serve_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for widget_id, data in archives.items():
        (serve_dir / f"{widget_id}.widget.zip").write_bytes(data)
        entries.append({
            "id": widget_id, "name": widget_id.replace("-", " ").title(), "author": "Test Author", "user": "tester",
            "repo": widget_id, "description": f"Shows {widget_id} information on the desktop",
            "screenshotUrl": f"{base_url}/{widget_id}.png",
            "downloadUrl": f"{base_url}/./{widget_id}.widget.zip",  # the gallery's `/./` oddity
            "repoUrl": f"https://github.com/tester/{widget_id}", "modifiedAt": 1708264693437,
        })
    entries.append({"id": "missing", "downloadUrl": f"{base_url}/missing.widget.zip"})
    entries.append({"id": "../evil", "downloadUrl": f"{base_url}/clock.widget.zip"})  # unsafe id: skipped
    hostile = {"zipslip": "path traversal", "absolute": "absolute path", "linkout": "link pointing outside",
               "bomb": "cap", "truncated": "zip", "missing": "HTTP 404"}
    good = [w for w in archives if w not in hostile]
    jsx = [w for w in good if w != "music-coffee"]
    return Gallery({"widgets": entries}, good, hostile, jsx, marker, archives)


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, server_state, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 - http.server's naming
        with self.state.lock:
            self.state.requests.append(self.path)
            failures = self.state.fail_first.get(self.path, 0)
            if failures:
                self.state.fail_first[self.path] = failures - 1
        if failures:
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@dataclass
class ServerState:
    requests: list[str] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> how many 503s before serving
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoopbackServer:
    """Serves a folder on 127.0.0.1 on a free port; `state` records requests and can inject 503s."""

    def __init__(self, directory: Path):
        self.state = ServerState()
        handler = partial(_Handler, directory=str(directory), server_state=self.state)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_manifest(path: Path, manifest: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def tree(root: Path) -> set[str]:
    """Every path under root (relative), links included, for 'nothing landed outside' checks."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}
