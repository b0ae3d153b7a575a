"""Build speed vs bare decoding: `build --extractor hsv72` over a folder of real photos
against a loop of cv2.imread over the same files, measured in one run.

    python bench/build.py ../shared/data/corel1k [--db URL]

Prints serial (one process each) and parallel (the default worker count) figures; the
build writes into a fresh SQLite file unless --db names another store.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

from imgsearch.index.build import build, collection_images
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def imread_all(files: list[str]) -> int:
    return sum(cv2.imread(f) is not None for f in files)


def time_imread(files: list[str], workers: int) -> float:
    started = time.perf_counter()
    if workers == 1:
        imread_all(files)
    else:
        chunks = [files[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(imread_all, chunks))
    return time.perf_counter() - started


def time_build(folder: Path, workers: int, db: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = parse_database_url(db or f"sqlite:///{tmp}/bench.sqlite3")
        with open_store(url, create=True) as store:
            started = time.perf_counter()
            report = build(store, str(folder), ("hsv72",), workers=workers, batch_size=256, progress=False)
            elapsed = time.perf_counter() - started
    assert report.indexed > 0, report.summary()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--db", help="store URL (default: a fresh SQLite file); a MySQL database is emptied first")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = [str(p) for p in collection_images(args.folder)]
    cores = os.cpu_count() or 1
    print(f"{len(files)} images in {args.folder}; {cores} cores; python {sys.version.split()[0]}, OpenCV {cv2.__version__}")
    imread_all(files)  # warm the page cache for both sides
    for workers in sorted({1, cores}):
        bare = min(time_imread(files, workers) for _ in range(args.repeat))
        ours = min(time_build(args.folder, workers, args.db) for _ in range(args.repeat))
        print(f"workers={workers}: cv2.imread {bare:.2f} s ({len(files) / bare:.0f} img/s), "
              f"build hsv72 {ours:.2f} s ({len(files) / ours:.0f} img/s), ratio {ours / bare:.2f}")
    bare_serial = min(time_imread(files, 1) for _ in range(args.repeat))
    ours_default = min(time_build(args.folder, cores, args.db) for _ in range(args.repeat))
    print(f"default build ({cores} workers) vs a plain serial cv2.imread loop: ratio {ours_default / bare_serial:.2f}")


if __name__ == "__main__":
    main()
