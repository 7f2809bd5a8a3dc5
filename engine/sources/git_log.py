"""Read code commits from git repositories, read-only: one `git log -p` process per read, GitPython for the rest.

Non-merge commits, newest first, until `max_commits` commits with code changes are kept (the seeds' "maximum
commits to process": commits that only touch docs or config do not use up the budget); per changed code file (by
extension) the added lines and the whole diff; renames detected; binary files skipped and counted. Incremental:
given the last commit seen, only the commits after it are read. A commit's time is its author date: when the
change was written, which a rebase, cherry-pick or amend later does not move (its committer date can be months
later, and then nothing the developer read before writing it would fall in its linking window).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import git

from engine.clock import iso_utc
from engine.errors import SourceError
from engine.records import Commit, FileChange
from engine.sources.report import SourceReport

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree: the parent of a root commit


def open_repository(path: Path) -> git.Repo:
    """Open a repository for reading; SourceError with one sentence if it is not one or has no commits."""
    if not path.exists():
        raise SourceError(f"`paths.git_repo`: {path} does not exist; point it at a git repository.")
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(
            f"`paths.git_repo`: {path} is not a git repository (no .git found); point it at a repository's folder."
        ) from None
    if repo.bare:
        raise SourceError(f"`paths.git_repo`: {path} is a bare repository; point it at a checkout instead.")
    if not repo.head.is_valid():
        raise SourceError(
            f"`paths.git_repo`: {path} has no commits yet; commit something or choose another repository."
        )
    return repo


def _split_diff(raw: bytes) -> tuple[str, list[str], int]:
    text = raw.decode("utf-8", errors="replace")
    added, removed = [], 0
    for line in text.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return text, added, removed


def _change_type(diff: git.Diff) -> str:
    if diff.renamed_file:
        return "R"
    if diff.new_file:
        return "A"
    if diff.deleted_file:
        return "D"
    return "M"


_FIELD = b"\x1f"
_QUOTED = re.compile(rb'\\([0-7]{3}|.)')
_ESCAPES = {b"n": b"\n", b"t": b"\t", b"\\": b"\\", b'"': b'"', b"a": b"\a", b"b": b"\b", b"f": b"\f",
            b"r": b"\r", b"v": b"\v"}


def _unquote(path: bytes) -> str:
    """A path as git prints it: C-quoted ("a\ttab") when it has unusual characters, else as is."""
    if path.startswith(b'"') and path.endswith(b'"'):
        path = _QUOTED.sub(lambda m: bytes([int(m.group(1), 8)]) if len(m.group(1)) == 3
                           else _ESCAPES.get(m.group(1), m.group(1)), path[1:-1])
    return path.decode("utf-8", errors="replace")


def _strip_prefix(path: bytes, prefix: bytes) -> bytes:
    quoted = path.startswith(b'"')
    inner = path[1:] if quoted else path
    if inner.startswith(prefix):
        inner = inner[len(prefix):]
    return (b'"' + inner) if quoted else inner


@dataclass
class _FilePatch:
    path: str | None = None
    old_path: str | None = None
    change_type: str = "M"
    binary: bool = False
    body: list[bytes] = field(default_factory=list)


def _file_patches(patch: bytes) -> list[_FilePatch]:
    """`git log -p` output of one commit, per file: paths, kind of change, binary or not, and the hunks."""
    files: list[_FilePatch] = []
    current: _FilePatch | None = None
    in_body = False
    for line in patch.split(b"\n"):
        if line.startswith(b"diff --git "):
            current = _FilePatch()
            files.append(current)
            in_body = False
            # "a/X b/X": the name when no other line gives it (a mode change); renames and edits say it again
            names = line[11:]
            half = (len(names) - 5) // 2
            if half > 0 and names.startswith(b"a/") and names[2 + half:] == b" b/" + names[2:2 + half]:
                current.path = _unquote(names[2:2 + half])
            continue
        if current is None:
            continue
        if in_body:
            current.body.append(line)
        elif line.startswith(b"@@"):
            in_body = True
            current.body.append(line)
        elif line.startswith(b"new file mode"):
            current.change_type = "A"
        elif line.startswith(b"deleted file mode"):
            current.change_type = "D"
        elif line.startswith(b"rename from "):
            current.old_path, current.change_type = _unquote(line[12:]), "R"
        elif line.startswith(b"rename to "):
            current.path = _unquote(line[10:])
        elif line.startswith(b"--- ") and line[4:] != b"/dev/null":
            # git ends a name that holds a space with a tab on these two lines
            current.old_path = current.old_path or _unquote(_strip_prefix(line[4:].removesuffix(b"\t"), b"a/"))
        elif line.startswith(b"+++ ") and line[4:] != b"/dev/null":
            current.path = _unquote(_strip_prefix(line[4:].removesuffix(b"\t"), b"b/"))
        elif line.startswith(b"Binary files "):
            current.binary = True
            names = line[len(b"Binary files "):].rsplit(b" differ", 1)[0]
            old, _, new = names.partition(b" and ")
            if new != b"/dev/null":
                current.path = current.path or _unquote(_strip_prefix(new, b"b/"))
            if old != b"/dev/null":
                current.old_path = current.old_path or _unquote(_strip_prefix(old, b"a/"))
    for item in files:
        if item.path is None:  # deleted: only the old name is printed
            item.path = item.old_path
        if item.change_type != "R":
            item.old_path = None
        while item.body and item.body[-1] == b"":
            item.body.pop()
    return [item for item in files if item.path]


def _log_records(repo_path: Path, rev: str) -> Iterator[tuple[bytes, bytes]]:
    """(header, patch) per non-merge commit, newest first, streamed from one `git log -p` process (one process for
    the whole history, not one `git diff` per commit). Records are cut at markers made fresh for each read, so no
    commit message can forge one. Read-only; the process is ended when the caller stops."""
    token = secrets.token_hex(8)
    start, end = f"\x1eS{token}\x1e".encode(), f"\x1eE{token}\x1e".encode()
    command = ["git", "-C", str(repo_path), "-c", "core.quotepath=off", "log", "--no-merges", "-p", "-M",
               "--no-color", "--no-ext-diff", "--no-textconv", "--encoding=UTF-8",
               f"--format=%x1eS{token}%x1e%H%x1f%an%x1f%aI%x1f%B%x1eE{token}%x1e", rev, "--"]
    errors = tempfile.TemporaryFile()  # a file, not a pipe: git can never block on a full stderr pipe
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)

    def records() -> Iterator[bytes]:
        """The stream cut at record starts (a record may span many reads)."""
        pending = b""
        while chunk := process.stdout.read(1 << 20):
            pieces = (pending + chunk).split(start)
            yield from pieces[:-1]
            pending = pieces[-1]
        yield pending

    try:
        for record in records():
            header, found, patch = record.partition(end)
            if found:
                yield header, patch
        process.wait()
        if process.returncode:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise SourceError(f"`paths.git_repo`: git log failed in {repo_path} "
                              f"({message[-1] if message else f'exit {process.returncode}'}).")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        errors.close()


def read_commits(
    repo_path: Path,
    code_extensions: list[str],
    min_code_lines: int,
    max_commits: int,
    after_sha: str | None,
    report: SourceReport,
) -> Iterator[Commit]:
    """Yield kept commits, newest first. `report` counts every commit read and every file skipped, by reason.
    A shallow clone's oldest commits show their whole tree as added, as git itself shows a root commit."""
    repo = open_repository(repo_path)
    head = repo.head.commit.hexsha
    rev = "HEAD"
    if after_sha:
        try:
            if repo.is_ancestor(after_sha, head):
                rev = f"{after_sha}..HEAD"
            else:
                report.notes.append(f"{after_sha[:10]} is no longer an ancestor of HEAD; reading history again")
        except git.GitCommandError:
            report.notes.append(f"{after_sha[:10]} is gone from the repository; reading history again")
    extensions = {ext.lower() for ext in code_extensions}
    if shallow_boundary(repo):
        report.notes.append(f"{repo_path.name} is a shallow clone: a commit whose parent is not in it is read as a "
                            "root commit (every file added); `git fetch --unshallow` reads it properly")
    records = _log_records(repo_path, rev)
    try:
        for header, patch in records:
            if report.kept >= max_commits:
                break
            report.rows_read += 1
            sha, author, stamp, message = (header.split(_FIELD, 3) + [b"", b"", b""])[:4]
            sha_text = sha.decode("ascii", "replace").strip()
            files = []
            for item in _file_patches(patch):
                path = item.path
                where = f"{sha_text[:10]}:{path}"
                if item.binary:
                    report.skip("file: binary", where)
                    continue
                if Path(path).suffix.lower() not in extensions:
                    report.skip("file: not a code file (code_extensions)", where)
                    continue
                if item.change_type == "D":
                    report.skip("file: deleted", where)
                    continue
                text, added, removed = _split_diff(b"\n".join(item.body))
                if len(added) < min_code_lines:
                    report.skip(f"file: fewer than min_code_lines ({min_code_lines}) added lines", where)
                    continue
                files.append(FileChange(
                    path=path, old_path=item.old_path, change_type=item.change_type, added_lines=len(added),
                    removed_lines=removed, added_code="\n".join(added), diff=text,
                ))
            if not files:
                report.skip("commit: no code file with enough added lines", sha_text)
                continue
            report.kept += 1
            yield Commit(
                sha=sha_text, repo=str(repo_path), message=message.decode("utf-8", errors="replace").strip(),
                author=author.decode("utf-8", errors="replace"),
                timestamp=iso_utc(datetime.fromisoformat(stamp.decode("ascii", "replace").strip())), files=files,
            )
    finally:
        records.close()


def shallow_boundary(repo: git.Repo) -> set[str]:
    """The commits at the edge of a shallow clone (`git clone --depth N`): their parents are not in the repository."""
    try:
        return set((Path(repo.common_dir) / "shallow").read_text().split())
    except OSError:
        return set()


def commit_diffs(repo: git.Repo, commit: git.Commit, boundary: set[str]) -> tuple[list, bool]:
    """(the commit's diff against its first parent, False), or against the empty tree when it has no parent in
    this repository (a root commit, or the edge of a shallow clone, where asking for the parent fails with
    `bad object`), True."""
    if commit.parents and commit.hexsha not in boundary:
        try:
            return commit.parents[0].diff(commit, create_patch=True, M=True), False
        except git.GitCommandError as exc:
            if "bad object" not in str(exc) and "unknown revision" not in str(exc):
                raise
    return repo.tree(EMPTY_TREE).diff(commit, create_patch=True), True


def commit_files(repo: git.Repo, sha: str) -> list[dict] | None:
    """Every file a commit changed (not only the code files read_commits keeps), with its patch, by path: path,
    old_path (renames), change_type, added_lines, removed_lines, diff, binary. None when the repository no longer has
    the commit."""
    try:
        commit = repo.commit(sha)
        diffs, _ = commit_diffs(repo, commit, shallow_boundary(repo))
    except (ValueError, git.GitError):
        return None
    files = []
    for diff in diffs:
        raw = diff.diff or b""
        binary = raw.startswith(b"Binary files") or b"\x00" in raw[:8000]
        text, added, removed = ("", [], 0) if binary else _split_diff(raw)
        files.append({"path": diff.b_path or diff.a_path, "old_path": diff.a_path if diff.renamed_file else None,
                      "change_type": _change_type(diff), "added_lines": len(added), "removed_lines": removed,
                      "diff": text, "binary": binary})
    return sorted(files, key=lambda file: file["path"])
