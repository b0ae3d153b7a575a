"""show and stats: what is stored, as text a person reads."""
from __future__ import annotations

import os

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.names import display
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore
from imgsearch.store.graph_tables import graph_lag, graphs_of, neighbour_lists
from imgsearch.store.records import ExtractorRow


def describe_image(store: FeatureStore, name: str, extractor_name: str | None = None) -> str:
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
            vector = store.vector(extractor, image.id)
            if vector is None:
                lines.append(f"{extractor.name:<8} (not extracted)")
                continue
            values = np.array2string(vector, precision=6, separator=", ", threshold=10**6, max_line_width=100)
            lines.append(f"{extractor.name:<8} dim {extractor.dim}, params {extractor.params}\n{values}")
            lines += _graph_neighbours(store, extractor, image.id)
        lines.append("")
    return "\n".join(lines).rstrip()


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
    return "\n".join(lines)
