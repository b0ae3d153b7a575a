"""What kinds of rows an extractor stores (Extractor.kind names one), each declared once:
its table, what an extraction gives and how it is written and read, and what the index
does with it (searched by the scan, verifying matches, finding copies). Code asks a row's
kind these questions instead of testing its name. A new kind is a record here, its table in
sql/, and the extractor that makes it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsearch.hashes import ImageHash
from imgsearch.keypoints import LocalFeatures


@dataclass(frozen=True, eq=False)
class RowKind:
    name: str  # Extractor.kind
    table: str
    value: type  # what extraction gives
    # (store, extractor row, image id) -> that image's row, None without one (typed loosely:
    # the records and the packing protocol import this module, and never the store itself)
    read_one: Callable[[Any, Any, int], Any]
    searched: bool = False  # a descriptor: queries scan it
    verifies: bool = False  # local features: they verify matches (the words are kept beside them)
    finds_copies: bool = False  # a perceptual hash: duplicates compare it
    not_searched: str = ""  # why a query refuses it, where it is not searched
    # an extraction as a stored row holds it, the photo read at `scale` of its own size
    as_stored: Callable[[Any, float], Any] = lambda extracted, scale: extracted
    # a value's columns after (extractor_id, image_id) in insert_sql; None: vectors, written
    # with their packing upkeep (FeatureStore._replace_vectors)
    row_values: Callable[[Any], tuple] | None = None
    insert_sql: str = ""


VECTOR = RowKind("vector", "features", np.ndarray, lambda store, row, image_id: store.vector(row, image_id),
                 searched=True)
LOCAL = RowKind(
    "local", "local_features", LocalFeatures,
    lambda store, row, image_id: store.local_features(row, [image_id]).get(image_id), verifies=True,
    not_searched="holds local features: they verify the matches of a descriptor (re-ranking verify)",
    as_stored=lambda features, scale: features.scaled(1 / scale),  # keypoints in the photo's own pixels
    row_values=lambda features: (len(features), *features.blobs()),
    insert_sql="REPLACE INTO local_features (extractor_id, image_id, n, keypoints, descriptors) VALUES (?, ?, ?, ?, ?)")
HASH = RowKind(
    "hash", "image_hashes", ImageHash, lambda store, row, image_id: store.image_hash(row, image_id),
    finds_copies=True, not_searched="holds perceptual hashes: they find copies (`imgsearch duplicates`)",
    as_stored=lambda hashed, scale: hashed.bits,
    row_values=lambda hashed: (hashed.bits,),
    insert_sql="REPLACE INTO image_hashes (extractor_id, image_id, hash) VALUES (?, ?, ?)")

KINDS: dict[str, RowKind] = {kind.name: kind for kind in (VECTOR, LOCAL, HASH)}


def kind_of_value(value: Any) -> RowKind:
    """The kind of row an extracted value is written as."""
    return next(kind for kind in KINDS.values() if isinstance(value, kind.value))
