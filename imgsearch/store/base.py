"""FeatureStore: the tables of imgsearch/sql/*.sql behind one interface, shared by both dialects.

Subclasses supply the connection, the placeholder style, a few dialect statements and
the streaming cursor; everything else is plain DB-API and lives here once. The packing
protocol and the change counter live in packed.py.
"""
from __future__ import annotations

import functools
import random
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar, cast

import numpy as np

from imgsearch.decoding import without_decode_rule
from imgsearch.errors import DatabaseError, ImgsearchError
from imgsearch.hashes import ImageHash
from imgsearch.keypoints import LocalFeatures
from imgsearch.store import packed as packing
from imgsearch.store.kinds import KINDS, VECTOR, kind_of_value  # not `packed`: stream_blocks has a parameter of that name
from imgsearch.store.packed import DEFAULT_PACK_ROWS, PackReport, Snapshot
from imgsearch.store.records import (
    VECTOR_DTYPE,
    Block,
    ExtractorRow,
    ImageRecord,
    StoredImage,
    changes_key,
    id_chunks,
    stored_image,
    vector_to_bytes,
)

IMAGE_COLUMNS = "id, path, name, bytes, mtime_ns, sha256, width, height"
CORE_TABLES = {"meta", "images", "extractors", "features"}
# Tables and columns added after the first release: an index without them needs one
# `build` to upgrade.
LATER_TABLES = {"packed_blocks", "packed_stale", "whitenings", "graphs", "graph_nodes", "graph_removed"}
# (table, column) added since; a table an index may lack altogether (the visual words'
# before they came) is checked only where it is.
LATER_COLUMNS = (("features", "packed_block"), ("whitenings", "metric"), ("visual_vocabularies", "word_base"))
# Columns an older imgsearch wrote that nothing reads: a build drops them (ensure_schema).
DROPPED_COLUMNS = (("whitenings", "trained_on"), ("word_images", "norm"), ("word_images", "words"))
ExtractedValue = np.ndarray | LocalFeatures | ImageHash
# The visual words of a local extractor's images (words_tables).
WORD_TABLES = ("visual_words", "word_images")
# Every table of rows derived from one image's content: dropped when the content changes.
IMAGE_ROW_TABLES = (*(kind.table for kind in KINDS.values()), *WORD_TABLES)
COLLECTION_ROOT_KEY = "collection_root"
WRITE_ATTEMPTS = 6  # a transaction the server rolled back to break a deadlock, run again
T = TypeVar("T")
# The widths of images.path and images.name in mysql.sql; SQLite keeps the same limits so
# that an index behaves the same on both.
MAX_PATH_BYTES = 3000
MAX_NAME_BYTES = 1024


def schema_statements(dialect: str) -> list[str]:
    text = resources.files("imgsearch.sql").joinpath(f"{dialect}.sql").read_text("utf-8")
    return [s.strip() for s in text.split("\n;;") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(line.strip().startswith("--") or not line.strip() for line in statement.splitlines())


class FeatureStore(ABC):
    dialect: str
    ph: str  # DB-API placeholder of the driver

    def __init__(self, connection: Any) -> None:
        self.conn = connection
        self.touched: set[int] = set()  # extractors whose scan the open transaction changes
        self._depth = 0  # nested transaction() blocks

    # -- what each backend supplies -------------------------------------------------
    driver_error: type[Exception]  # the DB-API Error class of the driver
    insert_ignore: str  # the dialect's INSERT that skips duplicate keys
    for_update: str  # the dialect's locking-read suffix ("" where a write transaction locks all)
    mod_block_sql: str  # block_no modulo a bound parameter, in the dialect
    bump_counter_sql: str  # meta[k] = meta[k] + 1, inserting 1 when absent; k bound
    upgrade_columns: dict[tuple[str, str], str]  # (table, column) -> ALTER TABLE adding it

    @abstractmethod
    def describe_error(self, error: Exception) -> str:
        """One line for the user, never containing a password."""

    def is_retryable(self, error: Exception) -> bool:
        """Whether the server rolled the transaction back to break a deadlock or a lock wait."""
        return False

    @abstractmethod
    def _upsert_images_sql(self) -> str: ...

    @abstractmethod
    def _begin(self) -> None:
        """Start a write transaction that holds its locks from its first read."""

    @abstractmethod
    def read_snapshot(self) -> Any:
        """A context manager giving a cursor on a connection of its own, whose reads all
        see one committed state (streaming where the driver can). Raises if a result
        ends before the server said it was complete."""

    def stream_blocks(
        self, extractor: ExtractorRow, block_rows: int, packed: bool | None = None, part: int = 0, parts: int = 1,
        snapshot: Snapshot | None = None,
    ) -> Iterator[Block]:
        """Every current vector of one extractor, in blocks, from one consistent snapshot
        through a streaming cursor: the packed blocks less their stale entries, plus the
        tail of rows written since the last pack (packed=False: the per-row table only;
        None: the packed blocks unless the server's cache cannot hold them, scans_rows()).
        With parts > 1 this is part `part` of the packed blocks (the tail goes with part
        0). The change counter the snapshot saw is put in `snapshot`."""
        if packed is None:
            packed = parts > 1 or not self.scans_rows()
        with self.read_snapshot() as cur:
            yield from packing.snapshot_blocks(self, cur, extractor, block_rows, packed, part, parts,
                                                     snapshot or Snapshot())

    @abstractmethod
    def named_lock(self, name: str, waiting: Any = None) -> Any:
        """A context manager holding the lock `name` of this database, across
        transactions and against other processes; `waiting()` is called once if it has
        to wait. Released when the block ends or the process dies."""

    @abstractmethod
    def existing_tables(self) -> set[str]: ...

    @abstractmethod
    def has_column(self, table: str, column: str) -> bool: ...

    @abstractmethod
    def size_bytes(self) -> int: ...

    def scans_rows(self) -> bool:
        """Whether a query should read the per-row table, not the packed blocks: where the
        server's cache cannot hold the packed copy, its BLOB chains are read from disk a
        page at a time, slower than the rows (bench/buffer_pool.py). The answer is the
        same either way."""
        return False

    def cache_advice(self) -> str | None:
        """A line for the user when the server's cache cannot hold what a query reads (an
        embedded file has the system's page cache: nothing to set)."""
        return None

    @abstractmethod
    def max_row_bytes(self) -> int:
        """The largest row the server takes in one statement."""

    # -- connection and transactions -------------------------------------------------
    def reconnect_if_lost(self) -> None:
        """Replace the connection when the server closed it (a restart, wait_timeout): a
        long-lived process (serve) calls this before each use. Raises DatabaseError when
        the server cannot be reached now; the next call tries again. An embedded file
        has no connection to lose."""
        return None

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # a connection the server dropped: the error that matters came first
            pass

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def touch(self, extractor_ids: Iterable[int]) -> None:
        self.touched.update(extractor_ids)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(sql.replace("?", self.ph), tuple(params))
                return list(cur.fetchall()) if cur.description else []
            finally:
                cur.close()
        except self.driver_error as e:
            raise DatabaseError(self.describe_error(e), self.is_retryable(e)) from None

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        try:
            cur = self.conn.cursor()
            try:
                cur.executemany(sql.replace("?", self.ph), rows)
            finally:
                cur.close()
        except self.driver_error as e:
            raise DatabaseError(self.describe_error(e), self.is_retryable(e)) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: committed when the block ends (the change counters of
        the extractors its writes touched move with it), rolled back on any exception.
        A block inside another joins the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.touched = set()
        try:
            self._begin()
        except self.driver_error as e:
            raise DatabaseError(self.describe_error(e)) from None
        self._depth = 1
        try:
            yield
            packing.bump_changes(self, self.touched)
            try:
                self.conn.commit()
            except self.driver_error as e:
                raise DatabaseError(self.describe_error(e), self.is_retryable(e)) from None
        except BaseException:
            self._rollback_quietly()
            raise
        finally:
            self._depth = 0
            self.touched = set()

    def write(self, work: Callable[[], T]) -> T:
        """`work()` in one transaction, run again (a few times, after a short random pause)
        when the server rolled it back to break a deadlock: concurrent builders (sharded
        builds, a pack beside a build) collide on the same index pages. `work` must only
        write, so that running it again is the same transaction."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.transaction():
                    return work()
            except DatabaseError as e:
                if not e.retryable or self._depth or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.01, 0.1) * (attempt + 1))
        raise AssertionError("unreachable")

    def _rollback_quietly(self) -> None:
        # The original error matters; a rollback on a dead connection would mask it.
        try:
            self.conn.rollback()
        except Exception:
            pass

    @staticmethod
    def fresh_token() -> int:
        return secrets.randbits(62)

    # -- schema ---------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create what is missing, and upgrade an index made by an older imgsearch."""
        tables = self.existing_tables()
        for (table, column), alter in self.upgrade_columns.items():
            if table in tables and not self.has_column(table, column):
                self.execute(alter)
        for table, column in DROPPED_COLUMNS:
            if table in tables and self.has_column(table, column):
                self._drop_column(table, column)
        self._run_schema()

    def _run_schema(self) -> None:
        with self.transaction():
            for statement in schema_statements(self.dialect):
                self.execute(statement)

    def _drop_column(self, table: str, column: str) -> None:
        self.execute(f"ALTER TABLE {table} DROP COLUMN {column}")

    def require_schema(self) -> None:
        tables = self.existing_tables()
        if not CORE_TABLES <= tables:
            raise ImgsearchError("this database holds no index yet; run `imgsearch build FOLDER` first")
        if not LATER_TABLES <= tables or not all(self.has_column(t, c) for t, c in LATER_COLUMNS if t in tables):
            raise ImgsearchError("this index was made by an older imgsearch; run `imgsearch build` once to upgrade it")

    # -- meta and extractors ----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.execute("SELECT v FROM meta WHERE k = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.execute("REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        with self.transaction():
            self.execute("DELETE FROM meta WHERE k = ?", (key,))

    def changes(self, extractor: ExtractorRow) -> int:
        """The extractor's change counter as of now (see packed.py)."""
        return int(self.get_meta(changes_key(extractor.id)) or 0)

    def extractors(self) -> list[ExtractorRow]:
        rows = self.execute("SELECT id, name, params, dim FROM extractors ORDER BY name")
        return [ExtractorRow(int(i), n, p, int(d)) for i, n, p, d in rows]

    def find_extractor(self, name: str) -> ExtractorRow | None:
        return next((e for e in self.extractors() if e.name == name), None)

    def register_extractor(self, name: str, params: str, dim: int) -> ExtractorRow:
        """The stored row of this extractor, created if new; refuses different params."""
        row = self.find_extractor(name)
        if row is None:
            with self.transaction():
                self.add_extractor(name, params, dim)
            row = self.find_extractor(name)
            assert row is not None
        check_same_params(row, params, dim)
        return row

    def add_extractor(self, name: str, params: str, dim: int) -> None:
        """Insert an extractor row inside the caller's transaction, its change counter at 0.
        Another process registering the same name at once (sharded builds) wins quietly:
        the caller then reads its row and checks its params."""
        self.execute(f"{self.insert_ignore} INTO extractors (name, params, dim) VALUES (?, ?, ?)", (name, params, dim))
        (extractor_id,) = self.execute("SELECT id FROM extractors WHERE name = ?", (name,))[0]
        self.execute(f"{self.insert_ignore} INTO meta (k, v) VALUES (?, ?)", (changes_key(int(extractor_id)), "0"))

    def set_extractor_params(self, extractor: ExtractorRow, params: str) -> ExtractorRow:
        """Store other params of the same computation (a new decode rule: see decoding)."""
        check_same_params(extractor, params, extractor.dim)
        with self.transaction():
            self.execute("UPDATE extractors SET params = ? WHERE id = ?", (params, extractor.id))
        return ExtractorRow(extractor.id, extractor.name, params, extractor.dim)

    # -- images and their vectors ------------------------------------------------------
    def stored_images(self) -> dict[bytes, StoredImage]:
        rows = self.execute(f"SELECT {IMAGE_COLUMNS} FROM images")
        return {img.path: img for img in map(stored_image, rows)}

    def image_ids_with_features(self, extractor: ExtractorRow) -> set[int]:
        """The images that have this extractor's row (a vector, local features or a hash)."""
        rows = self.execute(f"SELECT image_id FROM {self._table_of(extractor)} WHERE extractor_id = ?", (extractor.id,))
        return {int(r[0]) for r in rows}

    def has_vectors(self, extractor: ExtractorRow) -> bool:
        return bool(self.execute(f"SELECT 1 FROM {self._table_of(extractor)} WHERE extractor_id = ? LIMIT 1",
                                 (extractor.id,)))

    @staticmethod
    def _table_of(extractor: ExtractorRow) -> str:
        return extractor.kind.table

    def image_hashes(self, extractor: ExtractorRow) -> tuple[np.ndarray, np.ndarray]:
        """(image ids int64, hashes uint64) of every image with this hash extractor's row, by id."""
        rows = self.execute("SELECT image_id, hash FROM image_hashes WHERE extractor_id = ? ORDER BY image_id",
                            (extractor.id,))
        ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
        return ids, np.array([int(r[1]) for r in rows], dtype=np.int64).view(np.uint64)

    def image_hash(self, extractor: ExtractorRow, image_id: int) -> int | None:
        """One image's hash of this hash extractor (its 63 bits as an int), None without one."""
        rows = self.execute("SELECT hash FROM image_hashes WHERE extractor_id = ? AND image_id = ?",
                            (extractor.id, image_id))
        return int(rows[0][0]) if rows else None

    def local_features_bytes(self, extractor: ExtractorRow, image_id: int) -> int:
        """The bytes an image's local features take as stored (either form, old or new)."""
        rows = self.execute("SELECT LENGTH(keypoints) + LENGTH(descriptors) FROM local_features "
                            "WHERE extractor_id = ? AND image_id = ?", (extractor.id, image_id))
        return int(rows[0][0]) if rows else 0

    def local_features(self, extractor: ExtractorRow, ids: list[int]) -> dict[int, LocalFeatures]:
        """The stored local features of these images (those that have them)."""
        found = {}
        for chunk, marks in id_chunks(sorted(set(ids))):
            for image_id, n, keypoints, descriptors in self.execute(
                f"SELECT image_id, n, keypoints, descriptors FROM local_features WHERE extractor_id = ? "
                f"AND image_id IN ({marks})", (extractor.id, *chunk),
            ):
                found[int(image_id)] = LocalFeatures.from_blobs(bytes(keypoints), bytes(descriptors), extractor.dim,
                                                                int(n))
        return found

    def write_batch(
        self,
        items: list[tuple[ImageRecord, dict[int, ExtractedValue]]],
        replaced_ids: Iterable[int] = (),
    ) -> None:
        """One transaction: drop the old features of files whose content changed
        (`replaced_ids`), upsert each image and write its vectors, local features and
        hashes (extractor id -> any of them). A build killed at any point leaves either the whole batch
        or none of it."""
        replaced = list(replaced_ids)
        self.write(lambda: self._write_batch(items, replaced))

    def _write_batch(self, items: list[tuple[ImageRecord, dict[int, ExtractedValue]]],
                     replaced_ids: list[int]) -> None:
        for chunk, marks in id_chunks(replaced_ids):
            packing.mark_stale(self, f"image_id IN ({marks})", chunk)
            for table in IMAGE_ROW_TABLES:
                self.execute(f"DELETE FROM {table} WHERE image_id IN ({marks})", chunk)
        self.executemany(
            self._upsert_images_sql(),
            [(i.path, i.name, i.bytes, i.mtime_ns, i.sha256, i.width, i.height) for i, _ in items],
        )
        ids = self._ids_of_paths([i.path for i, _ in items])
        vectors: dict[int, dict[int, np.ndarray]] = {}
        rows: dict[str, list[tuple]] = {}  # insert statement -> its rows
        for image, values in items:
            for extractor_id, value in values.items():
                kind = kind_of_value(value)
                if kind.row_values is None:
                    vectors.setdefault(extractor_id, {})[ids[image.path]] = cast(np.ndarray, value)
                else:
                    rows.setdefault(kind.insert_sql, []).append((extractor_id, ids[image.path],
                                                                 *kind.row_values(value)))
        for extractor_id, written in vectors.items():
            self._replace_vectors(extractor_id, written)
        for statement, values_of_rows in rows.items():
            self.executemany(statement, values_of_rows)

    def replace_vectors(self, extractor: ExtractorRow, vectors: dict[int, np.ndarray]) -> None:
        """Write vectors of existing images (derived sets: the graph's augmented vectors)."""
        with self.transaction():
            self._replace_vectors(extractor.id, vectors)

    def _replace_vectors(self, extractor_id: int, vectors: dict[int, np.ndarray]) -> None:
        ids = sorted(vectors)
        for chunk, marks in id_chunks(ids):
            packing.mark_stale(self, f"extractor_id = ? AND image_id IN ({marks})", [extractor_id, *chunk])
        # REPLACE makes a fresh row: packed_block is NULL, the vector joins the tail.
        self.executemany("REPLACE INTO features (extractor_id, image_id, vec) VALUES (?, ?, ?)",
                         [(extractor_id, i, vector_to_bytes(vectors[i])) for i in ids])
        self.touched.add(extractor_id)

    def _ids_of_paths(self, paths: list[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for chunk, marks in id_chunks(paths):
            rows = self.execute(f"SELECT path, id FROM images WHERE path IN ({marks})", chunk)
            found.update((bytes(p), int(i)) for p, i in rows)
        return found

    def forget_features(self, extractor: ExtractorRow, ids: list[int]) -> None:
        """Delete this extractor's rows of these images (vectors, local features and their
        words, or hashes), a chunk a transaction; the images stay, and a build sees them
        as lacking this extractor."""
        table = self._table_of(extractor)
        for chunk, marks in id_chunks(ids):
            self.write(functools.partial(self._forget_chunk, extractor.id, table, chunk, marks))

    def _forget_chunk(self, extractor_id: int, table: str, chunk: list[int], marks: str) -> None:
        where = f"extractor_id = ? AND image_id IN ({marks})"
        packing.mark_stale(self, where, [extractor_id, *chunk])
        for name in (table, *WORD_TABLES):
            self.execute(f"DELETE FROM {name} WHERE {where}", (extractor_id, *chunk))
        self.touched.add(extractor_id)

    def move_images(self, moves: list[tuple[int, bytes, ImageRecord]]) -> set[int]:
        """One transaction: each image id at its new path (its record there), when its row
        is still at the old path with the same content; everything kept by id stays with
        it. The ids moved."""
        def work() -> set[int]:
            ids = [image_id for image_id, _, _ in moves]
            expected = {image_id: (old, record.sha256) for image_id, old, record in moves}
            still = {image_id for image_id, path, sha256 in self._locked_paths(ids)
                     if expected[image_id] == (bytes(path), sha256)}
            self.executemany("UPDATE images SET path = ?, name = ?, bytes = ?, mtime_ns = ? WHERE id = ?",
                             [(r.path, r.name, r.bytes, r.mtime_ns, image_id) for image_id, _, r in moves
                              if image_id in still])
            return still

        return self.write(work)

    def _locked_paths(self, ids: list[int]) -> list[tuple[int, bytes, str]]:
        """(id, path, sha256) of these images, read with the rows locked (inside a write)."""
        found = []
        for chunk, marks in id_chunks(ids):
            found += self.execute(f"SELECT id, path, sha256 FROM images WHERE id IN ({marks}){self.for_update}", chunk)
        return found

    def delete_images_at(self, paths: dict[int, bytes]) -> int:
        """Delete each image still at the path given for it (a concurrent build may have
        moved it since it was read); how many were deleted."""
        def work(chunk: list[int]) -> int:
            still = [image_id for image_id, path, _ in self._locked_paths(chunk) if bytes(path) == paths[image_id]]
            if still:
                self._delete_chunk(still, ", ".join("?" * len(still)))
            return len(still)

        return sum(self.write(functools.partial(work, chunk)) for chunk, _ in id_chunks(list(paths)))

    def _delete_chunk(self, chunk: list[int], marks: str) -> None:
        packing.mark_stale(self, f"image_id IN ({marks})", chunk)
        for table in IMAGE_ROW_TABLES:
            self.execute(f"DELETE FROM {table} WHERE image_id IN ({marks})", chunk)
        self.execute(f"DELETE FROM images WHERE id IN ({marks})", chunk)

    def pack(self, extractor: ExtractorRow, pack_rows: int = DEFAULT_PACK_ROWS) -> PackReport:
        """Bring the extractor's packed blocks up to date (see packing.pack)."""
        return packing.pack(self, extractor, pack_rows)

    def packed_counts(self, extractor: ExtractorRow) -> tuple[int, int, int]:
        return packing.packed_counts(self, extractor)

    def images_by_ids(self, ids: list[int]) -> dict[int, StoredImage]:
        found: dict[int, StoredImage] = {}
        for chunk, marks in id_chunks(ids):
            rows = self.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({marks})", chunk)
            found.update((img.id, img) for img in map(stored_image, rows))
        return found

    def find_images(self, name_or_path: bytes) -> list[StoredImage]:
        """The image whose relative path is the argument; else those whose file name is."""
        rows = self.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE path = ? OR name = ? ORDER BY path",
            (name_or_path, name_or_path),
        )
        images = [stored_image(r) for r in rows]
        exact = [i for i in images if i.path == name_or_path]
        return exact or images

    def image_ids_under(self, prefix: bytes) -> np.ndarray:
        """The ids (sorted) of the images whose relative path starts with `prefix` (a folder
        path ending in the separator; b"": all): a range of the path index."""
        if not prefix:
            rows = self.execute("SELECT id FROM images ORDER BY id")
        else:
            after = prefix[:-1] + bytes([prefix[-1] + 1])  # the first path past the folder
            rows = self.execute("SELECT id FROM images WHERE path >= ? AND path < ? ORDER BY id", (prefix, after))
        return np.array([int(r[0]) for r in rows], dtype=np.int64)

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
        """Rows per extractor: images with its vector, local features or hash."""
        counts: dict[int, int] = {}
        # a table of a kind no extractor has may be missing (an index of an older imgsearch)
        for table in {e.kind.table for e in self.extractors()} | {VECTOR.table}:
            rows = self.execute(f"SELECT extractor_id, COUNT(*) FROM {table} GROUP BY extractor_id")
            counts.update({int(e): int(n) for e, n in rows})
        return counts

    # -- learned maps -------------------------------------------------------------------
    def save_linear_map(self, extractor: ExtractorRow, name: str, method: str, metric: str, mean: np.ndarray,
                        projection: np.ndarray) -> None:
        with self.transaction():
            self.execute("DELETE FROM whitenings WHERE extractor_id = ? AND name = ?", (extractor.id, name))
            self.execute(
                "INSERT INTO whitenings (extractor_id, name, method, metric, dim_out, mean, projection) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (extractor.id, name, method, metric, int(projection.shape[0]), vector_to_bytes(mean),
                 vector_to_bytes(projection.ravel())),
            )

    def load_linear_map(self, extractor: ExtractorRow, name: str) -> tuple[str, str, np.ndarray, np.ndarray] | None:
        """(method, metric, mean, projection) of a stored map, None if there is none of that
        name. metric is the one whose prepared vectors it was learned on ('' for a map of
        an older imgsearch, learned on unprepared vectors)."""
        rows = self.execute(
            "SELECT method, metric, dim_out, mean, projection FROM whitenings WHERE extractor_id = ? AND name = ?",
            (extractor.id, name),
        )
        if not rows:
            return None
        method, metric, dim_out, mean, projection = rows[0]
        return (str(method), str(metric), np.frombuffer(bytes(mean), VECTOR_DTYPE),
                np.frombuffer(bytes(projection), VECTOR_DTYPE).reshape(int(dim_out), extractor.dim))


def check_same_params(row: ExtractorRow, params: str, dim: int) -> None:
    """Refuses params that compute other vectors (the decode rule is not compared: see decoding)."""
    if without_decode_rule(row.params) != without_decode_rule(params) or row.dim != dim:
        raise ImgsearchError(
            f"extractor {row.name!r} is stored with params {row.params} (dim {row.dim}), "
            f"but this run uses {params} (dim {dim}); vectors of the two are not comparable. "
            "Use the stored configuration, or another --db for the new one."
        )
