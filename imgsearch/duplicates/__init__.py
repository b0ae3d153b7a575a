"""Duplicate and near-duplicate groups of a collection, from what the index already stores.

Exact copies share a sha256. Near copies come in pairs from each source of PAIR_SOURCES
the index has the rows for:
- "near": the descriptor scores at or above a threshold (edited, re-compressed, mirrored
  copies), from an exact blocked self-join of the stored vectors (one matrix product per
  chunk and block, memory bounded by their size), or from the stored k-NN graph when
  every list of it reaches below the threshold (both give the same pairs);
- "hash": perceptual hashes at most a few bits apart in any of 8 orientations (resized,
  re-compressed, recoloured, turned by quarter turns: duplicates.hashed);
- "verified": nearest neighbours by the descriptor whose local features verify
  geometrically (cropped, turned, watermarked: duplicates.verified).
A pair of two different photographs of one scene (a burst, a tripod, another day) is found
by the same sources; only a copy agrees with its original over the whole frame they share
once aligned (duplicates.confirmed), so every pair but the exact ones is checked so. Groups
of copies are the connected components of the exact and confirmed pairs; each keeps one
representative by a stated rule and lists every other member with its score to it and the
reason it is there. Photographs linked by unconfirmed pairs form "same scene" groups apart:
each of their members is a photograph of its own, never one to remove. Nothing is ever
deleted here.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from imgsearch.duplicates.confirmed import confirm_copies
from imgsearch.duplicates.hashed import DEFAULT_HASH_BITS, hash_pairs
from imgsearch.duplicates.verified import DEFAULT_MIN_INLIERS, verified_pairs
from imgsearch.errors import ImgsearchError, NotFoundError, TooMuchWork
from imgsearch.index.walk import folder_prefix
from imgsearch.linalg import one_blas_thread
from imgsearch.names import display
from imgsearch.query import stored_row
from imgsearch.scan.kernel import pair_scores
from imgsearch.scan.metrics import Metric, get_metric
from imgsearch.scan.store_scan import prepared_rows
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore
from imgsearch.store.graph_tables import find_graph, graph_is_behind, iter_lists, list_capacity
from imgsearch.store.kinds import RowKind
from imgsearch.store.records import ExtractorRow, StoredImage

DEFAULT_EXTRACTOR = "cnn-spoc"
DEFAULT_METRIC = "cosine"
# bench/duplicates.py on 200 Corel-1k originals x 15 transformations among 800
# distractors (docs/benchmarks.md): cnn-spoc cosine pairs reach precision 0.992 at 0.88
# and 0.996 at 0.90. 0.90 keeps a margin for collections unlike Corel and is the value
# imagededup publishes for its CNN (precision 0.999 there).
DEFAULT_THRESHOLD = 0.9
# Candidate pairs one report may check (each one aligned from its files: 11.5 ms a pair
# plus decoding, docs/benchmarks.md): past it the rules are refused, before the checking,
# not after hours of it. 24,017 pairs in the largest report benchmarked (4,000 images).
DEFAULT_MAX_PAIRS = 1_000_000
CHUNK_ROWS = 4096  # rows of the left side held prepared per pass over the collection

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]  # (left ids, right ids, scores), left < right
Progress = Callable[[str, int, int], None]  # (what is being compared, images done, of how many)


SAME_SCENE = "same scene"


@dataclass(frozen=True)
class Member:
    image: StoredImage
    score: float  # the descriptor's, to the group's representative
    # "exact" (same sha256 as the representative), the source of its pair (PairSource.reason),
    # or SAME_SCENE in a group of photographs of one scene
    reason: str


@dataclass(frozen=True)
class Group:
    representative: StoredImage
    members: list[Member]  # every other image of the group, best score first
    same_scene: bool = False  # photographs of one scene, not copies

    @property
    def reason(self) -> str:
        if self.same_scene:
            return SAME_SCENE
        return "exact" if all(m.reason == "exact" for m in self.members) else "near"


@dataclass(frozen=True)
class DuplicateReport:
    root: Path
    extractor: str
    metric: str
    rules: CopyRules
    sources: tuple[str, ...]  # the pair sources this index had the rows for
    pairs_from: str  # the descriptor's pairs: "graph" or "self-join"
    groups: list[Group]  # copies of one photograph each
    scenes: list[Group]  # photographs of one scene each, none a copy of another: nothing to remove

    @property
    def threshold(self) -> float:
        return self.rules.threshold

    def describe(self) -> list[str]:
        """What each source used counted as a copy, for a person."""
        told = {"near": f"{self.extractor}/{self.metric} >= {self.threshold} (pairs from the {self.pairs_from})",
                "hash": f"hashes <= {self.rules.hash_bits} bits apart",
                "verified": f"neighbours verified with >= {self.rules.min_inliers} inliers"}
        return [told[s] for s in self.sources]

    def to_remove(self) -> list[Path]:
        """Every member but the representatives, as paths on disk."""
        return [self.root / os.fsdecode(m.image.path) for g in self.groups for m in g.members]


def representative_order(image: StoredImage) -> tuple:
    """The representative is the first by this key: most pixels, then oldest, then path."""
    return (-(image.width * image.height), image.mtime_ns, image.path)


def check_pairs(found: int, max_pairs: int | None, what: str) -> None:
    """Refuse rules that give more candidate pairs than a report may check."""
    if max_pairs is not None and found > max_pairs:
        raise TooMuchWork(f"{what} give more than {max_pairs:,} candidate pairs, more than one report checks: "
                          f"narrow them (a higher threshold, default {DEFAULT_THRESHOLD}; fewer hash bits, "
                          f"default {DEFAULT_HASH_BITS})", "or allow more with --max-pairs")


def self_join_pairs(
    store: FeatureStore, row: ExtractorRow, metric: Metric, threshold: float, block_rows: int,
    progress: Callable[[int, int], None] | None = None, max_pairs: int | None = None,
) -> Pairs:
    """Every pair of stored vectors scoring >= threshold: each chunk of ids against every
    stored block, pairs kept once (left id < right id); refused past max_pairs (check_pairs)."""
    ids = sorted(store.image_ids_with_features(row))
    lefts, rights, scores = [], [], []
    found = 0
    for start in range(0, len(ids), CHUNK_ROWS):
        chunk = ids[start : start + CHUNK_ROWS]
        chunk_ids, prepared = prepared_rows(store, row, metric, chunk)
        if not len(chunk_ids):
            continue
        with one_blas_thread():
            for block_ids, block in store.stream_blocks(row, block_rows):
                product = pair_scores(metric, block, prepared)  # block x chunk
                r, c = np.nonzero((product >= threshold) & (block_ids[:, None] > chunk_ids[None, :]))
                lefts.append(chunk_ids[c])
                rights.append(block_ids[r])
                scores.append(product[r, c])
                found += len(r)
                check_pairs(found, max_pairs, f"{row.name}/{metric.name} >= {threshold}")
        if progress:
            progress(len(chunk_ids), len(ids))
    return _pairs(lefts, rights, scores)


def graph_pairs(store: FeatureStore, row: ExtractorRow, metric: Metric, threshold: float) -> Pairs | None:
    """The pairs from the stored k-NN graph, or None when it cannot hold them all (no
    graph, behind the vectors, or some full list whose last score is still >= threshold)."""
    graph = find_graph(store, row, metric.name)
    if graph is None or graph_is_behind(store, graph, row):
        return None
    lefts, rights, scores = [], [], []
    for image_id, held in iter_lists(store, graph):
        if not held.complete and len(held.ids) >= list_capacity(graph) and held.scores[-1] >= threshold:
            return None
        keep = held.scores >= threshold
        lefts.append(np.full(int(keep.sum()), image_id, dtype=np.int64))
        rights.append(held.ids[keep])
        scores.append(held.scores[keep])
    left, right, score = _pairs(lefts, rights, scores)
    low, high = np.minimum(left, right), np.maximum(left, right)
    order = np.lexsort((high, low))
    low, high, score = low[order], high[order], score[order]
    first = np.concatenate([[True], (np.diff(low) != 0) | (np.diff(high) != 0)]) if len(low) else np.array([], bool)
    return low[first], high[first], score[first]


def _pairs(lefts: list, rights: list, scores: list) -> Pairs:
    if not lefts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(lefts), np.concatenate(rights), np.concatenate(scores).astype(np.float32)


@dataclass(frozen=True)
class CopyRules:
    """When two images are copies, per pair source."""

    threshold: float = DEFAULT_THRESHOLD  # "near": descriptor score at least this
    hash_bits: int | None = DEFAULT_HASH_BITS  # "hash": at most this many bits apart; None: not compared
    min_inliers: int | None = DEFAULT_MIN_INLIERS  # "verified": at least this many inliers; None: not verified

    @classmethod
    def chosen(cls, threshold: float | None, hash_bits: int | None, min_inliers: int | None) -> CopyRules:
        """The rules a person asked for: None keeps a default, a negative count turns its source off."""
        default = cls()
        return cls(default.threshold if threshold is None else threshold,
                   default.hash_bits if hash_bits is None else (hash_bits if hash_bits >= 0 else None),
                   default.min_inliers if min_inliers is None else (min_inliers if min_inliers >= 0 else None))


@dataclass(frozen=True)
class PairRequest:
    store: FeatureStore
    row: ExtractorRow  # the descriptor
    metric: Metric
    rules: CopyRules
    block_rows: int
    from_graph: Pairs | None  # the descriptor's pairs as the k-NN graph holds them, when it holds them all
    progress: Progress | None
    max_pairs: int | None  # candidate pairs a source may give (check_pairs)

    def advance(self, phase: str) -> Callable[[int, int], None] | None:
        progress = self.progress
        return (lambda done, total: progress(phase, done, total)) if progress else None


@dataclass(frozen=True)
class PairSource:
    """One way of finding pairs of copies, and the extractor rows it reads (None: the index
    has none)."""

    reason: str
    rows: Callable[[FeatureStore, ExtractorRow], ExtractorRow | None]  # (store, the report's descriptor)
    enabled: Callable[[CopyRules], bool]
    find: Callable[[PairRequest, ExtractorRow], Pairs]
    notes: str


def _descriptor_pairs(request: PairRequest, row: ExtractorRow) -> Pairs:
    return request.from_graph if request.from_graph is not None else self_join_pairs(
        request.store, row, request.metric, request.rules.threshold, request.block_rows,
        request.advance("descriptor pairs"), request.max_pairs)


PAIR_SOURCES: list[PairSource] = [
    PairSource("near", lambda store, descriptor: descriptor, lambda rules: True, _descriptor_pairs,
               "descriptor score >= threshold"),
    PairSource("hash", lambda store, descriptor: _stored(store, lambda kind: kind.finds_copies),
               lambda rules: rules.hash_bits is not None,
               lambda request, row: hash_pairs(request.store, row, int(request.rules.hash_bits or 0),
                                               request.advance("hashes"), request.max_pairs),
               "perceptual hashes at most hash_bits apart, in any of 8 orientations"),
    PairSource("verified", lambda store, descriptor: _stored(store, lambda kind: kind.verifies),
               lambda rules: rules.min_inliers is not None,
               lambda request, row: verified_pairs(request.store, request.row, request.metric, row,
                                                   int(request.rules.min_inliers or 0), request.block_rows,
                                                   request.advance("verifying neighbours")),
               "descriptor neighbours whose local features verify with >= min_inliers inliers"),
]


def _stored(store: FeatureStore, wanted: Callable[[RowKind], bool]) -> ExtractorRow | None:
    """The first extractor with rows of a kind wanted."""
    return next((e for e in store.extractors() if wanted(e.kind) and store.has_vectors(e)), None)


def find_duplicates(
    store: FeatureStore, extractor: str = DEFAULT_EXTRACTOR, metric_name: str = DEFAULT_METRIC,
    rules: CopyRules = CopyRules(), reference: str | None = None, block_rows: int = 1024,
    progress: Progress | None = None, use_graph: bool = True, max_pairs: int | None = DEFAULT_MAX_PAIRS,
) -> DuplicateReport:
    """The report (see the module's text). max_pairs: the candidate pairs it may check, in
    all; rules that give more are refused (TooMuchWork) before any is checked."""
    if not -1.0 <= rules.threshold <= 1.0:
        raise ImgsearchError(f"threshold {rules.threshold}: scores run from -1 to 1")
    root_text = store.get_meta(COLLECTION_ROOT_KEY)
    if root_text is None:
        raise ImgsearchError("nothing indexed yet: run `imgsearch build FOLDER` first")
    root = Path(root_text)
    row, metric = stored_row(store, extractor), get_metric(metric_name)
    images = {img.id: img for img in store.stored_images().values()}
    from_graph = graph_pairs(store, row, metric, rules.threshold) if use_graph else None
    request = PairRequest(store, row, metric, rules, block_rows, from_graph, progress, max_pairs)
    reasons: dict[tuple[int, int], str] = {}
    used = []
    local_row = _stored(store, lambda kind: kind.verifies)
    for source in PAIR_SOURCES:
        source_row = source.rows(store, row)
        if source_row is None or not source.enabled(rules):
            continue
        used.append(source.reason)
        left, right, _ = source.find(request, source_row)
        for pair in zip(left.tolist(), right.tolist()):
            reasons.setdefault(pair, source.reason)  # the first source's reason stays
        check_pairs(len(reasons), max_pairs, "these rules")
    pairs_from = "graph" if from_graph is not None else "self-join"
    by_hash: dict[str, list[int]] = {}
    for image in images.values():
        by_hash.setdefault(image.sha256, []).append(image.id)
    for ids in by_hash.values():
        for other in ids[1:]:
            reasons[(min(ids[0], other), max(ids[0], other))] = "exact"
    prefix = folder_prefix(root, reference, "reference folder") if reference is not None else None
    if prefix == b"":
        prefix = None  # the root: every image is under it, so the report is the whole one
    elif prefix is not None and not len(store.image_ids_under(prefix)):
        raise NotFoundError(f"no indexed image is under {reference}")
    copies = _confirmed(store, root, images, reasons, local_row, request.advance("comparing aligned pairs"))
    groups = _groups(store, row, metric, images, copies, prefix)
    scenes = _scenes(store, row, metric, images, reasons, groups, prefix)
    return DuplicateReport(root, row.name, metric.name, rules, tuple(used), pairs_from, groups, scenes)


def _confirmed(store: FeatureStore, root: Path, images: dict[int, StoredImage], reasons: dict[tuple[int, int], str],
               local: ExtractorRow | None, progress: Callable[[int, int], None] | None) -> dict[tuple[int, int], str]:
    """The pairs that are copies: exact ones, and those whose images agree once aligned
    (the one with more pixels first: a crop is aligned onto its original)."""
    def larger_first(a: int, b: int) -> tuple[int, int]:
        return (a, b) if representative_order(images[a]) <= representative_order(images[b]) else (b, a)

    checked = [larger_first(a, b) for (a, b), why in reasons.items() if why != "exact" and a in images and b in images]
    agreements = confirm_copies(store, root, images, checked, local, progress)
    return {(a, b): why for (a, b), why in reasons.items()
            if why == "exact" or (a in images and b in images and agreements[larger_first(a, b)].is_copy)}


def _scenes(store: FeatureStore, row: ExtractorRow, metric: Metric, images: dict[int, StoredImage],
            reasons: dict[tuple[int, int], str], groups: list[Group], reference: bytes | None) -> list[Group]:
    """Photographs joined by pairs that are not copies: each group of copies stands for its
    photograph by its representative, and a component of two photographs or more is a
    scene."""
    photograph = {m.image.id: g.representative.id for g in groups for m in g.members}
    linked = {(min(pa, pb), max(pa, pb)) for a, b in reasons
              if (pa := photograph.get(a, a)) != (pb := photograph.get(b, b))}
    return [Group(g.representative, [Member(m.image, m.score, SAME_SCENE) for m in g.members], same_scene=True)
            for g in _groups(store, row, metric, images, dict.fromkeys(linked, SAME_SCENE), reference)]


def _groups(store: FeatureStore, row: ExtractorRow, metric: Metric, images: dict[int, StoredImage],
            reasons: dict[tuple[int, int], str], reference: bytes | None) -> list[Group]:
    if not reasons:
        return []
    edges = np.array(list(reasons), dtype=np.int64).reshape(-1, 2)
    nodes = np.unique(edges)
    index = {int(i): n for n, i in enumerate(nodes.tolist())}
    rows = np.array([index[int(a)] for a in edges[:, 0]])
    cols = np.array([index[int(b)] for b in edges[:, 1]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    components: dict[int, list[StoredImage]] = {}
    for node, label in zip(nodes.tolist(), labels.tolist()):
        if node in images:
            components.setdefault(label, []).append(images[node])
    vectors = store.vectors(row, nodes.tolist())
    first_reason: dict[int, str] = {}
    for (a, b), reason in reasons.items():
        first_reason.setdefault(a, reason)
        first_reason.setdefault(b, reason)
    groups = []
    for members in components.values():
        in_reference = [m for m in members if reference is not None and m.path.startswith(reference)]
        if reference is not None and (not in_reference or len(in_reference) == len(members)):
            continue  # only images that duplicate one under the reference folder
        candidates = in_reference if reference is not None else members
        keep = min(candidates, key=representative_order)
        others = [m for m in members if m.id != keep.id and (reference is None or m not in in_reference)]
        members = [_member(m, keep, vectors, metric, _reason(reasons, first_reason, m.id, keep.id)) for m in others]
        groups.append(Group(keep, sorted(members, key=lambda m: (-m.score, m.image.path))))
    return sorted(groups, key=lambda g: g.representative.path)


def _reason(reasons: dict[tuple[int, int], str], first_reason: dict[int, str], member: int, keep: int) -> str:
    """The reason of the member's own pair with the representative, else of its first
    pair (it joined the group through that one)."""
    return reasons.get((min(member, keep), max(member, keep))) or first_reason[member]


def _member(image: StoredImage, keep: StoredImage, vectors: dict[int, np.ndarray], metric: Metric,
            reason: str) -> Member:
    if image.sha256 == keep.sha256:
        return Member(image, 1.0, "exact")
    if image.id not in vectors or keep.id not in vectors:
        return Member(image, float("nan"), reason)
    return Member(image, float(metric.prepare_one(vectors[image.id]) @ metric.prepare_one(vectors[keep.id])), reason)


def as_json(report: DuplicateReport) -> dict:
    def image(i: StoredImage) -> dict:
        return {"id": i.id, "path": os.fsdecode(i.path), "width": i.width, "height": i.height, "bytes": i.bytes,
                "sha256": i.sha256}

    def group(g: Group) -> dict:
        return {"reason": g.reason, "keep": image(g.representative),
                "members": [{**image(m.image), "score": m.score, "reason": m.reason} for m in g.members]}

    return {
        "extractor": report.extractor, "metric": report.metric, "threshold": report.threshold,
        "hash_bits": report.rules.hash_bits, "min_inliers": report.rules.min_inliers, "sources": list(report.sources),
        "pairs_from": report.pairs_from, "found_by": report.describe(), "root": str(report.root),
        "groups": [group(g) for g in report.groups],
        "same_scene": [group(g) for g in report.scenes],
    }


def csv_rows(report: DuplicateReport) -> list[list]:
    """One row per image of a group: group number, role, reason, score, path. A group of
    copies has one "keep" and its "duplicate"s; a same-scene group (numbered after them)
    only "photo"s, every one of them to keep."""
    rows: list[list] = [["group", "role", "reason", "score", "path"]]
    for n, g in enumerate([*report.groups, *report.scenes], start=1):
        kept, other = ("photo", "photo") if g.same_scene else ("keep", "duplicate")
        rows.append([n, kept, g.reason, "", os.fsdecode(g.representative.path)])
        rows += [[n, other, m.reason, f"{m.score:.6f}", os.fsdecode(m.image.path)] for m in g.members]
    return rows


def text(report: DuplicateReport) -> str:
    """The report as `imgsearch duplicates` prints it: each group of copies with the image
    kept, then the groups of photographs of one scene (every one of them kept)."""
    copies = sum(len(g.members) for g in report.groups)
    lines = [f"{len(report.groups)} groups, {copies} copies ({'; '.join(report.describe())})"]
    for n, group in enumerate(report.groups, start=1):
        lines += [f"\ngroup {n} ({group.reason}): keep {display(group.representative.path)} "
                  f"({group.representative.width} x {group.representative.height})",
                  *(f"  {m.reason:<8}  {m.score:.4f}  {display(m.image.path)}" for m in group.members)]
    if report.scenes:
        lines.append(f"\n{len(report.scenes)} groups of photographs of one scene: found as pairs, but none is a "
                     "copy of another once aligned (another moment or view): keep them all")
    for n, group in enumerate(report.scenes, start=len(report.groups) + 1):
        lines += [f"\ngroup {n} (same scene): {display(group.representative.path)} "
                  f"({group.representative.width} x {group.representative.height})",
                  *(f"  {m.score:.4f}  {display(m.image.path)}" for m in group.members)]
    return "\n".join(lines)
