"""Finding an object in a cluttered photo, measured in one run on composites made from any
photo folder whose sub-folders are classes.

    python bench/clutter.py ../shared/data/corel1k [--queries 1000] [--extractors cnn-spoc,cnn-gem]

Each query is one photo of the folder pasted on a photo of another class: scaled to cover
15-60 % of it, at a random place, turned by up to 10 degrees, tilted in perspective,
brightened or darkened by up to 20 % and re-compressed as JPEG. The background is first
enlarged to 3x its size, as a camera photo is larger than the stored copy. The database is
every original; the one relevant answer is the query's original. Prints R@1, R@5 and mAP
per coverage band (15-30 %, 30-45 %, 45-60 %) for each extractor and method: the plain
whole-photo descriptor (today's `query`), feature-map regions (one extra forward pass at
twice the size), image crops (13 extra forward passes), each also followed by AQE; and
the leave-one-out mAP of each method on the folder itself (the plain case must not lose).
Scores are cosine on L2-normalised descriptors; an image scores by its best region.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from imgsearch.evaluate import labelled_images, retrieval_metrics
from imgsearch.features.regions import REGIONS
from imgsearch.features.registry import make_extractor
from imgsearch.index.images import load_image
from imgsearch.linalg import l2n

BANDS = ((0.15, 0.30), (0.30, 0.45), (0.45, 0.60))
ENLARGE = 3


def composite(rng: np.random.Generator, obj: np.ndarray, background: np.ndarray, coverage: float) -> np.ndarray:
    canvas = cv2.resize(background, None, fx=ENLARGE, fy=ENLARGE, interpolation=cv2.INTER_CUBIC)
    H, W = canvas.shape[:2]
    h, w = obj.shape[:2]
    scale = (coverage * H * W / (h * w)) ** 0.5
    oh, ow = max(8, round(h * scale)), max(8, round(w * scale))
    top, left = int(rng.integers(0, H - oh + 1)), int(rng.integers(0, W - ow + 1))
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    corners = np.float32([[left, top], [left + ow, top], [left + ow, top + oh], [left, top + oh]])
    corners += rng.uniform(-0.06, 0.06, (4, 2)).astype(np.float32) * [ow, oh]  # perspective tilt
    angle = np.deg2rad(rng.uniform(-10, 10))
    centre = corners.mean(axis=0)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    corners = (corners - centre) @ turn.T + centre
    matrix = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    warped = cv2.warpPerspective(obj, matrix, (W, H))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, (W, H)) > 127
    out = canvas.copy()
    out[mask] = warped[mask]
    out = np.clip(out.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)


def ranks_of(region_scores: list[np.ndarray], relevant: np.ndarray) -> np.ndarray:
    """The rank (1 = first) of each query's relevant image, ties by index."""
    ranks = []
    for scores, target in zip(region_scores, relevant.tolist()):
        best = scores.max(axis=0)
        ranks.append(1 + int(np.sum(best > best[target])) + int(np.sum(best[:target] == best[target])))
    return np.array(ranks)


def aqe_scores(regions: np.ndarray, database: np.ndarray, n: int = 5) -> np.ndarray:
    """Average query expansion on the best-region scores: the best region plus the n top
    images, searched again (whole-image scores of the expanded query)."""
    scores = regions @ database.T
    best = scores.max(axis=0)
    top = np.argsort(-best, kind="stable")[:n]
    region = int(np.argmax(scores[:, top[0]]))
    expanded = l2n(regions[region] + database[top].sum(axis=0))
    return np.maximum(best, expanded @ database.T)[None, :]


def report(name: str, ranks: np.ndarray, coverages: np.ndarray, seconds: float) -> None:
    cells = []
    for low, high in BANDS:
        inside = (coverages >= low) & (coverages < high)
        r = ranks[inside]
        cells.append(f"{np.mean(r == 1):.3f} {np.mean(r <= 5):.3f} {np.mean(1 / r):.3f}")
    print(f"  {name:<22} " + "   ".join(cells) + f"   all R@1 {np.mean(ranks == 1):.3f}  {seconds * 1000:6.1f} ms/query")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--extractors", default="cnn-spoc,cnn-gem,cnn-crow,cnn-cam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-loo", action="store_true", help="leave out the leave-one-out check (the slow part)")
    args = parser.parse_args()
    images = labelled_images(args.folder)
    pixels = [load_image(p).pixels for p in images.paths]
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(pixels), size=min(args.queries, len(pixels)), replace=False).tolist())
    coverages = rng.uniform(0.15, 0.60, len(chosen))
    queries = []
    for i, coverage in zip(chosen, coverages):
        others = np.flatnonzero(images.labels != images.labels[i])
        queries.append(composite(rng, pixels[i], pixels[int(rng.choice(others))], coverage))
    print(f"{len(queries)} composites from {args.folder} ({len(pixels)} originals); python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")
    print("  method                 " + "   ".join(f"{int(a * 100)}-{int(b * 100)} %: R@1 R@5  mAP" for a, b in BANDS))
    for name in args.extractors.split(","):
        extractor = make_extractor(name)
        database = np.vstack([extractor.extract(p) for p in pixels]).astype(np.float32)
        print(f"\n{name}")
        relevant = np.array(chosen)
        for method in ("plain", *REGIONS):
            started = time.perf_counter()
            regions = [extractor.extract(q)[None, :] if method == "plain" else REGIONS[method](extractor, q)
                       for q in queries]
            seconds = (time.perf_counter() - started) / len(queries)
            report(method, ranks_of([r @ database.T for r in regions], relevant), coverages, seconds)
            report(method + " + aqe:5", ranks_of([aqe_scores(r, database) for r in regions], relevant), coverages,
                   seconds)
            if method != "plain" and not args.skip_loo:
                loo = [REGIONS[method](extractor, p) @ database.T for p in pixels]
                scores = np.vstack([s.max(axis=0) for s in loo])
                print(f"  {method} on the plain case: leave-one-out mAP "
                      f"{retrieval_metrics(scores, images.labels)['mAP']:.4f} vs plain "
                      f"{retrieval_metrics(database @ database.T, images.labels)['mAP']:.4f}")


if __name__ == "__main__":
    main()
