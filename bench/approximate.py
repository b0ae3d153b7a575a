"""What an approximate index costs in recall, against our exact scan, on real descriptors.

    pip install -e ".[bench]"
    python bench/approximate.py ../shared/data/corel1k [--queries 1000] [--cache DIR]

The vectors are real `cnn-spoc` descriptors: of every photo of FOLDER and of its mirror
image, the whole-photo descriptor and one per R-MAC region of the feature map at two
sizes (features/regions.py), about 80,000 unit vectors for Corel-1k, cached between runs.
The queries are every descriptor of held-out photos (their mirror images held out too),
so no query has a copy of itself in the index. Ground truth is the exact scan
(scan/kernel.py, cosine); each index answers the same queries and is scored by recall@10
(the share of the true 10 nearest it returns) and milliseconds a query on one thread.

The indexes are faiss' HNSW (the graph MariaDB 11.7+ builds for VECTOR INDEX, as its
modified "mhnsw", and one of Milvus' index types) at MariaDB's default M = 6 and at
M = 16 and 32, over a range of search breadths, and IVF-Flat (Milvus' IVF_FLAT) over a
range of probed lists. faiss is not MariaDB's implementation: the figures show the shape
of the trade on these vectors, not MariaDB's exact numbers.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
from pathlib import Path

import cv2
import faiss
import numpy as np

from imgsearch.features.regions import map_regions
from imgsearch.features.registry import make_extractor
from imgsearch.index.build import collection_images
from imgsearch.scan.kernel import scan
from imgsearch.scan.metrics import get_metric

K = 10


def descriptors(folder: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, photo number of each), made once per folder and kept in `cache`."""
    files = collection_images(folder)
    key = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:12]
    path = cache / f"regions-{key}.npz"
    if path.exists():
        kept = np.load(path)
        return kept["vectors"], kept["photos"]
    extractor = make_extractor("cnn-spoc")
    rows, photos = [], []
    started = time.perf_counter()
    for number, file in enumerate(files):
        bgr = cv2.imread(str(file))
        for view in (bgr, cv2.flip(bgr, 1)):
            found = map_regions(extractor, view)
            rows.append(found)
            photos.append(np.full(len(found), number))
        if number % 100 == 99:
            print(f"  descriptors of {number + 1} / {len(files)} photos, {time.perf_counter() - started:.0f} s")
    vectors, owners = np.vstack(rows).astype(np.float32), np.concatenate(photos)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=vectors, photos=owners)
    return vectors, owners


def exact_neighbours(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    cosine = get_metric("cosine")
    blocks = [(np.arange(start, min(start + 8192, len(base))), base[start : start + 8192])
              for start in range(0, len(base), 8192)]
    return np.array([[i for i, _ in scan(blocks, q, cosine, K).ranking] for q in queries])


def recall(found: np.ndarray, truth: np.ndarray, base: np.ndarray, queries: np.ndarray) -> float:
    """The share of returned neighbours that belong in the true top K: an id counts when
    its exact score reaches the true K-th score (less 1e-5, so that an id tied with the
    K-th within float rounding counts, as in ann-benchmarks' threshold recall)."""
    hits = 0
    for f, t, q in zip(found, truth, queries):
        kth = float(base[t[-1]] @ q) - 1e-5
        hits += int(np.sum(base[f[f >= 0]] @ q >= kth))
    return hits / (K * len(found))


def timed_search(index: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    _, found = index.search(queries, K)
    return found, (time.perf_counter() - started) * 1000 / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--queries", type=int, default=1000, help="query descriptors, from held-out photos")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "imgsearch" / "bench")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    vectors, photos = descriptors(args.folder, args.cache)
    rng = np.random.default_rng(0)
    held_out = rng.choice(np.unique(photos), size=max(1, len(np.unique(photos)) // 20), replace=False)
    is_query = np.isin(photos, held_out)
    base = np.ascontiguousarray(vectors[~is_query])
    queries = np.ascontiguousarray(rng.permutation(vectors[is_query])[: args.queries])
    print(f"{len(base):,} x {base.shape[1]} real cnn-spoc descriptors; {len(queries)} queries from {len(held_out)} "
          f"held-out photos; faiss {faiss.__version__}, one thread; {platform.processor() or platform.machine()}")

    truth = exact_neighbours(base, queries)
    print("ground truth: the exact scan (scan/kernel.py, cosine)")
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    found, ms = timed_search(flat, queries)
    _, one_at_a_time = timed_search(flat, queries[:1])
    print(f"faiss exact (IndexFlatIP), all queries in one call (one matrix product reads the vectors once for "
          f"all): {ms:.2f} ms a query, recall@{K} {recall(found, truth, base, queries):.4f}; one query alone: "
          f"{one_at_a_time:.2f} ms")

    for m in (6, 16, 32):
        index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        started = time.perf_counter()
        index.add(base)
        built = time.perf_counter() - started
        graph_bytes = index.hnsw.neighbors.size() * 4
        for ef in (16, 32, 64, 128, 256):
            index.hnsw.efSearch = ef
            found, ms = timed_search(index, queries)
            print(f"HNSW M={m:<2} efSearch={ef:<3}: recall@{K} {recall(found, truth, base, queries):.4f}, {ms:.3f} ms a query "
                  f"(built in {built:.0f} s; graph {graph_bytes / len(base):.0f} bytes a vector beside its "
                  f"{base.shape[1] * 4} of floats)")

    lists = int(4 * np.sqrt(len(base)))
    quantizer = faiss.IndexFlatIP(base.shape[1])
    ivf = faiss.IndexIVFFlat(quantizer, base.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    ivf.train(base)
    ivf.add(base)
    for probes in (1, 4, 16, 64):
        ivf.nprobe = probes
        found, ms = timed_search(ivf, queries)
        print(f"IVF-Flat {lists} lists, nprobe={probes:<2}: recall@{K} {recall(found, truth, base, queries):.4f}, {ms:.3f} ms a query")


if __name__ == "__main__":
    main()
