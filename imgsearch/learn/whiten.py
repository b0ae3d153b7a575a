"""Learned linear maps on L2-normalised descriptors, with learning and applying kept
apart (as cnnimageretrieval-pytorch's whiten.py does): a map is learned once from
training vectors, then applied to database and queries alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.linalg import EPS, l2n
from imgsearch.specs import FRACTION, Method, Spec, number_below, whole_below


@dataclass(frozen=True)
class LinearMap:
    mean: np.ndarray  # d
    projection: np.ndarray  # d_out x d

    def apply(self, x: np.ndarray) -> np.ndarray:
        return l2n((np.atleast_2d(x) - self.mean) @ self.projection.T)


def _shrunk_eigh(C: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition (descending) of C shrunk towards its mean eigenvalue: on
    small collections the smallest directions are noise, and inverting them blows it up."""
    values, vectors = np.linalg.eigh(C)
    values, vectors = values[::-1], vectors[:, ::-1]
    values = (1 - shrinkage) * np.maximum(values, 0) + shrinkage * values.mean()
    return values, vectors


def learn_pca_whitening(
    X: np.ndarray, labels: np.ndarray | None = None, dims: int = 0, power: float = 0.5, shrinkage: float = 0.0
) -> LinearMap:
    """PCA-whitening (Jegou & Chum, ECCV 2012): project on the principal directions and
    divide each by eigenvalue^power (0.5 = full whitening; smaller = partial), keep the
    first `dims` (0 = all). Unsupervised: labels are not used."""
    mean = X.mean(axis=0)
    values, vectors = _shrunk_eigh(np.cov(X - mean, rowvar=False, bias=True), shrinkage)
    dims = dims or X.shape[1]
    return LinearMap(mean, (vectors[:, :dims] / (values[:dims] + EPS) ** power).T)


def _pair_scatters(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean outer products of differences over all matching (same label) and all
    non-matching pairs, from class scatters: sum over pairs of (xi - xj)(xi - xj)^T
    within a set of n vectors is n times its scatter."""
    d = X.shape[1]
    same, n_same = np.zeros((d, d)), 0
    for c in np.unique(labels):
        members = X[labels == c]
        centred = members - members.mean(axis=0)
        same += len(members) * centred.T @ centred
        n_same += len(members) * (len(members) - 1) // 2
    centred = X - X.mean(axis=0)
    every = len(X) * centred.T @ centred
    n_every = len(X) * (len(X) - 1) // 2
    return same / n_same, (every - same) / (n_every - n_same)


def learn_lw(X: np.ndarray, labels: np.ndarray, dims: int = 0, shrinkage: float = 0.1) -> LinearMap:
    """Learned whitening "Lw" (Radenovic et al., ECCV 2016): whiten by the covariance of
    matching-pair differences, then rotate to the principal directions of the whitened
    non-matching differences, keeping the `dims` most discriminative (0: as many as the
    labels can tell apart, classes - 1, the rank of the between-class scatter)."""
    dims = dims or max(1, min(X.shape[1], len(np.unique(labels)) - 1))
    mean = X.mean(axis=0)
    C_same, C_diff = _pair_scatters(X, labels)
    values, vectors = _shrunk_eigh(C_same, shrinkage)
    whiten = vectors / np.sqrt(values + EPS)  # d x d: columns scaled
    diff_values, rotation = np.linalg.eigh(whiten.T @ C_diff @ whiten)
    rotation = rotation[:, ::-1]
    return LinearMap(mean, (whiten @ rotation[:, :dims]).T)


def learn_triplet(
    X: np.ndarray, labels: np.ndarray, dims: int = 64, margin: float = 0.1, n_triplets: int = 20_000,
    decay: float = 1e-3, seed: int = 0,
) -> LinearMap:
    """A linear projection W trained with a triplet loss (the siamese idea, without
    retraining the network; Schroff et al. 2015 for the loss): mean over random triplets
    (anchor, same-class positive, other-class negative) of
    max(0, margin + |W(a - p)|^2 - |W(a - n)|^2), plus decay |W - W0|^2, from W0 = the
    top PCA directions; minimised by L-BFGS with the analytic gradient."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)
    mean = X.mean(axis=0)
    _, vectors = _shrunk_eigh(np.cov(X - mean, rowvar=False, bias=True), 0.0)
    dims = min(dims, X.shape[1])
    W0 = vectors[:, :dims].T
    anchors = rng.integers(0, len(X), n_triplets)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    others = {c: np.flatnonzero(labels != c) for c in by_class}
    positives = np.array([rng.choice(by_class[labels[a]]) for a in anchors])
    negatives = np.array([rng.choice(others[labels[a]]) for a in anchors])
    D_ap, D_an = X[anchors] - X[positives], X[anchors] - X[negatives]

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        W = flat.reshape(dims, -1)
        P_ap, P_an = D_ap @ W.T, D_an @ W.T
        hinge = margin + np.einsum("ij,ij->i", P_ap, P_ap) - np.einsum("ij,ij->i", P_an, P_an)
        active = hinge > 0
        loss = hinge[active].sum() / n_triplets + decay * np.sum((W - W0) ** 2)
        grad = 2 * (P_ap[active].T @ D_ap[active] - P_an[active].T @ D_an[active]) / n_triplets
        return loss, (grad + 2 * decay * (W - W0)).ravel()

    solution = minimize(loss_and_gradient, W0.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 200})
    return LinearMap(mean, solution.x.reshape(dims, -1))


DIMS = whole_below(5, low=0)  # 0: as many as the vectors have (fit_map checks the rest)
WEIGHT = number_below(2)
WHITENINGS: dict[str, Method] = {
    "pca": Method.of(learn_pca_whitening, "PCA-whitening [dims, power, shrinkage] (Jegou & Chum, ECCV 2012)",
                     {"dims": DIMS, "power": number_below(1), "shrinkage": FRACTION}),
    "lw": Method.of(learn_lw, "learned whitening from matching / non-matching pairs [dims, shrinkage] "
                    "(Radenovic et al., ECCV 2016)", {"dims": DIMS, "shrinkage": FRACTION}, supervised=True),
    "triplet": Method.of(learn_triplet, "linear projection trained with a triplet loss [dims, margin] (Schroff et al., CVPR 2015)",
                         {"dims": whole_below(5), "margin": WEIGHT, "n_triplets": whole_below(7),
                          "decay": WEIGHT, "seed": whole_below(9, low=0)}, supervised=True),
}


def fit_map(spec: Spec, X: np.ndarray, labels: np.ndarray) -> LinearMap:
    """The map of a parsed specification, learned on the rows of X (prepared vectors)."""
    dims = int(spec.values.get("dims", 0))
    if dims > X.shape[1]:
        raise ImgsearchError(f"{spec.text!r}: dims {dims} is more than the vectors' {X.shape[1]} dimensions")
    if WHITENINGS[spec.name].supervised and len(np.unique(labels)) < 2:
        raise ImgsearchError(f"{spec.name} learns from classes: it needs images of at least two")
    return WHITENINGS[spec.name].function(X, labels, **spec.values)
