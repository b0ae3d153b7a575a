"""What an unrelated photo scores in this index: per vector extractor and metric, a high
percentile of the scores between different images of a random sample of the collection,
kept in `meta` (key calibration:EXTRACTOR:METRIC, a JSON object a person can read).
A query whose best score stays below it has no close match: the page and `query` say so.

A percentile of the collection's own pairs, not a constant: what "unrelated" scores
depends on the descriptor (colour histograms of any two photos overlap a lot, CNN
features less) and on the collection (a folder of beaches is all alike)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from imgsearch.scan.metrics import METRICS
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow

SAMPLE = 1000  # images: 499,500 pairs, a 99th percentile to about +-0.3 percentile points
PERCENTILE = 99.0  # most pairs of a collection are unrelated: its top 1 % holds the near and the alike
RECALIBRATE_CHANGE = 0.25  # calibrated again when the image count moved by a quarter
SEED = 20261127


@dataclass(frozen=True)
class Calibration:
    cut: float  # the PERCENTILE of different images' scores
    images: int  # the collection's size when it was measured
    sample: int

    def is_close(self, best: float) -> bool:
        return best > self.cut


def key(extractor: str, metric: str) -> str:
    return f"calibration:{extractor}:{metric}"


def stored_calibration(store: FeatureStore, extractor: str, metric: str) -> Calibration | None:
    found = store.get_meta(key(extractor, metric))
    if found is None:
        return None
    values = json.loads(found)
    return Calibration(float(values["cut"]), int(values["images"]), int(values["sample"]))


def forget_calibration(store: FeatureStore, extractor: str) -> None:
    """Drop the extractor's cuts: its vectors changed, the next update measures them again."""
    for metric in METRICS:
        store.delete_meta(key(extractor, metric))


def update_calibration(store: FeatureStore, row: ExtractorRow) -> list[str]:
    """Measure the cut of each metric for a vector extractor whose collection is new or has
    changed size by RECALIBRATE_CHANGE; a line saying so."""
    if row.kind != "vector":
        return []
    ids = sorted(store.image_ids_with_features(row))
    known = stored_calibration(store, row.name, next(iter(METRICS)))
    if len(ids) < 2 or (known is not None and abs(len(ids) - known.images) <= RECALIBRATE_CHANGE * known.images):
        return []
    chosen = sorted(np.random.default_rng(SEED).choice(ids, min(SAMPLE, len(ids)), replace=False).tolist())
    stored = store.vectors(row, chosen)
    vectors = np.vstack([stored[i] for i in chosen if i in stored])
    upper = np.triu_indices(len(vectors), k=1)  # each pair of different images once
    cuts = {}
    for name, metric in METRICS.items():
        prepared = metric.prepare_rows(vectors)
        scores = (prepared @ prepared.T)[upper]
        cuts[name] = float(np.percentile(scores, PERCENTILE))
        store.set_meta(key(row.name, name), json.dumps({"cut": round(cuts[name], 6), "images": len(ids),
                                                        "sample": len(vectors), "percentile": PERCENTILE}))
    shown = ", ".join(f"{name} {cut:.3f}" for name, cut in cuts.items())
    return [f"{row.name}: unrelated photos score below {shown} ({PERCENTILE:g}th percentile of "
            f"{len(upper[0]):,} pairs)"]
