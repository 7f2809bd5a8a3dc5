"""The workspace: a folder holding studio.db (SQLite, WAL) plus datasets, runs, models and versions.

Schema changes are numbered migrations, one module each in `engine/migrations/` (`m001_initial.py`,
`m002_reviews.py`, ...), each defining `SQL`. They are applied in order, once, and recorded in
`schema_migrations`, so several processes opening the same workspace at once is safe.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from engine.errors import WorkspaceError

DEFAULT_WORKSPACE = Path("data/workspace")
DB_NAME = "studio.db"
BUSY_TIMEOUT_SECONDS = 30.0  # how long a write waits for another process's write to finish


class WorkspaceBusyError(WorkspaceError):
    """Another process has held the workspace database's write lock for longer than the busy timeout."""


def is_busy(exc: BaseException) -> bool:
    """Whether an SQLite error means "locked by someone else" (wait and try again), not "broken"."""
    if not isinstance(exc, sqlite3.Error):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(exc) \
        or "database table is locked" in str(exc)


def busy_error(db_path: Path) -> WorkspaceBusyError:
    return WorkspaceBusyError(
        f"The workspace database {db_path} is busy: another studio process (an extract, a link run, a scheduled "
        f"job) has been writing to it for more than {BUSY_TIMEOUT_SECONDS:g} s; nothing was changed, try again when "
        "it finishes."
    )


def resolve_workspace(flag: str | os.PathLike | None = None, configured: str | None = None) -> Path:
    """Pick the workspace folder: --workspace flag, else $STUDIO_WORKSPACE, else the config's
    `studio.workspace`, else data/workspace (relative to the current directory)."""
    for candidate in (flag, os.environ.get("STUDIO_WORKSPACE"), configured):
        if candidate:
            return Path(candidate).expanduser()
    return DEFAULT_WORKSPACE


def _migrations() -> list[tuple[int, str, str]]:
    import engine.migrations as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        name = info.name
        if not (name.startswith("m") and name[1:4].isdigit()):
            continue
        module = importlib.import_module(f"engine.migrations.{name}")
        found.append((int(name[1:4]), name, module.SQL))
    found.sort()
    numbers = [number for number, _, _ in found]
    if len(numbers) != len(set(numbers)):
        raise WorkspaceError(f"Two migrations share a number in engine/migrations: {sorted(numbers)}.")
    return found


class Workspace:
    """One workspace folder. `Workspace.open(path)` creates it if needed and migrates its database."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.db_path = self.root / DB_NAME

    @classmethod
    def open(cls, root: str | os.PathLike) -> Workspace:
        workspace = cls(Path(root).expanduser())
        if workspace.root.exists() and not workspace.root.is_dir():
            raise WorkspaceError(f"The workspace {workspace.root} is a file, not a folder; choose another --workspace.")
        try:
            workspace.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"Cannot create the workspace folder {workspace.root}: {exc.strerror}.") from exc
        workspace.migrate()
        return workspace

    def connect(self) -> sqlite3.Connection:
        """A connection in autocommit mode (use `transaction()` for writes), WAL, 30 s busy timeout."""
        try:
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "opened") from exc
        conn.row_factory = sqlite3.Row
        return conn

    def _database_error(self, exc: sqlite3.DatabaseError, doing: str) -> WorkspaceError:
        """Busy: say who holds it and what to do; anything else: the database cannot be `doing`, move it away."""
        if is_busy(exc):
            return busy_error(self.db_path)
        return WorkspaceError(f"The workspace database {self.db_path} cannot be {doing} ({exc}); move it away to start "
                              "a fresh one.")

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """`with ws.connection() as conn:` a connection for reads and single writes, closed when the block ends."""
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    def row(self, sql: str, params: tuple = ()) -> sqlite3.Row | None:
        """The first row `sql` selects, or None: a one-line read that opens and closes its own connection."""
        with self.connection() as conn:
            return conn.execute(sql, params).fetchone()

    @contextlib.contextmanager
    def transaction(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception: one logical change, all or nothing."""
        own = conn is None
        conn = conn or self.connect()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    raise busy_error(self.db_path) from None
                raise
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if own:
                conn.close()

    def migrate(self) -> list[str]:
        """Apply the migrations this database has not seen yet; return their names."""
        applied_now = []
        conn = self.connect()
        try:
            # A read first: a workspace that is up to date opens without waiting for the write lock, so pages and
            # status calls keep working while another process writes for a long time.
            known = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")} if known else set()
            pending = [migration for migration in _migrations() if migration[0] not in applied]
            if pending and not known:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
                )
            for version, name, sql in pending:
                with self.transaction(conn):
                    done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone()
                    if done:
                        continue
                    for statement in _split_sql(sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations(version, name) VALUES (?, ?)", (version, name))
                    applied_now.append(name)
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "migrated") from exc
        finally:
            conn.close()
        return applied_now

    def schema_version(self) -> int:
        return int(self.row("SELECT MAX(version) FROM schema_migrations")[0] or 0)

    def path(self, *parts: str) -> Path:
        """A path inside the workspace (datasets/<name>, runs/<id>, models, versions, ...)."""
        return self.root.joinpath(*parts)


def _split_sql(sql: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement keeps triggers whole)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
