"""What an unrelated photo's best match scores in this index: per vector extractor and
metric, the median of the best score each of a random sample of the collection's images
gets against all the others, kept in `meta` (key calibration:EXTRACTOR:METRIC, a JSON
object a person can read). A query whose first result stays at or below it has no close
match: the page and `query` say so.

The best of N, not a percentile of single pairs: an answer's first result is the best of
every image it was compared with, and that rises with N, so a cut from pairs stops being
reached by anything as the collection grows and the cue disappears (Corel-1k, cnn-spoc
pearson: the cue showed for 89 % of unrelated queries with the pairs' 99th percentile,
95 % with this median; docs/benchmarks.md). Measured on the collection itself, not a
constant: what "unrelated" scores depends on the descriptor and on the collection. Not
measured below MIN_IMAGES images: a cut from a handful of pairs is noise, and no cue is
better than a wrong one."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from imgsearch.scan.metrics import METRICS
from imgsearch.scan.store_scan import nearest_of_rows
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow

QUERIES = 300  # sampled images whose best match is found: a median to about +-3 percentile points
MIN_IMAGES = 100
PERCENTILE = 50.0  # of the sampled images' best scores
RECALIBRATE_CHANGE = 0.25  # calibrated again when the image count moved by a quarter
SEED = 20261127
BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Calibration:
    cut: float  # the PERCENTILE of the sampled images' best scores against the others
    images: int  # the collection's size when it was measured
    sample: int  # images whose best score was found

    def is_close(self, best: float) -> bool:
        return best > self.cut


def key(extractor: str, metric: str) -> str:
    return f"calibration:{extractor}:{metric}"


def stored_calibration(store: FeatureStore, extractor: str, metric: str) -> Calibration | None:
    found = store.get_meta(key(extractor, metric))
    if found is None:
        return None
    values = json.loads(found)
    if "best_of" not in values:  # a cut from single pairs (before the best of N): not trusted
        return None
    return Calibration(float(values["cut"]), int(values["images"]), int(values["sample"]))


def forget_calibration(store: FeatureStore, extractor: str) -> None:
    """Drop the extractor's cuts: its vectors changed, the next update measures them again."""
    for metric in METRICS:
        store.delete_meta(key(extractor, metric))


def update_calibration(store: FeatureStore, row: ExtractorRow) -> list[str]:
    """Measure the cut of each metric for a vector extractor whose collection is new or has
    changed size by RECALIBRATE_CHANGE; a line saying so."""
    if not row.kind.searched:
        return []
    ids = sorted(store.image_ids_with_features(row))
    known = stored_calibration(store, row.name, next(iter(METRICS)))
    if known is not None and abs(len(ids) - known.images) <= RECALIBRATE_CHANGE * known.images:
        return []
    if len(ids) < MIN_IMAGES:
        forget_calibration(store, row.name)
        return []
    chosen = sorted(np.random.default_rng(SEED).choice(ids, min(QUERIES, len(ids)), replace=False).tolist())
    _, nearest = nearest_of_rows(store, row, list(METRICS.values()), chosen, 1, BLOCK_ROWS)
    best = {name: scores[0] for name, (scores, _) in nearest.items()}
    cuts = {name: float(np.percentile(found, PERCENTILE)) for name, found in best.items()}
    for name, cut in cuts.items():
        store.set_meta(key(row.name, name), json.dumps({"cut": round(cut, 6), "images": len(ids),
                                                        "sample": len(best[name]), "best_of": len(ids) - 1}))
    shown = ", ".join(f"{name} {cut:.3f}" for name, cut in cuts.items())
    return [f"{row.name}: unrelated photos' best match scores about {shown} (median best of {len(ids) - 1:,} "
            f"for {len(chosen)} sampled images)"]
