"""Visual words (Sivic & Zisserman 2003) from a vocabulary tree (Nister & Stewenius 2006):
RootSIFT descriptors clustered by k-means into BRANCHING cells, each cell's own
descriptors into BRANCHING more, so a descriptor's word is found with 2 x BRANCHING dot
products instead of BRANCHING squared. Pure functions of descriptors; index.words learns
and stores the tree, the store keeps the inverted file (word -> images)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.sparse import csr_matrix

from imgsearch.rerank.verify import root_sift

BRANCHING = 200  # 200 x 200 = 40,000 words: a posting list per word of ~1/40,000 of the descriptors
SAMPLE = 500_000  # descriptors the tree is learned from: about 12 per word
KMEANS_ITERATIONS = 12
SEED = 20261127
CENTRE_DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class Vocabulary:
    top: np.ndarray  # BRANCHING x dim: the cells' centres (RootSIFT space)
    leaves: np.ndarray  # BRANCHING x BRANCHING x dim: each cell's words; an unused word is -1 everywhere
    # per word, the share of the sample's images holding it (+1 smoothed): its idf is
    # -log(share), and share x images the length of its posting list to expect
    shares: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))

    def with_shares(self, images: list[np.ndarray]) -> Vocabulary:
        """The vocabulary with each word's share of these images (SIFT descriptors each)."""
        holding = np.zeros(self.size)
        for descriptors in images:
            holding[np.unique(self.words(descriptors))] += 1
        return replace(self, shares=((holding + 1) / (len(images) + 1)).astype(np.float32))

    @property
    def size(self) -> int:
        return int(self.leaves.shape[0] * self.leaves.shape[1])

    def words(self, descriptors: np.ndarray) -> np.ndarray:
        """The word of each SIFT descriptor (uint8 rows), int64."""
        if not len(descriptors):
            return np.empty(0, np.int64)
        x = root_sift(descriptors)
        cells = np.argmax(x @ self.top.T, axis=1)
        words = cells.astype(np.int64) * self.leaves.shape[1]
        for cell in np.unique(cells):
            members = np.flatnonzero(cells == cell)
            words[members] += np.argmax(x[members] @ self.leaves[cell].T, axis=1)
        return words

    def to_bytes(self) -> tuple[bytes, list[bytes], bytes]:
        """The top centres, each top cell's words (rows of a size any server takes), the shares."""
        return (self.top.astype(CENTRE_DTYPE).tobytes(), [cell.astype(CENTRE_DTYPE).tobytes() for cell in self.leaves],
                self.shares.astype(CENTRE_DTYPE).tobytes())

    @classmethod
    def from_bytes(cls, top: bytes, cells: list[bytes], shares: bytes, dim: int) -> Vocabulary:
        branching = len(cells)
        return cls(np.frombuffer(top, CENTRE_DTYPE).reshape(branching, dim),
                   np.stack([np.frombuffer(c, CENTRE_DTYPE).reshape(branching, dim) for c in cells]),
                   np.frombuffer(shares, CENTRE_DTYPE))


def learn_vocabulary(descriptors: np.ndarray, branching: int = BRANCHING) -> Vocabulary:
    """A two-level tree by k-means (k-means++ starts, a fixed seed: the same descriptors
    give the same tree) on SIFT descriptors (uint8 rows)."""
    x = root_sift(descriptors)
    rng = np.random.default_rng(SEED)
    top, cells = _kmeans(x, branching, rng)
    dim = x.shape[1]
    leaves = np.full((branching, branching, dim), -1.0)
    for cell in range(len(top)):
        members = x[cells == cell]
        if len(members):
            centres, _ = _kmeans(members, min(branching, len(members)), rng)
            leaves[cell, : len(centres)] = centres
    padded_top = np.full((branching, dim), -1.0)
    padded_top[: len(top)] = top
    return Vocabulary(padded_top.astype(np.float32), leaves.astype(np.float32))


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means from k-means++ starts (Arthur & Vassilvitskii 2007), every distance
    from one matrix product; an emptied cluster keeps its centre."""
    if len(x) <= k:
        return x.copy(), np.arange(len(x))
    squared = np.einsum("nd,nd->n", x, x)
    centres = np.empty((k, x.shape[1]), dtype=x.dtype)
    centres[0] = x[rng.integers(len(x))]
    nearest = squared - 2 * x @ centres[0] + centres[0] @ centres[0]
    for j in range(1, k):
        weights = np.maximum(nearest, 0)
        pick = rng.choice(len(x), p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(len(x))
        centres[j] = x[pick]
        nearest = np.minimum(nearest, squared - 2 * x @ centres[j] + centres[j] @ centres[j])
    labels = np.zeros(len(x), np.int64)
    for _ in range(KMEANS_ITERATIONS):
        labels = np.argmin(np.einsum("kd,kd->k", centres, centres)[None, :] - 2 * x @ centres.T, axis=1)
        onehot = csr_matrix((np.ones(len(x)), (labels, np.arange(len(x)))), shape=(k, len(x)))
        counts = np.bincount(labels, minlength=k)
        sums = onehot @ x
        filled = counts > 0
        centres[filled] = (sums[filled] / counts[filled, None]).astype(x.dtype)
    return centres, labels
