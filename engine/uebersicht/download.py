"""Stage 1: fetch each widget's archive and extract it safely into `downloads/<widget id>/`.

Manifests come from strangers too, so fetching goes only to http(s) URLs whose host resolves to public addresses
(the connection goes to the address that was checked; loopback only when `allow_loopback` is set, for tests and
local mirrors), follows redirects only within the host and its subdomains, and reads local archives only from
inside the manifest's own folder: never file:// URLs, absolute paths or `..`, private networks or the cloud
metadata address. Proxies from the environment are not used, since they would connect to hosts unchecked.

Archives come from strangers (formats.md §2), so extraction checks every member before anything is written:
no absolute paths, no `..` components, no paths deeper than 64 folders, no links pointing out, a cap on the
expanded size and the file count that is enforced on the bytes actually decompressed (a zip's declared sizes can
lie). An archive that breaks a rule or is corrupt is rejected whole and reported; the other widgets go on.
Extraction happens in a hidden staging folder inside downloads/ and is renamed into place only when complete, so a
widget folder is never half there.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import shutil
import socket
import ssl
import stat
import tempfile
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

from engine.clock import zulu_now
from engine.errors import StudioError
from engine.files import write_atomic
from engine.progress import ProgressFn, no_progress
from engine.uebersicht.manifest import WidgetEntry

USER_AGENT = "TrainingDataStudio/0.1 (widget dataset builder)"
_CHUNK = 64 * 1024
_JUNK_PARTS = {"__MACOSX", ".DS_Store"}


class ArchiveError(StudioError):
    """An archive is corrupt or breaks an extraction rule; the message names the member and the rule."""


class FetchError(StudioError):
    """An archive could not be fetched (network, HTTP status, missing local file, size cap)."""


@dataclass(frozen=True)
class DownloadLimits:
    """Guards against hostile or broken archives; sizes in bytes."""

    max_archive_bytes: int = 50 * 1024 * 1024
    max_expanded_bytes: int = 200 * 1024 * 1024
    max_files: int = 5000
    timeout: float = 30.0
    retries: int = 2
    backoff: float = 0.5
    allow_loopback: bool = False  # tests and local mirrors on 127.0.0.1 / ::1; never private or link-local hosts


@dataclass
class ExtractResult:
    files: int
    bytes: int
    links_skipped: int


@dataclass
class DownloadResult:
    widget_id: str
    status: str  # downloaded | skipped | failed
    reason: str = ""
    files: int = 0
    bytes: int = 0
    at: str = field(default_factory=lambda: zulu_now(fraction=False))


@dataclass
class DownloadReport:
    results: list[DownloadResult]

    def with_status(self, status: str) -> list[DownloadResult]:
        return [result for result in self.results if result.status == status]

    def summary(self) -> str:
        counts = {status: len(self.with_status(status)) for status in ("downloaded", "skipped", "failed")}
        return f"{counts['downloaded']} downloaded, {counts['skipped']} already there, {counts['failed']} failed"


# --- fetching -------------------------------------------------------------------------------------------------


MAX_REDIRECTS = 5
MAX_MEMBER_DEPTH = 64  # folders in one archive member's path
MAX_MEMBER_NAME = 1024  # characters in one archive member's path


class _Transient(Exception):
    """A failure worth retrying (network, DNS, timeout, 5xx)."""


def _shown(text: str, limit: int = 120) -> str:
    """A name or URL from a stranger, cut for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def public_address(host: str, port: int, allow_loopback: bool = False) -> str:
    """The address to connect to for `host`: every address it resolves to must be public (not private, loopback,
    link-local such as the cloud metadata service 169.254.169.254, multicast or reserved); loopback only when
    allowed. FetchError names the host and the address otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Transient(f"cannot resolve {_shown(host)} ({exc})") from None
    chosen = None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not (address.is_global or (allow_loopback and address.is_loopback)):
            raise FetchError(f"The download host {_shown(host)} is at {address}, a private, loopback or link-local "
                             "address; only public hosts are fetched.")
        chosen = chosen or str(address)
    if chosen is None:
        raise _Transient(f"{_shown(host)} has no address")
    return chosen


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, not to whatever the name resolves to a moment later."""

    def __init__(self, host: str, address: str, **kwargs):
        super().__init__(host, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, **kwargs):
        super().__init__(host, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # the name's certificate


def _copy_capped(source, destination: Path, cap: int, what: str) -> int:
    written = 0
    with open(destination, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > cap:
                raise FetchError(f"{what} is larger than the {cap // (1024 * 1024)} MB archive cap.")
            out.write(chunk)
    return written


def fetch_archive(location: str, destination: Path, limits: DownloadLimits, base_dir: Path | None = None) -> int:
    """Copy the archive at `location` to `destination`; returns its size. `location` is an http(s) URL on a public
    host, or a relative path inside `base_dir` (the manifest's own folder). Anything else a manifest names (file://,
    an absolute path, `..`, a private or metadata address, a redirect to another host) is refused. Network errors
    and 5xx answers are retried with backoff; 4xx and refusals are not."""
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(location, destination, limits)
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive, i.e. an absolute local path
        raise FetchError(f"The download URL {_shown(location)} uses {scheme}://; only http(s) URLs and paths inside "
                         "the manifest's folder are fetched.")
    return _copy_local(location, destination, limits, base_dir)


def _copy_local(location: str, destination: Path, limits: DownloadLimits, base_dir: Path | None) -> int:
    relative = PurePosixPath(location.replace("\\", "/"))
    if base_dir is None or relative.is_absolute() or re.match(r"^([A-Za-z]:|~)", location) \
            or ".." in relative.parts:
        raise FetchError(f"The download path {_shown(location)} is outside the manifest's folder; a manifest may name "
                         "http(s) URLs or archives inside its own folder.")
    root = Path(base_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):  # a symlink inside the folder pointing out of it
        raise FetchError(f"The download path {_shown(location)} leads outside the manifest's folder.")
    if not path.is_file():
        raise FetchError(f"The archive {path} does not exist.")
    with open(path, "rb") as source:
        return _copy_capped(source, destination, limits.max_archive_bytes, f"The archive {path}")


def _fetch_http(url: str, destination: Path, limits: DownloadLimits) -> int:
    last_error = ""
    for attempt in range(limits.retries + 1):
        if attempt:
            time.sleep(limits.backoff * 2 ** (attempt - 1))
        try:
            return _get(url, destination, limits)
        except _Transient as exc:
            last_error = str(exc)
        except (TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException, OSError) as exc:
            last_error = str(exc) or type(exc).__name__
    raise FetchError(f"Fetching {_shown(url)} failed after {limits.retries + 1} attempts (last: {last_error}).")


def _get(url: str, destination: Path, limits: DownloadLimits) -> int:
    """One GET with its redirects: each hop's host is checked and connected to by that checked address; a
    redirect may stay on the host or go to one of its subdomains (github.com to codeload.github.com), no further."""
    current, origin = url, (urlsplit(url).hostname or "").lower()
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(current)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise FetchError(f"The download URL {_shown(current)} is not an http(s) URL with a host.")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = public_address(host, port, limits.allow_loopback)
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = kind(host, address, port=port, timeout=limits.timeout)
        try:
            conn.request("GET", urlunsplit(("", "", parts.path or "/", parts.query, "")),
                         headers={"User-Agent": USER_AGENT, "Host": parts.netloc.rsplit("@", 1)[-1]})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                target = urljoin(current, response.getheader("Location") or "")
                new_host = (urlsplit(target).hostname or "").lower()
                if new_host != origin and not new_host.endswith("." + origin):
                    raise FetchError(f"The download {_shown(url)} redirects to another host ({_shown(new_host)}); "
                                     "only redirects within the same host are followed.")
                current = target
                continue
            if response.status >= 500:
                raise _Transient(f"HTTP {response.status}")
            if response.status >= 400:
                raise FetchError(f"The server answered HTTP {response.status} for {_shown(url)}.")
            return _copy_capped(response, destination, limits.max_archive_bytes, f"The download {_shown(url)}")
        finally:
            conn.close()
    raise FetchError(f"The download {_shown(url)} redirects more than {MAX_REDIRECTS} times.")


# --- extracting -----------------------------------------------------------------------------------------------


def _member_parts(name: str) -> tuple[str, ...]:
    """The member's path components, or ArchiveError when the name is absolute, climbs out, or is deeper or
    longer than any widget needs (a 2,000-level path used to exhaust the recursion of creating its folders)."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise ArchiveError(f"The archive member {_shown(name)!r} has an absolute path.")
    parts = tuple(part for part in PurePosixPath(normalized).parts if part not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"The archive member {_shown(name)!r} points outside the folder (path traversal).")
    if len(parts) > MAX_MEMBER_DEPTH:
        raise ArchiveError(f"The archive member {_shown(name)!r} is {len(parts):,} folders deep, more than "
                           f"{MAX_MEMBER_DEPTH}.")
    if len(name) > MAX_MEMBER_NAME:
        raise ArchiveError(f"The archive member {_shown(name)!r} has a {len(name):,}-character path, longer than "
                           f"{MAX_MEMBER_NAME:,}.")
    if any(len(part.encode("utf-8")) > 255 for part in parts):
        raise ArchiveError(f"The archive member {_shown(name)!r} has a name longer than 255 bytes.")
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _check_link(archive: zipfile.ZipFile, info: zipfile.ZipInfo, parts: tuple[str, ...]) -> None:
    """Links are never created; one whose target leaves the archive marks the archive as hostile."""
    target = archive.read(info, pwd=None)[:4096].decode("utf-8", "replace").replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise ArchiveError(f"The archive member {_shown(info.filename)!r} is a link pointing outside ({target}).")
    depth = len(parts) - 1
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ArchiveError(f"The archive member {_shown(info.filename)!r} is a link pointing outside ({target}).")


def extract_archive_safely(
    archive_path: Path, target: Path, limits: DownloadLimits, subdir: str | None = None
) -> ExtractResult:
    """Extract the zip at `archive_path` into the new folder `target`; raise ArchiveError (writing nothing
    further) on a corrupt archive or any member that breaks a rule. `.DS_Store` and `__MACOSX/` are dropped.
    With `subdir` (a repository archive), only `<top folder>/<subdir>/...` is extracted, without that prefix."""
    wanted = tuple(part for part in (subdir or "").split("/") if part)
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"The download is not a readable zip archive ({exc}).") from exc
    with archive:
        plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        links = declared = 0
        for info in archive.infolist():
            parts = _member_parts(info.filename)
            if wanted:
                if parts[1 : 1 + len(wanted)] != wanted:
                    continue
                parts = parts[1 + len(wanted) :]
            if not parts or _JUNK_PARTS & set(parts):
                continue
            if info.flag_bits & 0x1:
                raise ArchiveError(f"The archive member {_shown(info.filename)!r} is encrypted.")
            if _is_link(info):
                _check_link(archive, info, parts)
                links += 1
                continue
            plan.append((info, parts))
            declared += info.file_size
        files = [(info, parts) for info, parts in plan if not info.is_dir()]
        if wanted and not files:
            raise ArchiveError(f"The repository archive has no folder {subdir!r}.")
        if len(plan) > limits.max_files:
            raise ArchiveError(f"The archive holds {len(plan)} entries, more than the cap of {limits.max_files}.")
        cap_mb = limits.max_expanded_bytes / (1024 * 1024)
        if declared > limits.max_expanded_bytes:
            raise ArchiveError(f"The archive expands to {declared} bytes, more than the {cap_mb:g} MB cap.")
        target.mkdir(parents=True)
        root = target.resolve()
        written = 0
        for info, parts in plan:
            destination = target.joinpath(*parts)
            if not destination.resolve().is_relative_to(root):  # belt and braces after the name checks
                raise ArchiveError(f"The archive member {_shown(info.filename)!r} points outside the folder.")
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(destination, "wb") as out:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        if written > limits.max_expanded_bytes:
                            raise ArchiveError(f"The archive expands past the {cap_mb:g} MB cap.")
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise ArchiveError(f"The archive is corrupt at member {_shown(info.filename)!r} ({exc}).") from exc
        return ExtractResult(files=len(files), bytes=written, links_skipped=links)


# --- one widget, many widgets ---------------------------------------------------------------------------------


def is_downloaded(downloads: Path, widget_id: str) -> bool:
    folder = downloads / widget_id
    return folder.is_dir() and any(folder.iterdir())


def download_widget(
    widget: WidgetEntry, downloads: Path, limits: DownloadLimits = DownloadLimits(), base_dir: Path | None = None
) -> DownloadResult:
    """Fetch and extract one widget into `downloads/<id>/`; never raises for a bad archive, it reports it."""
    target = downloads / widget.id
    if is_downloaded(downloads, widget.id):
        return DownloadResult(widget.id, "skipped", "already downloaded")
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{widget.id}-", dir=downloads))
    try:
        archive = staging / "archive.zip"
        fetch_archive(widget.download_url, archive, limits, base_dir)
        extracted = extract_archive_safely(archive, staging / "content", limits, widget.archive_subdir)
        if target.exists():
            target.rmdir()  # an empty leftover folder; a non-empty one was skipped above
        (staging / "content").rename(target)
        note = f"{extracted.links_skipped} in-archive links not created" if extracted.links_skipped else ""
        return DownloadResult(widget.id, "downloaded", note, extracted.files, extracted.bytes)
    except StudioError as exc:
        return DownloadResult(widget.id, "failed", str(exc))
    except OSError as exc:
        return DownloadResult(widget.id, "failed", f"Writing the widget failed ({exc.strerror or exc}).")
    except Exception as exc:  # noqa: BLE001 - one stranger's archive must never stop the others or the log
        return DownloadResult(widget.id, "failed", f"The archive could not be handled ({type(exc).__name__}).")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_widgets(
    widgets: list[WidgetEntry],
    downloads: Path,
    limits: DownloadLimits = DownloadLimits(),
    base_dir: Path | None = None,
    workers: int = 4,
    progress: ProgressFn = no_progress,
    log_path: Path | None = None,
) -> DownloadReport:
    """Download `widgets` in parallel (I/O bound) into `downloads`; results keep the manifest's order.
    `log_path` (JSON: widget id -> last result) is merged with the previous log so the page can show status."""
    downloads = Path(downloads)
    try:
        downloads.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudioError(f"Cannot create the downloads folder {downloads}: {exc.strerror}.") from exc
    results: dict[str, DownloadResult] = {}
    progress("download widgets", 0, len(widgets))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(download_widget, widget, downloads, limits, base_dir): widget for widget in widgets}
        for future in as_completed(futures):
            result = future.result()
            results[result.widget_id] = result
            progress("download widgets", len(results), len(widgets))
    report = DownloadReport([results[widget.id] for widget in widgets])
    if log_path is not None:
        log = read_download_log(log_path)
        log.update({result.widget_id: asdict(result) for result in report.results if result.status != "skipped"})
        write_atomic(Path(log_path), json.dumps(log, indent=2, ensure_ascii=False) + "\n")
    return report


def read_download_log(log_path: Path) -> dict[str, dict]:
    """The last download result per widget id ({} when there is no log yet or it is unreadable)."""
    try:
        log = json.loads(Path(log_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return log if isinstance(log, dict) else {}
