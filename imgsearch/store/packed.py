"""The packing protocol and the change counter: the subtlest code of the store, in one place.

`features` is the truth: one row per (extractor, image). For speed the scan reads
`packed_blocks` instead, each row holding many vectors (ids and vectors as two blobs),
plus the *tail* of feature rows written since the last pack (packed_block IS NULL), less
the *stale* entries (`packed_stale`: packed vectors replaced or deleted since).

Every write that changes what a scan of an extractor sees (a batch, a deletion, a derived
vector set, a pack step) adds one to that extractor's change counter in the same
transaction (FeatureStore.transaction bumps what the writes touched). A scan reads the
counter inside its snapshot, so two snapshots that read the same counter saw the same
vectors in the same blocks: the parts of a parallel scan compare it, and a resident copy
knows from it whether anything changed.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsearch.store.graph_tables import mark_removed
from imgsearch.store.records import (
    ID_DTYPE,
    VECTOR_DTYPE,
    Block,
    ExtractorRow,
    changes_key,
    id_chunks,
    last_block_key,
    rows_to_block,
)
from imgsearch.store.session import SqlSession

DEFAULT_PACK_ROWS = 1024
# A packed row stays well under the server's max_allowed_packet (16 MiB on MariaDB by
# default, 4 MiB on MySQL 5.7): a third of it, since the driver may escape a binary value
# to twice its size, and never more than this.
MAX_BLOCK_BYTES = 8 * 2**20
# Vectors (tail rows and rewritten blocks) handled per pack transaction: 128 MiB, i.e. 64
# blocks of 1,024 x 512-d, bounded in bytes so that a 10,240-d extractor packs in as
# little memory as a 512-d one.
PACK_STEP_BYTES = 128 * 2**20


@dataclass
class Snapshot:
    """What a scan's snapshot saw besides the vectors: the extractor's change counter."""

    changes: int | None = None


@dataclass
class PackReport:
    blocks_written: int = 0
    blocks_removed: int = 0
    vectors_moved: int = 0

    def add(self, other: PackReport) -> None:
        self.blocks_written += other.blocks_written
        self.blocks_removed += other.blocks_removed
        self.vectors_moved += other.vectors_moved


def rows_per_block(dim: int, pack_rows: int, max_row_bytes: int) -> int:
    """Vectors per packed row: pack_rows, fewer when that many would not fit the bytes."""
    return max(1, min(pack_rows, min(MAX_BLOCK_BYTES, max_row_bytes) // (dim * VECTOR_DTYPE.itemsize + ID_DTYPE.itemsize)))


def mark_stale(store: SqlSession, where: str, params: list) -> None:
    """Before feature rows matching `where` are replaced or deleted: remember which packed
    entries they were (scans leave those out until the next pack), tell the graphs that
    knew them (graph_tables.mark_removed), and which extractors they belong to (their
    change counters move when the transaction commits).

    One read of the matching rows by their keys, then writes of only what is needed: done
    on the server as INSERT ... SELECT, the optimizer (misled by the sampled statistics of
    the two-valued extractor_id column) scanned every row of the extractor for each batch,
    which made a million-image build quadratic."""
    rows = [(int(e), int(i), b) for e, i, b in
            store.execute(f"SELECT extractor_id, image_id, packed_block FROM features WHERE {where}", params)]
    store.touch({e for e, _, _ in rows})
    stale = [(e, i, int(b)) for e, i, b in rows if b is not None]
    if stale:
        store.executemany(f"{store.insert_ignore} INTO packed_stale (extractor_id, image_id, block_no) VALUES (?, ?, ?)",
                          stale)
    mark_removed(store, [(e, i) for e, i, _ in rows])


def bump_changes(store: SqlSession, extractor_ids: set[int]) -> None:
    """One more change for each extractor, in id order (two writers never wait on each
    other's counters in opposite orders)."""
    for extractor_id in sorted(extractor_ids):
        store.execute(store.bump_counter_sql, (changes_key(extractor_id),))


def read_changes(store: SqlSession, cur: Any, extractor: ExtractorRow) -> int:
    cur.execute(f"SELECT v FROM meta WHERE k = {store.ph}", (changes_key(extractor.id),))
    rows = cur.fetchall()
    return int(rows[0][0]) if rows else 0


def snapshot_blocks(
    store: SqlSession, cur: Any, extractor: ExtractorRow, block_rows: int, packed: bool, part: int, parts: int,
    snapshot: Snapshot,
) -> Iterator[Block]:
    """The body of stream_blocks, on a cursor whose transaction is one snapshot."""
    def run(sql: str, *params: Any) -> None:
        cur.execute(sql.replace("?", store.ph), params)

    snapshot.changes = read_changes(store, cur, extractor)
    if not packed:
        run("SELECT image_id, vec FROM features WHERE extractor_id = ?", extractor.id)
        while rows := cur.fetchmany(block_rows):
            yield rows_to_block(rows, extractor.dim)
        return
    run("SELECT block_no, image_id FROM packed_stale WHERE extractor_id = ?", extractor.id)
    stale = stale_by_block(cur.fetchall())
    if part == 0:
        run("SELECT image_id, vec FROM features WHERE extractor_id = ? AND packed_block IS NULL", extractor.id)
        while rows := cur.fetchmany(block_rows):
            yield rows_to_block(rows, extractor.dim)
    run(f"SELECT block_no, ids, vecs FROM packed_blocks WHERE extractor_id = ? AND {store.mod_block_sql} = ?",
        extractor.id, parts, part)
    while rows := cur.fetchmany(2):
        for block_no, ids_blob, vecs_blob in rows:
            yield without_stale(ids_blob, vecs_blob, extractor.dim, stale.get(int(block_no)))


def stale_by_block(rows: list[tuple]) -> dict[int, np.ndarray]:
    """(block_no, image_id) rows as block -> stale ids. Staleness is per block: an image
    re-extracted after its block was packed may sit, current, in a newer block."""
    found: dict[int, list[int]] = {}
    for block_no, image_id in rows:
        found.setdefault(int(block_no), []).append(int(image_id))
    return {b: np.array(ids, dtype=np.int64) for b, ids in found.items()}


def without_stale(ids_blob: bytes, vecs_blob: bytes, dim: int, stale: np.ndarray | None) -> Block:
    ids = np.frombuffer(ids_blob, dtype=ID_DTYPE)
    vectors = np.frombuffer(vecs_blob, dtype=VECTOR_DTYPE).reshape(len(ids), dim)
    if stale is None:
        return ids, vectors
    keep = ~np.isin(ids, stale)
    return ids[keep], vectors[keep]


@dataclass
class PackedState:
    """An extractor's vectors as the packing protocol lays them out, read in one snapshot:
    what a resident copy needs to catch up without reading known blocks again."""

    changes: int
    present: set[int]  # every packed block number
    blocks: dict[int, Block]  # the content of the present blocks that were not known
    stale: dict[int, np.ndarray]  # block -> ids whose packed entry is stale
    tail: Block  # rows written since the last pack


def read_packed_state(store: SqlSession, cur: Any, extractor: ExtractorRow, known: set[int]) -> PackedState:
    changes = read_changes(store, cur, extractor)
    cur.execute(f"SELECT block_no FROM packed_blocks WHERE extractor_id = {store.ph}", (extractor.id,))
    present = {int(b) for (b,) in cur.fetchall()}
    cur.execute(f"SELECT block_no, image_id FROM packed_stale WHERE extractor_id = {store.ph}", (extractor.id,))
    stale = stale_by_block(cur.fetchall())
    cur.execute(f"SELECT image_id, vec FROM features WHERE extractor_id = {store.ph} AND packed_block IS NULL",
                (extractor.id,))
    tail_rows = cur.fetchall()
    tail = rows_to_block(tail_rows, extractor.dim) if tail_rows else (np.empty(0, np.int64),
                                                                      np.empty((0, extractor.dim), VECTOR_DTYPE))
    blocks: dict[int, Block] = {}
    for chunk, marks in id_chunks(sorted(present - known)):
        cur.execute(f"SELECT block_no, ids, vecs FROM packed_blocks WHERE extractor_id = {store.ph} "
                    f"AND block_no IN ({marks.replace('?', store.ph)})", (extractor.id, *chunk))
        while rows := cur.fetchmany(2):
            for block_no, ids_blob, vecs_blob in rows:
                blocks[int(block_no)] = without_stale(bytes(ids_blob), bytes(vecs_blob), extractor.dim, None)
    return PackedState(changes, present, blocks, stale, tail)


def pack(store: SqlSession, extractor: ExtractorRow, pack_rows: int = DEFAULT_PACK_ROWS) -> PackReport:
    """Bring the packed blocks up to date, in transactions of at most PACK_STEP_BYTES of
    vectors, so memory stays bounded on a first pack of millions of rows. Each step
    rewrites some blocks that hold stale entries (and the last one, if not full) without
    them, and adds tail rows. Only changed blocks are written; a pack killed midway leaves
    committed steps and the previous blocks, exact with the rest of the tail and the
    stale list."""
    block_rows = rows_per_block(extractor.dim, pack_rows, store.max_row_bytes())
    step_rows = max(block_rows, PACK_STEP_BYTES // (extractor.dim * VECTOR_DTYPE.itemsize))
    report = PackReport()
    while True:
        step = _pack_step(store, extractor, block_rows, step_rows)
        if step is None:
            return report
        report.add(step)


def _pack_step(store: SqlSession, extractor: ExtractorRow, block_rows: int, step_rows: int) -> PackReport | None:
    """One transaction of packing (run again if the server breaks a deadlock with a
    concurrent builder); None when there was nothing left to pack."""
    return store.write(lambda: _pack_step_body(store, extractor, block_rows, step_rows))


def _pack_step_body(store: SqlSession, extractor: ExtractorRow, block_rows: int, step_rows: int) -> PackReport | None:
    report = PackReport()
    # One pack of an extractor at a time; rows being packed are locked against writers.
    store.execute(f"SELECT id FROM extractors WHERE id = ?{store.for_update}", (extractor.id,))
    stale = stale_by_block(store.execute(
        f"SELECT block_no, image_id FROM packed_stale WHERE extractor_id = ?{store.for_update}", (extractor.id,)
    ))
    rewrite = sorted(stale)[: max(1, step_rows // block_rows)]
    tail_room = step_rows - len(rewrite) * block_rows
    tail = store.execute(
        "SELECT image_id, vec FROM features WHERE extractor_id = ? AND packed_block IS NULL "
        f"LIMIT {int(max(tail_room, 0))}{store.for_update}",
        (extractor.id,),
    ) if tail_room > 0 else []
    if not rewrite and not tail:
        return None
    blocks = store.execute(
        "SELECT block_no, n FROM packed_blocks WHERE extractor_id = ? ORDER BY block_no", (extractor.id,)
    )
    rewritten = set(rewrite)
    if tail and blocks and int(blocks[-1][1]) < block_rows:
        rewritten.add(int(blocks[-1][0]))  # fill the last block rather than add a small one
    kept_ids, kept_vectors = [], []
    for block_no in sorted(rewritten):
        for ids_blob, vecs_blob in store.execute(
            "SELECT ids, vecs FROM packed_blocks WHERE extractor_id = ? AND block_no = ?", (extractor.id, block_no),
        ):
            ids, vectors = without_stale(ids_blob, vecs_blob, extractor.dim, stale.get(block_no))
            kept_ids.append(ids)
            kept_vectors.append(vectors)
            report.blocks_removed += 1
        store.execute("DELETE FROM packed_blocks WHERE extractor_id = ? AND block_no = ?", (extractor.id, block_no))
    if tail:
        tail_ids, tail_vectors = rows_to_block(tail, extractor.dim)
        kept_ids.append(tail_ids)
        kept_vectors.append(tail_vectors)
    all_ids = np.concatenate(kept_ids) if kept_ids else np.empty(0, ID_DTYPE)
    all_vectors = np.vstack(kept_vectors) if kept_vectors else np.empty((0, extractor.dim), VECTOR_DTYPE)
    last = store.execute("SELECT v FROM meta WHERE k = ?", (last_block_key(extractor.id),))
    next_block = max([int(b) for b, _ in blocks] + [int(last[0][0]) if last else -1]) + 1
    for start in range(0, len(all_ids), block_rows):
        ids = all_ids[start : start + block_rows]
        store.execute(
            "INSERT INTO packed_blocks (extractor_id, block_no, n, ids, vecs) VALUES (?, ?, ?, ?, ?)",
            (extractor.id, next_block, len(ids), ids.astype(ID_DTYPE).tobytes(),
             np.ascontiguousarray(all_vectors[start : start + block_rows], VECTOR_DTYPE).tobytes()),
        )
        for chunk, marks in id_chunks(ids.tolist()):
            store.execute(f"UPDATE features SET packed_block = ? WHERE extractor_id = ? AND image_id IN ({marks})",
                          (next_block, extractor.id, *chunk))
        report.blocks_written += 1
        report.vectors_moved += len(ids)
        next_block += 1
    store.execute("REPLACE INTO meta (k, v) VALUES (?, ?)", (last_block_key(extractor.id), str(next_block - 1)))
    for chunk, marks in id_chunks(sorted(rewritten)):
        store.execute(f"DELETE FROM packed_stale WHERE extractor_id = ? AND block_no IN ({marks})",
                      (extractor.id, *chunk))
    store.touch({extractor.id})
    return report


def packed_counts(store: SqlSession, extractor: ExtractorRow) -> tuple[int, int, int]:
    """(packed blocks, tail rows, stale entries) of an extractor."""
    def count(sql: str) -> int:
        return int(store.execute(sql, (extractor.id,))[0][0])

    return (count("SELECT COUNT(*) FROM packed_blocks WHERE extractor_id = ?"),
            count("SELECT COUNT(*) FROM features WHERE extractor_id = ? AND packed_block IS NULL"),
            count("SELECT COUNT(*) FROM packed_stale WHERE extractor_id = ?"))
