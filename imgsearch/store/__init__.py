"""Feature stores: MySQL/MariaDB (the reference backend) and SQLite (embedded default)."""
from __future__ import annotations

from contextlib import closing

from imgsearch.store.base import FeatureStore
from imgsearch.store.url import DatabaseUrl


def open_store(url: DatabaseUrl, create: bool = False) -> FeatureStore:
    """Open the store at `url`. With create=True the database and schema are made if
    missing (build); otherwise an absent index is an error (query, show, stats)."""
    if url.scheme == "mysql":
        from imgsearch.store.mysql import MySqlStore

        store: FeatureStore = MySqlStore(url, create)
    else:
        from imgsearch.store.sqlite import SqliteStore

        store = SqliteStore(url, create)
    return with_schema(store, create)


def with_schema(store: FeatureStore, create: bool) -> FeatureStore:
    """The store once its schema is made (create) or found; closed if that fails."""
    try:
        if create:
            store.ensure_schema()
        else:
            store.require_schema()
    except BaseException:
        store.close()
        raise
    return store


def index_exists(url: DatabaseUrl) -> bool:
    """Whether the database of `url` exists (it may still hold no index), without creating it."""
    if url.scheme == "mysql":
        from imgsearch.store.mysql import database_exists

        return database_exists(url)
    from pathlib import Path

    return Path(url.path).expanduser().exists()


def remove_if_empty(url: DatabaseUrl) -> bool:
    """Delete the SQLite file of `url` (and its journal files) when it holds no image: what a
    build that failed before indexing anything made. Whether it did."""
    import sqlite3
    from pathlib import Path

    path = Path(url.path).expanduser()
    if url.scheme != "sqlite" or not path.exists():
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
