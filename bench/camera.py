"""Extraction at the speed of a camera roll: per-core images/s of the default descriptors on
12 MP and 24 MP JPEGs, decoded in full (the rule before) and once at a reduced DCT scale
(imgsearch.decoding), next to a bare full cv2.imread of the same files, in one run; then
the decode of a 10 MP upload both ways and the service's upload-to-answer time.

    python bench/camera.py ../shared/data/flowers102/jpg [--files 24]

The photos are real ones (the folder's) enlarged to camera sizes with sensor-like noise
(sigma 4) added, JPEG quality 90: their decoding costs what a camera's does; their
content is not a camera's.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from imgsearch.decoding import DEFAULT_DECODE_SIDE
from imgsearch.features.registry import make_extractor
from imgsearch.index.extraction import extract_all
from imgsearch.index.images import decode_bytes, decode_to_side
from imgsearch.query import photo_of_bytes, query_photo

SIZES = {"12 MP": (4000, 3000), "24 MP": (6000, 4000)}
TODAY = ("rgb", "hsv72", "cnn-spoc", "phash")  # the default descriptors before local features
DEFAULT = (*TODAY, "sift")


def camera_photos(source: Path, count: int, size: tuple[int, int], dest: Path) -> list[bytes]:
    rng = np.random.default_rng(20261127)
    out = []
    for i, path in enumerate(sorted(source.glob("*.jpg"))[:count]):
        big = cv2.resize(cv2.imread(str(path)), size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
        big = np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
        target = dest / f"{size[0]}x{size[1]}-{i:03d}.jpg"
        cv2.imwrite(str(target), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(target.read_bytes())
    return out


def per_image_ms(work, files: list[bytes]) -> float:
    work(files[0])  # warm: the network and the libraries load once
    started = time.perf_counter()
    for data in files:
        work(data)
    return (time.perf_counter() - started) * 1000 / len(files)


def full_rule(extractors: list[tuple[str, str]]):
    return lambda data: extract_all(decode_bytes(data), extractors)


def reduced_rule(extractors: list[tuple[str, str]]):
    def work(data: bytes) -> None:
        sized = decode_to_side(data, DEFAULT_DECODE_SIDE)
        extract_all(sized.pixels, extractors, sized.scale)

    return work


def specs(names: tuple[str, ...], ruled: bool) -> list[tuple[str, str]]:
    extractors = [make_extractor(n) for n in names]
    return [(e.name, e.registered_params_json() if ruled else e.params_json()) for e in extractors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, default=24)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # per core, as each build worker runs
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in SIZES.items():
            files = camera_photos(args.folder, args.files, size, Path(tmp))
            bare = per_image_ms(lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR), files)
            print(f"{label}: bare full decode {bare:.0f} ms an image ({1000 / bare:.1f} images/s per core)")
            for names in (TODAY, DEFAULT):
                before = per_image_ms(full_rule(specs(names, False)), files)
                after = per_image_ms(reduced_rule(specs(names, True)), files)
                print(f"  {' + '.join(names)}: full decode {before:.0f} ms ({1000 / before:.1f}/s), "
                      f"reduced decode {after:.0f} ms ({1000 / after:.1f}/s): {before / after:.2f}x faster; "
                      f"{after / bare:.2f}x a bare full decode (was {before / bare:.2f}x)")
        upload = camera_photos(args.folder, 8, (3648, 2736), Path(tmp))  # 10 MP, a phone's
        old = per_image_ms(lambda d: query_photo(decode_bytes(d)), upload)
        new = per_image_ms(photo_of_bytes, upload)
        print(f"10 MP upload, decode to the query photo: {old:.0f} ms -> {new:.0f} ms ({old / new:.2f}x)")
        service_latency(args.folder, upload, Path(tmp))


def service_latency(folder: Path, uploads: list[bytes], tmp: Path) -> None:
    """Upload to answer through the service (query crops, cnn-spoc, 200 photos indexed), the
    photo decoded as now (search_upload) and as before (in full, then shrunk, then the same
    search), interleaved in one run."""
    from imgsearch.config import Settings
    from imgsearch.index.build import build
    from imgsearch.plan import SearchPlan
    from imgsearch.query import photo_vector, stored_extractor
    from imgsearch.serve.config import ServeConfig
    from imgsearch.serve.service import Service
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    collection = tmp / "collection"
    collection.mkdir()
    for path in sorted(folder.glob("*.jpg"))[100:300]:
        (collection / path.name).symlink_to(path.resolve())
    url = parse_database_url(str(tmp / "index.sqlite3"))
    with open_store(url, create=True) as store:
        build(store, str(collection), ("cnn-spoc",), 2, 256, progress=False)
        row, extractor = stored_extractor(store, "cnn-spoc")
    service = Service(ServeConfig(url, ("cnn-spoc",), ("pearson",), Settings(extractor="cnn-spoc", metric="pearson")))
    plan = SearchPlan.of("cnn-spoc", "pearson", k=20, regions="crops")

    def before(data: bytes) -> None:
        photo = query_photo(decode_bytes(data))
        service.search_vector(row, photo_vector(extractor, photo.pixels, plan.photo_regions), None, "upload", plan)

    def now(data: bytes) -> None:
        service.search_upload(data, plan)

    try:
        times: dict[str, list[float]] = {"before": [], "now": []}
        now(uploads[0])
        before(uploads[0])
        for data in uploads * 3:
            for label, work in (("before", before), ("now", now)):
                started = time.perf_counter()
                work(data)
                times[label].append((time.perf_counter() - started) * 1000)
        old, new = statistics.median(times["before"]), statistics.median(times["now"])
        print(f"10 MP upload to answer through the service (query crops), p50: {old:.0f} ms -> {new:.0f} ms "
              f"({new / old:.2f}x the time)")
    finally:
        service.close()


if __name__ == "__main__":
    sys.exit(main())
