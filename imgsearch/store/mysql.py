"""MySQL / MariaDB backend (pymysql). The scan streams through an unbuffered SSCursor on
its own connection, so the main connection stays free to resolve names."""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from imgsearch.errors import DatabaseError
from imgsearch.store.base import FeatureStore
from imgsearch.store.url import DatabaseUrl

# Seconds the server may wait on a slow reader before giving up on the stream. A scan
# consumer that pauses (a laptop under load) must not turn into a dropped connection.
SCAN_NET_WRITE_TIMEOUT = 600
CONNECT_TIMEOUT = 10
LOCK_POLL_SECONDS = 5  # GET_LOCK waits in steps shorter than any sane client read timeout


# The pool also holds the other tables' pages and the server's own: the packed vectors
# should not need more than this share of it (scans_rows, buffer_pool_advice).
POOL_SHARE_FOR_VECTORS = 0.75
POOL_CHECK_S = 30.0  # how long a scans_rows() answer is kept


def _connect(url: DatabaseUrl, database: str | None, **extra: Any) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(
            host=url.host,
            port=url.port,
            user=url.user,
            password=url.password,
            database=database,
            unix_socket=url.unix_socket,
            charset="utf8mb4",
            connect_timeout=CONNECT_TIMEOUT,
            # A hung server must not block a query forever (None: wait as long as it takes).
            read_timeout=url.read_timeout,
            # Reads see the latest commit (no snapshot held between calls); writes open
            # explicit transactions (FeatureStore.transaction).
            autocommit=True,
            # pymysql builds an opportunistic TLS context for every connection (43 ms here,
            # twice a query); on loopback or a socket TLS protects nothing.
            ssl_disabled=_is_local(url),
            **extra,
        )
    except pymysql.err.MySQLError as e:
        raise DatabaseError(describe_mysql_error(e, url)) from None


@dataclass(frozen=True)
class ReplicaWait:
    """What a replica must have applied before it answers: the primary's GTID position and
    the server's wait function for it (both return 0 once it is applied)."""

    position: str
    timeout: float
    sql: str


class PrimaryClock:
    """The primary's current GTID position, as a wait for a replica (MariaDB's
    MASTER_GTID_WAIT, MySQL's WAIT_FOR_EXECUTED_GTID_SET), read on one kept connection: a
    `serve` process asks at every request."""

    def __init__(self, url: DatabaseUrl, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self._conn: pymysql.connections.Connection | None = None
        self._mariadb = True
        self._lock = threading.Lock()

    def position(self) -> ReplicaWait:
        with self._lock:
            # A kept connection may have been closed by the server (wait_timeout, a
            # restart) since the last request: it gets one fresh connection, then the error.
            retried = self._conn is None
            while True:
                try:
                    return self._read()
                except pymysql.err.MySQLError as e:
                    self._drop()
                    if retried:
                        raise DatabaseError(describe_mysql_error(e, self.url)) from None
                    retried = True

    def _read(self) -> ReplicaWait:
        if self._conn is None:
            self._conn = _connect(self.url, None)
            with self._conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                self._mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
        with self._conn.cursor() as cur:
            if self._mariadb:
                cur.execute("SELECT @@gtid_binlog_pos")
                return ReplicaWait(str(cur.fetchone()[0]), self.timeout, "SELECT MASTER_GTID_WAIT(%s, %s)")
            cur.execute("SELECT @@gtid_executed")
            return ReplicaWait(str(cur.fetchone()[0]), self.timeout, "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)")

    def _drop(self) -> None:
        if self._conn is not None:
            close_quietly(self._conn)
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def database_exists(url: DatabaseUrl) -> bool:
    conn = _connect(url, None)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (url.database,))
            return int(cur.fetchone()[0]) == 1
    except pymysql.err.MySQLError as e:
        raise DatabaseError(describe_mysql_error(e, url)) from None
    finally:
        close_quietly(conn)


def remove_if_empty(url: DatabaseUrl) -> bool:
    """A server's database is the administrator's, never removed here."""
    return False


def _is_local(url: DatabaseUrl) -> bool:
    return bool(url.unix_socket) or url.host in ("localhost", "::1") or url.host.startswith("127.")


def describe_mysql_error(error: pymysql.err.MySQLError, url: DatabaseUrl) -> str:
    """One line for the user; built from the error code, never echoing the password."""
    code = error.args[0] if error.args else None
    where = url.redacted()
    if code == 1045:
        return f"access denied for user {url.user!r} at {where} (wrong user or password)"
    if code == 1049:
        return f"database {url.database!r} does not exist at {where}; run `imgsearch build` to create it"
    if code in (2003, 2002):
        return f"cannot reach the MySQL server at {where} (is it running?)"
    if code == 2013:
        return (f"lost the connection to the MySQL server at {where} during a query: it went down, killed the "
                f"query, timed out (read_timeout {url.read_timeout or 'none'} s), or a row was over its max_allowed_packet")
    if code == 2006 or (code == 0 and isinstance(error, pymysql.err.InterfaceError)):
        # pymysql says InterfaceError(0, '') of a connection it already saw break.
        return f"the MySQL server at {where} has gone away (restarted, or closed an idle connection)"
    if code in (1142, 1044, 1227):
        return f"permission denied at {where}: {error.args[1] if len(error.args) > 1 else error}"
    message = str(error.args[1]) if len(error.args) > 1 else str(error)
    return f"MySQL error {code} at {where}: {message.replace(url.password, '***') if url.password else message}"


class MySqlStore(FeatureStore):
    dialect = "mysql"
    ph = "%s"

    def __init__(self, url: DatabaseUrl, create: bool, wait_for: ReplicaWait | None = None) -> None:
        self.url = url
        self.net_write_timeout = SCAN_NET_WRITE_TIMEOUT
        self.wait_for = wait_for
        self._rows_checked: tuple[float, bool] | None = None  # (when, scans_rows()) last read
        if create:
            self._create_database()
        super().__init__(self._connected(_connect(url, url.database)))

    def _connected(self, conn: pymysql.connections.Connection) -> pymysql.connections.Connection:
        """A connection to a replica first waits until it has applied the primary's state
        as of `wait_for`: every connection of one command (the parts of a parallel scan
        too) then reads that state or a later one, never an older one."""
        if self.wait_for is not None:
            try:
                self._wait(conn, self.wait_for)
            except DatabaseError:
                close_quietly(conn)
                raise
        return conn

    def reconnect_if_lost(self) -> None:
        try:
            self.conn.ping(reconnect=False)
            return
        except pymysql.err.Error:
            close_quietly(self.conn)
        # The closed connection stays until a new one is made: the next call tries again.
        self.conn = self._connected(_connect(self.url, self.url.database))

    def follow(self, position: ReplicaWait) -> None:
        """Wait until this replica has applied `position`; connections opened from now on
        wait for it too. A replica applies in the primary's commit order for the whole
        server, so every connection to it, old or new, then reads that state or a later one."""
        self._wait(self.conn, position)
        self.wait_for = position

    def _wait(self, conn: pymysql.connections.Connection, position: ReplicaWait) -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(position.sql, (position.position, position.timeout))
                (outcome,) = cur.fetchone()
        except pymysql.err.MySQLError as e:
            raise DatabaseError(describe_mysql_error(e, self.url)) from None
        if outcome is None or int(outcome) != 0:
            raise DatabaseError(
                f"the replica at {self.url.redacted()} did not apply the primary's state ({position.position}) "
                f"within {position.timeout:g} s: its replication is stopped or behind; no stale answer was given"
            )

    def _create_database(self) -> None:
        # The name was validated as [A-Za-z0-9_]+ when the URL was parsed: safe to quote.
        conn = _connect(self.url, None)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{self.url.database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
        except pymysql.err.MySQLError as e:
            raise DatabaseError(describe_mysql_error(e, self.url)) from None
        finally:
            conn.close()

    driver_error = pymysql.err.MySQLError

    def _begin(self) -> None:
        self.conn.begin()

    insert_ignore = "INSERT IGNORE"
    for_update = " FOR UPDATE"
    mod_block_sql = "MOD(block_no, ?)"
    bump_counter_sql = "INSERT INTO meta (k, v) VALUES (?, '1') ON DUPLICATE KEY UPDATE v = CAST(v AS UNSIGNED) + 1"
    upgrade_columns = {
        ("features", "packed_block"):
            "ALTER TABLE features ADD COLUMN packed_block INT UNSIGNED NULL, ADD KEY ix_features_tail (extractor_id, packed_block)",
        ("whitenings", "metric"): "ALTER TABLE whitenings ADD COLUMN metric VARCHAR(32) CHARACTER SET ascii NOT NULL DEFAULT ''",
        ("visual_vocabularies", "word_base"):
            "ALTER TABLE visual_vocabularies ADD COLUMN word_base INT UNSIGNED NOT NULL DEFAULT 0",
    }

    def describe_error(self, error: Exception) -> str:
        return describe_mysql_error(error, self.url)

    def is_retryable(self, error: Exception) -> bool:
        # 1213: deadlock, the transaction was rolled back; 1205: lock wait timeout.
        return bool(error.args) and error.args[0] in (1213, 1205)

    def _upsert_images_sql(self) -> str:
        return (
            "INSERT INTO images (path, name, bytes, mtime_ns, sha256, width, height) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
            "bytes = VALUES(bytes), mtime_ns = VALUES(mtime_ns), sha256 = VALUES(sha256), "
            "width = VALUES(width), height = VALUES(height)"
        )

    def existing_tables(self) -> set[str]:
        rows = self.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        return {str(r[0]) for r in rows}

    def has_column(self, table: str, column: str) -> bool:
        rows = self.execute(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND table_name = ? AND column_name = ?", (table, column),
        )
        return int(rows[0][0]) == 1

    def size_bytes(self) -> int:
        rows = self.execute(
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        )
        return int(rows[0][0])

    def cache_advice(self) -> str | None:
        packed, pool = self._packed_and_pool()
        return buffer_pool_advice(packed, pool, local_bytes=self._table_bytes("local_features"))

    def scans_rows(self) -> bool:
        # Read again at most every POOL_CHECK_S: two small statements, not one per query.
        now = time.monotonic()
        if self._rows_checked is None or now - self._rows_checked[0] > POOL_CHECK_S:
            packed, pool = self._packed_and_pool()
            self._rows_checked = (now, packed > POOL_SHARE_FOR_VECTORS * pool)
        return self._rows_checked[1]

    def _packed_and_pool(self) -> tuple[int, int]:
        return self._table_bytes("packed_blocks"), int(self.execute("SELECT @@innodb_buffer_pool_size")[0][0])

    def _table_bytes(self, table: str) -> int:
        rows = self.execute(
            "SELECT COALESCE(SUM(data_length), 0) FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = ?", (table,))
        return int(rows[0][0])

    def max_row_bytes(self) -> int:
        return int(self.execute("SELECT @@max_allowed_packet")[0][0]) // 3

    @contextmanager
    def named_lock(self, name: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        # GET_LOCK names are server-wide (64 characters at most): qualify by database.
        full = f"imgsearch:{self.url.database}:{name}"
        if len(full) > 64:
            full = "imgsearch:" + hashlib.sha256(full.encode()).hexdigest()[:48]
        told = False
        while int(self.execute("SELECT GET_LOCK(?, ?)", (full, LOCK_POLL_SECONDS))[0][0] or 0) != 1:
            if waiting is not None and not told:
                waiting()
                told = True
        try:
            yield
        finally:
            self.execute("SELECT RELEASE_LOCK(?)", (full,))

    @contextmanager
    def read_snapshot(self) -> Iterator[Any]:
        conn = self._connected(_connect(self.url, self.url.database, cursorclass=pymysql.cursors.SSCursor))
        cur = conn.cursor()
        try:
            cur.execute("SET SESSION net_write_timeout = %s", (self.net_write_timeout,))
            # One snapshot for everything read through it: a build or pack committing
            # meanwhile is either wholly visible or not at all.
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            # pymysql reads each result's terminating EOF/OK packet before fetchmany returns
            # an empty batch; a killed query or a dropped socket raises instead, so an
            # exhausted loop means the server sent every row.
            yield cur
            cur.execute("COMMIT")
        except pymysql.err.MySQLError as e:
            raise DatabaseError(
                f"the scan stream broke before its end ({describe_mysql_error(e, self.url)}); "
                "no partial ranking was printed"
            ) from None
        finally:
            _abandon_stream(cur)
            close_quietly(conn)


def _abandon_stream(cur: pymysql.cursors.SSCursor) -> None:
    # Whether the stream ended, broke or was left early, the connection is closed next:
    # pymysql must not try to drain it (slow, or an ignored error on a dead socket). It has
    # no public way to say so; setup.cfg bounds the versions this attribute is known in,
    # and tests/test_mysql_stream.py checks an abandoned stream closes quietly.
    result = getattr(cur, "_result", None)
    if result is not None:
        result.unbuffered_active = False


def close_quietly(conn: pymysql.connections.Connection) -> None:
    # After a dropped stream the socket is gone and close() itself may raise.
    try:
        conn.close()
    except pymysql.err.Error:
        pass


def buffer_pool_advice(packed_bytes: int, pool_bytes: int, local_bytes: int = 0) -> str | None:
    """What to tell a user whose packed vectors or local features do not fit in the server's
    buffer pool. The packed vectors are then read from disk page by page (InnoDB reads a BLOB's
    off-page chain a page at a time), slower than the per-row scan (bench/buffer_pool.py at
    100k x 512: 1,220 ms packed against 497 ms per row with the installed 128 MiB; 107 ms
    packed with 2 GiB). The local features are what every verified upload reads, about 150
    candidates' rows at random: at 10,000 images on MariaDB (bench/scale.py) reading them
    took 2,478 ms an upload with 128 MiB and 17 ms with 2 GiB."""
    needed = packed_bytes + local_bytes
    if needed <= POOL_SHARE_FOR_VECTORS * pool_bytes:
        return None
    chunk = 128 * 2**20
    wanted = -(-int(needed / POOL_SHARE_FOR_VECTORS) // chunk) * chunk
    held = [f"the packed vectors ({packed_bytes / 2**20:,.0f} MiB)"] if packed_bytes else []
    held += [f"the local features that verify uploads ({local_bytes / 2**20:,.0f} MiB)"] if local_bytes else []
    slow = []
    if packed_bytes > POOL_SHARE_FOR_VECTORS * pool_bytes:
        slow.append("queries read the per-row table (read from disk, the packed blocks would be slower still)")
    if local_bytes:
        slow.append("each verified upload reads its candidates' local features from disk (seconds, not milliseconds)")
    return (f"{' and '.join(held)} do not fit in the server's InnoDB buffer pool ({pool_bytes / 2**20:,.0f} MiB), "
            f"so {'; '.join(slow) or 'queries read them from disk'}. Set innodb_buffer_pool_size to at "
            f"least {wanted // 2**20:,} MiB ([mysqld] in the server's my.cnf, or SET GLOBAL innodb_buffer_pool_size "
            f"= {wanted} on MySQL 5.7+ / MariaDB 10.2+)")


STORE = MySqlStore
