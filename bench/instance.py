"""Phone photos of known objects, made from collection photos, searched among thousands of
others: the benchmark for instance retrieval (issue 20), generated with a fixed seed and
parameters fixed before anything was measured on it.

    python bench/instance.py make ../shared/data WORKDIR      # the photos and the collection
    python bench/instance.py measure WORKDIR [--db URL] [--settings crops,none] [--rerank verify:100,1e-6] [--service]

`make` picks 100 Corel-1k photos as the objects (10 per class) and 150 Oxford flowers as
backgrounds (kept out of the collection), then renders each object as a planar print
photographed by a phone: a random homography (tilt up to 50 degrees about a random axis,
in-plane rotation up to 30 degrees, the print covering 15-60 % of the frame), on an
upscaled background, with glare, blur, noise, brightness and contrast jitter, JPEG
quality 60-90, at 2, 4, 8 or 12 MP. The collection is every Corel-1k photo (the 100
objects and 900 distractors) and every flower photo but the backgrounds (8,039): 8,939
distractors, all the photos we have that are neither an object nor a background.

`measure` builds the collection (cnn-spoc, and sift for --rerank verify: local features
and their visual words) into an index and searches it with each query photo under each
setting, printing R@1, R@10, R@100, mAP (one right image per query: AP = 1 / its rank),
the median milliseconds of decoding and of the search, and of each stage of a verified
search (global, query features, words, reading features, matching and ransac).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

SEED = 20261127
OBJECTS_PER_CLASS = 10
BACKGROUNDS = 150
MEGAPIXELS = (2, 4, 8, 12)
MAX_TILT_DEGREES = 50
MAX_ROTATION_DEGREES = 30
COVERAGE = (0.15, 0.60)
JPEG_QUALITY = (60, 90)


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    return cv2.Rodrigues(axis / np.linalg.norm(axis) * np.radians(degrees))[0]


def print_homography(rng: np.random.Generator, object_size: tuple[int, int], frame: tuple[int, int]) -> np.ndarray:
    """The homography taking the object's pixels to where a tilted, turned print of it lands
    in the frame, covering COVERAGE of it."""
    h, w = object_size
    height, width = frame
    tilt_axis = np.array([np.cos(a := rng.uniform(0, np.pi)), np.sin(a), 0.0])
    turn = rotation(np.array([0.0, 0.0, 1.0]), rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    R = rotation(tilt_axis, rng.uniform(0, MAX_TILT_DEGREES)) @ turn
    focal = float(width)
    corners = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]], float)
    placed = corners @ R.T + np.array([0, 0, 4.0 * max(w, h)])
    projected = focal * placed[:, :2] / placed[:, 2:3]
    area = cv2.contourArea(projected.astype(np.float32))
    scale = np.sqrt(rng.uniform(*COVERAGE) * width * height / area)
    projected *= scale
    span = projected.max(axis=0) - projected.min(axis=0)
    if span[0] > width * 0.98 or span[1] > height * 0.98:  # too wide for the frame at this tilt: shrink
        projected *= 0.98 * min(width / span[0], height / span[1])
    low, high = projected.min(axis=0), projected.max(axis=0)
    offset = np.array([rng.uniform(-low[0], width - high[0]), rng.uniform(-low[1], height - high[1])])
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return cv2.getPerspectiveTransform(source, (projected + offset).astype(np.float32))


def phone_photo(rng: np.random.Generator, obj: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rendered photo and the homography of the object into it."""
    megapixels = rng.choice(MEGAPIXELS)
    width = int(np.sqrt(megapixels * 1e6 * 4 / 3))
    height = width * 3 // 4
    bh, bw = background.shape[:2]
    scale = max(width / bw, height / bh) * rng.uniform(1.0, 1.3)
    back = cv2.resize(background, (int(bw * scale) + 1, int(bh * scale) + 1), interpolation=cv2.INTER_CUBIC)
    y, x = rng.integers(0, back.shape[0] - height + 1), rng.integers(0, back.shape[1] - width + 1)
    frame = back[y : y + height, x : x + width].astype(np.float32)
    H = print_homography(rng, obj.shape[:2], (height, width))
    printed = cv2.warpPerspective(obj.astype(np.float32), H, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(obj.shape[:2], np.float32), H, (width, height), flags=cv2.INTER_LINEAR)
    frame = frame * (1 - mask[..., None]) + printed * mask[..., None]
    # glare: a soft bright spot somewhere on the frame
    gy, gx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.4) * width
    yy, xx = np.ogrid[:height, :width]
    glare = np.exp(-((yy - gy) ** 2 + (xx - gx) ** 2) / (2 * radius**2)) * rng.uniform(0, 0.5) * 255
    frame = frame + glare[..., None].astype(np.float32)
    frame = (frame - 128) * rng.uniform(0.85, 1.15) + 128 * rng.uniform(0.85, 1.15)
    sigma = rng.uniform(0, 1.5) * width / 1600
    if sigma > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    frame = frame + rng.normal(0, rng.uniform(2, 6), frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8), H


def make(data: Path, workdir: Path) -> None:
    rng = np.random.default_rng(SEED)
    corel = sorted((data / "corel1k").rglob("*.jpg"))
    flowers = sorted((data / "flowers102" / "jpg").glob("*.jpg"))
    classes = sorted({p.parent.name for p in corel})
    objects = [p for c in classes for p in rng.choice([q for q in corel if q.parent.name == c], OBJECTS_PER_CLASS,
                                                      replace=False)]
    chosen = set(rng.choice(len(flowers), BACKGROUNDS, replace=False).tolist())
    backgrounds = [flowers[i] for i in sorted(chosen)]
    collection = workdir / "collection"
    for path in corel:
        link = collection / "corel" / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path.resolve())
    for i, path in enumerate(flowers):
        if i not in chosen:
            link = collection / "flowers" / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path.resolve())
    queries = workdir / "queries"
    queries.mkdir(parents=True, exist_ok=True)
    with open(workdir / "truth.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["query", "object", "h11", "h12", "h13", "h21", "h22", "h23", "h31", "h32", "h33"])
        for i, obj_path in enumerate(objects):
            obj = cv2.imread(str(obj_path), cv2.IMREAD_COLOR)
            background = cv2.imread(str(backgrounds[rng.integers(len(backgrounds))]), cv2.IMREAD_COLOR)
            photo, H = phone_photo(rng, obj, background)
            name = f"{i:03d}.jpg"
            cv2.imwrite(str(queries / name), photo, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*JPEG_QUALITY, endpoint=True))])
            out.writerow([name, f"corel/{obj_path.parent.name}/{obj_path.name}", *(H / H[2, 2]).ravel().tolist()])
            print(f"\rmade {i + 1}/{len(objects)}", end="", file=sys.stderr)
    print(f"\n{len(objects)} queries, collection of {len(corel) + len(flowers) - BACKGROUNDS} photos in {workdir}",
          file=sys.stderr)


def measure_service(workdir: Path, url, settings: list[str], rerank: str | None) -> None:
    """The same searches as uploads to the service (its resident vectors, its caches): the
    time from the upload's bytes to the answer, decoding included."""
    from imgsearch.config import Settings
    from imgsearch.plan import SearchPlan
    from imgsearch.serve.config import ServeConfig
    from imgsearch.serve.service import Service

    truth = list(csv.DictReader(open(workdir / "truth.csv")))
    service = Service(ServeConfig(url, ("cnn-spoc",), ("pearson",), Settings(extractor="cnn-spoc", metric="pearson")))
    try:
        for setting in settings:
            plan = SearchPlan.of("cnn-spoc", "pearson", k=100, regions=setting, rerank=rerank)
            ranks, upload_ms = [], []
            for t in truth:
                data = (workdir / "queries" / t["query"]).read_bytes()
                started = time.perf_counter()
                answer = service.search_upload(data, plan)
                upload_ms.append((time.perf_counter() - started) * 1000)
                paths = [r["path"] for r in answer["results"]]
                ranks.append(paths.index(t["object"]) + 1 if t["object"] in paths else None)
            n = len(ranks)
            hits = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 10, 100)}
            label = "service: " + setting + (f" + {rerank}" if rerank else "")
            print(f"{label:<32} R@1 {hits[1]:.3f}  R@10 {hits[10]:.3f}  R@100 {hits[100]:.3f}  "
                  f"upload to answer ms (p50) {statistics.median(upload_ms):.0f} ({answer['served']})")
    finally:
        service.close()


def measure(workdir: Path, db: str, settings: list[str], rerank: str | None, service: bool = False) -> None:
    from imgsearch.index.build import build
    from imgsearch.plan import SearchPlan
    from imgsearch.query import Planned, photo_of_bytes, photo_request, search, stored_row
    from imgsearch.store import open_store
    from imgsearch.store.catalog import read_catalog
    from imgsearch.store.url import parse_database_url

    url = parse_database_url(db)
    with open_store(url, create=True) as store:
        started = time.perf_counter()
        extractors = ("cnn-spoc", "sift") if rerank and rerank.startswith("verify") else ("cnn-spoc",)
        report = build(store, str(workdir / "collection"), extractors, os.cpu_count() or 1, 256, progress=True)
        print(f"build: {report.summary()} ({time.perf_counter() - started:.0f} s)")
        truth = list(csv.DictReader(open(workdir / "truth.csv")))
        row = stored_row(store, "cnn-spoc")
        print(f"{'setting':<22} {'R@1':>6} {'R@10':>6} {'R@100':>6} {'R@300':>6} {'R@1000':>6} {'mAP':>6} "
              f"{'decode ms':>10} {'search ms':>10}")
        # the global stage alone is measured deeper: how much of it a shortlist would hold
        depth = 100 if rerank else 1000
        for setting in settings:
            plan = SearchPlan.of("cnn-spoc", "pearson", k=depth, regions=setting, rerank=rerank)
            ranks, decode_ms, search_ms, stages = [], [], [], []
            for t in truth:
                data = (workdir / "queries" / t["query"]).read_bytes()
                started = time.perf_counter()
                photo = photo_of_bytes(data)  # decoded once, at the query photo's size, as `query` does
                decoded = time.perf_counter()
                # the plan as given (no default re-ranking added): what this bench compares
                found = Planned(row, plan, read_catalog(store, "cnn-spoc", "pearson"))
                result = search(store, photo_request(found, photo, t["query"]), decoded)
                search_ms.append((time.perf_counter() - decoded) * 1000)
                stages.append(result.timings)
                decode_ms.append((decoded - started) * 1000)
                paths = [os.fsdecode(m.path) for m in result.matches]
                ranks.append(paths.index(t["object"]) + 1 if t["object"] in paths else None)
            n = len(ranks)
            hits = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 10, 100, 300, 1000)}
            mean_ap = sum(1 / r for r in ranks if r is not None) / n
            label = setting + (f" + {rerank}" if rerank else "")
            deeper = " ".join(f"{hits[k]:6.3f}" if k <= depth else f"{'-':>6}" for k in (300, 1000))
            print(f"{label:<22} {hits[1]:6.3f} {hits[10]:6.3f} {hits[100]:6.3f} {deeper} {mean_ap:6.3f} "
                  f"{statistics.median(decode_ms):10.0f} {statistics.median(search_ms):10.0f}")
            named = [name for name in stages[0]] if stages and stages[0] else []
            if named:
                print("  stage ms (p50): " + ", ".join(
                    f"{name} {statistics.median(t.get(name, 0.0) for t in stages) * 1000:.0f}" for name in named))
    if service:
        measure_service(workdir, url, settings, rerank)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make")
    made.add_argument("data", type=Path)
    made.add_argument("workdir", type=Path)
    measured = commands.add_parser("measure")
    measured.add_argument("workdir", type=Path)
    measured.add_argument("--db", default=None, help="default: WORKDIR/index.sqlite3")
    measured.add_argument("--settings", default="crops,none", help="query regions to compare")
    measured.add_argument("--rerank", default=None)
    measured.add_argument("--service", action="store_true", help="also search as uploads to the service")
    args = parser.parse_args()
    if args.command == "make":
        make(args.data, args.workdir)
    else:
        measure(args.workdir, args.db or f"sqlite:///{args.workdir / 'index.sqlite3'}", args.settings.split(","),
                args.rerank, args.service)


if __name__ == "__main__":
    main()
