"""show, stats and query answers: what is stored and what a search found, as text a person
reads."""
from __future__ import annotations

import os

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.index.calibration import stored_calibration
from imgsearch.keypoints import DESCRIPTOR_BITS, descriptor_levels
from imgsearch.names import display
from imgsearch.query import QueryResult
from imgsearch.rerank.registry import parse_reranking
from imgsearch.scan.metrics import METRICS
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore
from imgsearch.store.graph_tables import graph_lag, graphs_of, neighbour_lists
from imgsearch.store.kinds import HASH, LOCAL, VECTOR
from imgsearch.store.records import ExtractorRow

SUMMARY_VALUES = 8  # the first values `show` prints without --values


def describe_image(store: FeatureStore, name: str, extractor_name: str | None = None, values: bool = False) -> str:
    """What is stored of the indexed image NAME: its metadata and, per extractor, a summary
    of its row (every value with values=True)."""
    images = store.find_images(os.fsencode(name))
    if not images:
        raise ImgsearchError(f"no indexed image has the name or path {name!r}")
    lines = []
    extractors = [e for e in store.extractors() if extractor_name in (None, e.name)]
    for image in images:
        lines += [
            f"path     {display(image.path)}",
            f"id       {image.id}",
            f"size     {image.width} x {image.height} px, {image.bytes} bytes",
            f"sha256   {image.sha256}",
        ]
        for extractor in extractors:
            lines += DESCRIBE_KIND[extractor.kind](store, extractor, image.id, values)
            lines += _graph_neighbours(store, extractor, image.id)
        lines.append("")
    return "\n".join(lines).rstrip()


def _vector_lines(store: FeatureStore, extractor: ExtractorRow, image_id: int, values: bool) -> list[str]:
    vector = store.vector(extractor, image_id)
    if vector is None:
        return [f"{extractor.name:<8} (not extracted)"]
    head = f"{extractor.name:<8} dim {extractor.dim}, params {extractor.params}"
    if values:
        return [head, np.array2string(vector, precision=6, separator=", ", threshold=10**6, max_line_width=100)]
    first = ", ".join(f"{v:.4f}" for v in vector[:SUMMARY_VALUES].tolist())
    more = f" ... ({extractor.dim - SUMMARY_VALUES} more: --values)" if extractor.dim > SUMMARY_VALUES else ""
    return [head, f"         norm {np.linalg.norm(vector):.4f}, min {vector.min():.4f}, max {vector.max():.4f}, "
                  f"{np.count_nonzero(vector)} of {extractor.dim} non-zero; [{first}{more}]"]


def _local_lines(store: FeatureStore, extractor: ExtractorRow, image_id: int, values: bool) -> list[str]:
    found = store.local_features(extractor, [image_id]).get(image_id)
    if found is None:
        return [f"{extractor.name:<8} (not extracted)"]
    lines = [f"{extractor.name:<8} {len(found)} keypoints, {store.local_features_bytes(extractor, image_id)} bytes "
             f"stored, params {extractor.params}"]
    if values:
        lines.append(f"  descriptors: the square root of each SIFT value in {2**DESCRIPTOR_BITS} steps, as stored")
        lines += [f"  x {x:.1f}  y {y:.1f}  size {size:.1f}  angle {angle:.0f}  {' '.join(map(str, levels.tolist()))}"
                  for (x, y, size, angle), levels in zip(found.keypoints.tolist(), descriptor_levels(found.descriptors))]
    return lines


def _hash_lines(store: FeatureStore, extractor: ExtractorRow, image_id: int, values: bool) -> list[str]:
    found = store.image_hash(extractor, image_id)
    if found is None:
        return [f"{extractor.name:<8} (not extracted)"]
    return [f"{extractor.name:<8} {found:016x} (63 bits), params {extractor.params}"]


DESCRIBE_KIND = {VECTOR: _vector_lines, LOCAL: _local_lines, HASH: _hash_lines}


def _graph_neighbours(store: FeatureStore, extractor: ExtractorRow, image_id: int) -> list[str]:
    """The image's stored nearest, per graph of the extractor: why re-ranking moved it."""
    lines = []
    for graph in graphs_of(store, extractor):
        held = neighbour_lists(store, graph, [image_id]).get(image_id)
        if held is None:
            lines.append(f"graph {extractor.name}/{graph.metric}: no list yet (run `imgsearch graph`)")
            continue
        names = store.images_by_ids(held.ids.tolist())
        lines.append(f"graph {extractor.name}/{graph.metric}: {len(held.ids)} nearest")
        lines += [f"  {display(names[i].path) if i in names else f'(deleted image {i})'}  {score:.6f}"
                  for i, score in zip(held.ids.tolist(), held.scores.tolist())]
    return lines


def describe_store(store: FeatureStore) -> str:
    counts = store.count_features()
    extractors = store.extractors()
    width = max([len("extractor"), *(len(e.name) for e in extractors)])
    lines = [
        f"collection  {store.get_meta(COLLECTION_ROOT_KEY) or '(not built)'}",
        f"images      {store.count_images()}",
        f"db size     {store.size_bytes() / 2**20:.1f} MiB",
        f"{'extractor':<{width}}  vectors   dim  blocks  unpacked  stale  params",
    ]
    for e in extractors:
        blocks, tail, stale = store.packed_counts(e)
        lines.append(f"{e.name:<{width}} {counts.get(e.id, 0):>8} {e.dim:>5} {blocks:>7} {tail:>9} {stale:>6}  {e.params}")
    for e in extractors:
        for graph in graphs_of(store, e):
            extra = f", augmented vectors over {graph.dba} nearest" if graph.dba else ""
            lines.append(f"graph {e.name}/{graph.metric}: {graph.k} neighbours per image{extra}, "
                         f"{graph_lag(store, graph, e)} images behind")
    if (advice := store.cache_advice()) is not None:
        lines.append(f"note: {advice}")
    for e in extractors:
        cuts = {m: stored_calibration(store, e.name, m) for m in METRICS}
        shown = ", ".join(f"{m} {c.cut:.4f}" for m, c in cuts.items() if c is not None)
        if shown:
            sample = next(c for c in cuts.values() if c is not None).sample
            lines.append(f"no close match below ({e.name}): {shown} (the median best score of {sample:,} sampled "
                         "images against all the others)")
    return "\n".join(lines)


# what a verified match is called (rerank.scene): the photo's object, or only the place it was taken
MATCH_WORDS = {"object": "same object", "scene": "same scene only"}


def answer_lines(result: QueryResult) -> list[str]:
    """`query`'s answer as a person reads it: how it was ranked and what the score is, "no
    close match" where even the best is only as alike as unrelated photos, a line per match
    (a verified one says so, with its agreeing points), the time spent. `--json` has the
    same facts as fields."""
    spec = parse_reranking(result.rerank) if result.rerank else None
    metric = f"{result.metric} similarity of the {result.extractor} descriptors, 1 the most alike"
    lines = [f"ranked by {result.rerank}" + "".join(f": {o}" for o in spec.orders()) if spec else "ranked by score",
             f"score: {(spec.scores() if spec else None) or metric}"]
    if result.close_match is False:
        lines.append("no close match: even the best score is in the range of unrelated photos of this index")
    for m in result.matches:
        found = result.extras.get(m.id, {})
        verified = f"  {MATCH_WORDS[found['match']]}: {found['inliers']} of {found['matches']} points agree" \
            if found.get("corners") is not None else ""
        lines.append(f"{m.rank:4d}  {display(m.path)}  {m.score:.6f}{verified}")
    return [*lines, f"spend {result.elapsed_s:.3f} s"]
