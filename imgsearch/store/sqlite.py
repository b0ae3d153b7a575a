"""SQLite backend: the embedded default, same tables and same stream interface."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from imgsearch.errors import DatabaseError, ImgsearchError
from imgsearch.store.base import FeatureStore
from imgsearch.store.url import DatabaseUrl

# SQLite's own limit on a value is 1 GB; packed rows stay as small as on MySQL.
SQLITE_MAX_ROW_BYTES = 16 * 2**20
LOCK_TIMEOUT_S = 60  # how long a connection waits for another process's write lock
WAL_KEPT_BYTES = 64 * 2**20


def _use_wal(conn: sqlite3.Connection) -> None:
    """WAL lets queries read a consistent snapshot while a build writes. Switching a new
    file to WAL needs it exclusively, and SQLite answers "locked" at once, without its
    busy wait, while another process (a second shard builder creating the tables) writes
    to it: retry. Once the file is in WAL the pragma takes no lock."""
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SqliteStore(FeatureStore):
    dialect = "sqlite"
    ph = "?"

    def __init__(self, url: DatabaseUrl, create: bool) -> None:
        self.url = url
        self.path = Path(url.path).expanduser()
        if not create and not self.path.exists():
            raise ImgsearchError(
                f"no index at {self.path}; run `imgsearch build FOLDER` first (or pass --db)"
            )
        # A file this process may not write (or in a folder it may not write, where the
        # WAL's shared-memory file would go) is opened read-only: searching needs no write.
        self.read_only = not create and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK))
        try:
            conn = self._connect()
            if not self.read_only:
                conn.execute("PRAGMA foreign_keys = ON")
                # a checkpoint that reset the log also cuts its file back to this size: one
                # large build does not leave a large file for good
                conn.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
                _use_wal(conn)
        except sqlite3.Error as e:
            raise DatabaseError(f"cannot open SQLite database {self.path}: {e}") from None
        super().__init__(conn)

    def _connect(self) -> sqlite3.Connection:
        """A connection used from one thread at a time, but not always the one that opened
        it (the service's requests run in a thread pool). Autocommit, as the MySQL connection
        is: Python's default opens a transaction before any INSERT or DELETE (the words
        stage's temporary table) that nothing commits, and the connection then reads that
        one snapshot forever, pinning the WAL with it. Write transactions are explicit
        (_begin). Read-only: `immutable` where the WAL's files cannot be made (SQLite
        reads a WAL database read-only only where they exist or can be created)."""
        target: str | Path = self.path
        if self.read_only:
            wal_files = all(self.path.with_name(self.path.name + end).exists() for end in ("-wal", "-shm"))
            target = f"{self.path.resolve().as_uri()}?{'mode=ro' if wal_files else 'immutable=1'}"
        return sqlite3.connect(target, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False,
                               uri=self.read_only)

    driver_error = sqlite3.Error
    insert_ignore = "INSERT OR IGNORE"
    for_update = ""
    mod_block_sql = "(block_no % ?)"
    bump_counter_sql = "INSERT INTO meta (k, v) VALUES (?, '1') ON CONFLICT (k) DO UPDATE SET v = CAST(v AS INTEGER) + 1"
    upgrade_columns = {
        ("features", "packed_block"): "ALTER TABLE features ADD COLUMN packed_block INTEGER NULL",
        ("whitenings", "metric"): "ALTER TABLE whitenings ADD COLUMN metric TEXT NOT NULL DEFAULT ''",
        ("visual_vocabularies", "word_base"):
            "ALTER TABLE visual_vocabularies ADD COLUMN word_base INTEGER NOT NULL DEFAULT 0",
    }

    def _drop_column(self, table: str, column: str) -> None:
        try:
            super()._drop_column(table, column)
        except DatabaseError:  # SQLite before 3.35 drops no column, nor one an index covers: made again
            self.execute(f"ALTER TABLE {table} RENAME TO {table}_before_upgrade")
            self._run_schema()  # the table as the schema has it now (its indexes come with the next run)
            kept = ", ".join(c for c in self._columns(table) if c in self._columns(f"{table}_before_upgrade"))
            with self.transaction():
                self.execute(f"INSERT INTO {table} ({kept}) SELECT {kept} FROM {table}_before_upgrade")
                self.execute(f"DROP TABLE {table}_before_upgrade")

    def _columns(self, table: str) -> list[str]:
        # PRAGMA takes no bound parameters; table is one of ours, never user input.
        return [str(r[1]) for r in self.execute(f"PRAGMA table_info({table})")]

    def describe_error(self, error: Exception) -> str:
        return f"SQLite error in {self.path}: {error}"

    def _upsert_images_sql(self) -> str:
        return (
            "INSERT INTO images (path, name, bytes, mtime_ns, sha256, width, height) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "bytes = excluded.bytes, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
            "width = excluded.width, height = excluded.height"
        )

    def existing_tables(self) -> set[str]:
        return {str(r[0]) for r in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def has_column(self, table: str, column: str) -> bool:
        return column in self._columns(table)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())

    def max_row_bytes(self) -> int:
        return SQLITE_MAX_ROW_BYTES

    def _begin(self) -> None:
        # Take the write lock before the first read: the pack's reads then stay current.
        if self.conn.in_transaction:
            self.conn.rollback()  # never continue a transaction a failed statement left open
        self.conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def named_lock(self, name: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        # An advisory lock on a file beside the database: held across transactions, and
        # released by the kernel when the process dies, like MySQL's GET_LOCK. Hidden, and
        # it says what it is to whoever finds it.
        with open(self.path.with_name(f".{self.path.name}.{name}.lock"), "a") as handle:
            if handle.tell() == 0:
                handle.write(f"imgsearch holds this file locked while it updates the {name} of {self.path.name}; "
                             "it may be deleted when no imgsearch command runs\n")
                handle.flush()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Cursor]:
        # A separate connection whose read transaction is one snapshot.
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            yield conn.cursor()
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise DatabaseError(f"the scan of {self.path} failed: {e}") from None
        finally:
            conn.close()


STORE = SqliteStore


def database_exists(url: DatabaseUrl) -> bool:
    return Path(url.path).expanduser().exists()


def remove_if_empty(url: DatabaseUrl) -> bool:
    """Delete the SQLite file of `url` (and its journal files) when it holds no image: what a
    build that failed before indexing anything made. Whether it did."""
    path = Path(url.path).expanduser()
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(path)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "images" in tables and conn.execute("SELECT 1 FROM images LIMIT 1").fetchone():
                return False
    except sqlite3.DatabaseError:
        return False  # not ours to judge: a file we cannot read is left as it is
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return True
