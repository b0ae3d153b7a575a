"""One search, planned once: everything that decides its answer, checked when it is made
(by the command line from flags, environment and config, by the service from a request)
and passed whole to `query.search`."""
from __future__ import annotations

from dataclasses import dataclass

from imgsearch.errors import ImgsearchError, NotKeptError
from imgsearch.features.regions import REGION_CHOICES, WHOLE_PHOTO
from imgsearch.rerank.registry import GRAPH, NO_RERANK, RerankSpec, check_with_whitening, parse_reranking
from imgsearch.scan.metrics import Metric, get_metric


@dataclass(frozen=True)
class SearchPlan:
    extractor: str
    metric: Metric
    k: int = 10
    offset: int = 0  # results skipped before the k shown (the service's pages)
    include_self: bool = False  # keep the query's own stored row
    parallel: int = 1  # scan connections
    block_rows: int = 1024  # rows a block of the per-row stream
    regions: str = "crops"  # a photo query's regions (features.regions); "none": the whole photo
    rerank: RerankSpec | None = None
    whiten: str | None = None  # a learned map's stored name
    # No re-ranking was asked for: where local features are stored, verify (query.with_default_rerank).
    # `--rerank none` says no re-ranking at all.
    rerank_by_default: bool = True
    under: str | None = None  # only the images under this folder of the collection (query.allowed_ids)

    @classmethod
    def of(cls, extractor: str, metric: str, *, k: int = 10, offset: int = 0, include_self: bool = False,
           parallel: int = 1, block_rows: int = 1024, regions: str = "crops", rerank: str | None = None,
           whiten: str | None = None, under: str | None = None) -> SearchPlan:
        """The plan from the names a user gives, each checked: one clear error otherwise."""
        if regions not in REGION_CHOICES:
            raise ImgsearchError(f"unknown regions {regions!r}; known: {', '.join(REGION_CHOICES)}")
        spec = parse_reranking(rerank) if rerank and rerank != NO_RERANK else None
        if spec is not None and whiten:
            check_with_whitening(spec)
        if spec is not None and under and GRAPH in spec.needs:
            raise NotKeptError(f"re-ranking {spec.text} walks the whole collection's k-NN graph; "
                                 "it does not combine with a folder (under)")
        return cls(extractor, get_metric(metric), k, offset, include_self, parallel, block_rows, regions, spec,
                   whiten or None, rerank_by_default=not rerank, under=under or None)

    @property
    def photo_regions(self) -> str | None:
        """The regions a photo query uses: none when its re-ranking starts from one vector
        (query expansion after regions loses: docs/benchmarks.md)."""
        if self.regions == WHOLE_PHOTO or (self.rerank and not self.rerank.accepts_regions):
            return None
        return self.regions

    @property
    def wanted(self) -> int:
        return self.offset + self.k
