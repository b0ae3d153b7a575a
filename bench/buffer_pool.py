"""The packed scan against the per-row scan when InnoDB's buffer pool holds the vectors and
when it does not, cold and warm, beside the disk's sequential read speed, in one run.

    python bench/buffer_pool.py --db mysql://root:@127.0.0.1:3306/imgsearch_bench [-n 100000] [--pools 128,2048]

Loads N synthetic 512-d vectors as bench/scan.py does (kept between runs), then per pool
size (SET GLOBAL innodb_buffer_pool_size, a server setting: run it on a server of your
own) times `query` (which reads the rows where the packed copy does not fit the pool),
the packed scan and the per-row scan, each cold (the OS page cache dropped, as root, and the pool
emptied by a resize to its smallest and back) and warm (the median of three more), and
reads the packed table's file once cold to give the disk's sequential speed. Restores
the pool size it found.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from scan import BLOCK_ROWS, EXTRACTOR, load

from imgsearch.plan import SearchPlan
from imgsearch.query import run_query
from imgsearch.scan.kernel import prefetched, scan
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

SMALLEST_POOL_MIB = 128


def set_pool(store, mib: int) -> None:
    store.execute(f"SET GLOBAL innodb_buffer_pool_size = {mib * 2**20}")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if int(store.execute("SELECT @@innodb_buffer_pool_size")[0][0]) == mib * 2**20:
            status = store.execute("SHOW STATUS LIKE 'Innodb_buffer_pool_resize_status'")
            if not status or "ompleted" in str(status[0][1]) or not status[0][1]:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the buffer pool did not reach {mib} MiB")


def drop_os_cache() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def sequential_mb_s(path: Path) -> float:
    started = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(8 * 2**20):
            pass
    return path.stat().st_size / 2**20 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=os.environ.get("IMGSEARCH_BENCH_DB", "mysql://root:@127.0.0.1:3306/imgsearch_bench"))
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--pools", default="128,2048", help="pool sizes in MiB")
    args = parser.parse_args()
    with open_store(parse_database_url(args.db), create=True) as store:
        load(store, EXTRACTOR, args.n)
        extractor = store.find_extractor(EXTRACTOR)
        store.pack(extractor)
        found = int(store.execute("SELECT @@innodb_buffer_pool_size")[0][0]) // 2**20
        datadir = Path(store.execute("SELECT @@datadir")[0][0])
        table = datadir / store.url.database / "packed_blocks.ibd"
        packed_mib = int(store.execute("SELECT SUM(LENGTH(vecs)) FROM packed_blocks WHERE extractor_id = ?",
                                       (extractor.id,))[0][0]) / 2**20
        query = store.vectors(extractor, [1])[1]
        dropped = drop_os_cache()
        disk = sequential_mb_s(table) if table.exists() and dropped else float("nan")
        print(f"{args.n:,} x 512 vectors, packed {packed_mib:,.0f} MiB; disk sequential read of {table.name} "
              f"{disk:,.0f} MiB/s (OS cache dropped: {dropped}); pool found at {found} MiB")
        try:
            for mib in (int(p) for p in args.pools.split(",")):
                set_pool(store, mib)
                measure(parse_database_url(args.db), extractor, query, mib, args.n)
        finally:
            set_pool(store, found)


def measure(url, extractor, query, mib: int, n: int) -> None:
    """Each kind of scan cold and warm, on a new connection (its scans_rows() read afresh)."""
    metric = get_metric("pearson")
    with open_store(url) as store:
        kinds = {
            "query": lambda: run_query(store, "1.jpg", SearchPlan.of(EXTRACTOR, "pearson", k=10, block_rows=BLOCK_ROWS)),
            "packed scan": lambda: scan(prefetched(store.stream_blocks(extractor, BLOCK_ROWS, packed=True)),
                                        query, metric, 10),
            "per-row scan": lambda: scan(prefetched(store.stream_blocks(extractor, BLOCK_ROWS, packed=False)),
                                         query, metric, 10),
        }
        for name, run in kinds.items():
            set_pool(store, SMALLEST_POOL_MIB)
            set_pool(store, mib)
            drop_os_cache()
            started = time.perf_counter()
            run()
            cold = time.perf_counter() - started
            warm = []
            for _ in range(3):
                started = time.perf_counter()
                run()
                warm.append(time.perf_counter() - started)
            print(f"pool {mib:>5} MiB  {name:<13} cold {cold * 1e3:8.0f} ms  warm {statistics.median(warm) * 1e3:8.0f} ms"
                  f"  ({n * 2048 / 2**20 / statistics.median(warm):,.0f} MiB/s of vectors warm)")
        print(f"pool {mib:>5} MiB  query reads the {'rows' if store.scans_rows() else 'packed blocks'}; "
              f"advice: {store.cache_advice() or 'none'}")


if __name__ == "__main__":
    main()
