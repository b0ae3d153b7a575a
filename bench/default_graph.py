"""What keeping the default re-ranking's graph costs a build, by collection size (issue 30),
and what the default query costs beside today's, measured in one run.

    python bench/default_graph.py WORKDIR [--sizes 1000,10000,100000]

For each size N: a fresh SQLite index of N synthetic cnn-spoc vectors (1,280-d) (clustered: 1 centre per
50 images, as photos have neighbours), then
  (a) the default graph made from scratch, as a first default build makes it (keep_default_graph
      + update_graphs: the exact 3-NN lists under Pearson and their DBA vectors), its seconds
      and its bytes (SQLite dbstat: graph lists, augmented vectors and their packed blocks)
      beside the vectors' own;
  (b) 1 % more images added, the incremental update as the next build runs it;
  (c) the query by name: plain (today's global stage), dba-aqe (the default's first stage;
      verify after it costs what it costs today), streamed (query) and resident (Service),
      median of 5, interleaved.
The vectors are synthetic: the figures are the graph's arithmetic and storage, not quality.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from imgsearch.features.registry import make_extractor
from imgsearch.index.graph import keep_default_graph, update_graphs
from imgsearch.plan import SearchPlan
from imgsearch.query import run_query
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.service import Service
from imgsearch.store import open_store
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

EXTRACTOR, METRIC = "cnn-spoc", "pearson"  # the default query's; its vectors here are synthetic


def write(store, row, start: int, n: int, dim: int, rng: np.random.Generator) -> None:
    centres = rng.random((max(1, n // 50), dim), dtype=np.float32) ** 4
    for at in range(0, n, 2000):
        m = min(2000, n - at)
        vectors = centres[rng.integers(0, len(centres), m)] + 0.5 * rng.random((m, dim), dtype=np.float32) ** 4
        store.write_batch([(ImageRecord(f"{i}.jpg".encode(), f"{i}.jpg".encode(), 1, 1, "0" * 64, 1, 1), {row.id: v})
                           for i, v in zip(range(start + at, start + at + m), vectors)])


def table_bytes(store) -> dict[str, int]:
    return dict(store.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{platform.processor() or platform.machine()}, SQLite, synthetic {EXTRACTOR} vectors, {METRIC}")
    print(f"{'N':>7} {'graph s':>8} {'img/s':>7} {'+1% s':>6} {'vectors MiB':>12} {'graph MiB':>10} "
          f"{'plain ms':>9} {'dba-aqe ms':>11} {'resident plain':>15} {'resident dba-aqe':>17}")
    for n in (int(s) for s in args.sizes.split(",")):
        path = args.workdir / f"graph-{n}.sqlite3"
        path.unlink(missing_ok=True)
        url = parse_database_url(f"sqlite:///{path}")
        rng = np.random.default_rng(n)
        with open_store(url, create=True) as store:
            extractor = make_extractor(EXTRACTOR)
            row = store.register_extractor(EXTRACTOR, extractor.registered_params_json(), extractor.dim)
            write(store, row, 0, n, row.dim, rng)
            store.pack(row)
            before = table_bytes(store)
            started = time.perf_counter()
            keep_default_graph(store, row, METRIC)
            update_graphs(store, row, 1024, 16384, progress=False)
            for derived in (e for e in store.extractors() if e.derived):
                store.pack(derived)
            made = time.perf_counter() - started
            after = table_bytes(store)
            vectors = sum(before.values())
            graph = sum(after.values()) - vectors
            write(store, row, n, max(1, n // 100), row.dim, rng)
            store.pack(row)
            started = time.perf_counter()
            update_graphs(store, row, 1024, 16384, progress=False)
            grown = time.perf_counter() - started
            times: dict[str, list[float]] = {"plain": [], "dba-aqe": []}
            for _ in range(5):
                for rerank in ("none", "dba-aqe"):
                    started = time.perf_counter()
                    run_query(store, "7.jpg", SearchPlan.of(EXTRACTOR, METRIC, k=10, rerank=rerank))
                    times["plain" if rerank == "none" else rerank].append(time.perf_counter() - started)
        service = Service(ServeConfig(url=url, metrics=(METRIC,), extractors=(EXTRACTOR,)))
        resident: dict[str, list[float]] = {"plain": [], "dba-aqe": []}
        try:
            for _ in range(5):
                for rerank in ("none", "dba-aqe"):
                    started = time.perf_counter()
                    service.search_name("7.jpg", SearchPlan.of(EXTRACTOR, METRIC, k=10, rerank=rerank))
                    resident["plain" if rerank == "none" else rerank].append(time.perf_counter() - started)
        finally:
            service.close()
        ms = {key: statistics.median(v) * 1000 for key, v in times.items()}
        rms = {key: statistics.median(v) * 1000 for key, v in resident.items()}
        print(f"{n:>7} {made:8.1f} {n / made:7.0f} {grown:6.1f} {vectors / 2**20:12.1f} {graph / 2**20:10.1f} "
              f"{ms['plain']:9.0f} {ms['dba-aqe']:11.0f} {rms['plain']:15.0f} {rms['dba-aqe']:17.0f}", flush=True)


if __name__ == "__main__":
    main()
