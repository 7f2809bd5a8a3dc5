"""Documentation examples: one question per section of each project document, answered by the section itself.

Documents are the workspace's `document` knowledge items (extract read them from document_sources). Markdown is
split at its headings (ATX `#` and setext underlines, never inside a fenced code block), reStructuredText at its
underlined titles; other text is one section. Each section becomes
`{"instruction": 'In the <project> docs, what does "<title>" (<path>) say about "<section>"?', "input": "",
"output": <the section's text>}`; the text before the first subheading is asked for as an overview. The seed's
"This document covers: X" taught nothing; the section's own words do.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from engine.dataset.sensitive import detect_sensitive
from engine.records import Example, Skip

MIN_SECTION_CHARS = 80
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:.])\1{2,}[ \t]*$")


@dataclass
class Section:
    path: list[str]  # headings from the document title down to this section
    text: str  # the section's own text (subsections excluded), stripped


def _clean_heading(text: str) -> str:
    return re.sub(r"[*_`]", "", text).strip().rstrip(":")


def split_markdown(text: str) -> list[Section]:
    """Sections of a Markdown document, each with its heading path (levels by `#` count or setext underline)."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = None
    lines = text.splitlines()

    def close() -> None:
        sections.append(Section([title for _, title in stack], "\n".join(body).strip()))
        body.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            in_fence = None if in_fence == fence.group(1) else (in_fence or fence.group(1))
        heading = None
        if not in_fence:
            atx = _ATX.match(line)
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if atx:
                heading = (len(atx.group(1)), atx.group(2))
            elif line.strip() and not line.startswith((" ", "\t", "-", "*", "|", ">")) and _SETEXT.match(following) \
                    and (not body or not body[-1].strip()):
                heading = (1 if following.strip().startswith("=") else 2, line.strip())
                index += 1
        if heading:
            close()
            level, title = heading
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, _clean_heading(title)))
        else:
            body.append(line)
        index += 1
    close()
    return sections


def split_rst(text: str) -> list[Section]:
    """Sections of a reStructuredText document; title levels follow the order underline styles first appear in."""
    sections: list[Section] = []
    styles: list[str] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        underline = _RST_UNDERLINE.match(following)
        if line.strip() and underline and len(following.strip()) >= len(line.strip()):
            sections.append(Section([title for _, title in stack], "\n".join(body).strip()))
            body = []
            style = underline.group(1)
            if style not in styles:
                styles.append(style)
            level = styles.index(style) + 1
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, _clean_heading(line)))
            index += 2
            continue
        body.append(line)
        index += 1
    sections.append(Section([title for _, title in stack], "\n".join(body).strip()))
    return sections


def split_sections(text: str, path: str) -> list[Section]:
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in ("md", "markdown", "mdx"):
        return split_markdown(text)
    if suffix == "rst":
        return split_rst(text)
    return [Section([], text.strip())]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def doc_examples(doc_path: str, text: str, project: str, timestamp: str | None, knowledge_id: int
                 ) -> Iterator[Example | Skip]:
    """The examples (and skipped sections) of one document. `doc_path` is its path as the source id gives it."""
    sections = split_sections(text, doc_path)
    titled = [section for section in sections if section.path]
    title = titled[0].path[0] if titled and len(titled[0].path) == 1 else doc_path.rsplit("/", 1)[-1]
    slugs: dict[str, int] = {}
    for section in sections:
        inner = section.path[1:] if section.path and section.path[0] == title else section.path
        if not section.path and not section.text:
            continue  # the empty preamble before the title is not a section anyone wrote
        name = " > ".join(inner)
        slug = _slug(name) if inner else "overview"
        if inner and detect_sensitive(name):
            slug = f"section-{len(slugs) + 1}"  # a heading holding a secret must not become an id shown everywhere
        slugs[slug] = slugs.get(slug, 0) + 1
        if slugs[slug] > 1:
            slug = f"{slug}-{slugs[slug]}"
        origin = f"{doc_path}#{slug}"
        if len(section.text) < MIN_SECTION_CHARS:
            yield Skip(f"section shorter than {MIN_SECTION_CHARS} characters", origin)
            continue
        if inner:
            instruction = f'In the {project} docs, what does "{title}" ({doc_path}) say about "{name}"?'
        elif len(sections) == 1:
            instruction = f'What does {doc_path} in the {project} docs say?'
        else:
            instruction = f'Give an overview of "{title}" ({doc_path}) from the {project} docs.'
        record = {
            "instruction": instruction, "input": "", "output": section.text,
            "metadata": {"source": "docs", "doc": doc_path, "title": title, "section": name or None,
                         "knowledge_id": knowledge_id, "modified_at": timestamp},
        }
        yield Example("docs", "instruction", origin, record, timestamp)


def read_doc_examples(conn: sqlite3.Connection, project: str) -> Iterator[Example | Skip]:
    """Examples from every document knowledge item in the workspace (its first source id names it)."""
    rows = conn.execute(
        "SELECT k.id, k.text, k.timestamp, MIN(s.source_id) AS source_id FROM knowledge k"
        " JOIN knowledge_sources s ON s.knowledge_id = k.id WHERE k.knowledge_type = 'document'"
        " GROUP BY k.id ORDER BY source_id").fetchall()
    for row in rows:
        doc_path = row["source_id"].removeprefix("doc:")
        yield from doc_examples(doc_path, row["text"], project, row["timestamp"], row["id"])
