"""FeatureStore: the tables of sql/*.sql behind one interface, shared by both dialects.

Subclasses supply the connection, the placeholder style, the images upsert and the
streaming cursor; everything else is plain DB-API and lives here once.
"""
from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from imgsearch.errors import ImgsearchError

Block = tuple[np.ndarray, np.ndarray]  # (image ids int64 [n], vectors float32 [n, dim])

VECTOR_DTYPE = np.dtype("<f4")  # the binary layout of MySQL 9 / MariaDB 11.7 VECTOR
ID_DTYPE = np.dtype("<i8")  # image ids in packed blocks
DEFAULT_PACK_ROWS = 1024
PACK_STEP_BLOCKS = 64  # blocks of tail packed per transaction: 128 MiB of 512-d vectors


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


@dataclass
class PackReport:
    blocks_written: int = 0
    blocks_removed: int = 0
    vectors_moved: int = 0


def _generation_key(extractor: "ExtractorRow") -> str:
    # Bumped by every pack: parallel scan parts that saw different values raced a pack.
    return f"pack_generation:{extractor.id}"


@dataclass(frozen=True)
class ExtractorRow:
    id: int
    name: str
    params: str
    dim: int


IMAGE_COLUMNS = "id, path, name, bytes, mtime_ns, sha256, width, height"
CORE_TABLES = {"meta", "images", "extractors", "features"}
# Tables added after the first release: an index without them needs one `build` to upgrade.
LATER_TABLES = {"packed_blocks", "packed_stale", "graphs", "graph_nodes", "graph_removed"}
COLLECTION_ROOT_KEY = "collection_root"


ID_CHUNK = 500  # ids per IN (...) list: well under every server's parameter limit


def id_chunks(ids: list[int]) -> list[tuple[list[int], str]]:
    """The ids in pieces for `IN (...)`, each with its placeholder list."""
    pieces = [ids[i : i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]
    return [(piece, ",".join("?" * len(piece))) for piece in pieces]


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def rows_to_block(rows: list[tuple[int, bytes]], dim: int) -> Block:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join([r[1] for r in rows]), dtype=VECTOR_DTYPE)
    return ids, vectors.reshape(len(rows), dim)


def schema_statements(dialect: str) -> list[str]:
    text = resources.files("imgsearch.sql").joinpath(f"{dialect}.sql").read_text("utf-8")
    return [s.strip() for s in text.split("\n;;") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(line.strip().startswith("--") or not line.strip() for line in statement.splitlines())


def _stored_image(row: tuple) -> StoredImage:
    id_, path, name, size, mtime_ns, sha, width, height = row
    return StoredImage(
        id=int(id_), path=bytes(path), name=bytes(name), bytes=int(size), mtime_ns=int(mtime_ns),
        sha256=str(sha), width=int(width), height=int(height),
    )


class FeatureStore(ABC):
    dialect: str
    ph: str  # DB-API placeholder of the driver

    def __init__(self, connection: Any) -> None:
        self.conn = connection

    # -- what each backend supplies -------------------------------------------------
    driver_error: type[Exception]  # the DB-API Error class of the driver
    insert_ignore: str  # the dialect's INSERT that skips duplicate keys
    for_update: str  # the dialect's locking-read suffix ("" where a write transaction locks all)

    @abstractmethod
    def describe_error(self, error: Exception) -> str:
        """One line for the user, never containing a password."""

    @abstractmethod
    def _upsert_images_sql(self) -> str: ...

    mod_block_sql: str  # block_no modulo a bound parameter, in the dialect

    @abstractmethod
    def stream_blocks(
        self, extractor: ExtractorRow, block_rows: int, packed: bool = True, part: int = 0, parts: int = 1,
        generations: list[int] | None = None,
    ) -> Iterator[Block]:
        """Every current vector of one extractor, in blocks, from one consistent snapshot
        through a streaming cursor: the packed blocks less their stale entries, plus the
        tail of rows written since the last pack (packed=False: the per-row table only).
        With parts > 1 this is part `part` of the packed blocks (the tail goes with part
        0); the pack generation the snapshot saw is appended to `generations`.
        Raises if the stream ends before the server said it was complete."""

    def begin_write(self) -> None:
        """Start a write transaction before its first locking read."""

    def _snapshot_blocks(
        self, cur: Any, extractor: ExtractorRow, block_rows: int, packed: bool, part: int, parts: int,
        generations: list[int] | None,
    ) -> Iterator[Block]:
        """The body of stream_blocks, on a cursor whose transaction is one snapshot."""
        def run(sql: str, *params: Any) -> None:
            cur.execute(sql.replace("?", self.ph), params)

        if not packed:
            run("SELECT image_id, vec FROM features WHERE extractor_id = ?", extractor.id)
            while rows := cur.fetchmany(block_rows):
                yield rows_to_block(rows, extractor.dim)
            return
        run("SELECT v FROM meta WHERE k = ?", _generation_key(extractor))
        if generations is not None:
            generations.append(int(next(iter(cur.fetchall()), ("0",))[0]))
        else:
            cur.fetchall()
        run("SELECT image_id FROM packed_stale WHERE extractor_id = ?", extractor.id)
        stale = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        if part == 0:
            run("SELECT image_id, vec FROM features WHERE extractor_id = ? AND packed_block IS NULL", extractor.id)
            while rows := cur.fetchmany(block_rows):
                yield rows_to_block(rows, extractor.dim)
        run(f"SELECT ids, vecs FROM packed_blocks WHERE extractor_id = ? AND {self.mod_block_sql} = ?",
            extractor.id, parts, part)
        while rows := cur.fetchmany(2):
            for ids_blob, vecs_blob in rows:
                ids = np.frombuffer(ids_blob, dtype=ID_DTYPE)
                vectors = np.frombuffer(vecs_blob, dtype=VECTOR_DTYPE).reshape(len(ids), extractor.dim)
                if len(stale):
                    keep = ~np.isin(ids, stale)
                    ids, vectors = ids[keep], vectors[keep]
                yield ids, vectors

    @abstractmethod
    def existing_tables(self) -> set[str]: ...

    @abstractmethod
    def has_column(self, table: str, column: str) -> bool: ...

    upgrade_features_sql: str  # adds packed_block to a features table made before packing

    @abstractmethod
    def size_bytes(self) -> int: ...

    # -- shared -----------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # a connection the server dropped: the error that matters came first
            pass

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(sql.replace("?", self.ph), tuple(params))
                return list(cur.fetchall()) if cur.description else []
            finally:
                cur.close()
        except self.driver_error as e:
            raise ImgsearchError(self.describe_error(e)) from None

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        try:
            cur = self.conn.cursor()
            try:
                cur.executemany(sql.replace("?", self.ph), rows)
            finally:
                cur.close()
        except self.driver_error as e:
            raise ImgsearchError(self.describe_error(e)) from None

    def commit(self) -> None:
        try:
            self.conn.commit()
        except self.driver_error as e:
            raise ImgsearchError(self.describe_error(e)) from None

    def ensure_schema(self) -> None:
        """Create what is missing, and upgrade an index made by an older imgsearch."""
        if "features" in self.existing_tables() and not self.has_column("features", "packed_block"):
            self.execute(self.upgrade_features_sql)
        for statement in schema_statements(self.dialect):
            self.execute(statement)
        self.commit()

    def require_schema(self) -> None:
        tables = self.existing_tables()
        if not CORE_TABLES <= tables:
            raise ImgsearchError("this database holds no index yet; run `imgsearch build FOLDER` first")
        if not LATER_TABLES <= tables or not self.has_column("features", "packed_block"):
            raise ImgsearchError("this index was made by an older imgsearch; run `imgsearch build` once to upgrade it")

    def get_meta(self, key: str) -> str | None:
        rows = self.execute("SELECT v FROM meta WHERE k = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.begin_write()
        self.execute("DELETE FROM meta WHERE k = ?", (key,))
        self.execute("INSERT INTO meta (k, v) VALUES (?, ?)", (key, value))
        self.commit()

    def extractors(self) -> list[ExtractorRow]:
        rows = self.execute("SELECT id, name, params, dim FROM extractors ORDER BY name")
        return [ExtractorRow(int(i), n, p, int(d)) for i, n, p, d in rows]

    def find_extractor(self, name: str) -> ExtractorRow | None:
        return next((e for e in self.extractors() if e.name == name), None)

    def register_extractor(self, name: str, params: str, dim: int) -> ExtractorRow:
        """The stored row of this extractor, created if new; refuses different params."""
        row = self.find_extractor(name)
        if row is None:
            self.execute("INSERT INTO extractors (name, params, dim) VALUES (?, ?, ?)", (name, params, dim))
            self.commit()
            row = self.find_extractor(name)
            assert row is not None
        check_same_params(row, params, dim)
        return row

    def stored_images(self) -> dict[bytes, StoredImage]:
        rows = self.execute(f"SELECT {IMAGE_COLUMNS} FROM images")
        return {img.path: img for img in map(_stored_image, rows)}

    def image_ids_with_features(self, extractor_id: int) -> set[int]:
        rows = self.execute("SELECT image_id FROM features WHERE extractor_id = ?", (extractor_id,))
        return {int(r[0]) for r in rows}

    def write_batch(
        self,
        items: list[tuple[ImageRecord, dict[int, np.ndarray]]],
        replaced_ids: Iterable[int] = (),
    ) -> None:
        """One transaction: drop the old features of files whose content changed
        (`replaced_ids`), upsert each image and write its vectors (extractor id -> vector).
        A build killed at any point leaves either the whole batch or none of it."""
        try:
            self.begin_write()
            replaced = list(replaced_ids)
            if replaced:
                marks = ",".join("?" * len(replaced))
                self._mark_stale(f"image_id IN ({marks})", replaced)
                self.execute(f"DELETE FROM features WHERE image_id IN ({marks})", replaced)
            self.executemany(
                self._upsert_images_sql(),
                [(i.path, i.name, i.bytes, i.mtime_ns, i.sha256, i.width, i.height) for i, _ in items],
            )
            ids = self._ids_of_paths([i.path for i, _ in items])
            rows = [
                (extractor_id, ids[image.path], vector_to_bytes(vector))
                for image, vectors in items
                for extractor_id, vector in vectors.items()
            ]
            for extractor_id in {e for e, _, _ in rows}:
                written = [i for e, i, _ in rows if e == extractor_id]
                self._mark_stale(f"extractor_id = ? AND image_id IN ({','.join('?' * len(written))})",
                                 [extractor_id, *written])
            if rows:
                # REPLACE makes a fresh row: packed_block is NULL, the vector joins the tail.
                self.executemany("REPLACE INTO features (extractor_id, image_id, vec) VALUES (?, ?, ?)", rows)
            self.commit()
        except BaseException:
            self.rollback_quietly()
            raise

    def replace_vectors(self, extractor: ExtractorRow, vectors: dict[int, np.ndarray]) -> None:
        """Write vectors of existing images inside the caller's write transaction (derived
        sets: the graph's augmented vectors)."""
        ids = sorted(vectors)
        for chunk, marks in id_chunks(ids):
            self._mark_stale(f"extractor_id = ? AND image_id IN ({marks})", [extractor.id, *chunk])
        self.executemany("REPLACE INTO features (extractor_id, image_id, vec) VALUES (?, ?, ?)",
                         [(extractor.id, i, vector_to_bytes(vectors[i])) for i in ids])

    def rollback_quietly(self) -> None:
        # The original error matters; a rollback on a dead connection would mask it.
        try:
            self.conn.rollback()
        except Exception:
            pass

    def _ids_of_paths(self, paths: list[bytes]) -> dict[bytes, int]:
        marks = ",".join("?" * len(paths))
        rows = self.execute(f"SELECT path, id FROM images WHERE path IN ({marks})", paths)
        return {bytes(p): int(i) for p, i in rows}

    def delete_images(self, ids: list[int]) -> None:
        for chunk, marks in id_chunks(ids):
            self.begin_write()
            self._mark_stale(f"image_id IN ({marks})", chunk)
            self.execute(f"DELETE FROM features WHERE image_id IN ({marks})", chunk)
            self.execute(f"DELETE FROM images WHERE id IN ({marks})", chunk)
            self.commit()

    def _mark_stale(self, where: str, params: list) -> None:
        """Before vectors are replaced or deleted, remember which packed entries they were,
        so that scans leave those entries out until the next pack, and which graphs knew
        them, so that the next graph update recomputes the lists that hold them."""
        self.execute(
            f"{self.insert_ignore} INTO packed_stale (extractor_id, image_id, block_no) "
            f"SELECT extractor_id, image_id, packed_block FROM features WHERE packed_block IS NOT NULL AND {where}",
            params,
        )
        self.execute(
            "REPLACE INTO graph_removed (graph_id, image_id, token) SELECT g.id, f.image_id, ? "
            f"FROM graphs g JOIN (SELECT extractor_id, image_id FROM features WHERE {where}) f "
            "ON f.extractor_id = g.extractor_id",
            [secrets.randbits(62), *params],
        )

    def pack(self, extractor: ExtractorRow, block_rows: int = DEFAULT_PACK_ROWS) -> PackReport:
        """Bring the packed blocks up to date, in transactions of at most PACK_STEP_BLOCKS
        blocks of tail, so memory stays bounded on a first pack of millions of rows. Each
        step rewrites the blocks that hold stale entries (and the last one, if not full)
        without them, and adds tail rows. Only changed blocks are written; a pack killed
        midway leaves committed steps and the previous blocks, exact with the rest of the
        tail and the stale list."""
        report = PackReport()
        while True:
            step = self._pack_step(extractor, block_rows, PACK_STEP_BLOCKS * block_rows)
            report.blocks_written += step.blocks_written
            report.blocks_removed += step.blocks_removed
            report.vectors_moved += step.vectors_moved
            if step.vectors_moved == 0 and step.blocks_removed == 0:
                return report

    def _pack_step(self, extractor: ExtractorRow, block_rows: int, max_tail: int) -> PackReport:
        report = PackReport()
        try:
            self.begin_write()
            # One pack of an extractor at a time; rows being packed are locked against writers.
            self.execute(f"SELECT id FROM extractors WHERE id = ?{self.for_update}", (extractor.id,))
            stale = self.execute(
                f"SELECT image_id, block_no FROM packed_stale WHERE extractor_id = ?{self.for_update}", (extractor.id,)
            )
            tail = self.execute(
                "SELECT image_id, vec FROM features WHERE extractor_id = ? AND packed_block IS NULL "
                f"LIMIT {int(max_tail)}{self.for_update}",
                (extractor.id,),
            )
            if not stale and not tail:
                self.commit()
                return report
            blocks = self.execute(
                "SELECT block_no, n FROM packed_blocks WHERE extractor_id = ? ORDER BY block_no", (extractor.id,)
            )
            rewrite = {int(b) for _, b in stale}
            if tail and blocks and int(blocks[-1][1]) < block_rows:
                rewrite.add(int(blocks[-1][0]))  # fill the last block rather than add a small one
            stale_by_block: dict[int, list[int]] = {}
            for image_id, block_no in stale:
                stale_by_block.setdefault(int(block_no), []).append(int(image_id))
            kept_ids, kept_vectors = [], []
            for block_no in sorted(rewrite):
                for ids_blob, vecs_blob in self.execute(
                    "SELECT ids, vecs FROM packed_blocks WHERE extractor_id = ? AND block_no = ?",
                    (extractor.id, block_no),
                ):
                    ids = np.frombuffer(ids_blob, dtype=ID_DTYPE)
                    keep = ~np.isin(ids, stale_by_block.get(block_no, []))
                    kept_ids.append(ids[keep])
                    kept_vectors.append(np.frombuffer(vecs_blob, dtype=VECTOR_DTYPE).reshape(len(ids), -1)[keep])
                self.execute("DELETE FROM packed_blocks WHERE extractor_id = ? AND block_no = ?", (extractor.id, block_no))
                report.blocks_removed += 1
            if tail:
                tail_ids, tail_vectors = rows_to_block(tail, extractor.dim)
                kept_ids.append(tail_ids)
                kept_vectors.append(tail_vectors)
            all_ids = np.concatenate(kept_ids) if kept_ids else np.empty(0, ID_DTYPE)
            all_vectors = np.vstack(kept_vectors) if kept_vectors else np.empty((0, extractor.dim), VECTOR_DTYPE)
            next_block = max((int(b) for b, _ in blocks), default=-1) + 1
            for start in range(0, len(all_ids), block_rows):
                ids = all_ids[start : start + block_rows]
                self.execute(
                    "INSERT INTO packed_blocks (extractor_id, block_no, n, ids, vecs) VALUES (?, ?, ?, ?, ?)",
                    (extractor.id, next_block, len(ids), ids.astype(ID_DTYPE).tobytes(),
                     np.ascontiguousarray(all_vectors[start : start + block_rows], VECTOR_DTYPE).tobytes()),
                )
                marks = ",".join("?" * len(ids))
                self.execute(
                    f"UPDATE features SET packed_block = ? WHERE extractor_id = ? AND image_id IN ({marks})",
                    (next_block, extractor.id, *ids.tolist()),
                )
                report.blocks_written += 1
                report.vectors_moved += len(ids)
                next_block += 1
            self.execute("DELETE FROM packed_stale WHERE extractor_id = ?", (extractor.id,))
            generation = int(next(iter(self.execute("SELECT v FROM meta WHERE k = ?", (_generation_key(extractor),))), ("0",))[0])
            self.execute("REPLACE INTO meta (k, v) VALUES (?, ?)", (_generation_key(extractor), str(generation + 1)))
            self.commit()
            return report
        except BaseException:
            self.rollback_quietly()
            raise

    def packed_counts(self, extractor: ExtractorRow) -> tuple[int, int, int]:
        """(packed blocks, tail rows, stale entries) of an extractor."""
        blocks = self.execute("SELECT COUNT(*) FROM packed_blocks WHERE extractor_id = ?", (extractor.id,))
        tail = self.execute("SELECT COUNT(*) FROM features WHERE extractor_id = ? AND packed_block IS NULL", (extractor.id,))
        stale = self.execute("SELECT COUNT(*) FROM packed_stale WHERE extractor_id = ?", (extractor.id,))
        return int(blocks[0][0]), int(tail[0][0]), int(stale[0][0])

    def save_linear_map(
        self, extractor: ExtractorRow, name: str, method: str, trained_on: int, mean: np.ndarray, projection: np.ndarray
    ) -> None:
        self.begin_write()
        self.execute("DELETE FROM whitenings WHERE extractor_id = ? AND name = ?", (extractor.id, name))
        self.execute(
            "INSERT INTO whitenings (extractor_id, name, method, dim_out, trained_on, mean, projection) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (extractor.id, name, method, int(projection.shape[0]), trained_on, vector_to_bytes(mean),
             vector_to_bytes(projection.ravel())),
        )
        self.commit()

    def load_linear_map(self, extractor: ExtractorRow, name: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(method, mean, projection) of a stored map, None if there is none of that name."""
        if "whitenings" not in self.existing_tables():
            return None
        rows = self.execute(
            "SELECT method, dim_out, mean, projection FROM whitenings WHERE extractor_id = ? AND name = ?",
            (extractor.id, name),
        )
        if not rows:
            return None
        method, dim_out, mean, projection = rows[0]
        return (str(method), np.frombuffer(bytes(mean), VECTOR_DTYPE),
                np.frombuffer(bytes(projection), VECTOR_DTYPE).reshape(int(dim_out), extractor.dim))

    def images_by_ids(self, ids: list[int]) -> dict[int, StoredImage]:
        found: dict[int, StoredImage] = {}
        for chunk, marks in id_chunks(ids):
            rows = self.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({marks})", chunk)
            found.update((img.id, img) for img in map(_stored_image, rows))
        return found

    def find_images(self, name_or_path: bytes) -> list[StoredImage]:
        """Images whose relative path or file name equals the argument."""
        rows = self.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE path = ? OR name = ? ORDER BY path",
            (name_or_path, name_or_path),
        )
        return [_stored_image(r) for r in rows]

    def vectors(self, extractor: ExtractorRow, ids: list[int]) -> dict[int, np.ndarray]:
        """The stored vectors of these images (images without one are left out)."""
        found: dict[int, np.ndarray] = {}
        for chunk, marks in id_chunks(ids):
            rows = self.execute(
                f"SELECT image_id, vec FROM features WHERE extractor_id = ? AND image_id IN ({marks})",
                (extractor.id, *chunk),
            )
            found.update((int(i), np.frombuffer(bytes(v), VECTOR_DTYPE)) for i, v in rows)
        return found

    def vector(self, extractor: ExtractorRow, image_id: int) -> np.ndarray | None:
        return self.vectors(extractor, [image_id]).get(image_id)

    def count_images(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM images")[0][0])

    def count_features(self) -> dict[int, int]:
        rows = self.execute("SELECT extractor_id, COUNT(*) FROM features GROUP BY extractor_id")
        return {int(e): int(n) for e, n in rows}


def check_same_params(row: ExtractorRow, params: str, dim: int) -> None:
    if row.params != params or row.dim != dim:
        raise ImgsearchError(
            f"extractor {row.name!r} is stored with params {row.params} (dim {row.dim}), "
            f"but this run uses {params} (dim {dim}); vectors of the two are not comparable. "
            "Use the stored configuration, or another --db for the new one."
        )

