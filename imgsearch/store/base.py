"""FeatureStore: the tables of sql/*.sql behind one interface, shared by both dialects.

Subclasses supply the connection, the placeholder style, the images upsert and the
streaming cursor; everything else is plain DB-API and lives here once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from imgsearch.errors import ImgsearchError

Block = tuple[np.ndarray, np.ndarray]  # (image ids int64 [n], vectors float32 [n, dim])

VECTOR_DTYPE = np.dtype("<f4")  # the binary layout of MySQL 9 / MariaDB 11.7 VECTOR


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


IMAGE_COLUMNS = "id, path, name, bytes, mtime_ns, sha256, width, height"


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

    @abstractmethod
    def describe_error(self, error: Exception) -> str:
        """One line for the user, never containing a password."""

    @abstractmethod
    def _upsert_images_sql(self) -> str: ...

    @abstractmethod
    def stream_blocks(self, extractor: ExtractorRow, block_rows: int) -> Iterator[Block]:
        """Every stored vector of one extractor, in blocks, read through a streaming cursor.
        Raises if the stream ends before the server said it was complete."""

    @abstractmethod
    def has_schema(self) -> bool: ...

    @abstractmethod
    def size_bytes(self) -> int: ...

    # -- shared -----------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(sql.replace("?", self.ph), tuple(params))
                return list(cur.fetchall()) if cur.description else []
            finally:
                cur.close()
        except self.driver_error as e:
            raise ImgsearchError(self.describe_error(e)) from None

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        try:
            cur = self.conn.cursor()
            try:
                cur.executemany(sql.replace("?", self.ph), rows)
            finally:
                cur.close()
        except self.driver_error as e:
            raise ImgsearchError(self.describe_error(e)) from None

    def ensure_schema(self) -> None:
        for statement in schema_statements(self.dialect):
            self._execute(statement)
        self.conn.commit()

    def require_schema(self) -> None:
        if not self.has_schema():
            raise ImgsearchError("this database holds no index yet; run `imgsearch build FOLDER` first")

    def get_meta(self, key: str) -> str | None:
        rows = self._execute("SELECT v FROM meta WHERE k = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._execute("DELETE FROM meta WHERE k = ?", (key,))
        self._execute("INSERT INTO meta (k, v) VALUES (?, ?)", (key, value))
        self.conn.commit()

    def extractors(self) -> list[ExtractorRow]:
        rows = self._execute("SELECT id, name, params, dim FROM extractors ORDER BY name")
        return [ExtractorRow(int(i), n, p, int(d)) for i, n, p, d in rows]

    def find_extractor(self, name: str) -> ExtractorRow | None:
        return next((e for e in self.extractors() if e.name == name), None)

    def register_extractor(self, name: str, params: str, dim: int) -> ExtractorRow:
        """The stored row of this extractor, created if new; refuses different params."""
        row = self.find_extractor(name)
        if row is None:
            self._execute("INSERT INTO extractors (name, params, dim) VALUES (?, ?, ?)", (name, params, dim))
            self.conn.commit()
            row = self.find_extractor(name)
            assert row is not None
        check_same_params(row, params, dim)
        return row

    def stored_images(self) -> dict[bytes, StoredImage]:
        rows = self._execute(f"SELECT {IMAGE_COLUMNS} FROM images")
        return {img.path: img for img in map(_stored_image, rows)}

    def image_ids_with_features(self, extractor_id: int) -> set[int]:
        rows = self._execute("SELECT image_id FROM features WHERE extractor_id = ?", (extractor_id,))
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
            replaced = list(replaced_ids)
            if replaced:
                marks = ",".join("?" * len(replaced))
                self._execute(f"DELETE FROM features WHERE image_id IN ({marks})", replaced)
            self._executemany(
                self._upsert_images_sql(),
                [(i.path, i.name, i.bytes, i.mtime_ns, i.sha256, i.width, i.height) for i, _ in items],
            )
            ids = self._ids_of_paths([i.path for i, _ in items])
            rows = [
                (extractor_id, ids[image.path], vector_to_bytes(vector))
                for image, vectors in items
                for extractor_id, vector in vectors.items()
            ]
            if rows:
                self._executemany("REPLACE INTO features (extractor_id, image_id, vec) VALUES (?, ?, ?)", rows)
            self.conn.commit()
        except BaseException:
            self._rollback_quietly()
            raise

    def _rollback_quietly(self) -> None:
        # The original error matters; a rollback on a dead connection would mask it.
        try:
            self.conn.rollback()
        except Exception:
            pass

    def _ids_of_paths(self, paths: list[bytes]) -> dict[bytes, int]:
        marks = ",".join("?" * len(paths))
        rows = self._execute(f"SELECT path, id FROM images WHERE path IN ({marks})", paths)
        return {bytes(p): int(i) for p, i in rows}

    def delete_images(self, ids: list[int], batch: int = 500) -> None:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            marks = ",".join("?" * len(chunk))
            self._execute(f"DELETE FROM features WHERE image_id IN ({marks})", chunk)
            self._execute(f"DELETE FROM images WHERE id IN ({marks})", chunk)
            self.conn.commit()

    def images_by_ids(self, ids: list[int]) -> dict[int, StoredImage]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({marks})", ids)
        return {img.id: img for img in map(_stored_image, rows)}

    def find_images(self, name_or_path: bytes) -> list[StoredImage]:
        """Images whose relative path or file name equals the argument."""
        rows = self._execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE path = ? OR name = ? ORDER BY path",
            (name_or_path, name_or_path),
        )
        return [_stored_image(r) for r in rows]

    def find_images_by_sha256(self, sha256: str) -> list[StoredImage]:
        rows = self._execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE sha256 = ?", (sha256,))
        return [_stored_image(r) for r in rows]

    def vector(self, extractor: ExtractorRow, image_id: int) -> np.ndarray | None:
        rows = self._execute(
            "SELECT vec FROM features WHERE extractor_id = ? AND image_id = ?", (extractor.id, image_id)
        )
        return np.frombuffer(bytes(rows[0][0]), dtype=VECTOR_DTYPE) if rows else None

    def count_images(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM images")[0][0])

    def count_features(self) -> dict[int, int]:
        rows = self._execute("SELECT extractor_id, COUNT(*) FROM features GROUP BY extractor_id")
        return {int(e): int(n) for e, n in rows}


def check_same_params(row: ExtractorRow, params: str, dim: int) -> None:
    if row.params != params or row.dim != dim:
        raise ImgsearchError(
            f"extractor {row.name!r} is stored with params {row.params} (dim {row.dim}), "
            f"but this run uses {params} (dim {dim}); vectors of the two are not comparable. "
            "Use the stored configuration, or another --db for the new one."
        )

