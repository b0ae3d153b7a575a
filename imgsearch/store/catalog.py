"""What one search needs of the index's catalog, read once when the search is planned:
every extractor (one read of `extractors`), the searched extractor's k-NN graph under the
metric (one read of `graphs`), and the local extractor whose features verify. The stages of
a search read these fields, never the tables again."""
from __future__ import annotations

from dataclasses import dataclass

from imgsearch.store.base import FeatureStore
from imgsearch.store.graph_tables import GraphRow, dba_extractor_name, find_graph
from imgsearch.store.records import ExtractorRow


@dataclass(frozen=True)
class Catalog:
    extractors: tuple[ExtractorRow, ...]
    graph: GraphRow | None  # the searched extractor's graph under the search's metric
    local: ExtractorRow | None  # the local features that verify, where the index has them

    def named(self, name: str) -> ExtractorRow | None:
        return next((e for e in self.extractors if e.name == name), None)

    def augmented(self, row: ExtractorRow) -> ExtractorRow | None:
        """The graph's database-side augmented vectors, where it keeps them."""
        if self.graph is None or not self.graph.dba:
            return None
        return self.named(dba_extractor_name(row.name, self.graph.metric, self.graph.dba))


def read_catalog(store: FeatureStore, extractor: str, metric: str) -> Catalog:
    """The catalog a search of `extractor` under `metric` reads (the graph: None where the
    extractor is not stored)."""
    extractors = tuple(store.extractors())
    row = next((e for e in extractors if e.name == extractor), None)
    local = next((e for e in extractors if e.kind.verifies and store.has_vectors(e)), None)
    return Catalog(extractors, find_graph(store, row, metric) if row is not None else None, local)
