"""Near-duplicate detection measured on copies made from any photo folder, in one run.

    python bench/duplicates.py ../shared/data/corel1k [--originals 200] [--timing 1000,10000]

Takes N originals (every k-th image of the folder, sorted by path), writes each with a
copy per transformation below, mixed with all the folder's other images as distractors,
indexes them with `imgsearch build` (cnn-spoc, hsv72, rgb) into a temporary SQLite file,
and finds pairs with the same self-join `imgsearch duplicates` runs. A pair is right when
both images come from the same original. Prints, per extractor and threshold, the
precision, recall and F1 of the pairs, the recall per transformation, and the lowest
threshold whose precision reaches 0.99; then the self-join time on synthetic vectors.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from imgsearch.duplicates import self_join_pairs
from imgsearch.index.build import build, collection_images
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)
EXTRACTORS = (("cnn-spoc", "cosine"), ("hsv72", "bhattacharyya"), ("rgb", "pearson"))


def crop(x: np.ndarray, area: float) -> np.ndarray:
    h, w = x.shape[:2]
    side = area ** 0.5
    ch, cw = round(h * side), round(w * side)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[top : top + ch, left : left + cw]


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def contrast(x: np.ndarray, factor: float) -> np.ndarray:
    mean = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - mean) * factor + mean, 0, 255).astype(np.uint8)


def watermark(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    marked = x.copy()
    band = max(8, round(0.10 * h))  # a full-width band of 10 % of the area
    top = (h - band) // 2
    overlay = marked.copy()
    cv2.rectangle(overlay, (0, top), (w, top + band), (255, 255, 255), -1)
    marked = cv2.addWeighted(overlay, 0.35, marked, 0.65, 0)
    cv2.putText(marked, "(c) imgsearch", (4, top + int(band * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, band / 40, (0, 0, 0),
                max(1, band // 12), cv2.LINE_AA)
    return marked


def rotate_with_border(x: np.ndarray, degrees: float) -> np.ndarray:
    h, w = x.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(x, matrix, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


TRANSFORMS = {
    "resize-50": lambda x: cv2.resize(x, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    "resize-25": lambda x: cv2.resize(x, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA),
    "jpeg-30": lambda x: jpeg(x, 30),
    "crop-90": lambda x: crop(x, 0.9),
    "crop-70": lambda x: crop(x, 0.7),
    "rotate-90": lambda x: cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE),
    "rotate-180": lambda x: cv2.rotate(x, cv2.ROTATE_180),
    "flip": lambda x: cv2.flip(x, 1),
    "bright+20": lambda x: np.clip(x * 1.2, 0, 255).astype(np.uint8),
    "bright-20": lambda x: (x * 0.8).astype(np.uint8),
    "contrast+20": lambda x: contrast(x, 1.2),
    "contrast-20": lambda x: contrast(x, 0.8),
    "grey": lambda x: cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
    "watermark": watermark,
    "rotate-10": lambda x: rotate_with_border(x, 10),
}


def make_set(folder: Path, out: Path, originals: int) -> dict[str, tuple[str, str]]:
    """Writes the set; returns relative path -> (original it comes from, transformation)."""
    files = sorted(collection_images(folder))
    step = max(1, len(files) // originals)
    chosen = set(files[::step][:originals])
    truth = {}
    for n, path in enumerate(files):
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is None:
            continue
        name = f"{n:06d}"
        cv2.imwrite(str(out / f"{name}.png"), pixels)  # lossless: the original stays the original
        truth[f"{name}.png"] = (name if path in chosen else f"distractor-{name}", "original")
        if path in chosen:
            for t, transform in TRANSFORMS.items():
                copy = f"{name}-{t}.jpg"
                cv2.imwrite(str(out / copy), transform(pixels), [cv2.IMWRITE_JPEG_QUALITY, 95])
                truth[copy] = (name, t)
    return truth


def evaluate(store, truth: dict[str, tuple[str, str]], extractor: str, metric: str) -> float | None:
    row = store.find_extractor(extractor)
    paths = {img.id: os.fsdecode(img.path) for img in store.stored_images().values()}
    left, right, scores = self_join_pairs(store, row, get_metric(metric), min(THRESHOLDS), 1024)
    source = [truth[paths[i]] for i in left.tolist()]
    target = [truth[paths[i]] for i in right.tolist()]
    right_pair = np.array([a[0] == b[0] for a, b in zip(source, target)], dtype=bool)
    groups: dict[str, int] = {}
    for original, _ in truth.values():
        groups[original] = groups.get(original, 0) + 1
    true_pairs = sum(n * (n - 1) // 2 for n in groups.values())
    copies = {t: [(o, p) for p, (o, tt) in truth.items() if tt == t] for t in TRANSFORMS}
    originals_of = {o: p for p, (o, t) in truth.items() if t == "original"}
    pair_score = {}
    for a, b, s in zip(left.tolist(), right.tolist(), scores.tolist()):
        pair_score[(paths[a], paths[b])] = pair_score[(paths[b], paths[a])] = s
    print(f"\n{extractor} / {metric}: {len(left)} pairs >= {min(THRESHOLDS)}; {true_pairs} true pairs")
    print("  threshold  precision  recall     F1   " + " ".join(f"{t:>11}" for t in TRANSFORMS))
    chosen = None
    for threshold in THRESHOLDS:
        found = scores >= threshold
        hits = int((found & right_pair).sum())
        precision = hits / max(int(found.sum()), 1)
        recall = hits / true_pairs
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per = []
        for t in TRANSFORMS:
            direct = [pair_score.get((originals_of[o], p), -2) >= threshold for o, p in copies[t]]
            per.append(np.mean(direct) if direct else float("nan"))
        print(f"  {threshold:9.2f}  {precision:9.3f}  {recall:6.3f}  {f1:6.3f}   " + " ".join(f"{r:11.3f}" for r in per))
        if chosen is None and precision >= 0.99:
            chosen = threshold
    print(f"  lowest threshold with precision >= 0.99: {chosen}")
    return chosen


def timing(sizes: list[int], dim: int) -> None:
    print(f"\nself-join time on synthetic {dim}-d vectors (cosine, threshold 0.9):")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            with open_store(parse_database_url(f"sqlite:///{tmp}/t.sqlite3"), create=True) as store:
                row = store.register_extractor("synthetic", "{}", dim)
                rng = np.random.default_rng(n)
                for start in range(0, n, 5000):
                    vectors = rng.random((min(5000, n - start), dim), dtype=np.float32) ** 4
                    store.write_batch([(ImageRecord(f"{start + i}".encode(), b"x", 1, 1, "0" * 64, 1, 1), {row.id: v})
                                       for i, v in enumerate(vectors)])
                store.pack(row)
                started = time.perf_counter()
                left, _, _ = self_join_pairs(store, row, get_metric("cosine"), 0.9, 1024)
                print(f"  {n:>8} images: {time.perf_counter() - started:7.1f} s, {len(left)} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--originals", type=int, default=200)
    parser.add_argument("--timing", default="1000,10000")
    parser.add_argument("--dim", type=int, default=1280)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set"
        out.mkdir()
        truth = make_set(args.folder, out, args.originals)
        print(f"{args.originals} originals x {len(TRANSFORMS)} transformations + "
              f"{len(truth) - args.originals * (len(TRANSFORMS) + 1)} distractors from {args.folder}; "
              f"python {sys.version.split()[0]}")
        with open_store(parse_database_url(f"sqlite:///{tmp}/index.sqlite3"), create=True) as store:
            started = time.perf_counter()
            build(store, str(out), tuple(e for e, _ in EXTRACTORS), os.cpu_count() or 1, 256, progress=False)
            print(f"built in {time.perf_counter() - started:.1f} s")
            for extractor, metric in EXTRACTORS:
                evaluate(store, truth, extractor, metric)
    timing([int(n) for n in args.timing.split(",") if n], args.dim)


if __name__ == "__main__":
    main()
