"""The gallery manifest (`widget_list.json`, formats.md §2): `{"widgets": [...]}` or a bare list of entries.

Entries come from strangers. An entry without a usable id or download URL is skipped with a reason; ids become
folder and file names, so only plain names are accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from engine.errors import StudioError

# Folder- and file-name safe: no separators, no leading dot, no "..".
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+\- ]{0,127}$")

# The manifest's own keys, in the order the report's OS_* columns use.
MANIFEST_FIELDS = (
    "id", "name", "author", "user", "repo", "description",
    "screenshotUrl", "downloadUrl", "repoUrl", "modifiedAt",
)


class ManifestError(StudioError):
    """The widget manifest is missing or is not the gallery's JSON shape."""


class ManifestMissingError(ManifestError):
    """There is no manifest file yet (the first step: get the gallery's widgets.json)."""


@dataclass(frozen=True)
class WidgetEntry:
    """One manifest entry; `fields` keeps every original key for the report's OS_* columns."""

    id: str
    download_url: str
    description: str
    name: str
    fields: dict = field(default_factory=dict, compare=False)
    # For a GitHub folder link (/tree/<branch>/<dir>): the folder inside the repository archive to extract.
    archive_subdir: str | None = None


@dataclass
class Manifest:
    widgets: list[WidgetEntry]
    skipped: list[tuple[str, str]]  # (entry label, reason)

    def by_id(self) -> dict[str, WidgetEntry]:
        return {widget.id: widget for widget in self.widgets}


def is_safe_widget_id(widget_id: str) -> bool:
    return bool(_SAFE_ID.match(widget_id)) and ".." not in widget_id and widget_id.strip() == widget_id


def normalize_download_url(url: str) -> str:
    """Repair the gallery's URL oddities: `/./` segments, unescaped spaces, GitHub `blob/` pages for a file."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    segments = [segment for segment in parts.path.split("/") if segment != "."]
    path = "/".join(segments)
    if parts.netloc == "github.com" and len(segments) > 5 and segments[3] == "blob":
        # github.com/<user>/<repo>/blob/<branch>/<file> is an HTML page; the file itself is on raw.githubusercontent.
        path = "/".join(segments[:3] + segments[4:])
        parts = parts._replace(netloc="raw.githubusercontent.com")
    return urlunsplit(parts._replace(path=quote(path, safe="/%:@!$&'()*+,;=-._~")))


def github_folder_archive(url: str) -> tuple[str, str] | None:
    """A GitHub folder page `github.com/<user>/<repo>/tree/<branch>/<dir>` is not an archive: the repository's
    zip of that branch is, with the widget in `<dir>`. Returns (archive URL, dir), or None for other URLs."""
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if parts.netloc != "github.com" or len(segments) < 5 or segments[2] != "tree":
        return None
    user, repo, _, branch, *folder = segments
    archive = f"https://github.com/{user}/{repo}/archive/refs/heads/{quote(branch)}.zip"
    return archive, unquote("/".join(folder))


def load_manifest(path: Path) -> Manifest:
    """Read `widget_list.json`; raises ManifestError naming the file when it is missing or not the gallery shape."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestMissingError(
            f"The widget manifest {path} does not exist; download widgets.json from the Übersicht widget gallery there."
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"The widget manifest {path} is not readable JSON ({exc}).") from exc
    return parse_manifest(data, str(path))


def parse_manifest(data: object, label: str = "the manifest") -> Manifest:
    entries = data.get("widgets") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ManifestError(f"The widget manifest {label} has no \"widgets\" list; expected {{\"widgets\": [...]}}.")
    widgets: list[WidgetEntry] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            skipped.append((f"entry {index}", "not a JSON object"))
            continue
        widget_id = entry.get("id")
        label_ = f"entry {index}" if not isinstance(widget_id, str) else widget_id
        url = entry.get("downloadUrl")
        if not isinstance(widget_id, str) or not is_safe_widget_id(widget_id):
            skipped.append((label_, f"id {widget_id!r} is not a plain name usable as a folder"))
        elif widget_id in seen:
            skipped.append((widget_id, "a second entry with the same id"))
        elif not isinstance(url, str) or not url.strip():
            skipped.append((widget_id, "no downloadUrl"))
        else:
            seen.add(widget_id)
            download_url = normalize_download_url(url)
            folder = github_folder_archive(download_url)
            widgets.append(
                WidgetEntry(
                    id=widget_id,
                    download_url=folder[0] if folder else download_url,
                    description=str(entry.get("description") or "").strip(),
                    name=str(entry.get("name") or widget_id).strip(),
                    fields=dict(entry),
                    archive_subdir=folder[1] if folder else None,
                )
            )
    return Manifest(widgets=widgets, skipped=skipped)


def save_manifest(data: bytes, path: Path) -> Manifest:
    """Check uploaded manifest bytes and store them at `path` (atomically); returns the parsed manifest."""
    from engine.files import write_atomic

    try:
        parsed = parse_manifest(json.loads(data.decode("utf-8")), "uploaded")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"The uploaded manifest is not JSON ({exc}).") from exc
    write_atomic(Path(path), data)
    return parsed


def select_widgets(manifest: Manifest, ids: list[str] | None) -> list[WidgetEntry]:
    """The entries named by `ids` (all when None); an unknown id is an error naming it."""
    if ids is None:
        return list(manifest.widgets)
    known = manifest.by_id()
    unknown = [widget_id for widget_id in ids if widget_id not in known]
    if unknown:
        raise ManifestError(f"The manifest has no widget with id {', '.join(unknown)}.")
    return [known[widget_id] for widget_id in dict.fromkeys(ids)]


def read_widget_file(path: Path) -> list[str]:
    """Widget ids from a file, one per line; blank lines and `#` comments ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ManifestError(f"The widget file {path} cannot be read ({exc.strerror}).") from exc
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
