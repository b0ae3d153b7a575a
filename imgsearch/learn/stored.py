"""learn: fit a whitening or learned projection on the stored vectors of a collection,
prepared for a metric, and store it with its extractor; `query --whiten NAME` then
scores in the learned space (scan.metrics.in_learned_space), exactly as eval does."""
from __future__ import annotations

import os

import numpy as np

from imgsearch.errors import ImgsearchError, NotFoundError, NotKeptError
from imgsearch.learn.whiten import WHITENINGS, LinearMap, fit_map
from imgsearch.scan.metrics import Metric, in_learned_space
from imgsearch.specs import parse_spec
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow


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


def learn_map(
    store: FeatureStore, extractor: ExtractorRow, metric: Metric, name: str, spec_text: str, block_rows: int
) -> tuple[int, int]:
    """Fit `spec_text` (e.g. 'lw', 'pca:32,0.25') on every stored vector of the extractor,
    prepared for the metric; returns (vectors trained on, output dimension)."""
    spec = parse_spec(spec_text, WHITENINGS)
    blocks = list(store.stream_blocks(extractor, block_rows))
    if not blocks:
        raise ImgsearchError(f"no {extractor.name} vectors stored to learn from")
    ids = np.concatenate([b[0] for b in blocks])
    X = metric.prepare_rows(np.vstack([b[1] for b in blocks])).astype(np.float64)
    labels = folder_labels(store, ids) if WHITENINGS[spec.name].supervised else np.zeros(len(ids), dtype=int)
    learned = fit_map(spec, X, labels)
    store.save_linear_map(extractor, name, spec.text, metric.name, learned.mean.astype(np.float32),
                          learned.projection.astype(np.float32))
    return len(ids), int(learned.projection.shape[0])


def learned_metric(store: FeatureStore, extractor: ExtractorRow, metric: Metric, name: str) -> Metric:
    """The metric in the space of the stored map `name`, which must have been learned on
    vectors prepared for this metric."""
    found = store.load_linear_map(extractor, name)
    if found is None:
        raise NotFoundError(f"no learned map {name!r} for {extractor.name}; fit one with `imgsearch learn {name}`")
    method, learned_on, mean, projection = found
    if not learned_on:
        raise NotKeptError(f"the map {name!r} was learned by an older imgsearch on unprepared vectors; "
                             f"learn it again: `imgsearch learn {name} -e {extractor.name} -m {metric.name} --method {method}`")
    if learned_on != metric.name:
        raise NotKeptError(f"the map {name!r} was learned on {learned_on} vectors; query it with -m {learned_on}, "
                             f"or learn one for {metric.name}: `imgsearch learn NAME -m {metric.name}`")
    return in_learned_space(metric, name, LinearMap(mean, projection).apply)
