"""Commit-message examples: "Given these code changes in <repo>, write a commit message." -> the message.

The input is the diff summary (`path | N ++--`, as `git diff --stat` prints it) and a compact excerpt of the diff
(hunk headers and changed lines, cut to EXCERPT_TOKENS). Commits are filtered as CommitPackFT (OctoPack) filters
them (reference/formats.md §5), each rejection with its reason:
- message length 10 (collect.min_message_chars) to 10,000 characters;
- no merges, generic messages ("initial commit", "update readme", "wip", "Update <file>", ...), version bumps,
  messages holding SHAs, URLs or "cherry picked from";
- the subject, after stripping `[skip ci]`, a leading `[tag]` and a `path:` prefix, starts with an uppercase
  imperative verb and has at least 4 words. A Conventional Commits type (`feat(ui): add ...`) is stripped too and
  its description is not case-checked, since that convention writes it in lowercase;
- the change is non-empty and its compact diff is at most MAX_DIFF_TOKENS (CommitPackFT bounds code size too; its
  50-768 token window suits single files, ours is whole commits).
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from engine.dataset.tokens import get_tokenizer
from engine.records import Example, Skip
from engine.sources.git_log import commit_files

MAX_MESSAGE_CHARS = 10_000
MIN_SUBJECT_WORDS = 4
MAX_DIFF_TOKENS = 4_096
EXCERPT_TOKENS = 768
STAT_WIDTH = 20

GENERIC_MESSAGES = frozenset("""
initial commit|first commit|init|initial|initial import|update|updates|updated|update readme|update readme.md|
updated readme|update readme file|wip|work in progress|test|tests|testing|add files via upload|upload files|
fix|fixes|fixed|bug fix|bugfix|bugfixes|minor fix|minor fixes|small fix|minor changes|minor change|changes|
change|cleanup|clean up|refactor|refactoring|stuff|commit|save|tmp|temp|typo|fix typo|fix typos|misc|
more|done|final|finished|working|update code|code cleanup|first version|new version|latest|sync|merge|
added files|add files|update files|updated files|initial version|readme|update gitignore|add gitignore
""".replace("\n", "").split("|"))

IMPERATIVE_VERBS = frozenset("""
accept access account activate adapt add adjust align allow amend annotate append apply archive ask assert assign
avoid backport batch bind block bootstrap bound break bring buffer build bump bundle cache calculate call cancel
cap capture catch center centre change check clamp clarify clean clear clone close coalesce collapse collect color
colour combine comment commit compare compile complete compress compute configure connect consolidate constrain
convert copy correct count cover create cut debounce debug declare decode decouple deduplicate dedupe default
defer define delay delegate delete deny deprecate derive describe detect disable disallow discard dismiss display
distinguish document downgrade drop dump duplicate edit emit enable encode encrypt enforce enhance ensure escape
exclude execute exit expand expect explain export expose extend extract factor fail fall fetch fill filter find
finish fix flag flatten flip flush fold follow force forget fork format forward free freeze generate get give
group grow guard handle hardcode hash harden hide highlight hoist honor honour hook ignore implement import improve
include increase increment indent index infer inherit initialise initialize inject inline insert install
integrate introduce invalidate invert invoke isolate join keep kill label launch lazy-load let lift limit link lint
list listen load localise localize lock log look loosen lower make map mark mask match measure memoize mention
merge migrate minimize mirror mock modify mount move mute name narrow negate nest normalise normalize note notify
obey offer omit open optimise optimize order organise organize output override pad paginate parallelize
parameterize parse pass patch pause permit persist pick pin place play plug point poll polish populate port
post prefer prefix preload prepare prepend preserve prevent print prioritize process produce profile prohibit
promote prompt propagate protect provide prune publish pull purge push put query queue quote raise randomize
rate-limit re-enable read rebase rebuild recalculate receive recognize record recover redact redesign redirect
reduce refactor refer refetch refine reformat refresh register reimplement reject relax release reload remember
remove rename render reorder reorganise reorganize repackage repair rephrase replace report represent request
require rerun rescue reset reshape resize resolve respect respond restart restore restrict restructure resume
retain rethrow retry return reuse revamp reverse revert review revise reword rework rewrite rollback rotate round
route run sanitise sanitize save scaffold scale scan schedule scope scroll search secure seed select send
separate serialise serialize serve set setup shift shorten show shrink shuffle sign silence simplify simulate
skip slice slow smooth snapshot sort specify speed split squash stabilise stabilize stage standardise
standardize start stash state stop store stream strengthen strip stub style subscribe suggest support suppress
swap switch sync synchronise synchronize tag tailor take teach test throttle throw tidy tighten time toggle
track transform translate treat trigger trim truncate try tune turn tweak type unblock uncomment unescape unify
uninstall unlock unmount unpin unregister unset unwrap update upgrade upload use validate vendor verify warn
watch whitelist widen wire work wrap write yield zip
""".split())

_SKIP_CI = re.compile(r"\[(?:skip[ -]ci|ci[ -]skip|no[ -]ci|skip[ -]actions|actions[ -]skip)\]", re.IGNORECASE)
_LEADING_TAGS = re.compile(r"^(?:\[[^\]]*\]\s*)+")
_CONVENTIONAL = re.compile(
    r"^(?:feat|fix|docs|style|refactor|perf|test|tests|build|ci|chore|revert)(?:\([^)]*\))?!?:\s*", re.IGNORECASE)
_PATH_PREFIX = re.compile(r"^[\w./-]+:\s+")
_MERGE = re.compile(r"^merge (?:branch|pull request|remote-tracking|tag|commit|\S+ into)\b", re.IGNORECASE)
_VERSION = re.compile(r"\bv?\d+\.\d+(?:\.\d+)*(?:[-+][\w.]+)?\b")
_VERSION_WORDS = re.compile(r"^(?:bump|release|releasing|prepare|preparing|version|tag|cut)\b|\bbump(?:ed|s)? "
                            r"(?:the )?version\b|^v?\d+\.\d+", re.IGNORECASE)
_FILE_ONLY = re.compile(r"^(?:update|updated|edit|edited|change|changed|modify|modified|create|created|delete|deleted"
                        r"|add|added|upload|uploaded|rename|renamed)\s+[\w./-]+\.\w+$", re.IGNORECASE)
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_URL = re.compile(r"\b(?:https?|ftp)://|\bwww\.[a-z0-9-]+\.[a-z]", re.IGNORECASE)


def _has_sha(message: str) -> bool:
    return any(re.search(r"\d", word) and re.search(r"[a-f]", word) for word in _SHA.findall(message))


def strip_subject(subject: str) -> tuple[str, bool]:
    """The subject as CommitPackFT judges it, and whether its case is checked (not after a Conventional type)."""
    subject = _SKIP_CI.sub("", subject).strip()
    subject = _LEADING_TAGS.sub("", subject).strip()
    conventional = _CONVENTIONAL.match(subject)
    if conventional:
        return subject[conventional.end():].strip(), False
    return _PATH_PREFIX.sub("", subject, count=1).strip(), True


def message_rejection(message: str, min_chars: int) -> str | None:
    """Why a commit message is not a good training target (CommitPackFT's rules), or None to keep it."""
    message = message.strip()
    if len(message) < min_chars:
        return f"message shorter than {min_chars} characters"
    if len(message) > MAX_MESSAGE_CHARS:
        return f"message longer than {MAX_MESSAGE_CHARS:,} characters"
    subject = message.splitlines()[0].strip()
    if _MERGE.match(subject):
        return "merge commit"
    if re.sub(r"[\s.!]+$", "", subject.lower()) in GENERIC_MESSAGES or _FILE_ONLY.match(subject):
        return "generic message"
    if _VERSION_WORDS.search(subject) and _VERSION.search(subject):
        return "version bump"
    if "cherry picked from" in message.lower():
        return "cherry-picked commit"
    if _has_sha(message):
        return "message contains a commit SHA"
    if _URL.search(message):
        return "message contains a URL"
    stripped, check_case = strip_subject(subject)
    if not stripped:
        return "subject is empty after stripping tags"
    if check_case and not stripped[0].isupper():
        return "subject does not start with an uppercase letter"
    first = re.match(r"[A-Za-z][A-Za-z-]*", stripped)
    if not first or first.group(0).lower() not in IMPERATIVE_VERBS:
        return "subject does not start with an imperative verb"
    if len(stripped.split()) < MIN_SUBJECT_WORDS:
        return f"subject under {MIN_SUBJECT_WORDS} words"
    return None


GENERATED_FILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "Cargo.lock", "poetry.lock",
                             "uv.lock", "Gemfile.lock", "go.sum", "composer.lock", "Pipfile.lock", "bun.lockb"})


def diff_stat(files: list[dict]) -> str:
    """`path | N +++--` lines, scaled like `git diff --stat`, and a totals line."""
    widest = max((file["added_lines"] + file["removed_lines"] for file in files), default=0)
    scale = min(1.0, STAT_WIDTH / widest) if widest else 1.0
    names = [f"{file['old_path']} => {file['path']}" if file["old_path"] else file["path"] for file in files]
    pad = max((len(name) for name in names), default=0)
    lines = []
    for name, file in zip(names, files, strict=True):
        added, removed = file["added_lines"], file["removed_lines"]
        if file.get("binary"):
            lines.append(f"{name:<{pad}} | Bin")
            continue
        bar = "+" * math.ceil(added * scale) + "-" * math.ceil(removed * scale)
        lines.append(f"{name:<{pad}} | {added + removed} {bar}".rstrip())
    added = sum(file["added_lines"] for file in files)
    removed = sum(file["removed_lines"] for file in files)
    lines.append(f"{len(files)} file{'s' if len(files) != 1 else ''} changed, {added} insertion"
                 f"{'s' if added != 1 else ''}(+), {removed} deletion{'s' if removed != 1 else ''}(-)")
    return "\n".join(lines)


_KINDS = {"A": "new file", "M": "modified", "R": "renamed", "D": "deleted"}


def compact_diff(files: list[dict]) -> str:
    """Each file's hunk headers and changed lines (context lines dropped): what changed, in few tokens. Binary and
    generated files (lockfiles) are named in the stat only."""
    parts = []
    for file in files:
        if file.get("binary") or file["path"].rsplit("/", 1)[-1] in GENERATED_FILES:
            continue
        kind = f"renamed from {file['old_path']}" if file["old_path"] else _KINDS.get(file["change_type"], "changed")
        lines = [f"--- {file['path']} ({kind})"]
        for line in file["diff"].splitlines():
            if line.startswith("@@") or (line[:1] in "+-" and not line.startswith(("+++", "---"))):
                lines.append(line)
        if len(lines) > 1:
            parts.append("\n".join(lines))
    return "\n".join(parts)


def cut_to_tokens(text: str, budget: int, count) -> tuple[str, int]:
    """`text` cut at a line boundary to at most `budget` tokens; returns (excerpt, lines left out)."""
    lines = text.splitlines()
    total = count(text)
    if total <= budget:
        return text, 0
    keep = max(1, int(len(lines) * budget / total))
    while keep > 1 and count("\n".join(lines[:keep])) > budget:
        keep = max(1, int(keep * 0.9))
    return "\n".join(lines[:keep]), len(lines) - keep


class _Repositories:
    """Repositories by path, each opened once per run (None when it cannot be opened) and closed at the end."""

    def __init__(self):
        self.opened: dict[str, object] = {}
        self.fallbacks = 0  # commits whose repository (or the commit in it) is gone

    def get(self, path: str):
        import git

        if path not in self.opened:
            try:
                self.opened[path] = git.Repo(path)
            except (git.GitError, OSError):
                self.opened[path] = None
        return self.opened[path]

    def close(self) -> None:
        for repo in self.opened.values():
            if repo is not None:
                repo.close()


@functools.lru_cache(maxsize=64)
def project_name(repo_path: str) -> str:
    """A repository's name as people say it: the origin remote's last path part, else the folder name."""
    import git

    path = Path(repo_path)
    try:
        with git.Repo(path) as repo:
            url = repo.remotes.origin.url
        name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
        if name:
            return name
    except (git.GitError, AttributeError, ValueError, OSError):
        pass  # no repository there any more, or no origin remote: the folder name is what people see
    return path.name or str(path)


def _stored_files(conn: sqlite3.Connection, sha: str) -> list[dict]:
    return [dict(row) for row in conn.execute(
        "SELECT path, old_path, change_type, added_lines, removed_lines, diff FROM file_changes WHERE commit_sha = ?"
        " ORDER BY path", (sha,))]


def read_commit_examples(conn: sqlite3.Connection, min_message_chars: int, collected: set[str], notes: list[str]
                         ) -> Iterator[Example | Skip | str]:
    """One Example or Skip per workspace commit, oldest first. A sha in `collected` (already an example) is yielded
    as the sha itself so the caller counts it as already collected without rebuilding it.

    The diff is read from the repository (read-only) so that it shows every file the commit changed; when the
    repository or the commit is gone, the code files extract stored are used instead."""
    count = get_tokenizer(None).count
    repositories = _Repositories()
    try:
        yield from _commit_examples(conn, min_message_chars, collected, count, repositories)
    finally:
        repositories.close()
    if repositories.fallbacks:
        notes.append(f"commits: {repositories.fallbacks} commit(s) are no longer in their repository; their message "
                     "was paired with the code files extract stored")


def _commit_examples(conn, min_message_chars, collected, count, repositories) -> Iterator[Example | Skip | str]:
    for commit in conn.execute("SELECT sha, repo, message, timestamp FROM commits ORDER BY timestamp, sha"
                               ).fetchall():
        sha = commit["sha"]
        if sha in collected:
            yield sha
            continue
        message = commit["message"].strip()
        reason = message_rejection(message, min_message_chars)
        if reason:
            yield Skip(reason, sha)
            continue
        repo = repositories.get(commit["repo"])
        files = commit_files(repo, sha) if repo is not None else None
        if files is None:
            repositories.fallbacks += 1
            files = _stored_files(conn, sha)
        if not any(file["added_lines"] + file["removed_lines"] for file in files):
            yield Skip("no changed lines", sha)
            continue
        diff = compact_diff(files)
        diff_tokens = count(diff)
        if diff_tokens > MAX_DIFF_TOKENS:
            yield Skip(f"diff too large (over {MAX_DIFF_TOKENS:,} tokens)", sha)
            continue
        excerpt, left_out = cut_to_tokens(diff, EXCERPT_TOKENS, count)
        if left_out:
            excerpt += f"\n[… {left_out} more diff lines not shown]"
        repo = project_name(commit["repo"])
        record = {
            "instruction": f"Given these code changes in {repo}, write a commit message.",
            "input": f"{diff_stat(files)}\n\nDiff:\n{excerpt}",
            "output": message,
            "metadata": {
                "source": "commits", "commit_sha": sha, "repo": commit["repo"],
                "commit_timestamp": commit["timestamp"], "files": [file["path"] for file in files],
                "has_body": bool("\n".join(message.splitlines()[1:]).strip()), "diff_truncated": bool(left_out),
            },
        }
        yield Example("commits", "instruction", sha, record, commit["timestamp"])
