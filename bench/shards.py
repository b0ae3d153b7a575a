"""Sharded builds into one MySQL/MariaDB database against one plain build of the same
folder, measured in one run.

    python bench/shards.py ../shared/data/corel1k --copies 100 --db mysql://root:@127.0.0.1:3306/ \
        [-e rgb -e hsv72] [--shards 2] [--only plain|sharded]

The collection is COPIES hard links of every photo of FOLDER (real decoding, no extra
disk), so it can reach a million files. The plain build runs with one worker per core;
the sharded one runs SHARDS `build --shard I/N` processes side by side, the cores split
between them, as N machines would run them against one primary (here they share this
machine's cores: the figure to read is the rate per core, and whether sharding costs
anything). Each writes into a fresh database; afterwards both must hold the same images
and vectors, and answer a query with the same scores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pymysql

from imgsearch.index.build import collection_images
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def camera_sized(source: Path, dest: Path) -> Path:
    """Every photo of `source` enlarged to 4,000 x 3,000 pixels (12 MP, JPEG quality 90):
    decoding costs what a camera's files cost, which Corel's 384 x 256 files do not show."""
    for path in collection_images(source):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        big = cv2.resize(cv2.imread(str(path)), (4000, 3000), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(target.with_suffix(".jpg")), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return dest


def hard_linked_collection(source: Path, copies: int, dest: Path) -> int:
    files = collection_images(source)
    for copy in range(copies):
        for path in files:
            target = dest / f"copy{copy:04d}" / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return copies * len(files)


def fresh_database(server: str, name: str) -> str:
    url = parse_database_url(server + name)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
    return server + name


def build_command(folder: Path, db: str, extractors: list[str], workers: int, shard: str | None) -> list[str]:
    command = [sys.executable, "-m", "imgsearch", "build", str(folder), "--db", db, "-j", str(workers)]
    for extractor in extractors:
        command += ["-e", extractor]
    return command + (["--shard", shard] if shard else [])


def timed_builds(commands: list[list[str]]) -> float:
    """Seconds until the last of these builds, started together, has finished."""
    started = time.perf_counter()
    runs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    for run in runs:
        out, err = run.communicate()
        if run.returncode != 0:
            raise SystemExit(f"a build failed:\n{err[-2000:]}")
        print("   ", out.strip().splitlines()[-1] if out.strip() else "(no output)")
    return time.perf_counter() - started


def contents(db: str, query: str, extractor: str) -> dict:
    with open_store(parse_database_url(db)) as store:
        # information_schema's sizes lag behind fresh writes until the tables are analysed.
        store.execute(f"ANALYZE TABLE {', '.join(sorted(store.existing_tables()))}")
        summary = {"images": store.count_images(), "vectors": sorted(store.count_features().values()),
                   "bytes": store.size_bytes()}
    found = subprocess.run([sys.executable, "-m", "imgsearch", "query", query, "--db", db, "-e", extractor, "-k", "50",
                            "--json"], capture_output=True, text=True, check=True)
    summary["scores"] = [round(r["score"], 5) for r in json.loads(found.stdout)["results"]]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--db", default="mysql://root:@127.0.0.1:3306/", help="server URL (databases made here)")
    parser.add_argument("-e", "--extractor", dest="extractors", action="append", help="default: rgb and hsv72")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--only", choices=("plain", "sharded"))
    parser.add_argument("--camera", action="store_true", help="enlarge the photos to 12 MP first")
    args = parser.parse_args()
    extractors = args.extractors or ["rgb", "hsv72"]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(dir=os.environ.get("IMGSEARCH_BENCH_TMP")) as tmp:
        folder = Path(tmp) / "photos"
        started = time.perf_counter()
        source = camera_sized(args.folder, Path(tmp) / "camera") if args.camera else args.folder
        n = hard_linked_collection(source, args.copies, folder)
        print(f"{n:,} files ({args.copies} hard-linked copies of {args.folder}{', 12 MP' if args.camera else ''}) "
              f"in {time.perf_counter() - started:.0f} s; {cores} cores; extractors {', '.join(extractors)}")
        query = str(next(iter(collection_images(source))))
        results = {}
        if args.only != "sharded":
            db = fresh_database(args.db, "imgsearch_bench_plain")
            seconds = timed_builds([build_command(folder, db, extractors, cores, None)])
            results["plain"] = seconds, contents(db, query, extractors[0])
            print(f"plain build, {cores} workers: {seconds:.0f} s, {n / seconds:.0f} images/s, "
                  f"{n / seconds / cores:.0f} images/s per core")
        if args.only != "plain":
            db = fresh_database(args.db, "imgsearch_bench_sharded")
            each = max(1, cores // args.shards)
            seconds = timed_builds([build_command(folder, db, extractors, each, f"{i}/{args.shards}")
                                    for i in range(1, args.shards + 1)])
            results["sharded"] = seconds, contents(db, query, extractors[0])
            used = min(cores, each * args.shards)
            print(f"{args.shards} shard builds side by side, {each} worker(s) each: {seconds:.0f} s, "
                  f"{n / seconds:.0f} images/s, {n / seconds / used:.0f} images/s per core")
        for name, (_, found) in results.items():
            print(f"{name}: {found['images']:,} images, vectors per extractor {found['vectors']}, "
                  f"{found['bytes'] / 2**20:,.0f} MiB in the database")
            assert found["images"] == n, f"{name} holds {found['images']} images, not {n}"
        if len(results) == 2:
            plain, sharded = results["plain"], results["sharded"]
            assert plain[1]["vectors"] == sharded[1]["vectors"] and plain[1]["scores"] == sharded[1]["scores"]
            print(f"same images, vectors and scores; sharded / plain time: {sharded[0] / plain[0]:.2f}")


if __name__ == "__main__":
    main()
