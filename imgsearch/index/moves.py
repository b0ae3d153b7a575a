"""Moves and renames: a file gone from one path that appears at another with the same
size and sha256 keeps its row (its id, vectors, local features, words, hashes and graph
lists), only its path changes. Copies (one content at two new paths) stay two rows: a
gone row is claimed by one new path at most."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from tqdm import tqdm

from imgsearch.errors import SkippedFile
from imgsearch.index.images import read_bytes
from imgsearch.index.walk import FoundFile
from imgsearch.store.records import ImageRecord, StoredImage


@dataclass(frozen=True)
class Move:
    image_id: int
    old_path: bytes
    record: ImageRecord  # the row as it is at its new path


def find_moves(new_files: list[FoundFile], gone: list[StoredImage], progress: bool = True,
               ) -> tuple[list[Move], list[FoundFile]]:
    """The moves among new files (the moved ones read and hashed once, here; only those of
    a gone file's size), and the new files that are not a move."""
    by_size: dict[int, list[StoredImage]] = {}
    for stored in gone:
        by_size.setdefault(stored.bytes, []).append(stored)
    candidates = [f for f in new_files if f.size in by_size]
    moves: list[Move] = []
    claimed: set[int] = set()
    moved_paths: set[bytes] = set()
    for found, sha256 in tqdm(_hashed(candidates), total=len(candidates), unit="img", desc="moved files",
                              disable=not progress or not candidates or None):
        row = next((r for r in by_size[found.size] if r.sha256 == sha256 and r.id not in claimed), None)
        if row is None:
            continue
        claimed.add(row.id)
        moved_paths.add(found.relpath)
        moves.append(Move(row.id, row.path, ImageRecord(path=found.relpath, name=os.path.basename(found.relpath),
                                              bytes=found.size, mtime_ns=found.mtime_ns, sha256=sha256,
                                              width=row.width, height=row.height)))
    return moves, [f for f in new_files if f.relpath not in moved_paths]


def _hashed(files: list[FoundFile]) -> Iterator[tuple[FoundFile, str | None]]:
    for found in files:
        try:
            yield found, hashlib.sha256(read_bytes(found.path)).hexdigest()
        except SkippedFile:
            yield found, None  # read again by the build, which reports why
