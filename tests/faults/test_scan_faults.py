"""Scans that lose their server, outlast a timeout, or run while a build writes."""
import itertools
import threading
import time
import uuid

import numpy as np
import pytest
from synthetic import fill, record

from imgsearch.errors import ImgsearchError
from imgsearch.scan.kernel import prefetched, scan
from imgsearch.scan.metrics import get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

DIM = 512


def slow(blocks, pause: float, after_first=None):
    for n, block in enumerate(blocks):
        yield block
        if n == 0 and after_first:
            after_first()
        time.sleep(pause)


@pytest.mark.parametrize("packed", [True, False])
def test_server_stopped_mid_scan_is_an_error(own_server, packed) -> None:
    url = parse_database_url(own_server.url + f"scan_stop_{uuid.uuid4().hex[:6]}")
    with open_store(url, create=True) as store:
        extractor = fill(store, 20_000, DIM, pack=packed)
        blocks = store.stream_blocks(extractor, 256, packed=packed)
        with pytest.raises(ImgsearchError, match="broke before its end"):
            scan(prefetched(slow(blocks, 0.0, after_first=lambda: own_server.stop(kill=True))),
                 np.ones(DIM, np.float32), get_metric("cosine"), 10)
    own_server.start()


def test_slow_consumer_completes_despite_a_short_server_timeout(own_server) -> None:
    """The server's own net_write_timeout is 1 s; the scan session raises it for itself."""
    url = parse_database_url(own_server.url + f"slow_{uuid.uuid4().hex[:6]}")
    with open_store(url, create=True) as store:
        extractor = fill(store, 20_000, DIM)
        store.execute("SET GLOBAL net_write_timeout = 1")
        try:
            result = scan(slow(store.stream_blocks(extractor, 2000, packed=False), 1.5),
                          np.ones(DIM, np.float32), get_metric("cosine"), 10)
            assert result.rows_scanned == 20_000
            store.net_write_timeout = 1  # now the session too gives up on a slow reader
            with pytest.raises(ImgsearchError, match="broke before its end"):
                scan(slow(store.stream_blocks(extractor, 2000, packed=False), 3.0),
                     np.ones(DIM, np.float32), get_metric("cosine"), 10)
        finally:
            store.execute("SET GLOBAL net_write_timeout = 60")


def expected_rankings(batches: list[np.ndarray], q: np.ndarray, k: int) -> list[list[bytes]]:
    """The exact top-k names after each prefix of committed batches."""
    rankings = []
    metric = get_metric("cosine")
    for n in range(len(batches) + 1):
        if n == 0:
            rankings.append([])
            continue
        x = np.vstack(batches[:n])
        s = metric.prepare_rows(x) @ metric.prepare_one(q)
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        rankings.append([f"{i // 50}-{i % 50}.jpg".encode() for i in order.tolist()])
    return rankings


def test_queries_during_a_build_see_whole_batches_only(db_url) -> None:
    rng = np.random.default_rng(1)
    batches = [rng.random((50, 16), dtype=np.float32) for _ in range(40)]
    q = rng.random(16, dtype=np.float32)
    expected = expected_rankings(batches, q, 10)
    url = parse_database_url(db_url)
    with open_store(url, create=True) as store:
        extractor = store.register_extractor("synthetic", "{}", 16)
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with open_store(url) as store:
                for b, batch in enumerate(batches):
                    store.write_batch([(record(f"{b}-{i}.jpg"), {extractor.id: v}) for i, v in enumerate(batch)])
                    if b % 7 == 6:
                        store.pack(extractor, pack_rows=64)
        except BaseException as e:
            failures.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = set()
    by_state: dict = {}
    connections = itertools.cycle([1, 2, 3])  # one stream, and parallel parts that must agree on a state
    with open_store(url) as reader:
        while not done.is_set() or len(seen) == 0:
            result = StoreScan(reader, 37, next(connections)).top_k(extractor, get_metric("cosine"), q, 10)
            ids = [i for i, _ in result.ranking]
            names = reader.images_by_ids(ids)
            ranking = [names[i].name for i in ids]
            assert ranking in expected, "a query saw a state no sequence of whole batches produces"
            assert by_state.setdefault(result.state, ranking) == ranking, "one change counter, two rankings"
            seen.add(expected.index(ranking))
    thread.join()
    assert not failures, failures
    assert len(seen) >= 2  # the queries really ran while the build wrote
