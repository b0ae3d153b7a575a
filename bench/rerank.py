"""Query-time cost of each re-ranking, and of keeping the k-NN graph, measured in one run.

    python bench/rerank.py --db mysql://root:@127.0.0.1:3306/imgsearch_bench [-n 100000]

Uses the N synthetic 512-d vectors of bench/scan.py (loaded if absent), then
  (a) makes the exact 30-NN graph (Pearson, with DBA vectors over 3) from scratch;
  (b) adds 1,000 images and times the incremental update (their lists, and the older
      lists they enter), then removes them again;
  (c) times `query` (run_query, names included) plain and with each --rerank, the
      runs interleaved, and prints median and minimum wall times and each one's extra
      cost over plain.
The server should hold the table in memory: SET GLOBAL innodb_buffer_pool_size = 2147483648.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
from scan import DIM, EXTRACTOR, load

from imgsearch.index.graph import update_graph
from imgsearch.plan import SearchPlan
from imgsearch.query import run_query
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.graph_tables import create_graph, drop_graph, find_graph
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

METRIC = "pearson"
RERANKINGS = [None, "aqe:10", "alpha-qe:10,3", "dba-aqe:3,5", "diffusion", "k-reciprocal"]
ADDED = 1000
BLOCK_ROWS = 1024


def timed_queries(store, repeats: int) -> dict[str | None, list[float]]:
    times: dict[str | None, list[float]] = {r: [] for r in RERANKINGS}
    for _ in range(repeats):
        for rerank in RERANKINGS:
            started = time.perf_counter()
            result = run_query(store, "0.jpg", SearchPlan.of(EXTRACTOR, METRIC, k=10, block_rows=BLOCK_ROWS, rerank=rerank))
            times[rerank].append(time.perf_counter() - started)
            assert len(result.matches) == 10
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    metric = get_metric(METRIC)
    with open_store(parse_database_url(args.db), create=True) as store:
        store.ensure_schema()
        load(store, EXTRACTOR, args.n)
        row = store.find_extractor(EXTRACTOR)
        store.pack(row)
        old = find_graph(store, row, METRIC)
        if old is not None:
            drop_graph(store, row, old)
        print(f"{platform.processor() or platform.machine()}, {args.n} x {DIM} vectors, metric {METRIC}")

        graph = create_graph(store, row, METRIC, 30, dba=3)
        report = update_graph(store, graph, row, metric, BLOCK_ROWS)
        print(f"(a) graph from scratch: {report.nodes_added} lists in {report.seconds:.1f} s "
              f"({report.nodes_added / report.seconds:.0f} images/s)")

        rng = np.random.default_rng(1)
        extra = rng.random((ADDED, DIM), dtype=np.float32) ** 4
        store.write_batch([(ImageRecord(f"added/{i}.jpg".encode(), f"added-{i}.jpg".encode(), 1, 1, "0" * 64, 1, 1),
                            {row.id: v}) for i, v in enumerate(extra)])
        store.pack(row)
        report = update_graph(store, graph, row, metric, BLOCK_ROWS)
        print(f"(b) {ADDED} images added: {report.nodes_added} new lists, {report.lists_extended} older lists took "
              f"them in, {report.seconds:.1f} s (a scan of the collection per {2048} new images)")
        store.delete_images_at({img.id: path for path, img in store.stored_images().items()
                                if path.startswith(b"added/")})
        store.pack(row)
        report = update_graph(store, graph, row, metric, BLOCK_ROWS)
        print(f"    and deleted again: {report.lists_trimmed} lists that held them trimmed, "
              f"{report.lists_recomputed} recomputed (left shorter than k), {report.seconds:.1f} s")

        times = timed_queries(store, args.repeats)
        plain = statistics.median(times[None])
        print(f"(c) query time at {args.n} rows, median / min of {args.repeats}:")
        for rerank, runs in times.items():
            median = statistics.median(runs)
            print(f"    {rerank or 'plain':<15} {median * 1000:7.0f} ms / {min(runs) * 1000:5.0f} ms   "
                  f"extra {1000 * (median - plain):+6.0f} ms")
        drop_graph(store, row, graph)


if __name__ == "__main__":
    main()
