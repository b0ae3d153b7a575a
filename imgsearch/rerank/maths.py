"""Re-ranking on L2-normalised descriptors (cosine similarity): pure numpy/scipy
functions of the query matrix Q (m x d) and the database X (n x d), each returning new
scores (m x n). rerank.registry registers them with how query runs them on a store.
"""
from __future__ import annotations

import numpy as np

from imgsearch.linalg import EPS, l2n


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :n]


def expanded(Q: np.ndarray, neighbours: np.ndarray, scores: np.ndarray, alpha: float) -> np.ndarray:
    """Query expansion: each query (m x d) plus its neighbours (m x n x d) weighted by
    their similarity^alpha (alpha 0: AQE, a plain sum), renormalised. eval's alpha_qe and
    the query-time second scan both expand by this."""
    weights = np.clip(scores, 0, 1) ** alpha  # a score past 1 by rounding must not overflow
    return l2n(Q + np.einsum("mk,mkd->md", weights, neighbours))


def alpha_qe(Q: np.ndarray, X: np.ndarray, n: int = 10, alpha: float = 3.0) -> np.ndarray:
    """alpha-weighted query expansion (Radenovic et al., 2018): the query plus its top n
    neighbours weighted by similarity^alpha, renormalised, searched again."""
    scores = Q @ X.T
    top = _top(scores, n)
    return expanded(Q, X[top], np.take_along_axis(scores, top, axis=1), alpha) @ X.T


def aqe(Q: np.ndarray, X: np.ndarray, n: int = 10) -> np.ndarray:
    """Average query expansion (Chum et al., 2007): alpha-QE with alpha = 0."""
    return alpha_qe(Q, X, n, alpha=0.0)


def augment(own: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray) -> np.ndarray:
    """Database-side augmentation of unit vectors (m x d) by their nearest (m x n x d),
    each weighted by its similarity (m x n; negative: 0): a neighbour as close as the
    vector itself counts as much, an unrelated one (similarity about 0 under Pearson) not
    at all, so a photo with no real neighbours keeps its own vector."""
    weights = np.clip(similarities, 0.0, None)
    return l2n(own + np.einsum("mk,mkd->md", weights, neighbours))


def dba(X: np.ndarray, n: int = 3) -> np.ndarray:
    """Database-side augmentation (Arandjelovic & Zisserman, CVPR 2012), similarity
    weighted (see augment): each database vector moved towards its n nearest."""
    ids, scores = knn_lists(X, n)
    return augment(X, X[ids], scores)


def dba_aqe(Q: np.ndarray, X: np.ndarray, n_db: int = 3, n_query: int = 5, alpha: float = 3.0) -> np.ndarray:
    """DBA on the database (and the queries, as they come from it), then query expansion
    weighted as alpha-QE (alpha 0: AQE). Both sides weight by similarity (DBA linearly,
    the expansion by its cube, Radenovic et al.'s alpha 3), so a collection without real
    neighbours of the query (a handful of photos, an upload unlike the rest) keeps the
    query's own order; where neighbours are real it costs 0.3 points of mAP on Corel-1k
    and flowers102 against unweighted DBA-AQE (docs/benchmarks.md)."""
    return alpha_qe(Q, dba(X, n_db), n_query, alpha)


def knn_lists(X: np.ndarray, k: int, block_rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k most similar other rows (ids, scores), best first: the in-memory twin
    of the stored graph (imgsearch.index.graph)."""
    k = min(k, len(X) - 1)
    ids = np.empty((len(X), k), dtype=np.int64)
    scores = np.empty((len(X), k), dtype=np.float32)
    for start in range(0, len(X), block_rows):
        block = X[start : start + block_rows] @ X.T
        rows = np.arange(start, start + len(block))
        block[rows - start, rows] = -np.inf
        top = _top(block, k)
        ids[rows], scores[rows] = top, np.take_along_axis(block, top, axis=1)
    return ids, scores


def positions_in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each of `ids` as its position in the ascending `sorted_ids`, -1 where absent."""
    if not len(sorted_ids):
        return np.full(np.shape(ids), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == ids, at, -1)


def local_positions(shortlist: np.ndarray, neighbour_ids: np.ndarray) -> np.ndarray:
    """neighbour_ids (global ids) as positions in `shortlist`, -1 where not in it."""
    order = np.argsort(shortlist)
    at = positions_in(shortlist[order], neighbour_ids)
    return np.where(at >= 0, order[at], -1)


def diffuse_shortlist(
    scores: np.ndarray, positions: np.ndarray, neighbour_scores: np.ndarray,
    alpha: float = 0.99, gamma: float = 3.0, query_k: int = 10, iterations: int = 50,
) -> np.ndarray:
    """Diffusion (Iscen et al., CVPR 2017) on the query's shortlist: the mutual k-NN graph
    among the shortlisted images (positions: each one's neighbours as shortlist positions,
    -1 outside), weights similarity^gamma, symmetrically normalised to S; the walk starts
    at the query's top query_k (weights score^gamma); returns f solving (I - alpha S) f = y
    by conjugate gradient, at most `iterations` steps (50: converged; fewer stop the walk
    early). Truncating the graph to the shortlist is the paper's own speed-up for large
    collections."""
    # Imported here: scipy.sparse costs 0.15 s, and the command line reads this module's
    # registry for every --help.
    from scipy import sparse
    from scipy.sparse.linalg import cg

    n = len(scores)
    rows = np.repeat(np.arange(n), positions.shape[1])
    inside = positions.ravel() >= 0
    weights = np.maximum(neighbour_scores.ravel()[inside], 0).astype(np.float64) ** gamma
    W = sparse.csr_matrix((weights, (rows[inside], positions.ravel()[inside])), shape=(n, n))
    W = W.minimum(W.T)  # mutual neighbours only
    degree = np.asarray(W.sum(axis=1)).ravel()
    d = 1.0 / np.sqrt(np.maximum(degree, EPS))
    A = sparse.identity(n) - alpha * (sparse.diags(d) @ W @ sparse.diags(d))
    y = np.zeros(n)
    seeds = np.argsort(-scores, kind="stable")[:query_k]
    y[seeds] = np.maximum(scores[seeds], 0) ** gamma
    f, _ = cg(A, y, rtol=1e-6, maxiter=iterations)
    return f


BELOW_SHORTLIST = -10.0  # added to the plain scores of images outside a shortlist: they rank after it


def diffusion(
    Q: np.ndarray, X: np.ndarray, k: int = 30, alpha: float = 0.99, gamma: float = 3.0, query_k: int = 10,
    shortlist: int = 1000, iterations: int = 50,
) -> np.ndarray:
    """Diffusion per query over its top `shortlist` images, exactly as `query --rerank
    diffusion` runs it on the stored graph (see diffuse_shortlist)."""
    ids, neighbour_scores = knn_lists(X, k)
    scores = Q @ X.T
    out = scores + BELOW_SHORTLIST
    for i in range(len(Q)):
        short = _top(scores[i : i + 1], int(shortlist))[0]
        out[i, short] = diffuse_shortlist(scores[i, short], local_positions(short, ids[short]),
                                          neighbour_scores[short], alpha, gamma, int(query_k), int(iterations))
    return out


def _nearest(distance: np.ndarray, m: int) -> np.ndarray:
    """Each row's m smallest distances' columns, nearest first (ties: smaller column):
    a partial selection, as a full sort of a large universe would dominate."""
    if m >= distance.shape[1]:
        return np.argsort(distance, axis=1, kind="stable")
    part = np.argpartition(distance, m - 1, axis=1)[:, :m]
    order = np.lexsort((part, np.take_along_axis(distance, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _k_reciprocal(ranks: np.ndarray, i: int, k: int) -> np.ndarray:
    """Images among i's k nearest that also have i among their k nearest."""
    forward = ranks[i, : k + 1]
    return forward[np.any(ranks[forward, : k + 1] == i, axis=1)]


def _encoding(distance: np.ndarray, ranks: np.ndarray, i: int, k1: int) -> np.ndarray:
    """i's k-reciprocal set, expanded by the half-size sets of its members that mostly
    lie inside it, as exp(-distance) weights summing to 1 (a dense row)."""
    reciprocal = _k_reciprocal(ranks, i, k1)
    members = set(reciprocal.tolist())  # Python sets: these are a few dozen ids each
    expanded = set(members)
    for j in reciprocal:
        candidate = _k_reciprocal(ranks, j, int(round(k1 / 2))).tolist()
        if len(members.intersection(candidate)) > 2 / 3 * len(candidate):
            expanded.update(candidate)
    expanded = np.array(sorted(expanded), dtype=np.int64)
    row = np.zeros(len(distance))
    weights = np.exp(-distance[i, expanded])
    row[expanded] = weights / weights.sum()
    return row


def k_reciprocal_distance(
    distance: np.ndarray, rows: np.ndarray, columns: np.ndarray, k1: int = 20, k2: int = 6, lambda_: float = 0.3
) -> np.ndarray:
    """Zhong et al.'s re-ranked distance between `rows` and `columns` of a universe of
    images (distance: its square matrix, each image's own row included): the Jaccard
    distance of the k-reciprocal encodings (averaged over each image's k2 nearest),
    blended with the original distance. Encodings are computed only where needed."""
    ranks = _nearest(distance, max(k1, k2) + 1)
    encodings: dict[int, np.ndarray] = {}

    def encoding(i: int) -> np.ndarray:
        if i not in encodings:
            encodings[i] = _encoding(distance, ranks, i, k1)
        return encodings[i]

    def expanded(i: int) -> np.ndarray:
        return np.mean([encoding(int(j)) for j in ranks[i, :k2]], axis=0) if k2 > 1 else encoding(i)

    V_rows = np.stack([expanded(int(i)) for i in rows])
    V_columns = np.stack([expanded(int(j)) for j in columns])
    minimum = np.zeros((len(rows), len(columns)))
    for feature in np.flatnonzero(V_rows.any(axis=0) & V_columns.any(axis=0)):
        r, c = np.flatnonzero(V_rows[:, feature]), np.flatnonzero(V_columns[:, feature])
        minimum[np.ix_(r, c)] += np.minimum.outer(V_rows[r, feature], V_columns[c, feature])
    totals_r, totals_c = V_rows.sum(axis=1), V_columns.sum(axis=1)
    jaccard = 1 - minimum / (totals_r[:, None] + totals_c[None, :] - minimum + EPS)
    return (1 - lambda_) * jaccard + lambda_ * distance[np.ix_(rows, columns)]


def k_reciprocal_universe(own: int, shortlist: np.ndarray, neighbour_ids: np.ndarray) -> np.ndarray:
    """The images a query's k-reciprocal re-ranking looks at: its shortlist, then the
    shortlisted images' neighbours (from the graph) not already in it nor the query's own
    row `own` (-1 when the query is not in the collection). The query goes first."""
    extra = np.setdiff1d(neighbour_ids.ravel(), np.append(shortlist, own))
    return np.concatenate([shortlist, extra])


def k_reciprocal_shortlist(universe: np.ndarray, n_short: int, k1: int = 20, k2: int = 6,
                           lambda_: float = 0.3) -> np.ndarray:
    """Re-ranked similarities (negated distances) of universe rows 1..n_short to the
    query, universe row 0 (unit vectors: the query, its shortlist, their neighbours)."""
    distance = np.maximum(2 - 2 * (universe @ universe.T), 0)
    return -k_reciprocal_distance(distance, np.array([0]), np.arange(1, n_short + 1), k1, k2, lambda_)[0]


def k_reciprocal(
    Q: np.ndarray, X: np.ndarray, k1: int = 20, k2: int = 6, lambda_: float = 0.3, shortlist: int = 100
) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) for queries drawn from the
    database (Q is X[:m], as in eval), per query over its top `shortlist` and their k1
    nearest, exactly as `query --rerank k-reciprocal` runs it on the stored graph."""
    if shortlist >= len(X) - 1:
        # Every universe is the whole collection: compute the shared encodings once.
        distance = np.maximum(2 - 2 * (X @ X.T), 0)
        return -k_reciprocal_distance(distance, np.arange(len(Q)), np.arange(len(X)), int(k1), int(k2), lambda_)
    ids, _ = knn_lists(X, k1)
    scores = Q @ X.T
    out = scores + BELOW_SHORTLIST
    for i in range(len(Q)):
        ranked = _top(scores[i : i + 1], int(shortlist) + 1)[0]
        short = ranked[ranked != i][: int(shortlist)]
        universe = k_reciprocal_universe(i, short, ids[short])
        out[i, short] = k_reciprocal_shortlist(X[np.concatenate([[i], universe])], len(short), int(k1), int(k2),
                                               lambda_)
    return out
