"""Near-duplicate detection measured on copies made from any photo folder, in one run.

    python bench/duplicates.py ../shared/data/corel1k [--originals 200] [--timing 1000,10000] [--skip-sources]

Takes N originals (every k-th image of the folder, sorted by path), writes each with a
copy per transformation below, mixed with all the folder's other images as distractors,
indexes them with `imgsearch build` (cnn-spoc, hsv72, rgb, phash, sift) into a temporary
SQLite file, and finds pairs with the same functions `imgsearch duplicates` runs. A pair
is right when both images come from the same original. Prints, per extractor or pair
source and threshold, the precision, recall and F1 of the pairs, the recall per
transformation, and the first threshold whose precision reaches 0.99; the three sources
together as `imgsearch duplicates` combines them; imagededup's PHash, DHash and CNN on the
same files when it is installed (pip install imagededup: torch and torchvision come with
it); then the self-join time on synthetic vectors. The transformations and their
parameters were fixed before any of this was measured (issue 12) and are not changed.
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

from imgsearch.duplicates import DEFAULT_THRESHOLD, find_duplicates, self_join_pairs
from imgsearch.duplicates.hashed import hash_pairs
from imgsearch.duplicates.verified import verified_pairs
from imgsearch.index.build import build, collection_images
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)
EXTRACTORS = (("cnn-spoc", "cosine"), ("hsv72", "bhattacharyya"), ("rgb", "pearson"))
HASH_BITS = (4, 6, 8, 10, 12)
IMAGEDEDUP_BITS = (4, 6, 8, 10, 12)
INLIERS = (15, 20, 30, 40, 60, 80)


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


class Truth:
    """Which pairs are right: both images come from one original."""

    def __init__(self, truth: dict[str, tuple[str, str]]) -> None:
        self.truth = truth
        groups: dict[str, int] = {}
        for original, _ in truth.values():
            groups[original] = groups.get(original, 0) + 1
        self.true_pairs = sum(n * (n - 1) // 2 for n in groups.values())
        self.copies = {t: [(o, p) for p, (o, tt) in truth.items() if tt == t] for t in TRANSFORMS}
        self.originals_of = {o: p for p, (o, t) in truth.items() if t == "original"}

    def table(self, title: str, pairs: dict[tuple[str, str], float], thresholds: tuple[float, ...],
              higher_is_closer: bool = True) -> float | None:
        """Precision, recall and F1 of the pairs within each threshold, recall per
        transformation (the pair original, copy); the first threshold reaching precision
        0.99 is returned. pairs: (path, path) -> score or distance."""
        keys = list(pairs)
        values = np.array([pairs[k] for k in keys], dtype=np.float64)
        right = np.array([self.truth[a][0] == self.truth[b][0] for a, b in keys], dtype=bool)
        both = {**pairs, **{(b, a): v for (a, b), v in pairs.items()}}
        print(f"\n{title}: {len(keys)} pairs; {self.true_pairs} true pairs")
        print("  threshold  precision  recall     F1   " + " ".join(f"{t:>11}" for t in TRANSFORMS))
        chosen = None
        for threshold in thresholds:
            found = values >= threshold if higher_is_closer else values <= threshold
            hits = int((found & right).sum())
            precision = hits / max(int(found.sum()), 1)
            recall = hits / self.true_pairs
            f1 = 2 * precision * recall / max(precision + recall, 1e-12)
            per = []
            for t in TRANSFORMS:
                within = []
                for o, p in self.copies[t]:
                    v = both.get((self.originals_of[o], p))
                    within.append(v is not None and (v >= threshold if higher_is_closer else v <= threshold))
                per.append(np.mean(within) if within else float("nan"))
            print(f"  {threshold:9.2f}  {precision:9.3f}  {recall:6.3f}  {f1:6.3f}   "
                  + " ".join(f"{r:11.3f}" for r in per))
            if chosen is None and precision >= 0.99:
                chosen = threshold
        print(f"  first threshold with precision >= 0.99: {chosen}")
        return chosen


def by_path(store, left: np.ndarray, right: np.ndarray, values: np.ndarray) -> dict[tuple[str, str], float]:
    paths = {img.id: os.fsdecode(img.path) for img in store.stored_images().values()}
    return {(paths[a], paths[b]): float(v) for a, b, v in zip(left.tolist(), right.tolist(), values.tolist())}


def evaluate(store, truth: Truth, extractor: str, metric: str) -> None:
    row = store.find_extractor(extractor)
    left, right, scores = self_join_pairs(store, row, get_metric(metric), min(THRESHOLDS), 1024)
    truth.table(f"{extractor} / {metric}", by_path(store, left, right, scores), THRESHOLDS)


def evaluate_combined(store, truth: Truth) -> None:
    """What `imgsearch duplicates` reports with the index's hashes and local features:
    the descriptor's pairs at its default, hash pairs within the bits, verified pairs
    with the inliers; each source alone, then all of them at once."""
    cnn, phash, sift = (store.find_extractor(n) for n in ("cnn-spoc", "phash", "sift"))
    metric = get_metric("cosine")
    near = by_path(store, *self_join_pairs(store, cnn, metric, DEFAULT_THRESHOLD, 1024))
    started = time.perf_counter()
    hashed = by_path(store, *hash_pairs(store, phash, max(HASH_BITS)))
    print(f"\nhash pairs: {time.perf_counter() - started:.1f} s")
    truth.table("phash (63 bits, 8 orientations), bits apart", hashed, HASH_BITS, higher_is_closer=False)
    started = time.perf_counter()
    verified = by_path(store, *verified_pairs(store, cnn, metric, sift, min(INLIERS), 1024))
    print(f"\nverified pairs: {time.perf_counter() - started:.1f} s")
    truth.table("verified neighbours, inliers", verified, INLIERS)
    for bits in (6, 8, 10):
        certain = set(near) | {k for k, v in hashed.items() if v <= bits}
        combined = {**verified, **{k: float("inf") for k in certain}}
        truth.table(f"all three: cnn-spoc >= {DEFAULT_THRESHOLD}, phash <= {bits} bits, verified with >= the "
                    "row's inliers", combined, INLIERS)


def evaluate_report(store, truth: Truth) -> None:
    """The copies `imgsearch duplicates` reports with its defaults, after every pair is
    checked aligned: a pair is reported a copy when both images sit in one group of copies.
    Its negatives hold the set's real photographs of one scene (Corel-1k's bursts and
    series, each a different original here): the pairs of its "same scene" groups, and any
    such pair that reached a group of copies, the error that would delete a photograph."""
    started = time.perf_counter()
    report = find_duplicates(store)
    print(f"\nimgsearch duplicates, defaults, aligned check: {time.perf_counter() - started:.1f} s")
    copy_pairs = {}
    for group in report.groups:
        paths = [os.fsdecode(group.representative.path), *(os.fsdecode(m.image.path) for m in group.members)]
        copy_pairs.update({tuple(sorted((a, b))): 1.0 for i, a in enumerate(paths) for b in paths[i + 1:]})
    scene_pairs = set()
    for group in report.scenes:
        paths = [os.fsdecode(group.representative.path), *(os.fsdecode(m.image.path) for m in group.members)]
        scene_pairs.update(tuple(sorted((a, b))) for i, a in enumerate(paths) for b in paths[i + 1:])
    different = [p for p in scene_pairs if truth.truth[p[0]][0] != truth.truth[p[1]][0]]
    wrong = [p for p in copy_pairs if truth.truth[p[0]][0] != truth.truth[p[1]][0]]
    print(f"  same-scene pairs reported apart: {len(scene_pairs)} ({len(different)} of different originals); "
          f"pairs of different originals reported as copies: {len(wrong)}")
    for a, b in sorted(wrong):
        print(f"    copy by mistake: {a} {b}")
    truth.table("reported copies (same group of copies)", copy_pairs, (1.0,))


def imagededup_pairs(folder: Path, truth: Truth) -> None:
    """imagededup's PHash, DHash and CNN on the same files, when it is installed (a bench extra)."""
    try:
        from imagededup import methods
    except ImportError as error:
        print(f"\nimagededup not measured: {error} (pip install imagededup)")
        return
    for name in ("PHash", "DHash"):
        method = getattr(methods, name)(verbose=False)
        started = time.perf_counter()
        encodings = method.encode_images(image_dir=str(folder))
        found = method.find_duplicates(encoding_map=encodings, max_distance_threshold=max(IMAGEDEDUP_BITS),
                                       scores=True)
        pairs = {tuple(sorted((a, b))): float(d) for a, dups in found.items() for b, d in dups}
        print(f"\nimagededup {name}: {time.perf_counter() - started:.1f} s")
        truth.table(f"imagededup {name} (64 bits), bits apart", pairs, IMAGEDEDUP_BITS, higher_is_closer=False)
    try:
        cnn = methods.CNN(verbose=False)
    except Exception as error:  # its weights come from the internet at first use
        print(f"\nimagededup CNN not measured: {type(error).__name__}: {str(error)[:200]}")
        return
    found = cnn.find_duplicates(image_dir=str(folder), min_similarity_threshold=min(THRESHOLDS), scores=True)
    pairs = {tuple(sorted((a, b))): float(s) for a, dups in found.items() for b, s in dups}
    truth.table("imagededup CNN, cosine", pairs, THRESHOLDS)


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
    parser.add_argument("--skip-sources", action="store_true", help="only the report's copies (and imagededup)")
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
            build(store, str(out), (*(e for e, _ in EXTRACTORS), "phash", "sift"), os.cpu_count() or 1, 256,
                  progress=False)
            print(f"built in {time.perf_counter() - started:.1f} s")
            judge = Truth(truth)
            if not args.skip_sources:
                for extractor, metric in EXTRACTORS:
                    evaluate(store, judge, extractor, metric)
                evaluate_combined(store, judge)
            evaluate_report(store, judge)
        imagededup_pairs(out, judge)
    timing([int(n) for n in args.timing.split(",") if n], args.dim)


if __name__ == "__main__":
    main()
