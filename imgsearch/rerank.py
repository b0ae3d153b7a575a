"""Re-ranking on L2-normalised descriptors (cosine similarity): pure numpy/scipy
functions of the query matrix Q (m x d) and the database X (n x d), each returning new
scores (m x n). A registry maps names to them, as cnnimageretrieval-pytorch does.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg

from imgsearch.features.pooling import EPS, l2n


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :n]


def alpha_qe(Q: np.ndarray, X: np.ndarray, n: int = 10, alpha: float = 3.0) -> np.ndarray:
    """alpha-weighted query expansion (Radenovic et al., 2018): the query plus its top n
    neighbours weighted by similarity^alpha, renormalised, searched again."""
    scores = Q @ X.T
    top = _top(scores, n)
    weights = np.take_along_axis(np.maximum(scores, 0), top, axis=1) ** alpha
    expanded = Q + np.einsum("mk,mkd->md", weights, X[top])
    return l2n(expanded) @ X.T


def aqe(Q: np.ndarray, X: np.ndarray, n: int = 10) -> np.ndarray:
    """Average query expansion (Chum et al., 2007): alpha-QE with alpha = 0."""
    return alpha_qe(Q, X, n, alpha=0.0)


def dba(X: np.ndarray, n: int = 3, alpha: float = 0.0) -> np.ndarray:
    """Database-side augmentation (Arandjelovic & Zisserman, 2012): each database vector
    replaced by the (similarity^alpha weighted) mean of itself and its n nearest."""
    scores = X @ X.T
    top = _top(scores, n + 1)  # itself first
    weights = np.take_along_axis(np.maximum(scores, 0), top, axis=1) ** alpha
    return l2n(np.einsum("mk,mkd->md", weights, X[top]))


def dba_aqe(Q: np.ndarray, X: np.ndarray, n_db: int = 3, n_query: int = 5) -> np.ndarray:
    """DBA on the database (and the queries, as they come from it), then AQE."""
    return aqe(Q, dba(X, n_db), n_query)


def knn_graph(X: np.ndarray, k: int = 30, gamma: float = 3.0) -> sparse.csr_matrix:
    """Mutual k-NN affinity graph, weights similarity^gamma (Iscen et al., 2017)."""
    scores = X @ X.T
    np.fill_diagonal(scores, -np.inf)
    top = _top(scores, k)
    rows = np.repeat(np.arange(len(X)), k)
    values = np.maximum(scores[rows, top.ravel()], 0) ** gamma
    W = sparse.csr_matrix((values, (rows, top.ravel())), shape=(len(X), len(X)))
    return W.minimum(W.T)  # mutual neighbours only


def diffusion(
    Q: np.ndarray, X: np.ndarray, k: int = 30, alpha: float = 0.99, gamma: float = 3.0, query_k: int = 10
) -> np.ndarray:
    """Diffusion on the database manifold (Iscen et al., 2017): each query starts a random
    walk from its top query_k neighbours over the mutual k-NN graph; the ranking is the
    solution f of (I - alpha S) f = y, S the symmetrically normalised graph (solved by
    conjugate gradient)."""
    W = knn_graph(X, k, gamma)
    degree = np.asarray(W.sum(axis=1)).ravel()
    d = 1.0 / np.sqrt(np.maximum(degree, EPS))
    S = sparse.diags(d) @ W @ sparse.diags(d)
    A = sparse.identity(len(X)) - alpha * S
    scores = Q @ X.T
    top = _top(scores, query_k)
    out = np.empty_like(scores)
    for i in range(len(Q)):
        y = np.zeros(len(X))
        y[top[i]] = np.maximum(scores[i, top[i]], 0) ** gamma
        f, _ = cg(A, y, rtol=1e-6, maxiter=50)
        out[i] = f
    return out


def _k_reciprocal(ranks: np.ndarray, i: int, k: int) -> np.ndarray:
    """Images among i's k nearest that also have i among their k nearest."""
    forward = ranks[i, : k + 1]
    return forward[np.any(ranks[forward, : k + 1] == i, axis=1)]


def k_reciprocal(
    Q: np.ndarray, X: np.ndarray, k1: int = 20, k2: int = 6, lambda_: float = 0.3
) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) for queries drawn from the
    database (Q is X, as in eval): each image's expanded k-reciprocal set, weighted by
    exp(-distance) and averaged over its k2 nearest, gives a Jaccard distance that is
    blended with the original one. Returns similarities (negated distances)."""
    n = len(X)
    distance = np.maximum(2 - 2 * (X @ X.T), 0)
    ranks = np.argsort(distance, axis=1, kind="stable")
    V = np.zeros((n, n))
    for i in range(n):
        reciprocal = _k_reciprocal(ranks, i, k1)
        expanded = reciprocal
        for j in reciprocal:
            candidate = _k_reciprocal(ranks, j, int(round(k1 / 2)))
            if len(np.intersect1d(candidate, reciprocal)) > 2 / 3 * len(candidate):
                expanded = np.union1d(expanded, candidate)
        weights = np.exp(-distance[i, expanded])
        V[i, expanded] = weights / weights.sum()
    if k2 > 1:
        V = np.stack([V[ranks[i, :k2]].mean(axis=0) for i in range(n)])
    minimum = np.zeros((n, n))
    for k in range(n):
        holders = np.flatnonzero(V[:, k])
        if len(holders):
            minimum[np.ix_(holders, holders)] += np.minimum.outer(V[holders, k], V[holders, k])
    totals = V.sum(axis=1)
    jaccard = 1 - minimum / (totals[:, None] + totals[None, :] - minimum + EPS)
    blended = (1 - lambda_) * jaccard + lambda_ * distance
    return -blended[: len(Q)]


RERANKERS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "aqe": (aqe, "average query expansion, n neighbours (Chum et al., ICCV 2007)"),
    "alpha-qe": (alpha_qe, "alpha-weighted query expansion, n, alpha (Radenovic et al., TPAMI 2018)"),
    "dba-aqe": (dba_aqe, "database-side augmentation then AQE, n_db, n_query (Arandjelovic & Zisserman, CVPR 2012)"),
    "diffusion": (diffusion, "diffusion on a mutual k-NN graph, k, alpha, gamma (Iscen et al., CVPR 2017)"),
    "k-reciprocal": (k_reciprocal, "k-reciprocal encoding, k1, k2, lambda (Zhong et al., CVPR 2017)"),
}
