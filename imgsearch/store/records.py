"""What the store's tables hold, as Python values: rows, blocks of vectors and their bytes."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from imgsearch.store.kinds import KINDS, VECTOR, RowKind

Block = tuple[np.ndarray, np.ndarray]  # (image ids int64 [n], vectors float32 [n, dim])

VECTOR_DTYPE = np.dtype("<f4")  # the binary layout of MySQL 9 / MariaDB 11.7 VECTOR
ID_DTYPE = np.dtype("<i8")  # image ids in packed blocks
ID_CHUNK = 500  # ids per IN (...) list: well under every server's parameter limit (SQLite: 999 before 3.32)


@dataclass(frozen=True)
class ImageRecord:
    """One file of the collection as stored in `images`. path is relative to the
    collection root, in the file system's own bytes."""

    path: bytes
    name: bytes
    bytes: int
    mtime_ns: int
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class StoredImage(ImageRecord):
    id: int


@dataclass(frozen=True)
class ExtractorRow:
    id: int
    name: str
    params: str
    dim: int

    @property
    def kind(self) -> RowKind:
        """What its rows are (store.kinds; Extractor.kind names it)."""
        return KINDS[str(json.loads(self.params).get("kind", VECTOR.name))]

    @property
    def derived_from(self) -> str | None:
        """The extractor whose vectors this one's are computed from (a graph's augmented
        vectors), None for one extracted from images."""
        source = json.loads(self.params).get("dba_of")
        return None if source is None else str(source)

    @property
    def derived(self) -> bool:
        """Computed, not extracted: not searched or compared by itself."""
        return self.derived_from is not None


def id_chunks(ids: list) -> list[tuple[list, str]]:
    """The values in pieces for `IN (...)`, each with its placeholder list."""
    pieces = [ids[i : i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]
    return [(piece, ",".join("?" * len(piece))) for piece in pieces]


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def rows_to_block(rows: list[tuple[int, bytes]], dim: int) -> Block:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join([r[1] for r in rows]), dtype=VECTOR_DTYPE)
    return ids, vectors.reshape(len(rows), dim)


def stored_image(row: tuple) -> StoredImage:
    id_, path, name, size, mtime_ns, sha, width, height = row
    return StoredImage(
        id=int(id_), path=bytes(path), name=bytes(name), bytes=int(size), mtime_ns=int(mtime_ns),
        sha256=str(sha), width=int(width), height=int(height),
    )


def changes_key(extractor_id: int) -> str:
    """The meta key of an extractor's change counter (see packed.py)."""
    return f"changes:{extractor_id}"


def last_block_key(extractor_id: int) -> str:
    # The highest block number ever written: numbers are never reused, so a resident copy
    # that knows a block number knows its content.
    return f"last_block:{extractor_id}"
