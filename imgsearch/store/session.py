"""What the store's protocols (packing, graph tables) need of a store: SQL and its dialect,
and a way to say which extractors a transaction changed. FeatureStore provides it; the
protocols depend on this, not on FeatureStore, so no module of the store imports another
in a circle."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class SqlSession(Protocol):
    ph: str  # the driver's placeholder
    insert_ignore: str
    for_update: str
    mod_block_sql: str
    bump_counter_sql: str

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]: ...

    def executemany(self, sql: str, rows: list[tuple]) -> None: ...

    def write(self, work: Callable[[], T]) -> T: ...

    def max_row_bytes(self) -> int: ...

    def fresh_token(self) -> int: ...

    def touch(self, extractor_ids: Iterable[int]) -> None:
        """The open transaction changes what a scan of these extractors sees: their change
        counters move when it commits."""
