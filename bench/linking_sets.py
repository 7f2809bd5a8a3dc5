"""Build a real-history linking set (the shape of shared/datasets/linking-dev) from a public repository.

    python -m bench linking_sets MIRROR THREADS OUT [--seed N] [--pin SHA] [--distractors K]
                                 [--max-targets N] [--noise-frames N] [--check-only]
                                 [--lead-shape SHAPE] [--audio-share X] [--browsers "NAME=W,..."]

MIRROR   a git directory holding the repository (the `fetch` tool's answer for github:owner/name, or any clone).
THREADS  threads.json: {"repository": "owner/name", "threads": [{number, kind ("issue"|"pr"), url, title, author,
         created (YYYY-MM-DD), state, labels, opening_post (bool), text, distractor_ok (bool), source}]}. `text` is
         the thread as blocks, each headed by a line "<login> · <description|comment|review|review thread> · <date>".
OUT      a folder outside the project; receives refs/ and stripped/, each with
         repo/ (refs: a clone at the pinned commit; stripped: the same history rewritten by fast-export | fast-import
         with every issue/PR reference removed from commit messages), screenpipe.db (current screenpipe schema,
         byte-identical in both variants), truth.json, truth_meta.json, pipeline_config.json and score.py (a copy of
         linking-dev's scorer).

What it does, deterministically for (MIRROR at the pinned commit, THREADS, --seed):
- commits: the non-merge history of the pinned commit; a commit is "eligible" as the product reads it (some code
  file, by the default extensions, not deleted, with >= 5 added lines). A thread becomes a TARGET page when an
  eligible commit's message cites its number (`#N`, `owner/name#N`, `GH-N` or its URL); one page per commit (the
  longest when a commit cites several). Other commits citing a target's number are `related`. DISTRACTOR pages are
  threads marked distractor_ok that no message in `git log --all` cites, created before the end of the capture.
- screens: each page is seen as 2-4 browser frames (one visit, successive scroll positions, page chrome, title
  line, "<author> opened this issue on <date>", body and the comments already written that day, sidebar fragments,
  OCR noise) between 1 h and 5 days before the target commit's author date (lead-time distribution drawn per set
  and recorded; never before the page's creation day, and a page created too late for that is not a target; the
  page shows "Open" then), distractor pages within days of their creation. Window titles
  "<title> · Issue #N · owner/name — Mozilla Firefox" (or Chrome/Safari, or with --browsers also Microsoft Edge, Arc,
  Brave Browser; "<title> by <author> · Pull Request #N" for PRs), browser_url the thread URL. Frames before
  2026-02-20 are video frames in 2-minute chunks; later ones are event-driven snapshots, some accessibility-only
  (no ocr_text row).
- audio: the first paragraph of about half of the target pages (share drawn per set, or --audio-share) as spoken,
  before the commit; a few distractor pages too; meeting chatter, some rows repeated.
- noise: 2,000-4,000 frames of everyday work (chat, mail, terminals, editors of unrelated projects, docs pages,
  news, calendar, pages adjacent to the repository's language, issues of the team's own repositories on
  github.com), each screen captured 3-20 times a few seconds apart, most sessions in the week before some commit.

Example (the three sets of 2026-12, each built in a few seconds from a fresh fetch):
    python -m bench linking_sets /work/.mirror/encode+httpx/repo \
        /work/corpora/linking/encode__httpx/threads.json /work/corpora/linking/encode__httpx --seed 20261211
    python -m bench linking_sets /work/.mirror/BurntSushi+ripgrep/repo \
        /work/corpora/linking/BurntSushi__ripgrep/threads.json /work/corpora/linking/BurntSushi__ripgrep --seed 20261215
    python -m bench linking_sets /work/.mirror/tj+commander.js/repo \
        /work/corpora/linking/tj__commander.js/threads.json /work/corpora/linking/tj__commander.js --seed 20261213
(the mirrors' HEADs are recorded as `pinned_commit` in truth_meta.json; pass --pin to rebuild from a newer fetch.)
Chosen instead of drawn, for variety between sets (recorded under generation.extra.overrides in truth_meta.json;
without them a set is the same as before these options existed):
  --lead-shape log-uniform|recent-skew|bimodal|late-fix   late-fix suits issue-style histories, where a report is
      read a day or more before the maintainer's fix: a drawn share (0.65-0.85) of leads uniform in 24-120 h, the
      rest log-uniform in 1-24 h (still never before the page's creation day);
  --audio-share X   share of target pages also spoken;
  --browsers "Firefox=4,Microsoft Edge=3,Arc=2"   browsers of the issue pages and, so that the browser alone does
      not tell an issue page from noise, of the web pages in the noise too.
The sets of 2026-12-07 (issue-style tqdm and delta, TypeScript immer):
    python -m bench linking_sets /work/.mirror/tqdm+tqdm/repo /work/corpora/linking/tqdm__tqdm/threads.json \
        /work/corpora/linking/tqdm__tqdm --seed 20261221 --lead-shape late-fix --audio-share 0.3 \
        --browsers "Google Chrome=6,Firefox=3" --noise-frames 4200 --distractors 28
    python -m bench linking_sets /work/.mirror/dandavison+delta/repo \
        /work/corpora/linking/dandavison__delta/threads.json /work/corpora/linking/dandavison__delta \
        --seed 20261222 --lead-shape bimodal --audio-share 0.65 --browsers "Firefox=4,Microsoft Edge=3,Arc=2" \
        --noise-frames 2000 --distractors 30
    python -m bench linking_sets /work/.mirror/immerjs+immer/repo /work/corpora/linking/immerjs__immer/threads.json \
        /work/corpora/linking/immerjs__immer --seed 20261223 --browsers "Safari=5,Google Chrome=3,Brave Browser=1" \
        --noise-frames 3300 --distractors 22
Score a variant like linking-dev:
    cd OUT/stripped && python -m engine link --config pipeline_config.json --workspace ws \
        && python score.py --truth truth.json --pairs output/training_data.jsonl
- truth.json {commit sha: ["ocr:<frames.id>", "audio:<id>", ...]} keyed by each variant's shas (a target commit's
  own page and audio, plus those of other target pages it cites that were on screen before it); truth_meta.json
  with targets (sha, original_sha, issue), related, distractor_ids, audio_targets, counts and every generation
  parameter; pipeline_config.json with paths relative to the variant folder.
Then it checks that every truth commit exists in each variant's repo and that the rewrite kept every tree.

Timestamps are synthetic (relative to each commit), as in linking-dev. The thread texts come from public GitHub
threads; keep THREADS and OUT outside the project.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "engine" / "demo" / "screenpipe_schema.sql"
SCORER = Path("/work/shared/datasets/linking-dev/score.py")
CODE_EXTENSIONS = [".rs", ".py", ".ts", ".tsx", ".js", ".jsx"]
MIN_CODE_LINES = 5
SNAPSHOT_ERA = datetime(2026, 2, 20, tzinfo=timezone.utc)  # screenpipe switched to event-driven snapshots
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
VISIT = timedelta(minutes=6)  # a visit's frames span at most this, so its last frame is still >= 1 h before
LAYOUT = "modern-2026-03"


# --------------------------------------------------------------------------------------------------- git history


def git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=False)
    if result.returncode:
        raise SystemExit(f"git {' '.join(args[:3])} failed in {repo}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


@dataclass
class CommitInfo:
    sha: str
    author_time: datetime
    commit_time: datetime
    message: str
    eligible: bool
    refs: list[int]


def reference_pattern(owner: str, name: str) -> re.Pattern:
    """Numbers a message cites for this repository: #N, owner/name#N, GH-N, and the issue/PR URLs."""
    slug = re.escape(f"{owner}/{name}")
    return re.compile(
        rf"(?:(?<![\w/#])#(\d+))|(?:\b{slug}#(\d+))|(?:\bGH-(\d+))|(?:github\.com/{slug}/(?:issues|pull)/(\d+))",
        re.IGNORECASE,
    )


def cited_numbers(message: str, pattern: re.Pattern) -> list[int]:
    return sorted({int(next(g for g in match.groups() if g)) for match in pattern.finditer(message)})


def _numstat_path(path: str) -> str:
    """The new path of a numstat entry ("a => b" and "dir/{a => b}/c" for renames)."""
    braces = re.match(r"^(.*)\{(.*) => (.*)\}(.*)$", path)
    if braces:
        return re.sub("/+", "/", braces.group(1) + braces.group(3) + braces.group(4))
    return path.split(" => ")[1] if " => " in path else path


def read_history(mirror: Path, pinned: str, owner: str, name: str) -> list[CommitInfo]:
    """Non-merge commits reachable from `pinned`, newest first, with the product's eligibility rule."""
    raw = git(mirror, "log", "--no-merges", "-M", "--numstat", "--format=%x01%H%x02%aI%x02%cI%x02%B%x03", pinned)
    pattern = reference_pattern(owner, name)
    commits = []
    for chunk in raw.decode("utf-8", errors="replace").split("\x01")[1:]:
        head, _, stat = chunk.partition("\x03")
        sha, author_iso, commit_iso, message = head.split("\x02", 3)
        eligible = False
        for line in stat.strip().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] != "-" and int(parts[0]) >= MIN_CODE_LINES:
                if Path(_numstat_path(parts[2])).suffix.lower() in CODE_EXTENSIONS:
                    eligible = True
        commits.append(CommitInfo(
            sha=sha, author_time=datetime.fromisoformat(author_iso).astimezone(timezone.utc),
            commit_time=datetime.fromisoformat(commit_iso).astimezone(timezone.utc), message=message.strip(),
            eligible=eligible, refs=cited_numbers(message, pattern),
        ))
    return commits


def all_cited(mirror: Path) -> set[int]:
    """Every number any commit message on any ref cites, in any form (used to keep distractors uncited)."""
    text = git(mirror, "log", "--all", "--format=%B").decode("utf-8", errors="replace")
    numbers = {int(n) for n in re.findall(r"#(\d+)", text)}
    numbers |= {int(n) for n in re.findall(r"\bGH-(\d+)", text, re.IGNORECASE)}
    numbers |= {int(n) for n in re.findall(r"/(?:issues|pull)/(\d+)", text)}
    return numbers


# ------------------------------------------------------------------------------------------ reference scrubbing

_KEYWORDS = (r"close[sd]?|closing|fix(?:e[sd]|ing)?|resolve[sd]?|resolving|refs?|references?|see(?: also)?|"
             r"related(?: to)?|part of|address(?:es|ed)?|follow(?:s|ing)?[- ]up(?: (?:to|of|on))?|pr|pull request|"
             r"issue|cf\.?|via|in|from|for")


def scrub_references(message: str, owner: str, name: str) -> str:
    """The commit message with every issue/PR reference to any repository removed; lines without one stay as is."""
    slug = re.escape(f"{owner}/{name}")
    ref = r"(?:(?:[\w.-]+/[\w.-]+)?#\d+|GH-\d+)"
    dangling = {"-", "*", ",", ".", ";", ":", "and", "or", "fixes", "fix", "closes", "close", "refs", "ref", "see",
                "pr", "issue", "resolves", "cf.", "cf", "[]", "()"}
    kept = []
    for original in message.split("\n"):
        line = re.sub(rf"https?://github\.com/{slug}/(?:issues|pull)/\d+[^\s)\]>,]*", "", original)
        line = re.sub(rf"[ \t]*\([ \t]*{ref}(?:[ \t]*(?:,|;|&|and)[ \t]*{ref})*[ \t]*\)", "", line, flags=re.IGNORECASE)
        joiner = rf"[ \t]*(?:,|;|&|and|or)[ \t]*(?:(?:{_KEYWORDS})[ \t]*:?[ \t]*)?"
        line = re.sub(rf"\b(?:{_KEYWORDS})\b[ \t]*:?[ \t]*{ref}(?:{joiner}{ref})*", "", line, flags=re.IGNORECASE)
        line = re.sub(ref, "", line, flags=re.IGNORECASE)
        if line == original:
            kept.append(line)
            continue
        line = re.sub(r"^(\s*)\[\d+\]\s*", r"\1", line)
        line = re.sub(r"\(\s*\)|\[\s*\]", "", line)
        line = re.sub(r"(?<=\S)[ \t]{2,}", " ", line).rstrip(" \t,;:-&")
        line = re.sub(r"[ \t]+([,;:!?]|\.(?:\s|$))", r"\1", line)
        line = re.sub(r"([.!?])[ \t]*\.(?=\s|$)", r"\1", line)
        line = re.sub(r"^(\s*)[:;,][ \t]*", r"\1", line)
        if line.strip().lower() in dangling or not line.strip():
            continue
        kept.append(line)
    cleaned = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return (cleaned or "Update code") + "\n"


def rewrite_history(source: Path, target: Path, owner: str, name: str) -> dict[str, str]:
    """git fast-export | scrub every commit message | git fast-import. Returns {original sha: new sha}."""
    with tempfile.TemporaryDirectory() as tmp:
        marks_out, marks_in = Path(tmp) / "export.marks", Path(tmp) / "import.marks"
        # --full-tree: plain fast-export loses files when a file becomes a directory (ripgrep's "benchsuite")
        stream = git(source, "fast-export", "--full-tree", "--signed-tags=strip", "--tag-of-filtered-object=drop",
                     "--reencode=yes", f"--export-marks={marks_out}", "refs/heads/main")
        rewritten, pos, command = bytearray(), 0, b""
        while pos < len(stream):
            end = stream.index(b"\n", pos)
            line, pos = stream[pos:end], end + 1
            if line.startswith(b"data "):
                size = int(line[5:])
                payload, pos = stream[pos:pos + size], pos + size
                if command == b"commit":
                    text = payload.decode("utf-8", errors="surrogateescape")
                    payload = scrub_references(text, owner, name).encode("utf-8", errors="surrogateescape")
                rewritten += b"data %d\n" % len(payload) + payload
                continue
            word = line.split(b" ", 1)[0]
            if word in (b"commit", b"blob", b"tag", b"reset", b"feature", b"option", b"progress", b"done"):
                command = word
            rewritten += line + b"\n"
        if target.exists():
            shutil.rmtree(target)
        subprocess.run(["git", "init", "-q", str(target)], check=True)
        git(target, "fast-import", "--quiet", f"--export-marks={marks_in}", data=bytes(rewritten))
        git(target, "checkout", "-q", "-f", "main")
        old = dict(line.split() for line in marks_out.read_text().splitlines())
        new = dict(line.split() for line in marks_in.read_text().splitlines())
    return {old[mark]: new[mark] for mark in old if mark in new}


# ---------------------------------------------------------------------------------------------- thread pages


@dataclass
class Block:
    who: str
    kind: str  # description | comment | review | review thread
    date: str
    lines: list[str]


@dataclass
class Thread:
    number: int
    kind: str  # issue | pr
    url: str
    title: str
    author: str
    created: datetime
    state: str
    labels: list[str]
    opening_post: bool
    blocks: list[Block]
    text: str
    distractor_ok: bool


_HEADER = re.compile(r"^(\S+) · (description|comment|review|review thread) · (\d{4}-\d\d-\d\d)$")


def parse_thread(raw: dict) -> Thread:
    blocks: list[Block] = []
    for line in raw["text"].splitlines():
        header = _HEADER.match(line.strip())
        if header:
            blocks.append(Block(header.group(1), header.group(2), header.group(3), []))
        elif blocks:
            blocks[-1].lines.append(line.rstrip())
        else:
            blocks.append(Block(raw["author"], "description", raw["created"], [line.rstrip()]))
    return Thread(
        number=int(raw["number"]), kind=raw["kind"], url=raw["url"], title=raw["title"].strip().rstrip("|").strip(),
        author=raw["author"],
        created=datetime.fromisoformat(raw["created"]).replace(tzinfo=timezone.utc), state=raw.get("state", ""),
        labels=list(raw.get("labels") or []), opening_post=bool(raw.get("opening_post", True)), blocks=blocks,
        text=raw["text"], distractor_ok=bool(raw.get("distractor_ok", False)),
    )


def _human_date(value: str | datetime) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment:%b} {moment.day}, {moment.year}"


def _markdown_to_screen(line: str) -> str:
    line = re.sub(r"^#{1,6}\s+", "", line)
    line = line.replace("```", "").replace("**", "")
    line = re.sub(r"^\s*[-*] \[x\]\s*", "☑ ", line)
    line = re.sub(r"^\s*[-*] \[ \]\s*", "☐ ", line)
    line = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", line)
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)
    return line


class PageRenderer:
    """Turns a thread into what a browser shows at successive scroll positions, then into OCR-like text."""

    def __init__(self, owner: str, name: str, rng: random.Random, ocr_rate: float):
        self.owner, self.name, self.rng, self.ocr_rate = owner, name, rng, ocr_rate
        self.open_issues = rng.randint(80, 900)
        self.open_prs = rng.randint(8, 90)
        self.stars = f"{rng.randint(9, 60)}.{rng.randint(0, 9)}k"
        self.forks = f"{rng.randint(4, 40) / 10:.1f}k"

    def chrome(self, signed_in: bool) -> list[str]:
        rng = self.rng
        lines = ["Skip to content", rng.choice(["Navigation Menu", "Open global navigation menu"]),
                 f"{self.owner} / {self.name}", "Type / to search"]
        tabs = f"Code  Issues {self.open_issues}  Pull requests {self.open_prs}  Actions  Projects  Security  Insights"
        if rng.random() < 0.3:
            tabs = tabs.replace("  Projects", "  Wiki  Projects")
        lines.append(tabs)
        if not signed_in:
            lines.append(rng.choice(["Sign in", "Sign up"]))
        if rng.random() < 0.6:
            lines.append(f"Watch {rng.randint(90, 700)}  Fork {self.forks}  Star {self.stars}")
        return lines

    def status_line(self, thread: Thread, state: str, comments: int) -> str:
        """The line under the title as it read at the visit (`state` is what the page showed then)."""
        shown = {"open": "Open", "closed": "Closed", "merged": "Merged"}.get(state, state.title() or "Open")
        noun = "issue" if thread.kind == "issue" else "pull request"
        if not thread.opening_post:
            return f"{shown}  {thread.author} commented on {_human_date(thread.created)} · {comments} comments"
        if thread.kind == "pr" and self.rng.random() < 0.5:
            branch = re.sub(r"[^a-z0-9]+", "-", thread.title.lower()).strip("-")[:28] or "patch-1"
            verb = "merged" if state == "merged" else "wants to merge"
            return f"{shown}  {thread.author} {verb} {self.rng.randint(1, 9)} commits into master from {branch}"
        return f"{shown}  {thread.author} opened this {noun} on {_human_date(thread.created)} · {comments} comments"

    @staticmethod
    def visible_blocks(thread: Thread, moment: datetime) -> list[Block]:
        """The opening block and the comments already written at `moment` (dates are days)."""
        day = f"{moment:%Y-%m-%d}"
        return thread.blocks[:1] + [block for block in thread.blocks[1:] if block.date <= day]

    def body(self, thread: Thread, blocks: list[Block]) -> list[str]:
        lines: list[str] = []
        for index, block in enumerate(blocks):
            if index or not thread.opening_post:
                verb = {"comment": "commented", "review": "reviewed", "review thread": "reviewed"}.get(block.kind,
                                                                                                  "commented")
                lines.append(f"{block.who} {verb} {_human_date(block.date)}" if self.rng.random() < 0.6
                             else f"{block.who} {verb} on {_human_date(block.date)}")
            for line in block.lines:
                shown = _markdown_to_screen(line)
                if shown.strip():
                    lines.append(shown)
        return lines

    def sidebar(self, thread: Thread) -> list[str]:
        rng = self.rng
        parts = [["Assignees", rng.choice(["No one assigned", thread.author])],
                 ["Labels", ", ".join(thread.labels) if thread.labels else "None yet"],
                 ["Projects", "None yet"], ["Milestone", "No milestone"],
                 ["Development", rng.choice(["No branches or pull requests", "Successfully merging this pull request "
                                             "may close these issues."])],
                 ["Notifications", "Subscribe"], ["Participants", ""]]
        chosen = rng.sample(parts, k=rng.randint(2, 4))
        return [item for pair in chosen for item in pair if item]

    def frames(self, thread: Thread, count: int, moment: datetime, state: str) -> list[str]:
        """`count` clean screen texts: successive scroll positions of one visit at `moment`."""
        rng = self.rng
        signed_in = rng.random() < 0.7
        blocks = self.visible_blocks(thread, moment)
        comments = max(0, len(blocks) - 1)
        body = self.body(thread, blocks)
        height = rng.randint(14, 26)
        step = max(4, height - rng.randint(3, 8))
        screens = []
        for index in range(count):
            top = min(index * step, max(0, len(body) - max(6, height // 2)))
            window = body[top:top + height]
            lines = self.chrome(signed_in) if index == 0 or rng.random() < 0.8 else []
            lines.append(f"{thread.title} #{thread.number}")
            if index == 0 or rng.random() < 0.35:
                lines.append(self.status_line(thread, state, comments))
            if thread.kind == "pr" and (index == 0 or rng.random() < 0.3):
                lines.append(f"Conversation {comments}  Commits {self.rng.randint(1, 12)}  "
                             f"Checks {self.rng.randint(0, 9)}  Files changed {self.rng.randint(1, 14)}")
            lines += window
            if rng.random() < 0.7:
                lines += self.sidebar(thread)
            screens.append("\n".join(lines))
        return screens

    def ocr(self, text: str) -> str:
        """OCR-like noise: merged words, dropped punctuation, lines broken mid-way, l/1 and O/0 confusions."""
        rng, out = self.rng, []
        for line in text.split("\n"):
            if line and rng.random() < self.ocr_rate * 4:
                operation = rng.random()
                if operation < 0.35 and " " in line:
                    spaces = [i for i, c in enumerate(line) if c == " "]
                    cut = rng.choice(spaces)
                    line = line[:cut] + line[cut + 1:]
                elif operation < 0.55:
                    marks = [i for i, c in enumerate(line) if c in ",.:;'\"`"]
                    if marks:
                        cut = rng.choice(marks)
                        line = line[:cut] + line[cut + 1:]
                elif operation < 0.75 and len(line) > 30:
                    cut = rng.randint(10, len(line) - 10)
                    out.append(line[:cut].rstrip())
                    line = line[cut:].lstrip()
                elif operation < 0.9:
                    swaps = [i for i, c in enumerate(line) if c in "lO"]
                    if swaps:
                        at = rng.choice(swaps)
                        line = line[:at] + {"l": "1", "O": "0"}[line[at]] + line[at + 1:]
                else:
                    line = " " * rng.randint(1, 3) + line
            out.append(line)
        return "\n".join(out)


def spoken_paragraph(thread: Thread, rng: random.Random) -> str:
    """The opening paragraph as someone would say it: no markdown, URLs, list bullets or code punctuation."""
    prose: list[str] = []
    for block in thread.blocks:
        for line in block.lines:
            stripped = line.strip()
            if not stripped:
                if len(" ".join(prose)) >= 80:
                    break
                continue
            if (re.match(r"^(\$|>>>|\s{4}|[{}\[\]()<#]|[-+]\s*\w+\s*[=(]|[+-]\s)", line) or stripped.count("(") > 2
                    or re.fullmatch(r"[\w./-]+\.\w{1,4}", stripped)):
                continue
            stripped = re.sub(r"^(?:[-*+]|\d+[.)])\s+", "", stripped)
            prose.append(re.sub(r"^[\w-]+:\s+", "", stripped) if re.match(r"^[\w-]+:\s+\S", stripped)
                         and not re.match(r"^(?:Note|Edit|Update|Problem|Summary)\b", stripped) else stripped)
        if len(" ".join(prose)) >= 80:
            break
    text = " ".join(prose)
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)|\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"#(\d+)", r"\1", text)
    text = re.sub(r"\b[cC][cC]:?\s+(?:@[\w-]+[\s,]*)+", " ", text)
    text = re.sub(r"@([\w-]+)", r"\1", text)
    text = text.replace("...", " ").replace("--", " ")
    text = re.sub(r"[`*_{}\[\]()<>|\\=\"~^]", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    text = re.sub(r"(?<=\s)[-:;,.](?=\s)", " ", f" {text} ")
    text = re.sub(r"^\s*(?:Problem|Summary|Solution|Description|Describe the bug)\s*:?\s*", "", text.strip())
    text = re.sub(r"\s{2,}", " ", text).strip()
    spoken = ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if len(spoken) > 320:
            break
        spoken = f"{spoken} {sentence}".strip()
    if len(spoken) > 420:
        spoken = spoken[:420].rsplit(" ", 1)[0]
    fillers = ["", "", "", "okay so ", "so basically ", "right, so ", "um, ", "the thing is, ", "yeah so "]
    lead = rng.choice(fillers)
    if len(spoken) < 50:
        lead = rng.choice(["", "okay, ", "right, ", "um, "])
        spoken = f"so this one is about {thread.title.rstrip('.')}. {spoken}".strip()
    return (lead + spoken[0].lower() + spoken[1:]) if lead and spoken else spoken


# ------------------------------------------------------------------------------------------------ noise screens

PEOPLE = ["Maya", "Tomas", "Priya", "Jonas", "Aiko", "Sven", "Leila", "Omar", "Grace", "Rui", "Nadia", "Felix",
          "Ines", "Kwame", "Hana", "Diego", "Elif", "Marek", "Zoe", "Arjun"]
PROJECTS = ["billing-service", "atlas-dashboard", "inventory-api", "mobile-app", "marketing-site", "infra",
            "data-pipeline", "auth-gateway", "design-system", "reporting", "notifications", "search-indexer"]
CHANNELS = ["#eng-backend", "#frontend", "#deploys", "#incidents", "#random", "#standup", "#product", "#design",
            "#oncall", "#data"]
CHAT = ["can someone review {pr}? it's small", "deploy of {proj} is green, rolling to prod after lunch",
        "anyone else seeing flaky tests in {proj}?", "I'll pair with {who} on the migration this afternoon",
        "reminder: retro at 4", "the staging db got restarted, give it five minutes",
        "moved the {proj} alerts to the new channel", "lgtm, merging", "who owns the {proj} cron job now?",
        "coffee? ☕", "pushed a fix for the timezone bug in {proj}", "CI queue is long today, sorry",
        "docs for the new endpoint are up", "can we bump the node version in {proj} next sprint?",
        "heads up: I'm out Friday", "the dashboard numbers look off since Tuesday",
        "rotated the API keys, update your .env", "thanks {who}! 🙏", "let's sync tomorrow about the roadmap",
        "feature flag for {proj} is now at 50%"]
MAIL_SUBJECTS = ["Your invoice for {month}", "Re: Q{q} planning", "Invitation: Design review @ {day}",
                 "[{proj}] Build failed on main", "Weekly digest: 12 new posts", "Your package has shipped",
                 "Re: contract renewal", "Security alert: new sign-in", "Offsite logistics", "Lunch & learn: {topic}",
                 "Expense report approved", "Fwd: customer feedback", "[{proj}] Dependabot: 3 updates",
                 "Your subscription renews soon", "Conference talk accepted 🎉"]
TOPICS = ["observability", "feature flags", "accessibility", "GraphQL", "incident reviews", "caching", "SQL tuning",
          "design tokens", "on-call health", "data contracts"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
SHELL_SESSIONS = [
    ["$ git status", "On branch {branch}", "Changes not staged for commit:", "  modified:   src/{file}",
     "  modified:   tests/test_{mod}.py", "no changes added to commit (use \"git add\" and/or \"git commit -a\")"],
    ["$ npm run build", "> {proj}@{ver} build", "> vite build", "vite v5.{n}.0 building for production...",
     "✓ {k} modules transformed.", "dist/index.html   0.46 kB", "dist/assets/index-{hash}.js   {size} kB",
     "✓ built in {secs}s"],
    ["$ pytest -q", "........................................ [ 61%]", "........................ [100%]",
     "{k} passed, 2 skipped in {secs}s"],
    ["$ docker compose up -d", "[+] Running 4/4", " ✔ Network {proj}_default  Created",
     " ✔ Container {proj}-db-1     Started", " ✔ Container {proj}-redis-1  Started",
     " ✔ Container {proj}-api-1    Started"],
    ["$ kubectl get pods -n {proj}", "NAME                         READY   STATUS    RESTARTS   AGE",
     "{proj}-api-7d9f{hash}        1/1     Running   0          {n}h",
     "{proj}-worker-5c2{hash}      1/1     Running   2          {n}h"],
    ["$ go test ./...", "ok  \tgithub.com/acme/{proj}/internal/store\t0.{n}s",
     "ok  \tgithub.com/acme/{proj}/internal/api\t1.{n}s", "?   \tgithub.com/acme/{proj}/cmd\t[no test files]"],
    ["$ terraform plan", "Refreshing state... [id=vpc-0{hash}]",
     "Plan: {n} to add, 1 to change, 0 to destroy.", "Note: You didn't use the -out option to save this plan"],
    ["$ psql -d {proj}", "{proj}=# select count(*) from orders where created_at > now() - interval '1 day';",
     " count", "-------", "  {k}", "(1 row)"],
]
CODE_SNIPPETS = {
    "TypeScript": ["export async function loadInvoices(accountId: string) {",
                   "  const rows = await db.invoice.findMany({ where: { accountId } });",
                   "  return rows.map(toDto);", "}", "", "function toDto(row: InvoiceRow): Invoice {",
                   "  return { id: row.id, total: row.totalCents / 100, dueAt: row.dueAt };", "}"],
    "Python": ["def rollup(events, window=timedelta(minutes=5)):", "    buckets = defaultdict(list)",
               "    for event in events:", "        buckets[event.ts // window].append(event)",
               "    return {key: summarize(items) for key, items in buckets.items()}", "",
               "class Summary(NamedTuple):", "    count: int", "    p95: float"],
    "Go": ["func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {",
           "\tif err := s.db.PingContext(r.Context()); err != nil {",
           "\t\thttp.Error(w, \"db unavailable\", http.StatusServiceUnavailable)", "\t\treturn", "\t}",
           "\tw.WriteHeader(http.StatusNoContent)", "}"],
    "CSS": [".card {", "  display: grid;", "  grid-template-columns: 1fr auto;", "  gap: var(--space-3);",
            "  border-radius: var(--radius-md);", "}", ".card--muted { opacity: .7; }"],
    "YAML": ["services:", "  api:", "    image: acme/{proj}:latest", "    environment:",
             "      DATABASE_URL: postgres://app@db/{proj}", "    depends_on: [db, redis]"],
}
NEWS = ["Show HN: A tiny spreadsheet engine in 900 lines", "The hidden cost of microservices (2023)",
        "Why we moved our build cache to object storage", "Ask HN: How do you keep on-call sane?",
        "A visual guide to consensus algorithms", "Designing a calmer notifications system",
        "Postgres 17 released", "Launch HN: a faster CI runner for monorepos", "The quiet death of the RSS reader",
        "What I learned maintaining a library for ten years", "Writing a debugger from scratch, part 3",
        "Reverse-engineering a 1990s drum machine", "Understanding memory ordering with diagrams"]
# Issues of the team's own (fictional) repositories, so a GitHub URL alone does not mark a linked page
WORK_ISSUES = [
    ("Export times out for accounts with more than 50k invoices", ["The nightly CSV export for large accounts hits "
     "the 30s gateway timeout.", "Steps: open Reports, choose All time, click Export.", "Expected: a download link "
     "by email. Actual: 504 after half a minute.", "We should move the export to the worker queue."]),
    ("Login page flashes unstyled content on slow connections", ["On 3G throttling the login form renders before "
     "the stylesheet arrives.", "Probably the preload hint got lost in the last bundler upgrade.",
     "Screenshot attached."]),
    ("Retry webhook deliveries with backoff", ["Right now a failed webhook is dropped after one attempt.",
     "Proposal: retry 5 times with exponential backoff, then mark the endpoint unhealthy.",
     "Needs a migration for the delivery_attempts table."]),
    ("Flaky test: test_reconcile_ledger_rounding", ["Fails about one run in twenty on CI.", "AssertionError: "
     "Decimal('10.01') != Decimal('10.00')", "Looks like it depends on the order rows come back from the db."]),
    ("Search results ignore the archived filter", ["With Show archived unchecked, archived projects still appear "
     "after the second page.", "The cursor query does not carry the filter over."]),
    ("Upgrade the base image to the current LTS", ["The container still runs the previous LTS which leaves security "
     "support soon.", "Checklist: bump Dockerfile, rebuild caches, run smoke tests on staging."]),
    ("Dark mode colours fail contrast checks", ["Secondary text on cards is below 4.5:1.", "Design tokens need a "
     "new muted shade; see the audit spreadsheet."]),
    ("Rate limiter counts preflight requests", ["OPTIONS requests are counted against the per-user quota, so "
     "browser clients run out twice as fast.", "Skip preflights in the middleware."]),
]
CALENDAR = ["Standup", "1:1 with {who}", "Sprint planning", "Design review", "Focus time", "Lunch",
            "Interview: backend", "Retro", "Customer call", "All hands", "Dentist"]
DOCS_PAGES = [
    ("MDN Web Docs", "Array.prototype.flatMap() - JavaScript | MDN", "https://developer.mozilla.org/en-US/docs/Web/"
     "JavaScript/Reference/Global_Objects/Array/flatMap",
     ["Array.prototype.flatMap()", "The flatMap() method of Array instances returns a new array formed by applying "
      "a given callback function to each element of the array, and then flattening the result by one level.",
      "Syntax", "flatMap(callbackFn)", "flatMap(callbackFn, thisArg)", "Return value",
      "A new array with each element being the result of the callback function and flattened by a depth of 1."]),
    ("Django documentation", "QuerySet API reference | Django documentation", "https://docs.djangoproject.com/en/"
     "5.0/ref/models/querysets/",
     ["QuerySet API reference", "This document describes the details of the QuerySet API.", "When QuerySets are "
      "evaluated", "Internally, a QuerySet can be constructed, filtered, sliced, and generally passed around without"
      " actually hitting the database.", "select_related(*fields)", "prefetch_related(*lookups)"]),
    ("PostgreSQL docs", "PostgreSQL: Documentation: 16: CREATE INDEX", "https://www.postgresql.org/docs/16/"
     "sql-createindex.html",
     ["CREATE INDEX — define a new index", "Synopsis", "CREATE [ UNIQUE ] INDEX [ CONCURRENTLY ] [ [ IF NOT EXISTS ]"
      " name ] ON [ ONLY ] table_name", "Description", "CREATE INDEX constructs an index on the specified column(s)"
      " of the specified relation.", "Building Indexes Concurrently"]),
    ("Tailwind CSS", "Grid Template Columns - Tailwind CSS", "https://tailwindcss.com/docs/grid-template-columns",
     ["Grid Template Columns", "Utilities for specifying the columns in a grid layout.", "grid-cols-1  "
      "grid-template-columns: repeat(1, minmax(0, 1fr));", "Basic usage", "Specifying the columns in a grid"]),
    ("Kubernetes docs", "Configure Liveness, Readiness and Startup Probes | Kubernetes", "https://kubernetes.io/"
     "docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/",
     ["Configure Liveness, Readiness and Startup Probes", "The kubelet uses liveness probes to know when to restart "
      "a container.", "Define a liveness command", "periodSeconds: 5", "initialDelaySeconds: 5"]),
]
# Pages adjacent to the repository's language and domain (own summaries, written for this generator)
ADJACENT = {
    "py": [
        ("PyPI", "requests · PyPI", "https://pypi.org/project/requests/",
         ["requests 2.32", "pip install requests", "Python HTTP for Humans.", "Requests allows you to send HTTP/1.1 "
          "requests extremely easily. There's no need to manually add query strings to your URLs.",
          "Keep-Alive & Connection Pooling", "Sessions with Cookie Persistence", "Automatic Content Decoding"]),
        ("Python docs", "urllib.parse — Parse URLs into components — Python 3.12 documentation",
         "https://docs.python.org/3/library/urllib.parse.html",
         ["urllib.parse — Parse URLs into components", "This module defines a standard interface to break URL strings"
          " up in components (addressing scheme, network location, path etc.).", "urllib.parse.quote(string, "
          "safe='/', encoding=None, errors=None)", "Replace special characters in string using the %xx escape."]),
        ("Python docs", "asyncio — Asynchronous I/O — Python 3.12 documentation",
         "https://docs.python.org/3/library/asyncio.html",
         ["asyncio is a library to write concurrent code using the async/await syntax.", "asyncio.run(main())",
          "Runners", "Coroutines and Tasks", "Streams", "Synchronization Primitives", "asyncio.wait_for(aw, "
          "timeout)"]),
        ("Stack Overflow", "python - How to set a timeout for an HTTP request? - Stack Overflow",
         "https://stackoverflow.com/questions/how-to-set-a-timeout-for-an-http-request",
         ["Asked 6 years ago  Modified 1 year ago  Viewed 412k times", "I make a request with a client and "
          "sometimes the server never answers. How can I make the call give up after a few seconds?",
          "Pass a timeout argument; a tuple sets connect and read separately.", "412", "Share  Improve this answer"]),
        ("Real Python", "Python's typing Module: Protocols and Generics – Real Python",
         "https://realpython.com/python-protocol/",
         ["Protocols let you describe structural types.", "class SupportsClose(Protocol):", "    def close(self) ->"
          " None: ...", "Generics with TypeVar", "Table of Contents"]),
    ],
    "rs": [
        ("docs.rs", "Regex in regex - Rust", "https://docs.rs/regex/latest/regex/struct.Regex.html",
         ["Struct regex::Regex", "A compiled regular expression for searching Unicode haystacks.", "pub fn "
          "is_match(&self, haystack: &str) -> bool", "pub fn find_iter<'r, 'h>(&'r self, haystack: &'h str) -> "
          "Matches<'r, 'h>", "Implementations"]),
        ("The Rust Book", "Recoverable Errors with Result - The Rust Programming Language",
         "https://doc.rust-lang.org/book/ch09-02-recoverable-errors-with-result.html",
         ["Recoverable Errors with Result", "Most errors aren't serious enough to require the program to stop "
          "entirely.", "enum Result<T, E> {", "    Ok(T),", "    Err(E),", "}", "Propagating Errors"]),
        ("crates.io", "clap - crates.io: Rust Package Registry", "https://crates.io/crates/clap",
         ["clap v4.5", "A simple to use, efficient, and full-featured Command Line Argument Parser", "cargo add clap "
          "--features derive", "Recent Downloads", "Documentation", "Repository"]),
        ("GNU", "GNU Grep 3.11", "https://www.gnu.org/software/grep/manual/grep.html",
         ["2.1 Command-line Options", "-i --ignore-case  Ignore case distinctions in patterns and input data",
          "-r --recursive  For each directory operand, read and process all files in that directory, recursively.",
          "--exclude=glob  Skip any command-line file with a name suffix that matches the pattern glob"]),
        ("Stack Overflow", "bash - How do I exclude a directory when using find? - Stack Overflow",
         "https://stackoverflow.com/questions/how-do-i-exclude-a-directory-when-using-find",
         ["Asked 12 years ago  Viewed 1.9m times", "How do I exclude a specific directory when searching for *.js "
          "files using find?", "Use the -prune switch.", "find . -path ./misc -prune -o -name '*.txt' -print"]),
    ],
    "js": [
        ("Node.js docs", "Process | Node.js v20 Documentation", "https://nodejs.org/docs/latest-v20.x/api/process.html",
         ["process.argv", "The process.argv property returns an array containing the command-line arguments passed "
          "when the Node.js process was launched.", "process.exitCode", "process.execArgv", "process.exit([code])"]),
        ("npm", "yargs - npm", "https://www.npmjs.com/package/yargs",
         ["yargs 17.7.2 • Public • Published a year ago", "Yargs be a node.js library fer hearties tryin' ter parse "
          "optstrings", "npm i yargs", "Weekly Downloads", "Dependencies 7"]),
        ("MDN Web Docs", "import - JavaScript | MDN", "https://developer.mozilla.org/en-US/docs/Web/JavaScript/"
         "Reference/Statements/import",
         ["import", "The static import declaration is used to import read-only live bindings which are exported by "
          "another module.", "import defaultExport from \"module-name\";", "import { export1 } from "
          "\"module-name\";"]),
        ("Stack Overflow", "javascript - How do I pass command line arguments to a Node.js program? - Stack Overflow",
         "https://stackoverflow.com/questions/how-do-i-pass-command-line-arguments-to-a-node-js-program",
         ["Asked 14 years ago  Viewed 1.6m times", "I have a web server written in Node.js and I would like to launch "
          "with a specific folder.", "The arguments are stored in process.argv", "Share  Follow"]),
        ("TypeScript", "TypeScript: Documentation - Declaration Files", "https://www.typescriptlang.org/docs/"
         "handbook/declaration-files/introduction.html",
         ["Declaration Files", "The Declaration Files section is designed to teach you how to write a high-quality "
          "TypeScript Declaration File.", "Declaration Reference", "Library Structures", "Publishing"]),
    ],
}
CHATTER = ["okay I think we can start, can everyone see my screen", "let's take the rest offline, I don't want to "
           "run over, thanks everyone", "the customer call went fine, they mostly want the export to be faster",
           "can you hear me? I think my mic was muted, sorry", "so for the sprint I'd like to finish the onboarding "
           "flow and then look at the billing emails", "I'll share the doc after the call, there are a few open "
           "questions about the pricing page", "quick update from infra, the new cluster is ready but we still need "
           "to move the cron jobs", "who's taking notes today? okay thanks", "I think the numbers for last month "
           "were skewed by the outage on the ninth", "can we push the design review to Thursday, I'm still waiting "
           "on feedback from legal", "the dashboard is slow again, I'll look at the queries after lunch",
           "let's do a round of updates, {who} do you want to start", "sorry I'm late, the train was delayed",
           "the interview loop for the backend role is next week, please fill in your slots",
           "we should write a post-mortem for Tuesday, nothing dramatic but worth capturing",
           "I'm going to drop off early today, dentist", "the mobile release is blocked on the app store review",
           "marketing wants the new landing page live before the conference", "{who}, can you own the follow-up "
           "with the vendor", "okay that's all from me, back to you"]

# Meeting remarks close to each language's domain (own text), so technical talk alone does not mark a linked row
ADJACENT_CHATTER = {
    "py": ["the payments client keeps timing out against the bank api, I raised the pool size but it did not help",
           "we should switch the scraper to async, the sync requests are the bottleneck",
           "the proxy at the office rewrites the headers, that's why the uploads fail with a four hundred",
           "can somebody look at why the redirect loses the auth header in staging",
           "I pinned the http library to the old version until the streaming bug is fixed upstream"],
    "rs": ["the log search over the archive folder takes forever, maybe we ignore the compressed files",
           "grep across the monorepo is fine, it's the generated files that slow it down",
           "the regex for the invoice numbers is wrong for the new format, it needs a word boundary",
           "I rewrote the parser in rust over the weekend, it's about ten times faster but the errors are worse",
           "the build on windows breaks on the path separators again"],
    "js": ["the deploy script needs a dry run flag, I almost pushed to prod yesterday",
           "our cli prints the help twice when you pass an unknown option, can someone look",
           "I want the subcommands to share the global options, right now each one parses them separately",
           "node eighteen goes end of life soon, we need to bump the engines field",
           "the typescript types for the config loader are wrong, everything comes back as any"],
}


# What each browser appends to a page title in its window title (Edge puts a zero-width space in its own name)
BROWSER_SUFFIX = {"Firefox": " — Mozilla Firefox", "Google Chrome": " - Google Chrome", "Safari": "",
                  "Microsoft Edge": " - Personal - Microsoft\u200b Edge", "Arc": "", "Brave Browser": " - Brave"}


class NoiseFactory:
    """Everyday-work screens; each call gives one screen as (app, window, url, [texts for the repeated captures]).

    `browsers` ({name: weight}) makes web pages in the noise use the same browsers as the issue pages; without it
    they use Chrome, Firefox and Safari evenly (and news in Safari), as the sets of 2026-12 were built."""

    def __init__(self, rng: random.Random, language: str, browsers: dict[str, int] | None = None):
        self.rng, self.language, self.browsers = rng, language, browsers

    def _browser(self, default: str | None = None) -> str:
        if self.browsers:
            return self.rng.choices(list(self.browsers), weights=list(self.browsers.values()))[0]
        return default or self.rng.choice(["Google Chrome", "Firefox", "Safari"])

    def _fill(self, text: str) -> str:
        rng = self.rng
        values = {"who": rng.choice(PEOPLE), "proj": rng.choice(PROJECTS), "pr": f"PR {rng.randint(120, 4800)}",
                  "month": rng.choice(MONTHS), "q": rng.randint(1, 4), "day": rng.choice(["Mon", "Tue", "Wed", "Thu",
                                                                                         "Fri"]),
                  "topic": rng.choice(TOPICS), "branch": rng.choice(["main", "feature/export", "fix/login",
                                                                      "chore/deps"]),
                  "file": rng.choice(["app.ts", "server.py", "routes.go", "index.tsx", "worker.py"]),
                  "mod": rng.choice(["orders", "users", "billing", "search"]), "ver": f"1.{rng.randint(0, 30)}.0",
                  "n": rng.randint(1, 9), "k": rng.randint(40, 900), "hash": f"{rng.getrandbits(24):06x}",
                  "size": f"{rng.randint(90, 900)}.{rng.randint(10, 99)}", "secs": f"{rng.randint(1, 40)}."
                  f"{rng.randint(10, 99)}"}
        return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), text)

    def _repeat(self, base: list[str], count: int, vary) -> list[str]:
        return ["\n".join(vary(list(base), index)) for index in range(count)]

    def slack(self, count: int):
        rng = self.rng
        channel = rng.choice(CHANNELS)
        messages = [f"{rng.choice(PEOPLE)}  {rng.randint(8, 18)}:{rng.randint(0, 59):02d}  "
                    f"{self._fill(rng.choice(CHAT))}" for _ in range(rng.randint(4, 9))]
        header = ["Acme Inc", "Threads", "Huddles", "Drafts & sent", "Channels"] + rng.sample(CHANNELS, 4)
        header += [channel, f"{rng.randint(5, 60)} members"]

        def vary(lines, index):
            extra = ([f"{rng.choice(PEOPLE)}  now  {self._fill(rng.choice(CHAT))}"]
                     if index and rng.random() < .3 else [])
            return lines + extra + [f"Message {channel}"]
        return "Slack", f"{channel.lstrip('#')} (Channel) - Acme Inc - Slack", None, self._repeat(header + messages,
                                                                                                   count, vary)

    def mail(self, count: int):
        rng = self.rng
        subjects = [self._fill(rng.choice(MAIL_SUBJECTS)) for _ in range(rng.randint(6, 10))]
        rows = [f"{rng.choice(PEOPLE)} {rng.choice(['Lee', 'Park', 'Novak', 'Silva', 'Khan', 'Berg'])}  {subject}  "
                f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} {rng.choice(['AM', 'PM'])}" for subject in subjects]
        opened = subjects[0]
        body = [opened, f"From: {rng.choice(PEOPLE).lower()}@acme.example", "Hi,",
                self._fill(rng.choice(CHAT)).capitalize() + ".", "Let me know if anything is unclear.", "Thanks,",
                rng.choice(PEOPLE)]
        base = ["Inbox", f"{rng.randint(3, 40)} unread", "Favorites", "Sent", "Drafts"] + rows + body
        return "Mail", f"Inbox – {rng.randint(100, 4000)} messages, {rng.randint(1, 40)} unread", None, self._repeat(
            base, count, lambda lines, index: lines)

    def terminal(self, count: int):
        rng = self.rng
        session = [self._fill(line) for line in rng.choice(SHELL_SESSIONS)]
        project = rng.choice(PROJECTS)
        prompt = f"{rng.choice(['dev', 'me', 'alex'])}@mbp {project} %"
        app = rng.choice(["Terminal", "iTerm2"])

        def vary(lines, index):
            return lines + ([prompt] if index % 2 else [f"{prompt} ▌"])
        return app, f"{project} — -zsh — 120×36", None, self._repeat(session, count, vary)

    def editor(self, count: int):
        rng = self.rng
        language = rng.choice(list(CODE_SNIPPETS))
        project = rng.choice(PROJECTS)
        file = {"TypeScript": "invoices.ts", "Python": "rollup.py", "Go": "health.go", "CSS": "card.css",
                "YAML": "docker-compose.yml"}[language]
        code = [self._fill(line) for line in CODE_SNIPPETS[language]]
        base = ["EXPLORER", project.upper(), "src", file, "README.md", "package.json"] + code

        def vary(lines, index):
            return lines + [f"Ln {rng.randint(1, 80)}, Col {rng.randint(1, 60)}  Spaces: 2  UTF-8  LF  {language}"]
        return rng.choice(["Code", "Cursor"]), f"{file} — {project}", None, self._repeat(base, count, vary)

    def docs(self, count: int, adjacent: bool):
        rng = self.rng
        pool = ADJACENT.get(self.language, ADJACENT["py"]) if adjacent else DOCS_PAGES
        site, title, url, lines = rng.choice(pool)
        browser = self._browser()
        suffix = BROWSER_SUFFIX[browser]
        base = [site] + lines

        def vary(lines_, index):
            return lines_[: max(3, len(lines_) - rng.randint(0, 2))] if index else lines_
        return browser, title + suffix, url, self._repeat(base, count, vary)

    def news(self, count: int):
        rng = self.rng
        items = [f"{i + 1}. {headline} ({rng.choice(['github.com', 'blog.example.com', 'lwn.net', 'acm.org'])})\n"
                 f"{rng.randint(20, 900)} points by {rng.choice(PEOPLE).lower()}{rng.randint(1, 99)} "
                 f"{rng.randint(1, 11)} hours ago | {rng.randint(3, 400)} comments"
                 for i, headline in enumerate(rng.sample(NEWS, 7))]
        base = ["Hacker News new | past | comments | ask | show | jobs | submit"] + items
        browser = self._browser(default="Safari")
        return browser, "Hacker News" + BROWSER_SUFFIX[browser], "https://news.ycombinator.com/", self._repeat(
            base, count, lambda lines, index: lines)

    def work_issue(self, count: int):
        rng = self.rng
        title, body = rng.choice(WORK_ISSUES)
        project, number, who = rng.choice(PROJECTS), rng.randint(40, 2400), rng.choice(PEOPLE).lower()
        browser = self._browser()
        suffix = BROWSER_SUFFIX[browser]
        base = [f"acme / {project}", "Code  Issues  Pull requests  Actions  Projects  Insights", f"{title} #{number}",
                f"Open  {who} opened this issue {rng.randint(2, 30)} days ago · {rng.randint(0, 9)} comments"] + body
        comments = [f"{rng.choice(PEOPLE).lower()} commented {rng.randint(1, 20)} days ago",
                    self._fill(rng.choice(CHAT))]

        def vary(lines, index):
            return lines[2:] + comments if index % 3 == 2 else lines
        return browser, f"{title} · Issue #{number} · acme/{project}{suffix}", \
            f"https://github.com/acme/{project}/issues/{number}", self._repeat(base, count, vary)

    def calendar(self, count: int):
        rng = self.rng
        events = [f"{hour}:00  {self._fill(rng.choice(CALENDAR))}" for hour in sorted(rng.sample(range(8, 18), 5))]
        base = [f"{rng.choice(MONTHS)} {rng.randint(2019, 2026)}", "Day  Week  Month  Year", "Today"] + events
        return "Calendar", "Calendar", None, self._repeat(base, count, lambda lines, index: lines)

    def screen(self, count: int):
        rng = self.rng
        kind = rng.choices(["slack", "mail", "terminal", "editor", "docs", "adjacent", "news", "calendar",
                            "work_issue"], weights=[20, 14, 16, 16, 9, 8, 8, 9, 6])[0]
        if kind in ("docs", "adjacent"):
            return self.docs(count, adjacent=kind == "adjacent")
        return getattr(self, kind)(count)


# -------------------------------------------------------------------------------------------- database writing


@dataclass
class Capture:
    moment: datetime
    kind: str  # frame | audio
    text: str
    app: str = ""
    window: str = ""
    url: str | None = None
    accessibility: bool = False
    trigger: str | None = None
    device: str = "MacBook Pro Microphone (input)"
    tag: str = ""  # "page:<number>", "audio:<number>", or "" for noise
    order: int = 0


def rfc3339(moment: datetime, rng: random.Random) -> str:
    """RFC 3339 with 3, 6 or 9 fraction digits and +00:00, as screenpipe writes it."""
    moment = moment.astimezone(timezone.utc)
    digits = rng.choices([3, 6, 9], weights=[3, 6, 1])[0]
    nanos = moment.microsecond * 1000 + rng.randint(0, 999)
    fraction = f"{nanos:09d}"[:digits]
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction}+00:00"


def write_database(path: Path, captures: list[Capture], rng: random.Random) -> dict[str, list[int]]:
    """Insert captures in time order; returns {tag: [ids as "ocr:<id>" / "audio:<id>"]}."""
    if path.exists():
        path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA.read_text(encoding="utf-8"))
    conn.execute("BEGIN")
    ids: dict[str, list[int]] = defaultdict(list)
    chunk_id, chunk_start, offset = None, None, 0
    for capture in sorted(captures, key=lambda c: (c.moment, c.order)):
        stamp = rfc3339(capture.moment, rng)
        if capture.kind == "audio":
            chunk_path = (f"/Users/dev/.screenpipe/data/{capture.device}_"
                          f"{capture.moment:%Y-%m-%d_%H-%M-%S}.mp4")
            audio_chunk = conn.execute("INSERT INTO audio_chunks(file_path, timestamp) VALUES (?, ?)",
                                       (chunk_path, stamp)).lastrowid
            start = round(rng.uniform(0, 18), 2)
            row = conn.execute(
                "INSERT INTO audio_transcriptions(audio_chunk_id, offset_index, timestamp, transcription, device,"
                " is_input_device, speaker_id, transcription_engine, start_time, end_time, text_length)"
                " VALUES (?, 0, ?, ?, ?, ?, ?, 'WhisperLargeV3Turbo', ?, ?, ?)",
                (audio_chunk, stamp, capture.text, capture.device, capture.device.endswith("(input)"),
                 rng.randint(1, 6), start, round(start + len(capture.text) / rng.uniform(12, 17), 2),
                 len(capture.text)),
            ).lastrowid
            ids[capture.tag].append(f"audio:{row}")
            continue
        if capture.moment < SNAPSHOT_ERA:
            if chunk_id is None or (capture.moment - chunk_start).total_seconds() > 120:
                chunk_start, offset = capture.moment, 0
                chunk_id = conn.execute(
                    "INSERT INTO video_chunks(file_path, device_name, fps) VALUES (?, 'monitor_1', 0.5)",
                    (f"/Users/dev/.screenpipe/data/monitor_1_{capture.moment:%Y-%m-%d_%H-%M-%S}.mp4",),
                ).lastrowid
            frame = conn.execute(
                "INSERT INTO frames(video_chunk_id, offset_index, timestamp, name, app_name, window_name, focused,"
                " browser_url, device_name, text_source, full_text) VALUES (?, ?, ?, ?, ?, ?, 1, ?, 'monitor_1',"
                " 'ocr', ?)",
                (chunk_id, offset, stamp, f"/Users/dev/.screenpipe/data/monitor_1_{chunk_start:%Y-%m-%d_%H-%M-%S}.mp4",
                 capture.app, capture.window, capture.url, capture.text),
            ).lastrowid
            offset += 1
        else:
            millis = int(capture.moment.timestamp() * 1000)
            snapshot = f"/Users/dev/.screenpipe/data/snapshots/{capture.moment:%Y-%m-%d}/{millis}_m1.jpg"
            frame = conn.execute(
                "INSERT INTO frames(video_chunk_id, offset_index, timestamp, name, app_name, window_name, focused,"
                " browser_url, device_name, snapshot_path, accessibility_text, capture_trigger, text_source,"
                " full_text) VALUES (NULL, 0, ?, ?, ?, ?, 1, ?, 'monitor_1', ?, ?, ?, ?, ?)",
                (stamp, snapshot, capture.app, capture.window, capture.url, snapshot,
                 capture.text if capture.accessibility else None, capture.trigger,
                 "accessibility" if capture.accessibility else "ocr", capture.text),
            ).lastrowid
        if not capture.accessibility:
            conn.execute(
                "INSERT INTO ocr_text(frame_id, text, text_json, app_name, ocr_engine, window_name, focused,"
                " text_length) VALUES (?, ?, '[]', '', 'AppleNative', NULL, 0, ?)",
                (frame, capture.text, len(capture.text)),
            )
        ids[capture.tag].append(f"ocr:{frame}")
    conn.execute("COMMIT")
    conn.close()
    return ids


# --------------------------------------------------------------------------------------------------- the build


@dataclass
class Parameters:
    seed: int
    lead_time: dict
    ocr_rate: float
    audio_share: float
    distractor_audio_share: float
    accessibility_share: float
    noise_frames: int
    noise_near_commit_share: float
    browser_weights: dict
    meeting_sessions: int
    distractors: int
    max_targets: int
    capture_tail_days: int
    extra: dict = field(default_factory=dict)


def draw_parameters(seed: int, noise_frames: int | None, distractors: int | None, max_targets: int) -> Parameters:
    rng = random.Random(f"{seed}:parameters")
    shape = rng.choice(["log-uniform", "recent-skew", "bimodal"])
    lead = {"shape": shape, "min_hours": 1, "max_hours": 120}
    if shape == "recent-skew":
        lead["exponential_mean_hours"] = round(rng.uniform(12, 36), 1)
    if shape == "bimodal":
        lead["same_day_share"] = round(rng.uniform(0.4, 0.7), 2)
    return Parameters(
        seed=seed, lead_time=lead, ocr_rate=round(rng.uniform(0.02, 0.06), 3),
        audio_share=round(rng.uniform(0.4, 0.6), 2), distractor_audio_share=round(rng.uniform(0.05, 0.2), 2),
        accessibility_share=round(rng.uniform(0.08, 0.15), 2),
        noise_frames=noise_frames or rng.randint(2200, 3800), noise_near_commit_share=round(rng.uniform(0.5, 0.7), 2),
        browser_weights={"Firefox": rng.randint(2, 6), "Google Chrome": rng.randint(3, 7), "Safari": rng.randint(1, 3)},
        meeting_sessions=rng.randint(90, 160), distractors=distractors or rng.randint(22, 28), max_targets=max_targets,
        capture_tail_days=rng.randint(20, 45),
    )


LEAD_SHAPES = ("log-uniform", "recent-skew", "bimodal", "late-fix")


def apply_overrides(params: Parameters, seed: int, lead_shape: str | None = None, audio_share: float | None = None,
                    browsers: dict[str, int] | None = None) -> Parameters:
    """Replace drawn parameters by chosen ones; what a chosen shape needs is drawn from its own stream, so the
    other streams (and every set built without overrides) stay as they were. The choices are kept in `extra`."""
    rng = random.Random(f"{seed}:overrides")
    chosen: dict = {}
    if lead_shape:
        lead = {"shape": lead_shape, "min_hours": 1, "max_hours": 120}
        if lead_shape == "recent-skew":
            lead["exponential_mean_hours"] = round(rng.uniform(12, 36), 1)
        elif lead_shape == "bimodal":
            lead["same_day_share"] = round(rng.uniform(0.4, 0.7), 2)
        elif lead_shape == "late-fix":
            # issue-style history: the report is read a day or more before the maintainer commits the fix
            lead["late_share"] = round(rng.uniform(0.65, 0.85), 2)
        params.lead_time = lead
        chosen["lead_shape"] = lead_shape
    if audio_share is not None:
        params.audio_share = audio_share
        chosen["audio_share"] = audio_share
    if browsers:
        params.browser_weights = dict(browsers)
        chosen["browsers"] = dict(browsers)
    if chosen:
        params.extra = {**params.extra, "overrides": chosen}
    return params


def lead_time(params: Parameters, rng: random.Random) -> timedelta:
    """How long before the commit a page was read: 1 h .. 5 days, in the set's distribution."""
    shape, low, high = params.lead_time["shape"], 1.0, 120.0
    if shape == "log-uniform":
        hours = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif shape == "recent-skew":
        hours = low + rng.expovariate(1 / params.lead_time["exponential_mean_hours"])
    elif shape == "late-fix":
        late = rng.random() < params.lead_time["late_share"]
        hours = rng.uniform(24, high) if late else math.exp(rng.uniform(math.log(low), math.log(24)))
    elif rng.random() < params.lead_time["same_day_share"]:
        hours = rng.uniform(low, 10)
    else:
        hours = rng.uniform(24, high)
    return timedelta(hours=min(high - 0.2, max(low + 0.05, hours)))


def browser_title(thread: Thread, owner: str, name: str, browser: str) -> str:
    noun = "Issue" if thread.kind == "issue" else "Pull Request"
    by = f" by {thread.author}" if thread.kind == "pr" and thread.opening_post else ""
    base = f"{thread.title}{by} · {noun} #{thread.number} · {owner}/{name}"
    return base + BROWSER_SUFFIX[browser]


def page_captures(thread: Thread, start: datetime, state: str, tag: str, renderer: PageRenderer,
                  params: Parameters, rng: random.Random, owner: str, name: str) -> list[Capture]:
    """2-4 frames of one visit to a thread page, starting at `start`, the page showing `state`."""
    browser = rng.choices(list(params.browser_weights), weights=list(params.browser_weights.values()))[0]
    count = rng.choices([2, 3, 4], weights=[3, 4, 2])[0]
    captures, moment = [], start
    for index, clean in enumerate(renderer.frames(thread, count, start, state)):
        snapshot = moment >= SNAPSHOT_ERA
        accessible = snapshot and rng.random() < params.accessibility_share
        text = clean if accessible else renderer.ocr(clean)
        trigger = (rng.choice(["app_switch", "window_focus", "click"]) if index == 0 else "scroll_stop") if snapshot \
            else None
        captures.append(Capture(moment=moment, kind="frame", text=text, app=browser,
                                window=browser_title(thread, owner, name, browser), url=thread.url,
                                accessibility=accessible, trigger=trigger, tag=tag))
        moment += timedelta(seconds=rng.uniform(8, 95))
    return captures


def choose_targets(threads: dict[int, Thread], history: list[CommitInfo], max_targets: int,
                   rng: random.Random) -> tuple[dict[int, CommitInfo], list[int]]:
    """{thread number: target commit}, one page per commit; plus thread numbers cited but left unused."""
    by_commit: dict[str, list[int]] = {}
    for commit in history:
        if commit.eligible:
            # only pages that existed (created day + 30 min) early enough to be read >= 1 h before the commit
            pages = [n for n in commit.refs if n in threads
                     and threads[n].created + timedelta(minutes=30) < commit.author_time - HOUR - VISIT]
            if pages:
                by_commit[commit.sha] = pages
    commits = {c.sha: c for c in history}
    claimed: dict[int, CommitInfo] = {}
    for sha in sorted(by_commit, key=lambda s: commits[s].author_time):
        pages = sorted(by_commit[sha], key=lambda n: (-len(threads[n].text), n))
        for number in pages:
            if number not in claimed:
                claimed[number] = commits[sha]
                break
    unused = sorted({n for pages in by_commit.values() for n in pages} - set(claimed))
    if len(claimed) > max_targets:
        keep = sorted(rng.sample(sorted(claimed), max_targets))
        unused = sorted(set(unused) | (set(claimed) - set(keep)))
        claimed = {n: claimed[n] for n in keep}
    return claimed, unused


def build(mirror: Path, threads_path: Path, out: Path, seed: int, pin: str | None, distractors: int | None,
          max_targets: int, noise_frames: int | None, lead_shape: str | None = None, audio_share: float | None = None,
          browsers: dict[str, int] | None = None) -> dict:
    spec = json.loads(threads_path.read_text(encoding="utf-8"))
    owner, name = spec["repository"].split("/")
    threads = {t.number: t for t in (parse_thread(raw) for raw in spec["threads"])}
    pinned = pin or git(mirror, "rev-parse", "HEAD").decode().strip()
    pinned = git(mirror, "rev-parse", f"{pinned}^{{commit}}").decode().strip()
    history = read_history(mirror, pinned, owner, name)
    cited_anywhere = all_cited(mirror)
    params = apply_overrides(draw_parameters(seed, noise_frames, distractors, max_targets), seed, lead_shape,
                             audio_share, browsers)
    rng = random.Random(f"{seed}:select")

    targets, unused = choose_targets(threads, history, params.max_targets, rng)
    head_time = history[0].commit_time
    capture_end = head_time + timedelta(days=params.capture_tail_days)
    candidates = sorted(n for n, t in threads.items() if t.distractor_ok and n not in cited_anywhere
                        and n not in targets and t.created + 3 * DAY < capture_end and len(t.text) >= 60)
    chosen_distractors = sorted(rng.sample(candidates, min(params.distractors, len(candidates))))

    # ---- screens and audio
    captures: list[Capture] = []
    render_rng = random.Random(f"{seed}:render")
    renderer = PageRenderer(owner, name, render_rng, params.ocr_rate)
    timing = random.Random(f"{seed}:timing")
    audio_rng = random.Random(f"{seed}:audio")
    audio_targets, target_sessions = [], {}
    clipped_leads = 0
    for number in sorted(targets):
        commit, thread = targets[number], threads[number]
        # the page cannot be read before it exists (created is a day): redraw leads that fall before that day
        exists = thread.created + timedelta(minutes=30)
        start = commit.author_time - lead_time(params, timing) - VISIT
        for _ in range(50):
            if start >= exists:
                break
            start = commit.author_time - lead_time(params, timing) - VISIT
        else:
            clipped_leads += 1
            start = exists + (commit.author_time - HOUR - VISIT - exists) * timing.random()
        target_sessions[number] = start
        captures += page_captures(thread, start, "open", f"page:{number}", renderer, params, render_rng, owner,
                                  name)
        if audio_rng.random() < params.audio_share:
            latest = commit.author_time - HOUR - timedelta(minutes=2)
            moment = min(latest, start + timedelta(hours=audio_rng.uniform(-20, 6)))
            moment = max(moment, commit.author_time - 5 * DAY + HOUR, exists)
            captures.append(Capture(moment=moment, kind="audio", text=spoken_paragraph(threads[number], audio_rng),
                                    tag=f"audio:{number}"))
            audio_targets.append(number)
    distractor_audio = []
    for number in chosen_distractors:
        thread = threads[number]
        start = thread.created + timedelta(hours=timing.uniform(2, 70))
        state = thread.state if thread.state == "open" or render_rng.random() < 0.3 else "open"
        captures += page_captures(thread, start, state, f"page:{number}", renderer, params, render_rng, owner,
                                  name)
        if audio_rng.random() < params.distractor_audio_share:
            captures.append(Capture(moment=start + timedelta(minutes=audio_rng.uniform(5, 300)), kind="audio",
                                    text=spoken_paragraph(thread, audio_rng), tag=f"audio:{number}"))
            distractor_audio.append(number)

    # ---- everyday noise
    noise_rng = random.Random(f"{seed}:noise")
    language = Counter(Path(p).suffix.lstrip(".") for p in git(mirror, "ls-tree", "-r", "--name-only", pinned)
                       .decode(errors="replace").split("\n") if Path(p).suffix in CODE_EXTENSIONS)
    dominant = {"ts": "js", "tsx": "js", "jsx": "js"}.get(language.most_common(1)[0][0], language.most_common(1)[0][0])
    factory = NoiseFactory(noise_rng, dominant, browsers=params.browser_weights if browsers else None)
    first = min([c.moment for c in captures]) - 7 * DAY
    eligible_times = [c.author_time for c in history if c.eligible and c.author_time - 7 * DAY >= first]
    span = (capture_end - first).total_seconds()
    noise_count = 0
    while noise_count < params.noise_frames:
        repeats = noise_rng.randint(3, 20)
        if noise_rng.random() < params.noise_near_commit_share:
            moment = noise_rng.choice(eligible_times) - timedelta(seconds=noise_rng.uniform(0, 7 * 86400))
        else:
            moment = first + timedelta(seconds=noise_rng.uniform(0, span))
        app, window, url, texts = factory.screen(repeats)
        for text in texts:
            snapshot = moment >= SNAPSHOT_ERA
            accessible = snapshot and noise_rng.random() < params.accessibility_share
            captures.append(Capture(
                moment=moment, kind="frame", text=text if accessible else renderer.ocr(text), app=app, window=window,
                url=url, accessibility=accessible,
                trigger=noise_rng.choice(["visual_change", "typing_pause", "click", "app_switch", "window_focus",
                                          "scroll_stop"]) if snapshot else None))
            moment += timedelta(seconds=noise_rng.uniform(2, 12))
            noise_count += 1
    meeting_rows = 0
    for _ in range(params.meeting_sessions):
        moment = first + timedelta(seconds=noise_rng.uniform(0, span))
        device = noise_rng.choice(["MacBook Pro Microphone (input)"] * 3 + ["MacBook Pro Speakers (output)"])
        for _ in range(noise_rng.randint(1, 3)):
            pool = CHATTER + ADJACENT_CHATTER.get(dominant, [])
            parts = noise_rng.choice([1, 1, 2, 2, 3])
            sentence = ". ".join(factory._fill(noise_rng.choice(pool)) for _ in range(parts))
            copies = 2 if noise_rng.random() < 0.15 else 1  # screenpipe sometimes stores a transcript twice
            for copy in range(copies):
                captures.append(Capture(moment=moment + timedelta(seconds=copy * noise_rng.uniform(1, 4)),
                                        kind="audio", text=sentence, device=device))
                meeting_rows += 1
            moment += timedelta(seconds=noise_rng.uniform(20, 90))
    for index, capture in enumerate(captures):
        capture.order = index

    # ---- lay out both variants
    out.mkdir(parents=True, exist_ok=True)
    refs_dir, stripped_dir = out / "refs", out / "stripped"
    for variant in (refs_dir, stripped_dir):
        variant.mkdir(exist_ok=True)
    refs_repo = refs_dir / "repo"
    if refs_repo.exists():
        shutil.rmtree(refs_repo)
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(mirror), str(refs_repo)], check=True)
    git(refs_repo, "checkout", "-q", "-B", "main", pinned)
    mapping = rewrite_history(refs_repo, stripped_dir / "repo", owner, name)

    db = refs_dir / "screenpipe.db"
    ids = write_database(db, captures, random.Random(f"{seed}:stamps"))
    shutil.copy2(db, stripped_dir / "screenpipe.db")

    # ---- truth
    page_ids = {n: ids[f"page:{n}"] for n in sorted(targets)}
    audio_ids = {n: ids[f"audio:{n}"] for n in audio_targets}
    truth_by_original: dict[str, list[str]] = {}
    for number, commit in sorted(targets.items()):
        # its own page, plus other target pages it cites that were already on screen before it was written
        cited_pages = [n for n in commit.refs if n in targets and target_sessions[n] < commit.author_time]
        found = set()
        for page in {number, *cited_pages}:
            found |= set(page_ids[page]) | set(audio_ids.get(page, []))
        truth_by_original[commit.sha] = sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))
    related_by_original: dict[str, list[str]] = {}
    target_shas = set(truth_by_original)
    for commit in history:
        if commit.sha in target_shas:
            continue
        pages = [n for n in commit.refs if n in targets]
        if pages:
            related_by_original[commit.sha] = [i for n in pages for i in page_ids[n] + audio_ids.get(n, [])]
    distractor_ids = sorted(i for n in chosen_distractors for i in ids[f"page:{n}"] + ids.get(f"audio:{n}", []))

    eligible = [c for c in history if c.eligible]
    max_commits = int(math.ceil((len(history) + 1) / 500.0) * 500)
    counts = {
        "frames": sum(1 for c in captures if c.kind == "frame"), "audio": sum(1 for c in captures if c.kind == "audio"),
        "target_frames": sum(len(v) for v in page_ids.values()), "target_audio": len(audio_targets),
        "distractor_frames": sum(len(ids[f"page:{n}"]) for n in chosen_distractors),
        "distractor_audio": len(distractor_audio), "noise_frames": noise_count, "meeting_audio_rows": meeting_rows,
        "accessibility_only_frames": sum(1 for c in captures if c.kind == "frame" and c.accessibility),
        "accessibility_only_truth_frames": sum(1 for c in captures if c.kind == "frame" and c.accessibility
                                                and c.tag.startswith("page:") and int(c.tag[5:]) in targets),
        "targets": len(targets), "target_issues": sum(threads[n].kind == "issue" for n in targets),
        "target_pull_requests": sum(threads[n].kind == "pr" for n in targets), "distractors": len(chosen_distractors),
        "truth_ids": sum(len(v) for v in truth_by_original.values()),
        "commits": len(history), "eligible_commits": len(eligible),
    }
    years = Counter(targets[n].author_time.year for n in targets)
    parameters = {**params.__dict__, "pinned": pinned, "dominant_language": dominant,
                  "capture_start": first.isoformat(), "capture_end": capture_end.isoformat(),
                  "target_years": dict(sorted(years.items())), "unused_cited_threads": unused,
                  "leads_drawn_uniformly_after_page_creation": clipped_leads}
    for variant, strip in ((refs_dir, False), (stripped_dir, True)):
        rename = (lambda sha: mapping[sha]) if strip else (lambda sha: sha)
        truth = {rename(sha): ids_ for sha, ids_ in sorted(truth_by_original.items(), key=lambda kv: rename(kv[0]))}
        meta = {
            "layout": LAYOUT, "strip_refs": strip, "repo": "repo",
            "source_repository": f"https://github.com/{owner}/{name}", "pinned_commit": pinned, "seed": seed,
            "targets": [{"sha": rename(commit.sha), "original_sha": commit.sha, "issue": number,
                         "kind": threads[number].kind, "author_date": commit.author_time.isoformat(),
                         "commit_date": commit.commit_time.isoformat(),
                         "first_frame": target_sessions[number].isoformat(),
                         "lead_hours": round((commit.author_time - target_sessions[number]).total_seconds() / 3600, 2)}
                        for number, commit in sorted(targets.items(), key=lambda kv: kv[1].author_time)],
            "related": {rename(sha): ids_ for sha, ids_ in sorted(related_by_original.items())},
            "distractor_ids": distractor_ids, "distractors": chosen_distractors, "audio_targets": audio_targets,
            "distractor_audio": distractor_audio, "counts": counts, "generation": parameters,
        }
        (variant / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        (variant / "truth_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        (variant / "pipeline_config.json").write_text(json.dumps(pipeline_config(max_commits), indent=2) + "\n")
        shutil.copy2(SCORER, variant / "score.py")
    check(out, owner, name, mapping)
    return {"repository": f"{owner}/{name}", "out": str(out), "pinned": pinned, **counts,
            "audio_rows": counts["audio"], "max_commits": max_commits}


def pipeline_config(max_commits: int) -> dict:
    return {
        "paths": {"screenpipe_db": "screenpipe.db", "git_repo": "repo", "output_file": "output/training_data.jsonl"},
        "document_sources": {"directories": [], "extensions": [".md", ".txt", ".rst", ".yml", ".yaml"]},
        "filtering": {"min_knowledge_length": 100, "min_code_lines": MIN_CODE_LINES, "max_commits": max_commits,
                      "top_k_matches": 3},
        "confidence": {"min_confidence": 0.6},
        "code_extensions": CODE_EXTENSIONS,
    }


def check(out: Path, owner: str, name: str, mapping: dict[str, str] | None = None) -> None:
    """Every truth and related commit exists in its variant's repo; the stripped rewrite kept trees and dates."""
    for variant in ("refs", "stripped"):
        repo = out / variant / "repo"
        truth = json.loads((out / variant / "truth.json").read_text())
        meta = json.loads((out / variant / "truth_meta.json").read_text())
        shas = list(truth) + list(meta["related"])
        listed = set(git(repo, "rev-list", "HEAD").decode().split())
        missing = [sha for sha in shas if sha not in listed]
        if missing:
            raise SystemExit(f"{variant}: {len(missing)} truth/related commits are not in HEAD's history "
                             f"(e.g. {missing[0]})")
        if variant == "stripped":
            pattern = reference_pattern(owner, name)
            leaks = [t["sha"] for t in meta["targets"]
                     if cited_numbers(git(repo, "log", "-1", "--format=%B", t["sha"]).decode(errors="replace"),
                                      pattern)]
            if leaks:
                raise SystemExit(f"stripped: {len(leaks)} target messages still cite a number (e.g. {leaks[0]})")
            old_log = git(out / "refs" / "repo", "log", "--format=%T %aI %cI %an <%ae>")
            if old_log != git(repo, "log", "--format=%T %aI %cI %an <%ae>"):
                raise SystemExit("stripped: the rewritten history differs from refs in some tree, date or author")
            for target in meta["targets"]:
                old = git(out / "refs" / "repo", "show", "-s", "--format=%T %aI %cI", target["original_sha"])
                new = git(repo, "show", "-s", "--format=%T %aI %cI", target["sha"])
                if old != new:
                    raise SystemExit(f"stripped: {target['sha']} differs from {target['original_sha']} in tree or "
                                     "dates")
        print(f"{variant}: {len(truth)} target commits and {len(meta['related'])} related commits present, "
              f"HEAD {git(repo, 'rev-parse', 'HEAD').decode().strip()[:10]}")


def parse_browsers(text: str) -> dict[str, int]:
    """ "Microsoft Edge=5,Firefox=2" -> {"Microsoft Edge": 5, "Firefox": 2}; argparse reports a ValueError."""
    weights: dict[str, int] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        browser, _, weight = part.rpartition("=")
        if browser.strip() not in BROWSER_SUFFIX or not weight.strip().isdigit() or int(weight) < 1:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not BROWSER=WEIGHT with a browser among {', '.join(BROWSER_SUFFIX)} and a whole "
                "weight of 1 or more")
        weights[browser.strip()] = int(weight)
    if not weights:
        raise argparse.ArgumentTypeError("give at least one BROWSER=WEIGHT, e.g. \"Microsoft Edge=5,Firefox=2\"")
    return weights


def share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench linking_sets", description=__doc__.split("\n\n")[0])
    parser.add_argument("mirror", type=Path, help="git directory of the repository (bare mirror or clone)")
    parser.add_argument("threads", type=Path, help="threads.json collected for the repository")
    parser.add_argument("out", type=Path, help="output folder (outside the project); gets refs/ and stripped/")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--pin", help="commit to pin (default: the mirror's HEAD)")
    parser.add_argument("--distractors", type=int, help="distractor pages (default: drawn from the seed, 22-28)")
    parser.add_argument("--max-targets", type=int, default=70)
    parser.add_argument("--noise-frames", type=int, help="everyday-work frames (default: drawn, 2,200-3,800)")
    parser.add_argument("--lead-shape", choices=LEAD_SHAPES,
                        help="how long before a commit its page was read (default: drawn; late-fix is only chosen)")
    parser.add_argument("--audio-share", type=share, help="share of target pages also spoken (default: drawn, 0.4-0.6)")
    parser.add_argument("--browsers", type=parse_browsers, metavar="NAME=W,...",
                        help="browsers of the issue pages and of the web pages in the noise, with weights (default: "
                             "Firefox, Chrome and Safari with drawn weights)")
    parser.add_argument("--check-only", action="store_true", help="only check an existing OUT")
    args = parser.parse_args(argv)
    if not (args.mirror / "HEAD").exists() and not (args.mirror / ".git").exists():
        print(f"{args.mirror} is not a git directory; pass the folder the fetch tool returned.", file=sys.stderr)
        return 2
    if not args.threads.is_file():
        print(f"{args.threads} does not exist; pass the threads.json collected for the repository.", file=sys.stderr)
        return 2
    if args.check_only:
        owner, name = json.loads(args.threads.read_text())["repository"].split("/")
        check(args.out, owner, name)
        return 0
    summary = build(args.mirror, args.threads, args.out, args.seed, args.pin, args.distractors, args.max_targets,
                    args.noise_frames, args.lead_shape, args.audio_share, args.browsers)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
