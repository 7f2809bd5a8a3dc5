"""A widget's code as the dataset shows it: its JSX files, concatenated with a filename comment before each.

The seed concatenates every `.jsx` file under the widget folder; a `.js` widget file with JSX markup (Übersicht
compiles it the same way) is included too. `node_modules/` and macOS junk never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import StudioError
from engine.uebersicht.report import has_jsx_markup, is_widget_file

ENTRY_NAMES = ("index.jsx", "index.js")


@dataclass(frozen=True)
class CodeFile:
    path: str  # relative to the widget folder, POSIX separators
    text: str


def resolve_widget_folder(downloads: Path, folder_name: str) -> Path:
    """`downloads/<PS_widgetfoldername>`, refusing a CSV value that climbs out of downloads/."""
    root = Path(downloads).resolve()
    folder = (root / folder_name).resolve()
    if not folder.is_relative_to(root):
        raise StudioError(f"The widget folder {folder_name!r} in the report points outside {downloads}.")
    if not folder.is_dir():
        raise StudioError(f"The widget folder {folder} does not exist; run `widgets download` first.")
    return folder


def load_widget_code(folder: Path) -> list[CodeFile]:
    """The JSX files of one widget, entry file first (index.jsx/index.js, shallowest), then by path."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if not path.is_file() or path.is_symlink() or {"node_modules", "__MACOSX"} & set(relative.parts):
            continue
        if relative.suffix == ".jsx" or (relative.suffix == ".js" and is_widget_file(relative)):
            text = path.read_text(encoding="utf-8", errors="replace")
            if relative.suffix == ".jsx" or has_jsx_markup(text):
                files.append(CodeFile(str(relative), text))
    return sorted(files, key=lambda f: (PurePosixPath(f.path).name not in ENTRY_NAMES, f.path.count("/"), f.path))


def join_code(files: list[CodeFile]) -> str:
    """The assistant's answer: each file under a `// File: <path>` comment, separated by a blank line."""
    return "\n\n".join(f"// File: {file.path}\n{file.text.rstrip()}" for file in files)
