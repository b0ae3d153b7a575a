"""The service's database connections: each request takes one of its own for as long as it
reads, so a long request (a streamed scan, a duplicates report) holds no connection or lock
that a cheap one (/api/health, a name query) waits on. Connections are opened when first
needed and kept for the next request, at most `size` at once; DB-API connections are not
shared between threads, so one is never lent to two requests."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imgsearch.errors import BusyError, DatabaseError
from imgsearch.store.base import FeatureStore

DEFAULT_CONNECTIONS = 8
WAIT_SECONDS = 30.0  # a request that finds every connection busy this long gets 503


class ConnectionPool:
    def __init__(self, open_store: Callable[[], FeatureStore], size: int = DEFAULT_CONNECTIONS,
                 wait_seconds: float = WAIT_SECONDS) -> None:
        self._open, self._wait = open_store, wait_seconds
        self._free = threading.BoundedSemaphore(size)
        self._idle: list[FeatureStore] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[FeatureStore]:
        if not self._free.acquire(timeout=self._wait):
            raise BusyError(f"every database connection of this service was busy for {self._wait:.0f} s; "
                            "try again")
        try:
            store = self._take()
            try:
                yield store
            except DatabaseError:  # the connection may be broken: the next request opens another
                store.close()
                raise
            except BaseException:
                self._give_back(store)
                raise
            self._give_back(store)
        finally:
            self._free.release()

    def _take(self) -> FeatureStore:
        with self._lock:
            store = self._idle.pop() if self._idle else None
        if store is None:
            return self._open()
        try:
            store.reconnect_if_lost()
        except BaseException:
            store.close()
            raise
        return store

    def _give_back(self, store: FeatureStore) -> None:
        with self._lock:
            self._idle.append(store)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for store in idle:
            store.close()
