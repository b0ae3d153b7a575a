"""eval: leave-one-out retrieval quality on a folder whose sub-folders are classes.

Every image queries all the others with the same extractor and metric code as `query`
(one prepared matrix, scores by matrix product); reported: mAP, P@1, P@10, P@20, P@100.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgsearch.errors import ImgsearchError, SkippedFile
from imgsearch.features.registry import CnnOptions, make_extractor
from imgsearch.index.extraction import ExtractorSpec, cached_extractor, extract_all, fit_on_folder, map_in_workers, spec_of
from imgsearch.index.images import has_image_suffix, load_image
from imgsearch.index.walk import FoundFile, walk_collection
from imgsearch.keypoints import LocalFeatures
from imgsearch.learn.whiten import WHITENINGS, fit_map
from imgsearch.query import photo_vector
from imgsearch.rerank.registry import (
    DEFAULT_RERANK,
    LOCAL_EXTRACTOR,
    LOCAL_FEATURES,
    NO_RERANK,
    RerankSpec,
    parse_reranking,
)
from imgsearch.scan.kernel import prepared_scores
from imgsearch.scan.metrics import get_metric
from imgsearch.specs import Spec, parse_spec
from imgsearch.store.kinds import KINDS

CUTOFFS = (1, 10, 20, 100)


@dataclass(frozen=True)
class LabelledImages:
    paths: list[Path]
    labels: np.ndarray  # int class index per image
    classes: list[str]


def labelled_images(dataset: Path) -> LabelledImages:
    if not dataset.is_dir():
        raise ImgsearchError(f"dataset {dataset} is not a folder")
    paths, labels, classes = [], [], {}
    for entry in walk_collection(dataset):
        if not isinstance(entry, FoundFile) or not has_image_suffix(entry.path):
            continue
        parts = Path(os.fsdecode(entry.relpath)).parts
        if len(parts) < 2:
            continue  # a file at the top level has no class
        paths.append(entry.path)
        labels.append(classes.setdefault(parts[0], len(classes)))
    if len(classes) < 2:
        raise ImgsearchError(f"{dataset} needs at least two class sub-folders of images")
    return LabelledImages(paths, np.array(labels), list(classes))


LocalOfImage = tuple[LocalFeatures, tuple[int, int]]  # an image's local features and its (height, width)


def _extract_one(job: tuple[Path, ExtractorSpec, str | None, ExtractorSpec | None]
                 ) -> tuple[np.ndarray, np.ndarray, LocalOfImage | None] | None:
    """The image's vector, its regions' matrix with regions (else the vector as one row)
    and, when asked, its local features."""
    path, spec, regions, local_spec = job
    try:
        pixels = load_image(path).pixels
    except SkippedFile:
        return None
    vector = extract_all(pixels, [spec])[spec[0]]
    extractor = cached_extractor(*spec)
    local = (cached_extractor(*local_spec).extract(pixels), pixels.shape[:2]) if local_spec else None
    return vector, photo_vector(extractor, pixels, regions) if regions else vector[None, :], local


def extract_dataset(
    images: LabelledImages, extractor_name: str, workers: int, progress: bool, options: CnnOptions = CnnOptions(),
    regions: str | None = None, local: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[LocalOfImage]]:
    """The (vectors, labels, query regions, local features when asked) of every decodable
    image of the dataset. An extractor that learns from the collection (PWA) is fitted on
    a sample of the dataset, unlabelled."""
    extractor = make_extractor(extractor_name, options=options)
    kind = KINDS[extractor.kind]
    if not kind.searched:
        raise ImgsearchError(f"{extractor_name} {kind.not_searched}; eval measures a descriptor that is searched")
    if extractor.needs_fit:
        extractor = fit_on_folder(extractor, images.paths)
    spec = spec_of(extractor)
    local_spec = spec_of(make_extractor(LOCAL_EXTRACTOR)) if local else None
    jobs = [(p, spec, regions, local_spec) for p in images.paths]
    found = list(tqdm(map_in_workers(_extract_one, jobs, workers), total=len(jobs), unit="img",
                      desc=f"extract {extractor_name}", disable=not progress or None))
    keep = [i for i, v in enumerate(found) if v is not None]
    return (np.stack([found[i][0] for i in keep]).astype(np.float32), images.labels[keep],
            [found[i][1] for i in keep], [found[i][2] for i in keep] if local else [])


def retrieval_metrics(scores: np.ndarray, labels: np.ndarray, queries: np.ndarray | None = None) -> dict[str, float]:
    """Leave-one-out mAP and P@k from a square score matrix (the diagonal is ignored),
    over every row or only the rows `queries` (a sample). Ties are ranked by database
    index, the same tie-break as the scan's TopK."""
    n = len(labels)
    asked = np.arange(n) if queries is None else np.asarray(queries)
    ap_sum = 0.0
    hits_at = {k: 0.0 for k in CUTOFFS}
    for start in range(0, len(asked), 512):
        rows = asked[start : start + 512]
        block = scores[rows].astype(np.float64, copy=True)
        block[np.arange(len(rows)), rows] = -np.inf
        order = np.argsort(-block, axis=1, kind="stable")[:, : n - 1]
        relevant = labels[order] == labels[rows][:, None]
        cumulative = np.cumsum(relevant, axis=1)
        n_relevant = relevant.sum(axis=1)
        precision_at_hits = np.where(relevant, cumulative / np.arange(1, n), 0).sum(axis=1)
        ap_sum += float(np.sum(np.divide(precision_at_hits, n_relevant, out=np.zeros(len(rows)), where=n_relevant > 0)))
        for k in CUTOFFS:
            hits_at[k] += float(np.sum(cumulative[:, min(k, n - 1) - 1] / k))
    result = {"mAP": ap_sum / len(asked)}
    result.update({f"P@{k}": hits_at[k] / len(asked) for k in CUTOFFS})
    result["n_queries"] = len(asked)
    return result


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number per image, each class spread evenly over the k folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=int)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        folds[rng.permutation(members)] = np.arange(len(members)) % k
    return folds


def _fold_scores(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                 whiten: Spec | None, rerank: RerankSpec | None, local: Sequence[LocalOfImage] = ()) -> np.ndarray:
    if whiten:
        test = fit_map(whiten, train, train_labels).apply(test)
    return reranked_scores(test, rerank, local) if rerank else test @ test.T


def reranked_scores(X: np.ndarray, rerank: RerankSpec, local: Sequence[LocalOfImage] = (),
                    queries: np.ndarray | None = None) -> np.ndarray:
    """The leave-one-out score matrix of the collection X (prepared rows) under a chain
    of re-rankings, as query runs it: the first stage from the vectors, each following one
    re-ordering the scores before it (verification by the images' local features; only of
    the rows `queries` when given, a benchmark's sample)."""
    scores: np.ndarray | None = None
    for stage in rerank.stages:
        function, values = stage.reranking.method.function, stage.values
        if stage.reranking.follows:  # re-orders the stage before it, or the metric's own scores
            scores = function(X @ X.T if scores is None else scores, local, **values, queries=queries)
        else:
            scores = function(X, X, **values)
    assert scores is not None
    return scores


def measured_rerank(rerank: str | None, whiten: str | None, regions: str | None, folds: int) -> str:
    """The re-ranking eval measures: the one asked for, else what `query` runs with no
    flags on an index of the default build (DEFAULT_RERANK); none beside a learned map,
    regions or folds, which are measured on their own."""
    if rerank is not None:
        return rerank
    return NO_RERANK if whiten or regions or folds > 1 else DEFAULT_RERANK


def evaluate(
    dataset: Path, extractor_name: str, metric_name: str, workers: int, progress: bool = True,
    options: CnnOptions = CnnOptions(), whiten: str | None = None, rerank: str | None = None, folds: int = 0,
    regions: str | None = None,
) -> dict[str, float]:
    """Leave-one-out metrics. A learned step (whiten) never sees the images it is tested
    on: k-fold by image, stratified by class (k = folds, default 2), learned on the other
    folds, retrieval within the held-out fold; the folds' metrics are averaged."""
    metric = get_metric(metric_name)
    whiten_spec = parse_spec(whiten, WHITENINGS) if whiten else None
    rerank = measured_rerank(rerank, whiten, regions, folds)
    rerank_spec = parse_reranking(rerank) if rerank != NO_RERANK else None
    if regions and (whiten or rerank or folds > 1):
        raise ImgsearchError("--regions is measured on its own: leave out --whiten, --rerank and --folds")
    local = rerank_spec is not None and LOCAL_FEATURES in rerank_spec.needs
    if local and (whiten or folds > 1):
        raise ImgsearchError(f"--rerank {rerank_spec.text} is measured on its own: leave out --whiten and --folds")
    images = labelled_images(dataset)
    folds = folds or (2 if whiten else 1)
    smallest = int(np.bincount(images.labels).min())
    if folds > smallest:
        raise ImgsearchError(f"--folds {folds}: the smallest class of {dataset} has {smallest} images, and every fold "
                             "needs at least one of each class; use fewer folds")
    vectors, labels, region_sets, local_features = extract_dataset(images, extractor_name, workers, progress, options,
                                                                   regions, local)
    prepared = metric.prepare_rows(vectors)  # unit rows for every metric: cosine = the metric
    if regions:
        # Each image queries by its best region, as `query --regions` scans.
        scores = np.vstack([prepared_scores(prepared, metric.prepare_rows(r)) for r in region_sets])
        return retrieval_metrics(scores, labels)
    if folds == 1:
        return retrieval_metrics(_fold_scores(prepared, labels, prepared, None, rerank_spec, local_features), labels)
    assignment = stratified_folds(labels, folds)
    results = []
    for f in range(folds):
        test, train = assignment == f, assignment != f
        scores = _fold_scores(prepared[train], labels[train], prepared[test], whiten_spec, rerank_spec)
        results.append(retrieval_metrics(scores, labels[test]))
    mean = {key: float(np.mean([r[key] for r in results])) for key in results[0] if key != "n_queries"}
    mean["n_queries"] = int(sum(r["n_queries"] for r in results))
    mean["folds"] = folds
    return mean
