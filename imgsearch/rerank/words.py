"""Visual words (Sivic & Zisserman 2003) from a vocabulary tree (Nister & Stewenius 2006):
RootSIFT descriptors clustered by k-means into BRANCHING cells, each cell's own
descriptors into BRANCHING more, so a descriptor's word is found with 2 x BRANCHING dot
products instead of BRANCHING squared. Pure functions of descriptors; index.words learns
and stores the tree, the store keeps the inverted file (word -> images)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.sparse import csr_matrix

from imgsearch.rerank.verify import root_sift

BRANCHING = 600  # at most 600 x 600 = 360,000 words
# Descriptors the tree is learned from: SAMPLE up to 10,000 images, then SAMPLE_PER_IMAGE an
# image, so that the vocabulary grows with the collection (Nister & Stewenius 2006, Philbin
# et al. 2007: a million words for a million images) and a word's posting list stays about
# as long as where the words' postings budget was set (about 75 postings a word at 10,000
# images of ~300 keypoints: 12 descriptors a word, so 50 descriptors an image). With 41,616
# words at 30,000 images the lists were 2.6 times as long and the budget reached 29 % of a
# photo's words: the right cover was among the words' first 50 for 151 of 200 dev phone
# photos; with 125,316 for 184 (bench/vocabulary.py, docs/scaling.md). Capped at MAX_SAMPLE
# (about 100,000 images: 333,000 words, 2 GB of RootSIFT while the tree is learned).
SAMPLE = 500_000
SAMPLE_PER_IMAGE = 50
MAX_SAMPLE = 4_000_000
# The tree is sized to what it learns from: about this many of the sample's descriptors per
# word, so 100 images (40,000 descriptors) learn 3,364 words, not one
# word per descriptor, where two views of one point would never share a word.
DESCRIPTORS_PER_WORD = 12
MIN_BRANCHING = 8
KMEANS_ITERATIONS = 12
# A cell's words hold about 10 descriptors each: their clusters settle within a few
# iterations, and the leaves are where the time goes (every descriptor against its cell's words).
LEAF_ITERATIONS = 6
# The top level's centres are learned from at most 100 descriptors each (faiss warns
# below 39 and caps at 256): more only costs time; a top cell only routes to its words.
POINTS_PER_TOP_CENTRE = 100
SEED = 20261127
ROWS_A_PRODUCT = 65_536  # descriptors against the centres in one matrix product
CENTRE_DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class Vocabulary:
    top: np.ndarray  # BRANCHING x dim: the cells' centres (RootSIFT space)
    leaves: np.ndarray  # BRANCHING x BRANCHING x dim: each cell's words; an unused word is -1 everywhere
    # per word, the share of the sample's images holding it (+1 smoothed): its idf is
    # -log(share), and share x images the length of its posting list to expect
    shares: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))

    def with_shares(self, images: list[np.ndarray]) -> Vocabulary:
        """The vocabulary with each word's share of these images (their words() each)."""
        holding = np.zeros(self.size)
        for words in images:
            holding[np.unique(words)] += 1
        return replace(self, shares=((holding + 1) / (len(images) + 1)).astype(np.float32))

    def words_of_images(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """words() of each image's descriptors, assigned in one pass: a cell's descriptors
        of all the images meet its words in one product."""
        if not images:
            return []
        words = self.words(np.vstack(images))
        return np.split(words, np.cumsum([len(d) for d in images])[:-1])

    @property
    def branching(self) -> int:
        return int(self.leaves.shape[0])

    @property
    def size(self) -> int:
        return int(self.leaves.shape[0] * self.leaves.shape[1])

    def words(self, descriptors: np.ndarray) -> np.ndarray:
        """The word of each SIFT descriptor (uint8 rows), int64."""
        if not len(descriptors):
            return np.empty(0, np.int64)
        x = root_sift(descriptors)
        cells = _best(x, self.top, np.zeros(len(self.top), x.dtype))
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


def sample_size(images: int) -> int:
    """Descriptors a vocabulary of a collection of this many images is learned from."""
    return int(np.clip(images * SAMPLE_PER_IMAGE, SAMPLE, MAX_SAMPLE))


def branching_for(descriptors: int) -> int:
    """The tree's branching for a sample of this many descriptors: about
    DESCRIPTORS_PER_WORD of them per word, between MIN_BRANCHING and BRANCHING."""
    return int(np.clip(round(math.sqrt(descriptors / DESCRIPTORS_PER_WORD)), MIN_BRANCHING, BRANCHING))


def learn_vocabulary(descriptors: np.ndarray) -> Vocabulary:
    """A two-level tree by k-means (k-means++ starts, a fixed seed: the same descriptors
    give the same tree) on SIFT descriptors (uint8 rows), sized by branching_for."""
    branching = branching_for(len(descriptors))
    x = root_sift(descriptors)
    rng = np.random.default_rng(SEED)
    subsample = x[np.sort(rng.permutation(len(x))[: POINTS_PER_TOP_CENTRE * branching])]
    top, _ = _kmeans(subsample, branching, rng)
    cells = _nearest(x, top)
    dim = x.shape[1]
    leaves = np.full((branching, branching, dim), -1.0, np.float32)
    for cell in range(len(top)):
        members = x[cells == cell]
        if len(members):
            centres, _ = _kmeans(members, min(branching, len(members)), rng, leaf=True)
            leaves[cell, : len(centres)] = centres
    padded_top = np.full((branching, dim), -1.0, np.float32)
    padded_top[: len(top)] = top
    return Vocabulary(padded_top, leaves)


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, leaf: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means, every distance from one matrix product; an emptied cluster keeps its
    centre. Starts from k-means++ (Arthur & Vassilvitskii 2007) or, where k sequential passes
    cost more than they bring (a tree's leaves: few points per centre), from k distinct rows
    drawn at random, as faiss' k-means does."""
    if len(x) <= k:
        return x.copy(), np.arange(len(x))
    centres = x[np.sort(rng.choice(len(x), k, replace=False))].copy() if leaf else _plus_plus(x, k, rng)
    labels = np.zeros(len(x), np.int64)
    for _ in range(LEAF_ITERATIONS if leaf else KMEANS_ITERATIONS):
        labels = _nearest(x, centres)
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        # the clusters' sums as one sparse product (cluster x row membership): faster here
        # than sorting, cumulative sums or a dense one-hot product
        members = csr_matrix((np.ones(len(x), x.dtype), (labels, np.arange(len(x)))), shape=(k, len(x)))
        sums = np.asarray(members @ x)
        centres[filled] = (sums[filled] / counts[filled, None]).astype(x.dtype)
    return centres, labels


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ starts: each next centre drawn with probability proportional to its
    squared distance from the nearest centre so far."""
    squared = np.einsum("nd,nd->n", x, x)
    centres = np.empty((k, x.shape[1]), dtype=x.dtype)
    centres[0] = x[rng.integers(len(x))]
    nearest = squared - 2 * x @ centres[0] + centres[0] @ centres[0]
    for j in range(1, k):
        weights = np.cumsum(np.maximum(nearest, 0))
        pick = int(np.searchsorted(weights, rng.random() * weights[-1], side="right")) if weights[-1] > 0 \
            else int(rng.integers(len(x)))
        centres[j] = x[min(pick, len(x) - 1)]
        nearest = np.minimum(nearest, squared - 2 * x @ centres[j] + centres[j] @ centres[j])
    return centres


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each row's nearest centre: the largest x.c - |c|^2 / 2, its squared Euclidean distance
    less |x|^2 / 2, from one product a block of rows (a sample of millions against hundreds
    of centres would otherwise hold gigabytes of products)."""
    return _best(x, centres, 0.5 * np.einsum("kd,kd->k", centres, centres))


def _best(x: np.ndarray, centres: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Each row's argmax of x.c - bias over the centres, ROWS_A_PRODUCT rows a product."""
    if not len(x):
        return np.empty(0, np.int64)
    return np.concatenate([np.argmax(x[start : start + ROWS_A_PRODUCT] @ centres.T - bias[None, :], axis=1)
                           for start in range(0, len(x), ROWS_A_PRODUCT)])
