"""Build the demo workspace: a small, deterministic world to try the studio on.

`build_demo(root)` writes, from the story in engine/demo/content.py:
- screenpipe/db.sqlite  a screenpipe database in the current schema (through ScreenpipeWriter): the screens and
                        calls of four weeks of work, captured every few seconds with screenpipe's repetition
                        (exact and near duplicates), short junk frames and unrelated screens;
- repo/                 the git repository those screens led to (fixed authors and dates: same SHAs everywhere);
- docs/                 the team's Markdown docs;
- conversations/        assistant.jsonl, Maya's coding-assistant log (one conversation per line, one line cut off);
- pipeline_config.json  the seeds' config, with paths relative to this folder;
- ground_truth.json     for every commit, the knowledge ids ("ocr:<frames.id>", "audio:<id>", "doc:docs/<file>")
                        that truly explain it, and the hard distractors that only look like they do.
Everything random comes from random.Random(2026), so two builds are identical. The build happens in a hidden
folder beside root that is renamed into place at the end: a crash never leaves half a demo behind.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from engine.demo import content as story
from engine.demo.screenpipe_builder import ScreenpipeWriter
from engine.demo.widgets import build_widget_gallery
from engine.errors import StudioError
from engine.files import building_folder

SEED = 2026
CONFIG_NAME = "pipeline_config.json"
GROUND_TRUTH_NAME = "ground_truth.json"
GENERATOR = "engine.demo"
PERIOD = (date(2026, 10, 5), date(2026, 11, 13))
PARTS = (CONFIG_NAME, GROUND_TRUTH_NAME, "screenpipe/db.sqlite", "repo/.git", "docs", "conversations/assistant.jsonl")
REMOTE_URL = "git@github.com:skycast-dev/skycast.git"  # never contacted: it names the project, as a clone's does

PIPELINE_CONFIG = {
    "paths": {
        "screenpipe_db": "screenpipe/db.sqlite",
        "git_repo": "repo",
        "output_file": "output/training_data.jsonl",
    },
    "document_sources": {"directories": ["docs"], "extensions": [".md", ".txt", ".rst", ".yml", ".yaml"]},
    "filtering": {"min_knowledge_length": 100, "min_code_lines": 5, "max_commits": 500, "top_k_matches": 3},
    "confidence": {"min_confidence": 0.6},
    "code_extensions": [".rs", ".py", ".ts", ".tsx", ".js", ".jsx"],
    "studio": {"workspace": "workspace"},
    "collect": {"conversation_logs": ["conversations"]},
}


def build_demo(root: Path = Path("data/demo"), force: bool = False) -> Path:
    """Build the demo under root (unless a complete, current one is there and not force); return its config path.

    root is replaced only when it is empty or holds a demo this function built; anything else is refused.
    """
    root = Path(root)
    if not force and is_complete(root):
        return root / CONFIG_NAME
    if root.exists() and not _replaceable(root):
        raise StudioError(f"{root} exists and is not a demo workspace, so it was left alone: choose another folder.")
    # Another process that built the same demo at the same time is as good as this build.
    with building_folder(root, accept_existing=is_complete) as staging:
        _build_into(staging)
    return root / CONFIG_NAME


def is_complete(root: Path) -> bool:
    """True when root holds every part of a demo built by this version of the story."""
    if not all((root / part).exists() for part in PARTS):
        return False
    truth = _read_truth(root)
    return bool(truth) and truth.get("generator") == GENERATOR and truth.get("demo_version") == story.DEMO_VERSION


def _read_truth(root: Path) -> dict | None:
    try:
        return json.loads((root / GROUND_TRUTH_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _replaceable(root: Path) -> bool:
    if not root.is_dir():
        return False
    if not any(root.iterdir()):
        return True
    truth = _read_truth(root)
    return bool(truth) and truth.get("generator") == GENERATOR


# ------------------------------------------------------------------------------------------------------------
# The timeline: every capture and every transcript, planned before anything is written.
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _Capture:
    moment: datetime
    text: str
    app: str
    window: str
    url: str | None
    snapshot: bool
    topics: tuple[str, ...]
    hard_for: tuple[str, ...]


@dataclass
class _Utterance:
    moment: datetime
    text: str
    voice: str
    topics: tuple[str, ...]


def _utc(text: str) -> datetime:
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def berlin_offset(moment: datetime) -> timedelta:
    """Central European time: UTC+2 from the last Sunday of March 01:00 UTC to the last Sunday of October."""
    year = moment.year
    summer_start = datetime.combine(_last_sunday(year, 3), datetime.min.time(), timezone.utc) + timedelta(hours=1)
    summer_end = datetime.combine(_last_sunday(year, 10), datetime.min.time(), timezone.utc) + timedelta(hours=1)
    return timedelta(hours=2 if summer_start <= moment < summer_end else 1)


def _screen(key: str) -> dict:
    return story.SCREENS.get(key) or story.DISTRACTORS[key]


def _fill(text: str, moment: datetime, cursor: tuple[int, int], unread: int) -> str:
    local = moment + berlin_offset(moment)
    return (
        text.replace("@LN@", str(cursor[0]))
        .replace("@COL@", str(cursor[1]))
        .replace("@UNREAD@", str(unread))
        .replace("@TIME@", local.strftime("%H:%M"))
    )


def _junk(rng: random.Random, moment: datetime) -> _Capture:
    app, window, text = rng.choice(story.JUNK)
    return _Capture(moment, text, app, window, None, False, (), ())


def _session(rng: random.Random, start: datetime, visits: list[tuple[str, int]]) -> tuple[list[_Capture], datetime]:
    """Captures for a sequence of screen visits: every 2-5 s while a screen is up, minutes between visits."""
    captures: list[_Capture] = []
    moment = start + timedelta(seconds=rng.uniform(0, 50))
    for index, (key, count) in enumerate(visits):
        if index:
            moment += timedelta(seconds=rng.uniform(60, 420))
            if rng.random() < 0.35:
                captures.append(_junk(rng, moment))
                moment += timedelta(seconds=rng.uniform(2, 5))
        screen = _screen(key)
        cursor = (rng.randint(8, 60), rng.randint(1, 40))
        unread = rng.randint(1, 9)
        for shot in range(count):
            if shot:
                moment += timedelta(seconds=rng.uniform(2, 5))
                if rng.random() < 0.3:  # the cursor moved: a near-duplicate
                    cursor = (cursor[0] + rng.randint(-3, 3) or 1, rng.randint(1, 40))
                if rng.random() < 0.1:  # a new notification: another near-duplicate
                    unread += 1
            captures.append(
                _Capture(
                    moment,
                    _fill(screen["text"], moment, cursor, unread),
                    screen["app"],
                    _fill(screen["window"], moment, cursor, unread),
                    screen.get("url"),
                    shot == 0 and rng.random() < 0.3,
                    tuple(screen.get("topics", ())),
                    tuple(screen.get("hard_for", ())),
                )
            )
    return captures, moment


def _plan(rng: random.Random) -> tuple[list[_Capture], list[_Utterance]]:
    captures: list[_Capture] = []
    utterances: list[_Utterance] = []
    for commit in story.COMMITS:
        if not commit["discussed"]:
            continue
        start, committed = _utc(commit["discussed"]), _utc(commit["committed"])
        session, end = _session(rng, start, commit["visits"])
        if end >= committed - timedelta(hours=1):
            raise ValueError(f"story error: the discussion of {commit['key']!r} does not end an hour before its commit")
        captures.extend(session)
        for line in commit["audio"]:
            minutes, voice, text = line[:3]
            topics = tuple(line[3]) if len(line) > 3 else (commit["key"],)
            moment = start + timedelta(minutes=minutes, seconds=rng.uniform(0.5, 25))
            if moment >= committed:
                raise ValueError(f"story error: a call about {commit['key']!r} happens after its commit")
            utterances.append(_Utterance(moment, text, voice, topics))
    day = PERIOD[0]
    while day <= PERIOD[1]:
        if day.weekday() < 5:
            for at, pool, pick in story.DAILY_ROUTINE:
                if rng.random() < story.ROUTINE_SKIP:
                    continue
                visits = [(key, rng.randint(2, 4)) for key in rng.sample(pool, pick)]
                session, _ = _session(rng, _utc(f"{day.isoformat()} {at}"), visits)
                captures.extend(session)
                if rng.random() < 0.5:
                    captures.append(_junk(rng, session[-1].moment + timedelta(seconds=rng.uniform(2, 5))))
        day += timedelta(days=1)
    for at, voice, text in story.AMBIENT_AUDIO:
        utterances.append(_Utterance(_utc(at) + timedelta(seconds=rng.uniform(0.5, 25)), text, voice, ()))
    captures.sort(key=lambda capture: capture.moment)
    utterances.sort(key=lambda utterance: utterance.moment)
    return captures, utterances


# ------------------------------------------------------------------------------------------------------------
# Writing the parts.
# ------------------------------------------------------------------------------------------------------------


def _write_screenpipe(path: Path, captures: list[_Capture], utterances: list[_Utterance]) -> tuple[list, list]:
    frame_ids, audio_ids = [], []
    with ScreenpipeWriter(path, era="current") as writer:
        for capture in captures:
            frame_ids.append(
                writer.add_frame(
                    capture.moment, capture.text, capture.app, capture.window, capture.url, snapshot=capture.snapshot
                )
            )
        for utterance in utterances:
            device, speaker = story.VOICES[utterance.voice]
            audio_ids.append(writer.add_audio(utterance.moment, utterance.text, device=device, speaker_id=speaker))
    return frame_ids, audio_ids


def _git_env(home: Path) -> dict[str, str]:
    """An environment in which no user or system git config can change what gets written."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        "TZ": "UTC",
    }


def _git(repo: Path, env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    command = ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args]
    try:
        result = subprocess.run(command, cwd=repo, env=env, input=stdin, capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise StudioError("git is not installed, and the demo workspace needs it to build its repository.") from exc
    except subprocess.CalledProcessError as exc:
        raise StudioError(f"git {args[0]} failed while building the demo: {exc.stderr.decode().strip()}") from exc
    return result.stdout.decode()


def _apply(files: dict[str, bytes], change: tuple) -> None:
    kind, path = change[0], change[1]
    if kind == "write":
        files[path] = change[2].encode("utf-8")
    elif kind == "binary":
        files[path] = base64.b64decode(change[2])
    elif kind == "append":
        files[path] = files[path] + change[2].encode("utf-8")
    elif kind == "rename":
        files[change[2]] = files.pop(path)
    elif kind == "replace":
        text = files[path].decode("utf-8")
        if text.count(change[2]) != 1:
            raise ValueError(f"story error: {change[2]!r} occurs {text.count(change[2])} times in {path}")
        files[path] = text.replace(change[2], change[3]).encode("utf-8")
    else:
        raise ValueError(f"story error: unknown change {kind!r}")


def _fast_import_stream(commits: list[dict]) -> tuple[bytes, list[list[str]]]:
    """One `git fast-import` stream for the whole history, and the paths each commit touches."""
    files: dict[str, bytes] = {}
    stream = bytearray()
    touched: list[list[str]] = []
    for number, commit in enumerate(commits, start=1):
        before = dict(files)
        for change in commit["changes"]:
            _apply(files, change)
        deleted = sorted(set(before) - set(files))
        changed = sorted(path for path in files if before.get(path) != files[path])
        touched.append(sorted(deleted + changed))
        name, email = story.AUTHORS[commit["author"]]
        moment = _utc(commit["committed"])
        offset = int(berlin_offset(moment).total_seconds() // 3600)
        signature = f"{name} <{email}> {int(moment.timestamp())} +{offset:02d}00\n"
        message = (commit["message"].rstrip("\n") + "\n").encode("utf-8")
        stream += f"commit refs/heads/main\nmark :{number}\nauthor {signature}committer {signature}".encode()
        stream += f"data {len(message)}\n".encode() + message
        if number > 1:
            stream += f"from :{number - 1}\n".encode()
        for path in deleted:
            stream += f"D {path}\n".encode()
        for path in changed:
            stream += f"M 100644 inline {path}\ndata {len(files[path])}\n".encode() + files[path] + b"\n"
        stream += b"\n"
    return bytes(stream), touched


def _write_repo(repo: Path, home: Path) -> tuple[list[str], list[list[str]]]:
    repo.mkdir(parents=True)
    env = _git_env(home)
    _git(repo, env, "init", "-q")
    stream, touched = _fast_import_stream(story.COMMITS)
    _git(repo, env, "fast-import", "--quiet", "--date-format=raw", stdin=stream)
    _git(repo, env, "reset", "--hard", "-q", "main")
    _git(repo, env, "remote", "add", "origin", REMOTE_URL)
    shas = _git(repo, env, "rev-list", "--reverse", "main").split()
    if len(shas) != len(story.COMMITS):
        raise StudioError(f"the demo repository has {len(shas)} commits instead of {len(story.COMMITS)}.")
    return shas, touched


def _ground_truth(
    shas: list[str],
    touched: list[list[str]],
    captures: list[_Capture],
    frame_ids: list[int],
    utterances: list[_Utterance],
    audio_ids: list[int],
) -> dict:
    commits = []
    for sha, paths, commit in zip(shas, touched, story.COMMITS, strict=True):
        key, committed = commit["key"], _utc(commit["committed"])
        frames = [
            f"ocr:{frame_id}"
            for frame_id, capture in zip(frame_ids, captures, strict=True)
            if key in capture.topics and capture.moment < committed
        ]
        audio = [
            f"audio:{audio_id}"
            for audio_id, utterance in zip(audio_ids, utterances, strict=True)
            if key in utterance.topics and utterance.moment < committed
        ]
        hard = [
            f"ocr:{frame_id}"
            for frame_id, capture in zip(frame_ids, captures, strict=True)
            if key in capture.hard_for and capture.moment < committed
        ]
        commits.append(
            {
                "sha": sha,
                "subject": commit["message"].split("\n", 1)[0],
                "key": key,
                "author": story.AUTHORS[commit["author"]][0],
                "committed_at": committed.isoformat(),
                "files": paths,
                "knowledge": frames + audio + [f"doc:{doc}" for doc in commit["docs"]],
                "hard_distractors": hard,
            }
        )
    return {
        "generator": GENERATOR,
        "demo_version": story.DEMO_VERSION,
        "seed": SEED,
        "period": {"start": PERIOD[0].isoformat(), "end": PERIOD[1].isoformat()},
        "counts": {
            "frames": len(captures),
            "unique_frame_texts": len({capture.text for capture in captures}),
            "audio": len(utterances),
            "commits": len(shas),
            "docs": len(story.DOCS),
        },
        "commits": commits,
    }


def conversation_lines() -> list[str]:
    """The lines of conversations/assistant.jsonl: every conversation, one logged twice, one cut off."""
    lines = []
    for index, conversation in enumerate(story.CONVERSATIONS):
        lines.append(json.dumps(conversation, ensure_ascii=False))
        if index == story.DUPLICATED:
            lines.append(lines[-1])
    lines.insert(story.MALFORMED_AT - 1, story.MALFORMED_LINE)
    return lines


def _write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _build_into(folder: Path) -> None:
    rng = random.Random(SEED)
    captures, utterances = _plan(rng)
    frame_ids, audio_ids = _write_screenpipe(folder / "screenpipe" / "db.sqlite", captures, utterances)
    docs = folder / "docs"
    docs.mkdir()
    for name, text in story.DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    shas, touched = _write_repo(folder / "repo", home=folder)
    conversations = folder / "conversations"
    conversations.mkdir()
    (conversations / "assistant.jsonl").write_text("\n".join(conversation_lines()) + "\n", encoding="utf-8")
    _write_json(folder / CONFIG_NAME, PIPELINE_CONFIG)
    build_widget_gallery(folder / PIPELINE_CONFIG["studio"]["workspace"] / "widgets")
    _write_json(folder / GROUND_TRUTH_NAME, _ground_truth(shas, touched, captures, frame_ids, utterances, audio_ids))
