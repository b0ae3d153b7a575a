"""SQLite backend: the embedded default, same tables and same stream interface."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from imgsearch.errors import ImgsearchError
from imgsearch.store.base import Block, ExtractorRow, FeatureStore
from imgsearch.store.url import DatabaseUrl


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
        try:
            conn = sqlite3.connect(self.path, timeout=60)
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL lets queries read a consistent snapshot while a build writes.
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as e:
            raise ImgsearchError(f"cannot open SQLite database {self.path}: {e}") from None
        super().__init__(conn)

    driver_error = sqlite3.Error
    insert_ignore = "INSERT OR IGNORE"
    for_update = ""
    mod_block_sql = "(block_no % ?)"

    def describe_error(self, error: Exception) -> str:
        return f"SQLite error in {self.path}: {error}"

    def _upsert_images_sql(self) -> str:
        return (
            "INSERT INTO images (path, name, bytes, mtime_ns, sha256, width, height) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "bytes = excluded.bytes, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
            "width = excluded.width, height = excluded.height"
        )

    upgrade_features_sql = "ALTER TABLE features ADD COLUMN packed_block INTEGER NULL"

    def existing_tables(self) -> set[str]:
        return {str(r[0]) for r in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def has_column(self, table: str, column: str) -> bool:
        # PRAGMA takes no bound parameters; table is one of ours, never user input.
        return any(r[1] == column for r in self.execute(f"PRAGMA table_info({table})"))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())

    def begin_write(self) -> None:
        # Take the write lock before the first read: the pack's reads then stay current.
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")

    def stream_blocks(
        self, extractor: ExtractorRow, block_rows: int, packed: bool = True, part: int = 0, parts: int = 1,
        generations: list[int] | None = None,
    ) -> Iterator[Block]:
        # A separate connection whose read transaction is one snapshot for the whole scan.
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN")
            yield from self._snapshot_blocks(conn.cursor(), extractor, block_rows, packed, part, parts, generations)
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise ImgsearchError(f"the scan of {self.path} failed: {e}") from None
        finally:
            conn.close()
