"""learn: fit a whitening or learned projection on the stored vectors of a collection
and store it with its extractor; `query --whiten NAME` then applies it."""
from __future__ import annotations

import os

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.methods import parse_method
from imgsearch.store.base import ExtractorRow, FeatureStore
from imgsearch.whiten import WHITENINGS, LinearMap


def folder_labels(store: FeatureStore, ids: np.ndarray) -> np.ndarray:
    """The first folder of each image's relative path, as the class label."""
    images = store.images_by_ids(ids.tolist())
    classes: dict[bytes, int] = {}
    labels = []
    for image_id in ids.tolist():
        parts = images[image_id].path.split(os.sep.encode(), 1)
        labels.append(classes.setdefault(parts[0] if len(parts) > 1 else b"", len(classes)))
    if len(classes) < 2:
        raise ImgsearchError("supervised learning needs the images in at least two class folders")
    return np.array(labels)


def learn_map(store: FeatureStore, extractor: ExtractorRow, name: str, spec: str, block_rows: int) -> tuple[int, int]:
    """Fit `spec` (e.g. 'lw', 'pca:32,0.25') on every stored vector of the extractor;
    returns (vectors trained on, output dimension)."""
    method, params = parse_method(spec, WHITENINGS)
    learn, supervised, _ = WHITENINGS[method]
    blocks = list(store.stream_blocks(extractor, block_rows))
    if not blocks:
        raise ImgsearchError(f"no {extractor.name} vectors stored to learn from")
    ids = np.concatenate([b[0] for b in blocks])
    X = np.vstack([b[1] for b in blocks]).astype(np.float64)
    labels = folder_labels(store, ids) if supervised else np.zeros(len(ids), dtype=int)
    learned = learn(X, labels, *params)
    store.save_linear_map(extractor, name, spec, len(ids), learned.mean.astype(np.float32),
                          learned.projection.astype(np.float32))
    return len(ids), int(learned.projection.shape[0])


def stored_map(store: FeatureStore, extractor: ExtractorRow, name: str) -> LinearMap:
    found = store.load_linear_map(extractor, name)
    if found is None:
        raise ImgsearchError(f"no learned map {name!r} for {extractor.name}; fit one with `imgsearch learn {name}`")
    _, mean, projection = found
    return LinearMap(mean, projection)
