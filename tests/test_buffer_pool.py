"""A MySQL server whose InnoDB buffer pool cannot hold the packed vectors makes every query
read them from disk, slower than the per-row table: queries then scan the rows (the same
answer), and `build`, `stats` and the service's stats say so and name the setting."""
import numpy as np
import pytest
from cli_runner import imgsearch
from mysql_server import ServerProcess, fresh_database, own_server_binary

from imgsearch.scan.kernel import scan
from imgsearch.scan.metrics import get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.store import open_store
from imgsearch.store.mysql import buffer_pool_advice
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url


def test_the_advice_names_a_pool_that_holds_the_vectors() -> None:
    assert buffer_pool_advice(50 * 2**20, 128 * 2**20) is None
    advice = buffer_pool_advice(512 * 2**20, 128 * 2**20)
    assert advice is not None and "(512 MiB)" in advice and "(128 MiB)" in advice
    assert "innodb_buffer_pool_size to at least 768 MiB" in advice


def test_the_advice_counts_the_local_features_every_verified_upload_reads() -> None:
    """At 10,000 images the local features are 580 MiB: with the installed 128 MiB pool an
    upload read them from disk for 2.5 s (bench/scale.py); the pool named holds both."""
    assert buffer_pool_advice(50 * 2**20, 1024 * 2**20, local_bytes=580 * 2**20) is None
    advice = buffer_pool_advice(50 * 2**20, 128 * 2**20, local_bytes=580 * 2**20)
    assert advice is not None and "local features that verify uploads (580 MiB)" in advice
    assert "innodb_buffer_pool_size to at least 896 MiB" in advice and "per-row table" not in advice


@pytest.fixture(scope="module")
def small_pool_server():
    server = ServerProcess(own_server_binary("this test starts a server with a small buffer pool"),
                           logging=("--skip-log-bin", "--innodb-buffer-pool-chunk-size=1M"), buffer_pool="8M")
    server.start()
    yield server
    server.remove()


def test_build_and_stats_say_when_the_packed_vectors_exceed_the_buffer_pool(small_pool_server, tmp_path) -> None:
    with fresh_database(small_pool_server.url) as url:
        store = open_store(parse_database_url(url), create=True)
        row = store.register_extractor("synthetic", "{}", 256)
        rng = np.random.default_rng(1)
        for start in range(0, 12_000, 3_000):
            vectors = rng.random((3_000, 256), dtype=np.float32)
            store.write_batch([(ImageRecord(f"{start + i}.jpg".encode(), b"x.jpg", 1, 1, "0" * 64, 1, 1), {row.id: v})
                               for i, v in enumerate(vectors)])
        store.pack(row)
        store.execute("ANALYZE TABLE packed_blocks")
        assert store.cache_advice() is not None
        # a query then reads the rows, not the packed blocks, and answers the same
        assert store.scans_rows()
        query = rng.random(256, dtype=np.float32)
        metric = get_metric("pearson")
        answered = StoreScan(store, parallel=2).top_k(row, metric, query, 10)
        packed = scan(store.stream_blocks(row, 1024, packed=True), query, metric, 10)
        assert [i for i, _ in answered.ranking] == [i for i, _ in packed.ranking]
        np.testing.assert_allclose([v for _, v in answered.ranking], [v for _, v in packed.ranking], atol=1e-6)
        assert answered.rows_scanned == packed.rows_scanned == 12_000
        store.close()
        stats = imgsearch("stats", "--db", url)
        assert stats.code == 0, stats.err
        assert "do not fit in the server's InnoDB buffer pool" in stats.out and "innodb_buffer_pool_size" in stats.out


def test_a_small_index_gets_no_advice(mysql_url, tmp_path) -> None:
    store = open_store(parse_database_url(mysql_url), create=True)
    assert store.cache_advice() is None and not store.scans_rows()
    store.close()
