"""Scan speed over MySQL: our query vs raw streaming of the same rows, and vs the
original demo's per-row method, measured in one run.

    python bench/scan.py --db mysql://root:@127.0.0.1:3306/imgsearch_bench [-n 100000]

Loads N synthetic 512-d float32 vectors (as the `rgb` extractor) (kept between runs when N matches), then prints:
  (a) our query (run_query: stream, score, top-K, names) vs raw SSCursor streaming of the
      same SELECT with fetchmany and nothing else;
  (b) our query vs the demo's method (a comma-separated text column, `eval` per value,
      scipy.stats.pearsonr per row, insertion into a sorted list), the demo timed on
      DEMO_ROWS rows and extrapolated to N;
  rows/s, and the scan's peak traced memory at N and at N/10 (it must not grow with N).
"""
from __future__ import annotations

import argparse
import bisect
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np
import pymysql
from scipy.stats import pearsonr

from imgsearch.features.color import RgbHistogram
from imgsearch.query import run_query
from imgsearch.search import scan
from imgsearch.similarity import get_metric
from imgsearch.store import open_store
from imgsearch.store.base import ImageRecord
from imgsearch.store.mysql import MySqlStore
from imgsearch.store.url import parse_database_url

DIM = 512
EXTRACTOR = "rgb"  # 512-d, so synthetic rows stand in for RGB histograms and `query` takes them
DEMO_ROWS = 2000
BLOCK_ROWS = 1024  # the default [query] block_rows


def load(store: MySqlStore, extractor_name: str, n: int, seed: int = 0) -> None:
    existing = store.find_extractor(extractor_name)
    if existing is not None and store.count_features().get(existing.id, 0) == n:
        return
    if existing is not None:
        store._execute("DELETE FROM features WHERE extractor_id = ?", (existing.id,))
        store._execute("DELETE FROM extractors WHERE id = ?", (existing.id,))
        store.conn.commit()
    extractor = store.register_extractor(extractor_name, RgbHistogram().params_json(), DIM)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for start in range(0, n, 2000):
        vectors = rng.random((min(2000, n - start), DIM), dtype=np.float32) ** 4  # histogram-like skew
        items = [
            (ImageRecord(f"synthetic/{i}.jpg".encode(), f"{i}.jpg".encode(), 1, 1, "0" * 64, 1, 1), {extractor.id: v})
            for i, v in zip(range(start, start + len(vectors)), vectors)
        ]
        store.write_batch(items)
    print(f"loaded {n} rows into {extractor_name} in {time.perf_counter() - started:.1f} s")


def raw_stream_seconds(store: MySqlStore, extractor_id: int) -> float:
    url = store.url
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           database=url.database, unix_socket=url.unix_socket, cursorclass=pymysql.cursors.SSCursor)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SELECT image_id, vec FROM features WHERE extractor_id = %s", (extractor_id,))
        while cur.fetchmany(BLOCK_ROWS):
            pass
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def demo_seconds(store: MySqlStore, query: np.ndarray) -> float:
    """The original demo: vectors as comma-separated text, eval per row, pearsonr per row."""
    store._execute("DROP TABLE IF EXISTS demo_features")
    store._execute("CREATE TABLE demo_features (id INT PRIMARY KEY, name VARCHAR(64), vec LONGTEXT)")
    rng = np.random.default_rng(1)
    rows = [(i, f"{i}.jpg", ",".join(map(str, (rng.random(DIM) ** 4).tolist()))) for i in range(DEMO_ROWS)]
    store._executemany("INSERT INTO demo_features VALUES (?, ?, ?)", rows)
    store.conn.commit()
    q = query.tolist()
    started = time.perf_counter()
    cur = store.conn.cursor()
    cur.execute("SELECT name, vec FROM demo_features")
    best: list[tuple[float, str]] = []
    for name, text in cur.fetchall():
        vec = [eval(v) for v in text.split(",")]  # the demo's parsing, value by value
        r = pearsonr(q, vec)[0]
        bisect.insort(best, (-r, name))
        del best[10:]
    elapsed = time.perf_counter() - started
    cur.close()
    store._execute("DROP TABLE demo_features")
    return elapsed


def peak_scan_bytes(store: MySqlStore, extractor, query: np.ndarray, limit_rows: int) -> int:
    def limited():
        seen = 0
        for ids, vectors in store.stream_blocks(extractor, BLOCK_ROWS):
            if seen < limit_rows:
                yield ids, vectors
            seen += len(ids)  # drain the rest so the connection closes cleanly

    tracemalloc.start()
    scan(limited(), query, get_metric("pearson"), 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=os.environ.get("IMGSEARCH_BENCH_DB", "mysql://root:@127.0.0.1:3306/imgsearch_bench"))
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = parse_database_url(args.db)
    with open_store(url, create=True) as store:
        assert isinstance(store, MySqlStore), "this benchmark measures the MySQL stream"
        server = store._execute("SELECT VERSION()")[0][0]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; server {server}; "
              f"pymysql {pymysql.__version__}; N={args.n} x {DIM} float32; block_rows={BLOCK_ROWS}")
        store.set_meta("collection_root", "/nonexistent-bench-collection")
        load(store, EXTRACTOR, args.n)
        extractor = store.find_extractor(EXTRACTOR)
        query = np.frombuffer(store.vector(extractor, 1).tobytes(), np.float32)  # a stored row

        raw, ours, cpu = [], [], []
        run_query(store, "1.jpg", EXTRACTOR, "pearson", 10, BLOCK_ROWS)  # warm-up: imports, BLAS probing
        for _ in range(args.repeat):  # interleaved, so both sides see the same machine noise
            raw.append(raw_stream_seconds(store, extractor.id))
            cpu_start = os.times()
            started = time.perf_counter()
            result = run_query(store, "1.jpg", EXTRACTOR, "pearson", 10, BLOCK_ROWS)
            ours.append(time.perf_counter() - started)
            t = os.times()
            cpu.append(t.user - cpu_start.user + t.system - cpu_start.system)
        assert len(result.matches) == 10
        raw_s, ours_s = statistics.median(raw), statistics.median(ours)
        print(f"(a) raw SSCursor stream median {raw_s * 1e3:.0f} ms (min {min(raw) * 1e3:.0f}), "
              f"our query median {ours_s * 1e3:.0f} ms (min {min(ours) * 1e3:.0f}; client CPU "
              f"{statistics.median(cpu) * 1e3:.0f} ms): ratio of medians {ours_s / raw_s:.3f}, "
              f"of minima {min(ours) / min(raw):.3f}  [target <= 1.15]")
        print(f"    {args.n / ours_s:,.0f} rows/s")
        demo = demo_seconds(store, query)
        demo_full = demo * args.n / DEMO_ROWS
        print(f"(b) demo per-row method: {demo * 1e3:.0f} ms for {DEMO_ROWS} rows -> {demo_full:.0f} s for {args.n}; "
              f"ours is {demo_full / ours_s:,.0f}x faster  [target >= 300x]")
        small = peak_scan_bytes(store, extractor, query, args.n // 10)
        full = peak_scan_bytes(store, extractor, query, args.n)
        print(f"peak traced scan memory: {small / 2**20:.1f} MiB at N/10, {full / 2**20:.1f} MiB at N")


if __name__ == "__main__":
    main()
