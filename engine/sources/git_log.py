"""Read code commits from git repositories (GitPython), read-only.

Non-merge commits, newest first, until `max_commits` commits with code changes are kept (the seeds' "maximum
commits to process": commits that only touch docs or config do not use up the budget); per changed code file (by
extension) the added lines and the whole diff; renames detected; binary files skipped and counted. Incremental:
given the last commit seen, only the commits after it are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import git

from engine.errors import SourceError
from engine.records import Commit, FileChange, iso_utc
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


def read_commits(
    repo_path: Path,
    code_extensions: list[str],
    min_code_lines: int,
    max_commits: int,
    after_sha: str | None,
    report: SourceReport,
) -> Iterator[Commit]:
    """Yield kept commits, newest first. `report` counts every commit read and every file skipped, by reason."""
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
    for commit in repo.iter_commits(rev, no_merges=True):
        if report.kept >= max_commits:
            break
        report.rows_read += 1
        if commit.parents:
            diffs = commit.parents[0].diff(commit, create_patch=True, M=True)
        else:
            diffs = repo.tree(EMPTY_TREE).diff(commit, create_patch=True)
        files = []
        for diff in diffs:
            path = diff.b_path or diff.a_path
            where = f"{commit.hexsha[:10]}:{path}"
            raw = diff.diff or b""
            if raw.startswith(b"Binary files") or b"\x00" in raw[:8000]:
                report.skip("file: binary", where)
                continue
            if Path(path).suffix.lower() not in extensions:
                report.skip("file: not a code file (code_extensions)", where)
                continue
            if diff.deleted_file:
                report.skip("file: deleted", where)
                continue
            text, added, removed = _split_diff(raw)
            if len(added) < min_code_lines:
                report.skip(f"file: fewer than min_code_lines ({min_code_lines}) added lines", where)
                continue
            files.append(FileChange(
                path=path, old_path=diff.a_path if diff.renamed_file else None, change_type=_change_type(diff),
                added_lines=len(added), removed_lines=removed, added_code="\n".join(added), diff=text,
            ))
        if not files:
            report.skip("commit: no code file with enough added lines", commit.hexsha)
            continue
        report.kept += 1
        yield Commit(
            sha=commit.hexsha, repo=str(repo_path), message=commit.message.strip(),
            author=commit.author.name or "", timestamp=iso_utc(commit.committed_datetime), files=files,
        )


def head_sha(repo_path: Path) -> str:
    return open_repository(repo_path).head.commit.hexsha
