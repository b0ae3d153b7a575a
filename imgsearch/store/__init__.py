"""Feature stores: MySQL/MariaDB (the reference backend) and SQLite (embedded default)."""
from __future__ import annotations

from imgsearch.store.base import FeatureStore
from imgsearch.store.url import DatabaseUrl, scheme_of


def open_store(url: DatabaseUrl, create: bool = False) -> FeatureStore:
    """Open the store at `url`. With create=True the database and schema are made if
    missing (build); otherwise an absent index is an error (query, show, stats)."""
    store: FeatureStore = scheme_of(url).module().STORE(url, create)
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
    return bool(scheme_of(url).module().database_exists(url))


def remove_if_empty(url: DatabaseUrl) -> bool:
    """Remove what a build that failed before indexing anything made, where the tool made
    it (an embedded database's file); whether it did."""
    return bool(scheme_of(url).module().remove_if_empty(url))
