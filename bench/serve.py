"""The resident service against the streaming `query` and a bare numpy scan, in one run.

    python bench/serve.py --db mysql://root:@127.0.0.1:3306/imgsearch_bench_serve \\
        [--sizes 100000x512,1000000x512,100000x1280] [--queries 200] [--seconds 5]

For each size N x D it loads N synthetic float32 vectors (kept between runs when N
matches) as the extractor `synthetic-D`, packs them, and prints:
  (a) server-side latency of a search (Service.search_vector: resident top-K + names),
      p50 / p99, against the same search by the packed streaming scan (what `query`
      does, without process start-up) and against a bare numpy product + top-K over the
      same prepared matrix in this process (one BLAS thread, as the service uses);
  (b) throughput over HTTP (a real uvicorn on loopback, JSON name queries) with 1, 4
      and 16 concurrent clients;
  (c) resident memory per million vectors, and the time to take in 1,000 new images
      (written and packed as a build does) against a full load of the index.
Nothing is asserted: the figures go to docs/benchmarks.md with the machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import threading
import time

import httpx
import numpy as np
import uvicorn
from threadpoolctl import threadpool_limits

from imgsearch.config import Settings
from imgsearch.plan import SearchPlan
from imgsearch.query import Request, planned, search
from imgsearch.scan.store_scan import StoreScan
from imgsearch.serve.app import create_app
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.resident import ResidentScan
from imgsearch.serve.service import Service
from imgsearch.store import open_store
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

BATCH = 5_000
ADDED = 1_000


def record(name: str) -> ImageRecord:
    return ImageRecord(name.encode(), name.encode(), 1, 1, "0" * 64, 1, 1)


def load(url, n: int, dim: int) -> str:
    name = f"synthetic-{dim}"
    with open_store(url, create=True) as store:
        row = store.find_extractor(name)
        if row is not None and store.count_features().get(row.id, 0) == n:
            return name
        if row is not None:
            with store.transaction():
                store.execute("DELETE FROM features WHERE extractor_id = ?", (row.id,))
                store.execute("DELETE FROM extractors WHERE id = ?", (row.id,))
        row = store.register_extractor(name, "{}", dim)
        rng = np.random.default_rng(dim)
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            vectors = rng.random((min(BATCH, n - start), dim), dtype=np.float32) ** 4
            store.write_batch([(record(f"{dim}/{start + i}.jpg"), {row.id: v}) for i, v in enumerate(vectors)])
        loaded = time.perf_counter() - started
        store.pack(row)
        print(f"  loaded {n} x {dim} in {loaded:.1f} s, packed in {time.perf_counter() - started - loaded:.1f} s")
    return name


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throughput(base: str, name: str, n: int, clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * clients
    failed = [0] * clients

    def client(i: int) -> None:
        rng = np.random.default_rng(i)
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop:
                body = {"name": f"{name.split('-')[1]}/{int(rng.integers(n))}.jpg", "extractor": name, "k": 10}
                if http.post("/api/search", json=body).status_code == 200:
                    counts[i] += 1
                else:
                    failed[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(failed):
        raise RuntimeError(f"{sum(failed)} requests failed")
    return sum(counts) / seconds


def bench_size(url, n: int, dim: int, queries: int, seconds: float) -> None:
    print(f"\n== {n} x {dim}")
    name = load(url, n, dim)
    started = time.perf_counter()
    service = Service(ServeConfig(url, (name,), ("pearson",), Settings(extractor=name, metric="pearson")))
    full_load = time.perf_counter() - started
    index = service.resident[name]
    assert index is not None, "over the memory budget"
    row = index.extractor
    rng = np.random.default_rng(7)
    request = SearchPlan.of(name, "pearson", k=10, rerank="none")
    resident_times, numpy_times, stream_times = [], [], []
    matrix = index.state.base.prepared["pearson"]
    for i in range(queries):
        q = rng.random(dim, dtype=np.float32) ** 4
        t = time.perf_counter()
        with service.db() as store:  # as a request does: its connection, the resident copy scanned
            search(store, Request(planned(store, request), q, None, "q"), None,
                   ResidentScan(store, service.resident, StoreScan(store)))
        resident_times.append(time.perf_counter() - t)
        prepared = (q - q.mean()) / np.linalg.norm(q - q.mean())
        t = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            scores = matrix @ prepared
            top = np.argpartition(-scores, 10)[:10]
            top[np.argsort(-scores[top])]
        numpy_times.append(time.perf_counter() - t)
        if i < 10:
            with open_store(url) as store:
                t = time.perf_counter()
                search(store, Request(planned(store, request), q, None, "q"))
                stream_times.append(time.perf_counter() - t)
    resident, bare = statistics.median(resident_times), statistics.median(numpy_times)
    print(f"(a) resident search        {percentiles(resident_times)}")
    print(f"    bare numpy scan        {percentiles(numpy_times)}")
    print(f"    streaming query        {percentiles(stream_times)}  (10 runs)")
    print(f"    resident / bare numpy {resident / bare:.2f}  [target <= 1.3]; "
          f"streaming / resident {statistics.median(stream_times) / resident:.1f}x")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    rates = {c: throughput(f"http://127.0.0.1:{port}", name, n, c, seconds) for c in (1, 4, 16)}
    server.should_exit = True
    thread.join()
    print("(b) throughput over HTTP   " + ", ".join(f"{c} clients {r:.0f} req/s" for c, r in rates.items()))
    per_million = index.state.nbytes / n * 1e6 / 2**20
    with open_store(url) as store:
        extra = rng.random((ADDED, dim), dtype=np.float32) ** 4
        store.write_batch([(record(f"{dim}/added-{time.time_ns()}-{i}.jpg"), {row.id: v}) for i, v in enumerate(extra)])
        store.pack(row)
        t = time.perf_counter()
        index.current()
        took_in = time.perf_counter() - t
        store.delete_images_at({img.id: p for p, img in store.stored_images().items()
                                if p.startswith(f"{dim}/added-".encode())})
        store.pack(row)
    print(f"(c) resident memory {per_million:.0f} MiB per million vectors (one metric); 1,000 new images taken in "
          f"{took_in * 1000:.0f} ms [target < 1 s] vs a full load {full_load:.1f} s")
    service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("IMGSEARCH_BENCH_DB",
                                                       "mysql://root:@127.0.0.1:3306/imgsearch_bench_serve"))
    parser.add_argument("--sizes", default="100000x512,1000000x512,100000x1280")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    url = parse_database_url(args.db)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {sys.version.split()[0]}; "
          f"numpy {np.__version__}; database {url.redacted()}")
    for size in args.sizes.split(","):
        n, dim = (int(x) for x in size.split("x"))
        bench_size(url, n, dim, args.queries, args.seconds)


if __name__ == "__main__":
    main()
