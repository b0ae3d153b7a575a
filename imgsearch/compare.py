"""`imgsearch compare A B` and /api/compare: two images side by side through every
descriptor the index stores: each vector's score under each metric, how many bits their
perceptual hashes differ (in the best of 8 orientations), and whether their local features
verify (inliers, and B's outline in A). A and B are files or indexed images."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgsearch.errors import ImgsearchError, NotFoundError, SkippedFile
from imgsearch.hashes import BITS, dihedral_variants, hamming
from imgsearch.index.extraction import cached_extractor
from imgsearch.index.images import read_bytes
from imgsearch.keypoints import LocalFeatures
from imgsearch.names import display
from imgsearch.query import extraction_scale, is_photo_file, photo_of_bytes
from imgsearch.rerank.query import verification_fields
from imgsearch.rerank.verify import verify_all
from imgsearch.scan.metrics import METRICS
from imgsearch.store.base import FeatureStore
from imgsearch.store.kinds import HASH, LOCAL, VECTOR, RowKind
from imgsearch.store.records import ExtractorRow


@dataclass
class Side:
    """One of the two images: what the index stores of it, or what is extracted from its file."""

    label: str
    height: int
    width: int
    image_id: int | None = None  # indexed: its id
    pixels: np.ndarray | None = None  # a file: its pixels, shrunk once as a query photo's
    scale: float = 1.0  # pixels' size over the file's own

    def features(self, store: FeatureStore, row: ExtractorRow) -> Any:
        """Its row of this extractor: a vector, an ImageHash's bits, or LocalFeatures."""
        if self.image_id is None:
            return row.kind.as_stored(cached_extractor(row.name, row.params).extract(self.pixels), self.scale)
        return row.kind.read_one(store, row, self.image_id)


@dataclass
class Comparison:
    a: str
    b: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # vector extractor -> metric -> score
    hash_bits: dict[str, int] = field(default_factory=dict)  # hash extractor -> bits apart
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)  # local extractor -> inliers, corners
    missing: list[str] = field(default_factory=list)  # extractors one of the two has no row of

    def as_json(self) -> dict:
        return {"a": self.a, "b": self.b, "scores": self.scores, "hash_bits": self.hash_bits,
                "verified": self.verified, "missing": self.missing}

    def text(self) -> str:
        lines = [f"A  {self.a}", f"B  {self.b}", ""]
        if self.scores:
            metrics = list(next(iter(self.scores.values())))
            width = max(len(name) for name in self.scores)
            lines.append(f"{'descriptor':<{width}}  " + "  ".join(f"{m:>13}" for m in metrics))
            lines += [f"{name:<{width}}  " + "  ".join(f"{s[m]:13.4f}" for m in metrics) for name, s in self.scores.items()]
        lines += [f"{name}: {bits} of {BITS} bits apart (best of 8 orientations; the duplicates report takes at most 6 as a copy)"
                  for name, bits in self.hash_bits.items()]
        for name, found in self.verified.items():
            lines.append(f"{name}: " + (f"the same object, {found['inliers']} inliers" if found["corners"] else
                                        f"not verified ({found['inliers']} inliers of {found['matches']} matches: "
                                        "as many as chance gives)"))
        lines += [f"{name}: not stored for both images" for name in self.missing]
        return "\n".join(lines)


def compare(store: FeatureStore, a: Side, b: Side) -> Comparison:
    found = Comparison(a.label, b.label)
    for row in (r for r in store.extractors() if not r.derived):
        left, right = a.features(store, row), b.features(store, row)
        if left is None or right is None:
            found.missing.append(row.name)
        else:
            COMPARE_KIND[row.kind](found, row, left, right, a, b)
    return found


# Each kind's comparison: (found, row, A's row, B's row, A, B) -> adds to found.

def _vectors(found: Comparison, row: ExtractorRow, left: np.ndarray, right: np.ndarray, *_: Any) -> None:
    found.scores[row.name] = {name: float(metric.score_block(right[None, :], metric.prepare_one(left))[0])
                              for name, metric in METRICS.items()}


def _hashes(found: Comparison, row: ExtractorRow, left: int, right: int, *_: Any) -> None:
    variants = dihedral_variants(np.array([right], dtype=np.int64).view(np.uint64))[:, 0]
    found.hash_bits[row.name] = int(hamming(np.uint64(left), variants).min())


def _local(found: Comparison, row: ExtractorRow, left: LocalFeatures, right: LocalFeatures, a: Side,
           b: Side) -> None:
    """B verified against A as a stored image against a query photo: B's outline in A."""
    result = verify_all(left, extraction_scale(row, a.height, a.width), (a.height, a.width),
                        [(right, (b.height, b.width))])[0]
    found.verified[row.name] = verification_fields(result)


COMPARE_KIND: dict[RowKind, Callable[..., None]] = {VECTOR: _vectors, HASH: _hashes, LOCAL: _local}


def side_of_file(path: str) -> Side:
    try:
        return side_of_bytes(path, read_bytes(path))
    except SkippedFile as e:
        raise ImgsearchError(f"cannot compare {path}: {e}") from None


def side_of_bytes(label: str, data: bytes) -> Side:
    """A photo's side, decoded as a query photo is (SkippedFile: not an image)."""
    photo = photo_of_bytes(data)
    return Side(label, photo.height, photo.width, pixels=photo.pixels, scale=photo.scale)


def side_of_name(store: FeatureStore, name: str) -> Side:
    images = store.find_images(os.fsencode(name))
    if not images:
        raise NotFoundError(f"{name}: no such file, and no indexed image has that name or path")
    if len(images) > 1:
        raise ImgsearchError(f"{name} is ambiguous: {', '.join(display(i.path) for i in images[:5])}")
    image = images[0]
    return Side(display(image.path), image.height, image.width, image_id=image.id)


def side_of(store: FeatureStore, image: str) -> Side:
    """A file when IMAGE is one, else the indexed image of that name or relative path."""
    return side_of_file(image) if is_photo_file(image) else side_of_name(store, image)
