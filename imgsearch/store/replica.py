"""Reads from a replica of the primary, never older than what the primary had committed
when they were asked for: before answering, the replica waits (a bounded time, else an
error) until it has applied the primary's GTID position of that moment."""
from __future__ import annotations

from imgsearch.errors import ImgsearchError
from imgsearch.store import with_schema
from imgsearch.store.base import FeatureStore
from imgsearch.store.mysql import MySqlStore, PrimaryClock
from imgsearch.store.url import DatabaseUrl, scheme_of


class ReplicaReads:
    """Stores on `replica`, brought up to the primary's state when opened and again at
    every `catch_up`."""

    def __init__(self, primary: DatabaseUrl, replica: DatabaseUrl, timeout: float) -> None:
        if not (scheme_of(primary).replicas and scheme_of(replica).replicas):
            raise ImgsearchError("replicas are MySQL / MariaDB servers: both the database and the replica need "
                                 "mysql:// URLs")
        self.replica = replica
        self.clock = PrimaryClock(primary, timeout)

    def open(self) -> FeatureStore:
        return with_schema(MySqlStore(self.replica, create=False, wait_for=self.clock.position()), create=False)

    def catch_up(self, store: FeatureStore) -> None:
        """Wait until the replica `store` reads has applied what the primary holds now."""
        if not isinstance(store, MySqlStore):
            raise TypeError("catch_up needs a store opened by this ReplicaReads")
        store.follow(self.clock.position())

    def close(self) -> None:
        self.clock.close()


def open_replica(primary: DatabaseUrl, replica: DatabaseUrl, timeout: float) -> FeatureStore:
    """A store that reads from `replica` what the primary had committed when it opened;
    each of its connections first waits for that state (parallel scans read one state)."""
    reads = ReplicaReads(primary, replica, timeout)
    try:
        return reads.open()
    finally:
        reads.close()
