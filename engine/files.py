"""Files users rely on, written so a crash never leaves half of one: atomic files and atomic folder swaps.

Every writer of a dataset, export, adapter version or demo goes through here, so "only a regular file is ever
replaced" and "a half-built folder never takes the place of a whole one" are each decided once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.errors import StudioError


def file_kind(mode: int) -> str:
    """What a non-regular file is, in the words an error message uses."""
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def output_target(path: str | os.PathLike) -> Path:
    """The regular file a write to `path` replaces: `path` itself, or what a symlink there points to (the write goes
    through the link, which stays). StudioError when that is a folder, device, FIFO or socket, or when something
    on the way to it is not a folder, so nothing is replaced and no folder is created beside such a thing."""
    path = Path(path).expanduser()
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:
        raise StudioError(f"{path} cannot be written: {exc.strerror}.") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise StudioError(f"{path} is a {file_kind(mode)}, not a regular file; give the path of a file to write.")
    for folder in target.parents:
        try:
            mode = os.stat(folder).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise StudioError(f"{path} cannot be written: {exc.strerror}.") from None
        if not stat.S_ISDIR(mode):
            raise StudioError(f"{path} cannot be written: {folder} is a {file_kind(mode)}, not a folder.")
        break
    return target


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a file users rely on atomically: a temp file in the same folder, fsync, then rename. Only a regular
    file is ever replaced (see `output_target`). A new file gets the permissions the umask allows (teammates can
    read an export when the umask says so); a replaced file keeps its own."""
    target = output_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        keep_mode = None
    payload = data if isinstance(data, bytes) else data.encode("utf-8")
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            if keep_mode is not None:
                os.fchmod(handle.fileno(), keep_mode)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def building_folder(target: Path, accept_existing: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a folder beside `target` and swap it in whole when the block ends without an error.

    Yields an empty staging folder in target's parent. On success it becomes `target` (mode 0755); an old folder
    there is moved aside first and deleted last, and put back if the swap fails. On an error the staging folder
    is removed and target is untouched. `accept_existing(target)` says whether a folder another process put at
    target during the swap is just as good (then this build is dropped instead of raising)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o755)
        _swap_in(staging, target, accept_existing)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, target: Path, accept_existing: Callable[[Path], bool] | None) -> None:
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None and not target.exists():
            os.replace(old, target)
            raise
        if accept_existing is None or not accept_existing(target):
            raise
        shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
