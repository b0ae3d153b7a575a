"""The resident index: one extractor's vectors held in memory, prepared for each served
metric, answering as the streaming scan does (same scores up to float rounding, same
top-K and tie-break), and kept in step with the store through its change counter.

The store lays vectors out as packed blocks (never rewritten in place, numbers never
reused), stale entries and a tail (store/packed.py). The copy mirrors that: a *base*
matrix of the blocks known at the last compaction, with a mask of rows that have died
since (their block was rewritten, or the entry went stale), the blocks packed since as
*extra* parts, and the tail. When the counter moves, one snapshot reads the block list,
the stale list, the tail and only the blocks it does not know: taking in 1,000 new
images costs their rows, not a reload. Base scoring is one matrix-vector product over
the whole matrix, the shape a bare numpy scan has.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from imgsearch.linalg import one_blas_thread
from imgsearch.scan.kernel import EVERY_ROW, RowFilter, ScanResult, TopK, kept, prepare_query, prepared_scores
from imgsearch.scan.metrics import Metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.store.base import FeatureStore
from imgsearch.store.packed import PackedState, read_packed_state
from imgsearch.store.records import Block, ExtractorRow

# Rebuild the base matrix (in memory, no database read) when rows that died or arrived
# since the last compaction pass this share of it: scoring stays one big product.
COMPACT_SHARE = 0.25


@dataclass(frozen=True)
class Part:
    """Rows of vectors: their image ids and, per served metric, the prepared rows."""

    ids: np.ndarray
    prepared: dict[str, np.ndarray]

    @classmethod
    def of(cls, block: Block, metrics: Iterable[Metric]) -> Part:
        ids, vectors = block
        return cls(np.ascontiguousarray(ids, dtype=np.int64),
                   {m.name: np.ascontiguousarray(m.prepare_rows(vectors), dtype=np.float32) for m in metrics})

    def without(self, ids: np.ndarray | None) -> Part:
        if ids is None or not len(self.ids):
            return self
        keep = ~np.isin(self.ids, ids)
        return self if keep.all() else Part(self.ids[keep], {m: x[keep] for m, x in self.prepared.items()})

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + sum(x.nbytes for x in self.prepared.values())


def concatenate(parts: list[Part], metrics: list[str], dim: int) -> Part:
    if not parts:
        return Part(np.empty(0, np.int64), {m: np.empty((0, dim), np.float32) for m in metrics})
    return Part(np.concatenate([p.ids for p in parts]),
                {m: np.concatenate([p.prepared[m] for p in parts]) for m in metrics})


@dataclass(frozen=True)
class ResidentState:
    """One immutable state of the copy: queries read it while a sync builds the next."""

    changes: int
    base: Part
    base_blocks: dict[int, tuple[int, int]]  # block number -> its rows in base
    dead: np.ndarray | None  # base rows no longer current; None: all current
    extra: dict[int, Part]  # blocks packed since the last compaction (stale entries left out)
    tail: Part

    @property
    def rows(self) -> int:
        alive = len(self.base.ids) - (int(self.dead.sum()) if self.dead is not None else 0)
        return alive + sum(len(p.ids) for p in self.extra.values()) + len(self.tail.ids)

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + sum(p.nbytes for p in self.extra.values()) + self.tail.nbytes

    def known_blocks(self) -> set[int]:
        return {*self.base_blocks, *self.extra}

    def top_k(self, metric: str, prepared_query: np.ndarray, k: int, rows: RowFilter = EVERY_ROW) -> ScanResult:
        top = TopK(k)
        with one_blas_thread():
            for ids, matrix, dead in self._parts(metric):
                top.add(*kept(ids, prepared_scores(matrix, prepared_query), rows,
                              ~dead if dead is not None else None))
        return ScanResult(ranking=top.ranked(), rows_scanned=self.rows, state=self.changes)

    def _parts(self, metric: str) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        yield self.base.ids, self.base.prepared[metric], self.dead
        for part in (*self.extra.values(), self.tail):
            yield part.ids, part.prepared[metric], None


def empty_state(metrics: list[str], dim: int) -> ResidentState:
    nothing = concatenate([], metrics, dim)
    return ResidentState(-1, nothing, {}, None, {}, nothing)


def next_state(previous: ResidentState, packed: PackedState, metrics: list[Metric], dim: int) -> ResidentState:
    """The state after `packed`, reusing every block the previous state holds."""
    names = [m.name for m in metrics]
    dead = np.zeros(len(previous.base.ids), dtype=bool)
    for block_no, (start, stop) in previous.base_blocks.items():
        if block_no not in packed.present:
            dead[start:stop] = True
        elif block_no in packed.stale:
            dead[start:stop] |= np.isin(previous.base.ids[start:stop], packed.stale[block_no])
    extra = {b: part.without(packed.stale.get(b)) for b, part in previous.extra.items() if b in packed.present}
    extra.update((b, Part.of(block, metrics).without(packed.stale.get(b))) for b, block in sorted(packed.blocks.items()))
    state = ResidentState(packed.changes, previous.base, dict(previous.base_blocks), dead if dead.any() else None,
                          extra, Part.of(packed.tail, metrics))
    moved = int(dead.sum()) + sum(len(p.ids) for p in extra.values())
    if moved > COMPACT_SHARE * max(len(previous.base.ids), 1):
        return compacted(state, names, dim)
    return state


def compacted(state: ResidentState, metrics: list[str], dim: int) -> ResidentState:
    """The same rows with every block in one base matrix (no database read)."""
    pieces, blocks, at = [], {}, 0
    for block_no, (start, stop) in sorted(state.base_blocks.items()):
        dead = state.dead[start:stop] if state.dead is not None else None
        if dead is not None and dead.all():
            continue
        part = Part(state.base.ids[start:stop], {m: x[start:stop] for m, x in state.base.prepared.items()})
        if dead is not None and dead.any():
            part = Part(part.ids[~dead], {m: x[~dead] for m, x in part.prepared.items()})
        pieces.append(part)
        blocks[block_no] = (at, at + len(part.ids))
        at += len(part.ids)
    for block_no, part in sorted(state.extra.items()):
        pieces.append(part)
        blocks[block_no] = (at, at + len(part.ids))
        at += len(part.ids)
    return ResidentState(state.changes, concatenate(pieces, metrics, dim), blocks, None, {}, state.tail)


@dataclass
class ResidentIndex:
    """An extractor's resident copy over a store. `current()` checks the store's change
    counter (one indexed read) and syncs first when it moved, so an answer is never older
    than the state committed when the request came in."""

    open_store: Callable[[], FeatureStore]
    extractor: ExtractorRow
    metrics: list[Metric]
    state: ResidentState = field(init=False)
    syncs: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._store = self.open_store()
        self.state = empty_state([m.name for m in self.metrics], self.extractor.dim)
        self.sync()

    def current(self) -> ResidentState:
        with self._lock:
            self._store.reconnect_if_lost()
            if self._store.changes(self.extractor) != self.state.changes:
                self._sync_locked()
            return self.state

    def sync(self) -> ResidentState:
        with self._lock:
            self._sync_locked()
            return self.state

    def _sync_locked(self) -> None:
        with self._store.read_snapshot() as cur:
            packed = read_packed_state(self._store, cur, self.extractor, self.state.known_blocks())
        self.state = next_state(self.state, packed, self.metrics, self.extractor.dim)
        self.syncs += 1

    def close(self) -> None:
        self._store.close()


@dataclass(frozen=True)
class ResidentScan:
    """A Scanner (scan.store_scan) for query-time re-ranking that answers from the resident
    copies where one holds the extractor (a graph's augmented vectors included) and the
    metric, and from the store otherwise: a verified upload's global stage and the default
    re-ranking's expansion cost matrix products in memory, not streams of the table."""

    store: FeatureStore
    resident: Mapping[str, ResidentIndex | None]
    fallback: StoreScan

    def top_k(self, extractor: ExtractorRow, metric: Metric, query: np.ndarray, k: int, rows: RowFilter = EVERY_ROW,
              query_is_prepared: bool = False) -> ScanResult:
        index = self.resident.get(extractor.name)
        if index is None or metric.name not in {m.name for m in index.metrics}:
            return self.fallback.top_k(extractor, metric, query, k, rows, query_is_prepared)
        prepared = query if query_is_prepared else prepare_query(metric, query)
        return index.current().top_k(metric.name, prepared, k, rows)
