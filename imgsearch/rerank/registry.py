"""Re-rankings as registered objects, as cnnimageretrieval-pytorch keeps its pooling: each
is a pure function of the query and database matrices (what `eval` measures, in
rerank.maths), how `query` and the service run it on a store, and what it needs.

A new re-ranking is a pure function plus one `register(...)`: `on_shortlist` makes one
that `query`, `eval` and the service all run with no other edit (tests/test_rerank_registry.py
registers a toy one to keep that promise true).

Re-rankings compose: `dba-aqe+verify` runs dba-aqe, then verify re-orders its ranking. A
re-ranking that `follows` declares it re-orders the ranking of the stage before it (its
pure function takes that stage's score matrix); only such a one may come after another."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from imgsearch.errors import ImgsearchError, NotKeptError
from imgsearch.rerank import maths
from imgsearch.rerank.query import (
    Params,
    QueryContext,
    dba_aqe_at_query,
    diffusion_at_query,
    k_reciprocal_at_query,
    pure_on_shortlist,
    query_expansion_at_query,
    verified_shortlist,
    verify_at_query,
)
from imgsearch.rerank.verified import verified_scores
from imgsearch.scan.kernel import ScanResult
from imgsearch.specs import FRACTION, OPEN_FRACTION, POSITIVE_FRACTION, Check, Method, number_below, parse_spec, spec_pattern, whole_below

# Ranges: a neighbour count below 1,000 (the most results a query gives), a shortlist below
# ten times that, an exponent below 100 (similarity^alpha with alpha past it is 0 but for
# copies: larger only overflows), iterations below 1,000.
NEIGHBOURS = whole_below(3)
SHORTLIST_SIZE = whole_below(4)
EXPONENT = number_below(2)
POSITIVE_EXPONENT = number_below(2, above_zero=True)
ITERATIONS = whole_below(3)
VIEWS = whole_below(3, low=0)  # 0: none

# What a re-ranking reads beyond one scan of the vectors, as it declares it.
GRAPH = "the stored k-NN graph"  # made by `imgsearch graph`, kept by builds
DBA = "the graph's augmented vectors"  # `imgsearch graph --dba N`
SECOND_SCAN = "a second scan"
SHORTLIST = "the first scan's shortlist"
LOCAL_FEATURES = "the stored local features"  # build's default sift


@dataclass(frozen=True)
class Reranking:
    name: str
    method: Method  # the pure function eval runs on (queries, database), its parameters and their ranges
    at_query: Callable[[QueryContext, Params], ScanResult]  # what query and the service run on a store
    needs: frozenset[str] = frozenset()
    accepts_regions: bool = False  # False: a photo query is re-ranked from its whole-photo descriptor
    # Re-orders the ranking of the stage before it: at query time from ctx.previous, in eval
    # its pure function takes (that stage's scores, the images' local features, **params).
    follows: bool = False
    # What its scores are, for a person reading them; None: it keeps the scores of the stage
    # before it (or the metric's) and only re-orders, as `orders` says.
    scores: str | None = None
    orders: str | None = None
    # How much of the ranking before it a stage that follows re-orders, by the query; None:
    # its shortlist parameter
    wants: Callable[[QueryContext, Params], int] | None = None

    @property
    def usage(self) -> str:
        return self.method.usage(self.name)


@dataclass(frozen=True)
class RerankStage:
    """A parsed `NAME[:P,...]`: the registered re-ranking and each parameter's value."""

    reranking: Reranking
    values: Params
    text: str

    def run(self, ctx: QueryContext) -> ScanResult:
        if not self.reranking.accepts_regions and ctx.vector.ndim == 2:
            ctx = replace(ctx, vector=ctx.vector[0])  # the whole photo: always the first region
        return self.reranking.at_query(ctx, self.values)

    def wants(self, ctx: QueryContext) -> int:
        """How much of the ranking before it this stage re-orders for this query."""
        if self.reranking.wants is not None:
            return self.reranking.wants(ctx, self.values)
        return int(self.values.get("shortlist", 0))


@dataclass(frozen=True)
class RerankSpec:
    """A parsed `STAGE[+STAGE...]`: re-rankings run in turn, each after the first
    re-ordering the ranking of the one before."""

    stages: tuple[RerankStage, ...]

    @property
    def text(self) -> str:
        return "+".join(stage.text for stage in self.stages)

    @property
    def needs(self) -> frozenset[str]:
        return frozenset().union(*(stage.reranking.needs for stage in self.stages))

    @property
    def accepts_regions(self) -> bool:
        """Whether a photo's regions are used: by the stages that take them (the others
        read its whole-photo descriptor)."""
        return any(stage.reranking.accepts_regions for stage in self.stages)

    def scores(self) -> str | None:
        """What the score column holds after the chain: the last stage's own scores (None:
        the metric's, kept by every stage)."""
        return next((s.reranking.scores for s in reversed(self.stages) if s.reranking.scores), None)

    def orders(self) -> list[str]:
        return [s.reranking.orders for s in self.stages if s.reranking.orders]

    def run(self, ctx: QueryContext) -> ScanResult:
        result: ScanResult | None = None
        for stage, after in zip(self.stages, (*self.stages[1:], None)):
            # a stage hands the next at least the shortlist it re-orders
            k = ctx.k if after is None else max(ctx.k, after.wants(ctx))
            result = stage.run(replace(ctx, k=k, previous=result))
        assert result is not None
        return result


RERANKINGS: dict[str, Reranking] = {}


def register(reranking: Reranking) -> Reranking:
    RERANKINGS[reranking.name] = reranking
    return reranking


def unregister(name: str) -> None:
    RERANKINGS.pop(name, None)


def on_shortlist(name: str, function: Callable[..., np.ndarray], description: str,
                 checks: Mapping[str, Check]) -> Reranking:
    """A re-ranking from a pure function(Q, X, ..., shortlist=N) -> scores: eval runs it on
    the whole collection, query on the scan's top `shortlist` (a parameter it must take)."""
    if "shortlist" not in checks:
        raise ValueError(f"{name}: a re-ranking run on the shortlist takes a `shortlist` parameter")
    return Reranking(name, Method.of(function, description, checks), pure_on_shortlist(function),
                     frozenset({SHORTLIST}), scores=f"{name}'s score")


def parse_reranking(text: str) -> RerankSpec:
    stages = []
    for part in text.split("+"):
        spec = parse_spec(part, methods())
        stages.append(RerankStage(RERANKINGS[spec.name], spec.values, spec.text))
    for stage in stages[1:]:
        if not stage.reranking.follows:
            followers = ", ".join(r.name for r in RERANKINGS.values() if r.follows)
            raise ImgsearchError(f"re-ranking {text!r}: {stage.reranking.name} cannot follow another re-ranking "
                                 f"(it ranks from its own scans); only {followers} can: put {stage.reranking.name} first")
    return RerankSpec(tuple(stages))


def reranking_pattern() -> str:
    """Exactly the texts parse_reranking takes, "none", and "" (the default): what the
    service's spec publishes for its `rerank` field."""
    first = "|".join(spec_pattern(r.name, r.method.params) for r in RERANKINGS.values())
    after = "|".join(spec_pattern(r.name, r.method.params) for r in RERANKINGS.values() if r.follows)
    return f"^(?:|{NO_RERANK}|(?:{first})(?:\\+(?:{after}))*)$"


def methods() -> dict[str, Method]:
    return {name: r.method for name, r in RERANKINGS.items()}


def help_text() -> str:
    return ("Re-ranking: " + "; ".join(f"{r.usage} ({r.method.description})" for r in RERANKINGS.values())
            + ". Join them with + to run them in turn (dba-aqe+verify); only "
            + ", ".join(r.name for r in RERANKINGS.values() if r.follows) + " can follow another.")


def check_with_whitening(spec: RerankSpec) -> None:
    if GRAPH in spec.needs:
        raise NotKeptError(f"re-ranking {spec.text} uses the graph of the unmapped vectors; "
                             "it cannot follow a learned map (whiten)")


register(Reranking("aqe", Method.of(maths.aqe, "average query expansion, n neighbours (Chum et al., ICCV 2007)",
                                    {"n": NEIGHBOURS}),
                   query_expansion_at_query, frozenset({SECOND_SCAN}),
                   scores="similarity to the query averaged with its n nearest (aqe)"))
register(Reranking("alpha-qe", Method.of(maths.alpha_qe, "alpha-weighted query expansion, n, alpha (Radenovic et al., "
                                                         "TPAMI 2018)", {"n": NEIGHBOURS, "alpha": EXPONENT}),
                   query_expansion_at_query, frozenset({SECOND_SCAN}),
                   scores="similarity to the query joined by its nearest, weighted (alpha-qe)"))
register(Reranking("dba-aqe", Method.of(maths.dba_aqe, "database-side augmentation then query expansion, n_db, "
                                                       "n_query, alpha (Arandjelovic & Zisserman, CVPR 2012; "
                                                       "alpha-weighted as alpha-qe, 0: AQE)",
                                        {"n_db": NEIGHBOURS, "n_query": NEIGHBOURS, "alpha": EXPONENT}),
                   dba_aqe_at_query, frozenset({GRAPH, DBA, SECOND_SCAN}),
                   scores="similarity once the query and each image are joined by their nearest neighbours (dba-aqe)"))
register(Reranking("diffusion", Method.of(
    maths.diffusion, "diffusion on a mutual k-NN graph, k, alpha, gamma, query_k, shortlist, iterations "
                     "(Iscen et al., CVPR 2017)",
    {"k": NEIGHBOURS, "alpha": OPEN_FRACTION, "gamma": POSITIVE_EXPONENT, "query_k": NEIGHBOURS,
     "shortlist": SHORTLIST_SIZE, "iterations": ITERATIONS}),
    diffusion_at_query, frozenset({GRAPH, SHORTLIST}), scores="diffusion on the k-NN graph, higher is nearer"))
register(Reranking("k-reciprocal", Method.of(
    maths.k_reciprocal, "k-reciprocal encoding, k1, k2, lambda, shortlist (Zhong et al., CVPR 2017)",
    {"k1": NEIGHBOURS, "k2": NEIGHBOURS, "lambda_": FRACTION, "shortlist": SHORTLIST_SIZE}),
    k_reciprocal_at_query, frozenset({GRAPH, SHORTLIST}),
    scores="the k-reciprocal distance negated, higher is nearer"))


LOCAL_EXTRACTOR = "sift"  # the local features eval extracts for a re-ranking that needs them
NO_RERANK = "none"  # --rerank none: not even the default
DEFAULT_VERIFY = "verify"
# What a query runs with no --rerank on an index of the default build, and eval with no
# flags: the same object first (verify), the rest in DBA-AQE's order (Corel-1k, flowers102:
# docs/benchmarks.md). Where a part is not stored, the default is the rest (query.default_rerank).
DEFAULT_RERANK = "dba-aqe+verify"

register(Reranking("verify", Method.of(
    verified_scores, "geometric verification of the top shortlist by local features (at query time three times "
                     "it for a query of one vector: a name, --regions none), shortlist, false_alarms, "
                     "expand (RootSIFT, ratio test, RANSAC homography, Philbin et al., CVPR 2007; verified when "
                     "chance explains fewer than false_alarms such models, Moisan & Stival 2004; then a second "
                     "query: the photo with its expand best other views of its object, Chum et al., ICCV 2007, "
                     "or where only its surroundings verified, what they left unexplained; 0: none)",
    {"shortlist": NEIGHBOURS, "false_alarms": POSITIVE_FRACTION, "expand": VIEWS}),
    verify_at_query, frozenset({SHORTLIST, LOCAL_FEATURES}), accepts_regions=True, follows=True,
    wants=verified_shortlist,
    orders="the same object first (verified: its points agree with the photo's; most agreeing points first), "
           "then photos sharing only its surroundings (verified away from the photo's object), "
           "then the rest by score"))
