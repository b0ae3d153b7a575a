"""Which similarity re-ranking should follow verification by default (issue 30's table):
leave-one-out on a category-level set, every candidate measured on the same extracted
vectors with eval's own functions (evaluate.reranked_scores: what `eval --rerank` runs).

    python bench/default_pipeline.py corel1k ../shared/data/corel1k
    python bench/default_pipeline.py flowers102 ../shared/data/flowers102 [--verify-per-class 10]

corel1k: a folder of class folders. flowers102: its jpg/ with labels.csv's class_id (102
species). The candidates run with their registered (published) defaults, none tuned
here. Verification is slow (a RANSAC per shortlisted pair, 2 cores): on a large set the
chains ending in verify are measured on a stratified sample of queries
(--verify-per-class), each still ranked against the whole collection; every other row is
also given on that same sample, so the columns compare.
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np

CANDIDATES = ("none", "aqe", "alpha-qe", "dba-aqe", "diffusion", "k-reciprocal", "verify", "alpha-qe+verify",
              "dba-aqe+verify")


def labelled(kind: str, root: Path):
    from imgsearch.evaluate import LabelledImages, labelled_images

    if kind != "flowers102":
        return labelled_images(root)
    rows = list(csv.DictReader(open(root / "labels.csv")))
    classes = sorted({r["class_id"] for r in rows}, key=int)
    index = {c: i for i, c in enumerate(classes)}
    return LabelledImages([root / "jpg" / r["file"] for r in rows], np.array([index[r["class_id"]] for r in rows]),
                          classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("corel1k", "flowers102"))
    parser.add_argument("root", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("/tmp"), help="where the extracted features are kept")
    parser.add_argument("--verify-per-class", type=int, default=0, help="0: every image queries")
    parser.add_argument("--only", default=",".join(CANDIDATES))
    args = parser.parse_args()

    import pickle

    from imgsearch.evaluate import extract_dataset, reranked_scores, retrieval_metrics, stratified_folds
    from imgsearch.rerank.registry import NO_RERANK, parse_reranking
    from imgsearch.scan.metrics import get_metric

    cache = args.cache / f"default_pipeline_{args.kind}.pkl"
    if cache.exists():
        vectors, labels, local = pickle.loads(cache.read_bytes())
    else:
        started = time.perf_counter()
        vectors, labels, _, local = extract_dataset(labelled(args.kind, args.root), "cnn-spoc", os.cpu_count() or 1,
                                                    True, local=True)
        cache.write_bytes(pickle.dumps((vectors, labels, local)))
        print(f"extracted {len(vectors)} images in {time.perf_counter() - started:.0f} s")
    X = get_metric("pearson").prepare_rows(vectors).astype(np.float64)
    queries = None
    if args.verify_per_class:
        folds = stratified_folds(labels, max(1, int(np.bincount(labels).min()) // args.verify_per_class))
        queries = np.flatnonzero(folds == 0)
    print(f"{args.kind}: {len(X)} images, {len(np.unique(labels))} classes, cnn-spoc/pearson, "
          f"{'every image' if queries is None else f'{len(queries)} sampled'} queries")
    print(f"{'pipeline':<20} {'mAP':>7} {'P@1':>7} {'P@10':>7} {'P@100':>7} {'seconds':>8}")
    for name in args.only.split(","):
        started = time.perf_counter()
        scores = X @ X.T if name == NO_RERANK else reranked_scores(X, parse_reranking(name), local, queries)
        found = retrieval_metrics(scores, labels, queries)
        print(f"{name:<20} {found['mAP']:7.4f} {found['P@1']:7.4f} {found['P@10']:7.4f} {found['P@100']:7.4f} "
              f"{time.perf_counter() - started:8.1f}", flush=True)


if __name__ == "__main__":
    main()
