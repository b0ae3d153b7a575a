"""Feature stores: MySQL/MariaDB (the reference backend) and SQLite (embedded default)."""
from __future__ import annotations

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
