"""Stage 2: `widget_processing_results.csv`, the manifest's fields (OS_*) next to what the downloads hold (PS_*).

What counts as a widget file follows Übersicht itself (formats.md §2): any `.coffee`, `.js` or `.jsx` file that
is not inside a `node_modules/`, `src/` or `lib/` folder. Übersicht compiles `.jsx` and `.js` widgets with the
same React (JSX) toolchain, so PS_isJSX is "Y" for a `.jsx` widget file and for a `.js` widget file whose code
contains JSX markup; PS_iscoffee is "Y" when any widget file is CoffeeScript.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import StudioError
from engine.files import write_atomic
from engine.uebersicht.download import is_downloaded, read_download_log
from engine.uebersicht.manifest import MANIFEST_FIELDS, Manifest

WIDGET_SUFFIXES = (".coffee", ".js", ".jsx")
IGNORED_FOLDERS = {"node_modules", "src", "lib"}
_JUNK = {"__MACOSX", ".DS_Store"}
# JSX markup in a .js file: a tag right after `return (`, `=> (`, `=>` or at the start of a line.
_JSX_MARKUP = re.compile(r"(?:return|=>)\s*\(?\s*<[A-Za-z>]|^\s*<[A-Za-z][\w.]*[\s>/]", re.MULTILINE)

PS_COLUMNS = ("PS_downloaded", "PS_iscoffee", "PS_isJSX", "PS_widgetfoldername", "PS_widgetfiles", "PS_error")


@dataclass
class WidgetFiles:
    """The widget files Übersicht would load from one download folder, relative to `downloads/`."""

    folder: str  # PS_widgetfoldername: the folder holding the widget files, relative to downloads/
    widget_files: list[str]
    is_coffee: bool
    is_jsx: bool


def _visible_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and not (_JUNK & set(path.relative_to(root).parts))
    )


def is_widget_file(relative: PurePosixPath) -> bool:
    """Übersicht's rule: a .coffee/.js/.jsx file outside node_modules/, src/ and lib/."""
    return relative.suffix in WIDGET_SUFFIXES and not (IGNORED_FOLDERS & set(relative.parts[:-1]))


def has_jsx_markup(code: str) -> bool:
    return bool(_JSX_MARKUP.search(code))


def find_widget_files(downloads: Path, widget_id: str) -> WidgetFiles:
    """Analyse `downloads/<widget_id>/` (which must exist)."""
    root = downloads / widget_id
    found: list[str] = []
    is_coffee = is_jsx = False
    for path in _visible_files(root):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if not is_widget_file(relative):
            continue
        found.append(str(PurePosixPath(widget_id) / relative))
        if relative.suffix == ".coffee":
            is_coffee = True
        elif relative.suffix == ".jsx" or has_jsx_markup(path.read_text(encoding="utf-8", errors="replace")):
            is_jsx = True
    if found:
        parents = [PurePosixPath(name).parent.parts for name in found]
        common = parents[0]
        for parts in parents[1:]:
            length = next((i for i, (a, b) in enumerate(zip(common, parts, strict=False)) if a != b), None)
            common = common[: min(len(common), len(parts)) if length is None else length]
        folder = str(PurePosixPath(*common))
    else:
        folder = widget_id
    return WidgetFiles(folder=folder, widget_files=found, is_coffee=is_coffee, is_jsx=is_jsx)


@dataclass
class ReportSummary:
    rows: int
    downloaded: int
    jsx: int
    coffee: int
    path: Path


def build_report_rows(manifest: Manifest, downloads: Path, download_log: Path | None = None) -> list[dict[str, str]]:
    """One row per manifest widget: OS_<manifest key> columns, then PS_* columns."""
    extra_keys: list[str] = []
    for widget in manifest.widgets:
        extra_keys += [key for key in widget.fields if key not in MANIFEST_FIELDS and key not in extra_keys]
    log = read_download_log(download_log) if download_log else {}
    rows = []
    for widget in manifest.widgets:
        row = {f"OS_{key}": _cell(widget.fields.get(key)) for key in (*MANIFEST_FIELDS, *extra_keys)}
        failure = log.get(widget.id, {})
        if is_downloaded(downloads, widget.id):
            files = find_widget_files(downloads, widget.id)
            row.update(
                PS_downloaded="Y",
                PS_iscoffee="Y" if files.is_coffee else "N",
                PS_isJSX="Y" if files.is_jsx else "N",
                PS_widgetfoldername=files.folder,
                PS_widgetfiles=";".join(files.widget_files),
                PS_error="" if files.widget_files else "no widget file (.coffee/.js/.jsx) outside node_modules/src/lib",
            )
        else:
            reason = failure.get("reason", "not downloaded yet") if failure.get("status") == "failed" else ""
            row.update(
                PS_downloaded="N", PS_iscoffee="N", PS_isJSX="N", PS_widgetfoldername="", PS_widgetfiles="",
                PS_error=reason or "not downloaded yet",
            )
        rows.append(row)
    return rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def write_report(
    manifest: Manifest, downloads: Path, csv_path: Path, download_log: Path | None = None
) -> ReportSummary:
    """Write the CSV atomically; returns counts for the CLI and the page."""
    rows = build_report_rows(manifest, downloads, download_log)
    columns = list(rows[0]) if rows else [f"OS_{key}" for key in MANIFEST_FIELDS] + list(PS_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(Path(csv_path), buffer.getvalue())
    return ReportSummary(
        rows=len(rows),
        downloaded=sum(row["PS_downloaded"] == "Y" for row in rows),
        jsx=sum(row["PS_isJSX"] == "Y" for row in rows),
        coffee=sum(row["PS_iscoffee"] == "Y" for row in rows),
        path=Path(csv_path),
    )


def read_report(csv_path: Path) -> list[dict[str, str]]:
    """The rows of widget_processing_results.csv; raises StudioError when it is missing or lacks OS_id."""
    try:
        text = Path(csv_path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise StudioError(f"The report {csv_path} does not exist; run `widgets report` first.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StudioError(f"The report {csv_path} cannot be read ({exc}).") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = {"OS_id", "PS_isJSX", "PS_widgetfoldername"} - set(reader.fieldnames or [])
    if missing:
        raise StudioError(f"The report {csv_path} lacks the column(s) {', '.join(sorted(missing))}.")
    return list(reader)


def jsx_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if row.get("PS_isJSX") == "Y" and row.get("PS_widgetfoldername")]
