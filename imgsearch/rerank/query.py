"""Re-ranking at query time, each a function of a QueryContext that rerank.registry
declares: query expansion by a second scan (in the metric's prepared space), DBA-AQE over
the stored augmented vectors, diffusion / k-reciprocal on the scan's shortlist with the
stored k-NN graph, and any pure function on the shortlist; the same maths eval measures
(rerank/maths.py)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from imgsearch.errors import NotKeptError
from imgsearch.keypoints import LocalFeatures
from imgsearch.linalg import l2n
from imgsearch.rerank.expansion import EXPANDED_CANDIDATES, second_query
from imgsearch.rerank.first_stage import WORD_CANDIDATES, word_candidates
from imgsearch.rerank.maths import diffuse_shortlist, expanded, k_reciprocal_shortlist, k_reciprocal_universe, local_positions
from imgsearch.rerank.scene import match_kinds
from imgsearch.rerank.verify import Evidence, Verification, inlier_points, is_verified, verified_keys, verify_all
from imgsearch.scan.kernel import RowFilter, ScanResult
from imgsearch.scan.metrics import Metric, get_metric
from imgsearch.scan.store_scan import Scanner
from imgsearch.store.base import FeatureStore
from imgsearch.store.catalog import Catalog
from imgsearch.store.graph_tables import GraphRow, NeighbourList, graph_is_behind, neighbour_lists
from imgsearch.store.records import ExtractorRow

Ranking = list[tuple[int, float]]
Params = dict[str, int | float]  # a method's parameters by name (specs.Spec.values)


@dataclass(frozen=True)
class QueryLocal:
    """The query photo's local features, its extraction size over its own size, and its own
    (height, width)."""

    features: LocalFeatures
    scale: float
    size: tuple[int, int]


LocalSource = Callable[[ExtractorRow], "QueryLocal | None"]  # the query's local features by a stored local extractor


@dataclass(frozen=True)
class QueryContext:
    """What a re-ranking at query time works from: how to scan, what, and for whom."""

    scanner: Scanner
    row: ExtractorRow
    metric: Metric
    vector: np.ndarray  # the query's descriptor (1-D: re-ranked queries use the whole photo)
    own_id: int | None  # the query's own stored row, None when it is not indexed
    include_self: bool
    k: int
    catalog: Catalog  # what the search read of the index when it was planned (its graph, its local features)
    local: LocalSource | None = None  # how to get the query's local features, when it has them

    allowed: np.ndarray | None = None  # only these images (a folder's), sorted ids; None: all
    previous: ScanResult | None = None  # the ranking of the re-ranking before this one, in a chain

    @property
    def rows(self) -> RowFilter:
        """What every scan of this query scores: not its own row, only the allowed images."""
        return RowFilter.of_query(self.own_id, self.include_self, self.allowed)

    @property
    def expanding(self) -> RowFilter:
        """What a query expansion's first scan scores: the query's own stored row too (an
        indexed query expands with its own, as eval's leave-one-out measures it; it is
        left out of the answer only), only the allowed images."""
        return RowFilter((), self.allowed)

    @property
    def store(self) -> FeatureStore:
        return self.scanner.store


def required_graph(ctx: QueryContext, name: str, k: int) -> GraphRow:
    graph, extractor, metric = ctx.catalog.graph, ctx.row, ctx.metric
    if graph is None:
        raise NotKeptError(
            f"re-ranking {name} reads the collection's k-NN graph, and there is none for {extractor.name}/{metric.name}",
            f"make it once with `imgsearch graph -e {extractor.name} -m {metric.name}` (builds keep it up to date)"
        )
    if graph.k < k:
        raise NotKeptError(f"re-ranking {name} wants {k} neighbours, the stored graph keeps {graph.k}",
                             f"remake it with `imgsearch graph -e {extractor.name} -m {metric.name} -n {k}`")
    return graph


def _padded(lists: dict[int, NeighbourList], ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k neighbours (ids, scores) of each image, -1 / 0 where a list is shorter
    or missing (an image added after the last graph update)."""
    neighbour_ids = np.full((len(ids), k), -1, dtype=np.int64)
    scores = np.zeros((len(ids), k), dtype=np.float32)
    for row, image_id in enumerate(ids.tolist()):
        found = lists.get(image_id)
        if found is not None:
            n = min(k, len(found.ids))
            neighbour_ids[row, :n], scores[row, :n] = found.ids[:n], found.scores[:n]
    return neighbour_ids, scores


Reorder = Callable[[QueryContext, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def on_graph_shortlist(ctx: QueryContext, name: str, k: int, shortlist: int, keep_own: bool,
                       reorder: Reorder) -> ScanResult:
    """Scan for the top `shortlist`, then give each of them a new score from the stored
    graph's k nearest of each (reorder(ctx, ids, scores, neighbour ids, neighbour
    scores)); the result has the scan's rows and state. `keep_own`: the query's own row
    stays in the shortlist (diffusion seeds its walk there, as in eval); otherwise it is
    never in it (k-reciprocal puts the query itself first in its universe instead)."""
    graph = required_graph(ctx, name, k)
    rows = RowFilter((), ctx.allowed) if keep_own else ctx.rows
    scanned = ctx.scanner.top_k(ctx.row, ctx.metric, ctx.vector, max(ctx.k, shortlist), rows)
    ids = np.array([i for i, _ in scanned.ranking], dtype=np.int64)
    if not len(ids):
        return scanned
    scores = np.array([s for _, s in scanned.ranking])
    neighbour_ids, neighbour_scores = _padded(neighbour_lists(ctx.store, graph, ids.tolist()), ids, k)
    reranked = reorder(ctx, ids, scores, neighbour_ids, neighbour_scores)
    order = np.lexsort((ids, -reranked))
    ranking = [(int(ids[i]), float(reranked[i])) for i in order if ctx.include_self or ids[i] != ctx.own_id]
    return replace(scanned, ranking=ranking[: ctx.k])


def diffusion_at_query(ctx: QueryContext, values: Params) -> ScanResult:
    """Diffusion on the shortlist's mutual graph, as eval's `diffusion` (rerank.maths)."""
    def reorder(ctx: QueryContext, ids: np.ndarray, scores: np.ndarray, neighbour_ids: np.ndarray,
                neighbour_scores: np.ndarray) -> np.ndarray:
        return diffuse_shortlist(scores, local_positions(ids, neighbour_ids), neighbour_scores, float(values["alpha"]),
                                 float(values["gamma"]), int(values["query_k"]), int(values["iterations"]))

    return on_graph_shortlist(ctx, "diffusion", int(values["k"]), int(values["shortlist"]), True, reorder)


def k_reciprocal_at_query(ctx: QueryContext, values: Params) -> ScanResult:
    """k-reciprocal re-ranking of the shortlist, its universe widened by the graph, as
    eval's `k-reciprocal` (rerank.maths); the query itself goes first in the universe."""
    k1 = int(values["k1"])

    def reorder(ctx: QueryContext, ids: np.ndarray, scores: np.ndarray, neighbour_ids: np.ndarray,
                neighbour_scores: np.ndarray) -> np.ndarray:
        own = -1 if ctx.own_id is None else ctx.own_id
        universe = k_reciprocal_universe(own, ids, neighbour_ids[neighbour_ids >= 0])
        stored = ctx.store.vectors(ctx.row, universe.tolist())
        universe = np.array([i for i in universe.tolist() if i in stored], dtype=np.int64)
        vectors = np.vstack([ctx.metric.prepare_one(ctx.vector),
                             ctx.metric.prepare_rows(np.vstack([stored[i] for i in universe.tolist()]))])
        in_shortlist = np.isin(ids, universe)
        reranked = np.full(len(ids), -np.inf)
        reranked[in_shortlist] = k_reciprocal_shortlist(vectors, int(in_shortlist.sum()), k1, int(values["k2"]),
                                                        float(values["lambda_"]))
        return reranked

    return on_graph_shortlist(ctx, "k-reciprocal", k1, int(values["shortlist"]), False, reorder)


def augmented_set(ctx: QueryContext, n_db: int) -> ExtractorRow:
    """The stored database-side augmented vectors of the extractor's graph under the
    metric (unit vectors in the metric's space: they are scanned by cosine)."""
    row, metric, graph = ctx.row, ctx.metric, ctx.catalog.graph
    derived = ctx.catalog.augmented(row) if graph is not None and graph.dba == n_db else None
    if derived is None:
        raise NotKeptError(
            f"re-ranking dba-aqe:{n_db} scans the vectors augmented with their {n_db} nearest, which are kept with "
            f"the k-NN graph", f"make them once with `imgsearch graph -e {row.name} -m {metric.name} --dba {n_db}`"
        )
    return derived


def dba_aqe_at_query(ctx: QueryContext, values: Params) -> ScanResult:
    """DBA then query expansion at query time: alpha-QE over the stored augmented vectors
    (unit vectors in the metric's space, scanned by cosine) with the prepared query."""
    augmented, cosine = augmented_set(ctx, int(values["n_db"])), get_metric("cosine")
    expanded = expanded_query(ctx.scanner, augmented, ctx.metric.prepare_one(ctx.vector), cosine, ctx.expanding,
                              {"n": values["n_query"], "alpha": values["alpha"]})
    return ctx.scanner.top_k(augmented, cosine, expanded, ctx.k, ctx.rows, query_is_prepared=True)


def query_expansion_at_query(ctx: QueryContext, values: Params) -> ScanResult:
    """AQE / alpha-QE: a second scan with the expanded query (see expanded_query)."""
    expanded = expanded_query(ctx.scanner, ctx.row, ctx.vector, ctx.metric, ctx.expanding, values)
    return ctx.scanner.top_k(ctx.row, ctx.metric, expanded, ctx.k, ctx.rows, query_is_prepared=True)


def pure_on_shortlist(function: Callable[..., np.ndarray]) -> Callable[[QueryContext, Params], ScanResult]:
    """A pure re-ranking function(Q, X, **params) -> scores (what eval runs on the whole
    collection) at query time: applied to the query and its scan's top `shortlist`, each
    prepared for the metric; the top-K of the new scores."""
    def run(ctx: QueryContext, values: Params) -> ScanResult:
        params = {name: value for name, value in values.items() if name != "shortlist"}
        scanned = ctx.scanner.top_k(ctx.row, ctx.metric, ctx.vector, max(ctx.k, int(values["shortlist"])),
                                    ctx.rows)
        ids = [i for i, _ in scanned.ranking]
        stored = ctx.store.vectors(ctx.row, ids)
        ids = [i for i in ids if i in stored]
        if not ids:
            return replace(scanned, ranking=[])
        X = ctx.metric.prepare_rows(np.vstack([stored[i] for i in ids])).astype(np.float64)
        scores = np.asarray(function(ctx.metric.prepare_one(ctx.vector)[None, :].astype(np.float64), X,
                                     **params))[0]
        order = np.lexsort((np.array(ids), -scores))[: ctx.k]
        return replace(scanned, ranking=[(int(ids[i]), float(scores[i])) for i in order])

    return run


def local_extractor(catalog: Catalog) -> ExtractorRow:
    if catalog.local is None:
        raise NotKeptError("re-ranking verify compares local features, and this index has none",
                           "run `imgsearch build` again (local features are in its default; the other extractors are kept)")
    return catalog.local


class Stopwatch:
    """Seconds between laps, by stage name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now


@dataclass(frozen=True)
class FirstStage:
    """How far verification's first-stage lists reach: its shortlist times `shortlist_times`
    of the global ranking, and the words' `words` best."""

    shortlist_times: int
    words: int


# An upload's regions bring their own shortlist, which finds an object filling part of the
# photo. A query of one vector (a stored photo searched by name, an upload with --regions
# none) has none: its global and word lists reach further instead. On the dev photos
# searched by name (issue 39's protocol; docs/benchmarks.md), the right images lost were at
# ranks 101 to 279 of the global ranking among 9,489 images and mostly far down the words'
# (12 of 18 beyond 300): mAP 0.966 -> 0.977 at 1,300 and 0.930 -> 0.972 at 9,489, a name
# query 153 -> 274 ms at the median there. Uploads with regions keep one shortlist and 50
# words: the words' 100 found nothing more among 9,289 and cost them 1.14x.
WITH_REGIONS = FirstStage(shortlist_times=1, words=WORD_CANDIDATES)
ONE_VECTOR = FirstStage(shortlist_times=3, words=2 * WORD_CANDIDATES)


def first_stage(ctx: QueryContext) -> FirstStage:
    return WITH_REGIONS if ctx.vector.ndim > 1 else ONE_VECTOR


def verified_shortlist(ctx: QueryContext, values: Params) -> int:
    """How many of the ranking before it verification checks: its shortlist, widened for a
    query of one vector (first_stage), at least the k asked for."""
    return max(ctx.k, int(values["shortlist"]) * first_stage(ctx).shortlist_times)


def verify_at_query(ctx: QueryContext, values: Params) -> ScanResult:
    """Geometric verification (rerank.verify) of the scan's top (verified_shortlist) and of the
    images the visual-word first stage finds (rerank.first_stage, where the index has
    words), then of the images a second query finds (rerank.expansion, `expand`):
    verified images first, those on the photo's object above those on its surroundings
    only (rerank.scene), by inlier count (verified_keys); the rest below in the scan's
    order (an image only the words found is shown only when it verifies). Each image gets
    its inlier count, the first-stage lists that brought it (found_by: the whole photo's
    ranking, the regions' scan, the visual words, the second query's words), a verified
    one the corners of its outline in the query photo and its match (object or scene), and
    the result the time of each stage. A query with no local features (a flat photo) keeps
    the scan's order."""
    clock = Stopwatch()
    row = local_extractor(ctx.catalog)
    shortlist = verified_shortlist(ctx, values)
    if ctx.previous is None:
        scanned, extra = ctx.scanner.top_k(ctx.row, ctx.metric, ctx.vector, shortlist, ctx.rows), []
    else:
        # after another re-ranking: its ranking is the order below the verified, and a
        # photo's regions still bring their own shortlist of candidates (an object that
        # covers part of the photo is found by a region, not by the whole photo's expansion)
        scanned = replace(ctx.previous, ranking=ctx.previous.ranking[:shortlist])
        extra = [] if ctx.vector.ndim == 1 else \
            [i for i, _ in ctx.scanner.top_k(ctx.row, ctx.metric, ctx.vector, shortlist, ctx.rows).ranking]
    clock.lap("global")
    query = ctx.local(row) if ctx.local else None
    clock.lap("query features")
    ids = [i for i, _ in scanned.ranking]
    if query is None or not len(query.features) or not ids:
        return replace(scanned, ranking=scanned.ranking[: ctx.k], timings=clock.laps)
    # the word stage's best outside the folder are dropped: it adds candidates, the global
    # stage's shortlist stays the exact top within it
    from_words = [i for i, _ in word_candidates(ctx.store, row, query.features, list(ctx.rows.excluded),
                                                 first_stage(ctx).words) if ctx.rows.admits(i)]
    clock.lap("words")
    candidates = list(dict.fromkeys(ids + extra + from_words))
    images = ctx.store.images_by_ids(candidates)
    stored = ctx.store.local_features(row, candidates)
    checked = [i for i in candidates if i in stored and i in images]
    clock.lap("reading features")
    evidence = Evidence(float(values["false_alarms"]))
    results = dict(zip(checked, verify_all(query.features, query.scale, query.size,
                                           [(stored[i], (images[i].height, images[i].width)) for i in checked],
                                           evidence)))
    clock.lap("matching and ransac")
    again, from_expansion, second_points = expand_at_query(
        ctx, row, query, {i: (results[i], stored[i], (images[i].height, images[i].width)) for i in checked},
        int(values["expand"]), evidence)
    if int(values["expand"]):  # expand 0: no second query, no stage to time
        clock.lap("expansion")
    # which part of the photo each verified image matched, over both passes: the second may
    # find the object where the first found only its surroundings
    points = {**{i: inlier_points(results[i], query.features.keypoints) for i in checked}, **second_points}
    kinds = dict(zip(points, match_kinds(query.size, list(points.values()))))
    score = dict(scanned.ranking)
    kept = [i for i in dict.fromkeys(candidates + from_expansion)
            if i in score or is_verified(results.get(i)) or is_verified(again.get(i))]
    keys = verified_keys(np.array([score.get(i, 0.0) for i in kept]), [results.get(i) for i in kept],
                         [kinds.get(i) for i in kept], [again.get(i) for i in kept])
    order = [kept[n] for n in np.argsort(-keys, kind="stable")][: ctx.k]
    lists = {"photo": set(ids), "regions": set(extra), "words": set(from_words), "expansion": set(from_expansion)}
    extras = {i: {**verification_fields(again[i] if is_verified(again.get(i)) else results.get(i)),
                  "match": kinds.get(i) if is_verified(results.get(i)) or is_verified(again.get(i)) else None,
                  "found_by": [name for name, members in lists.items() if i in members]} for i in order}
    return replace(scanned, ranking=[(i, score.get(i, 0.0)) for i in order], extras=extras, timings=clock.laps)


def expand_at_query(ctx: QueryContext, row: ExtractorRow, query: QueryLocal,
                    checked: dict[int, tuple[Verification, LocalFeatures, tuple[int, int]]], anchors: int,
                    evidence: Evidence) -> tuple[dict[int, Verification], list[int], dict[int, np.ndarray | None]]:
    """The second pass (rerank.expansion): the words stage again with the second query,
    and what it finds that did not verify yet, verified against it. checked: the first
    pass's verification, features and (height, width) by image. Returns the second pass's
    verifications by image, the images its words found, and where in the photo the inliers
    of those it verified lie."""
    model = second_query(query.features, query.size, [found for found, _, _ in checked.values()],
                         [features for _, features, _ in checked.values()], anchors)
    if model is None:
        return {}, [], {}
    # the verified are left out; an image the first pass did not verify gets a second chance
    # against the second query (a photo sharing more matches with the photo's object than
    # chance explains only with the other views' features)
    verified = [i for i, (found, _, _) in checked.items() if is_verified(found)]
    found = [i for i, _ in word_candidates(ctx.store, row, model, list(ctx.rows.excluded) + verified,
                                           EXPANDED_CANDIDATES) if ctx.rows.admits(i)]
    # only what the first pass did not read is read (a first-pass candidate is often among them)
    new = [i for i in found if i not in checked]
    images, stored = ctx.store.images_by_ids(new), ctx.store.local_features(row, new)
    known = {**{i: (checked[i][1], checked[i][2]) for i in found if i in checked},
             **{i: (stored[i], (images[i].height, images[i].width)) for i in new if i in stored and i in images}}
    readable = [i for i in found if i in known]
    again = dict(zip(readable, verify_all(model, query.scale, query.size, [known[i] for i in readable], evidence)))
    return again, found, {i: inlier_points(v, model.keypoints) for i, v in again.items() if is_verified(v)}


def verification_fields(found: Verification | None) -> dict:
    """What an answer says of one image's verification (None: not checked): its inliers,
    the matches they came from, the false alarms chance gives such a model as a power of
    ten (None where no model was found), and the outline when verified."""
    if found is None:
        return {"inliers": 0, "matches": 0, "significance": None, "corners": None}
    return {"inliers": found.inliers, "matches": found.matches,
            "significance": round(found.significance, 1) if math.isfinite(found.significance) else None,
            "corners": found.corners.round(1).tolist() if found.corners is not None else None}


def graph_notes(store: FeatureStore, row: ExtractorRow, metric: Metric, graph: GraphRow | None) -> list[str]:
    if graph is None or not graph_is_behind(store, graph, row):
        return []
    return [f"the {row.name}/{metric.name} graph does not reflect the latest added, changed or deleted images; "
            f"`imgsearch graph -e {row.name} -m {metric.name}` updates it"]


def expanded_query(
    scanner: Scanner, row: ExtractorRow, vector: np.ndarray, metric: Metric, rows: RowFilter, values: Params,
) -> np.ndarray:
    """Query expansion at query time (AQE: Chum et al. 2007; alpha-QE: Radenovic et al.
    2018), in the metric's prepared space so it holds for every metric: a first scan
    finds the top n, the prepared query plus their prepared vectors (weighted by
    score^alpha; AQE: alpha 0) is the new query of a second scan. Costs one more scan."""
    first = scanner.top_k(row, metric, vector, int(values["n"]), rows)
    stored = scanner.store.vectors(row, [image_id for image_id, _ in first.ranking])
    found = [(image_id, score) for image_id, score in first.ranking if image_id in stored]  # none deleted since
    prepared = metric.prepare_one(vector).astype(np.float64)
    if not found:
        return l2n(prepared)
    neighbours = metric.prepare_rows(np.vstack([stored[i] for i, _ in found])).astype(np.float64)
    return expanded(prepared[None, :], neighbours[None, :, :], np.array([[s for _, s in found]]),
                    float(values.get("alpha", 0.0)))[0]
