"""`imgsearch graph` killed with SIGKILL at several points, then rerun: whatever it
committed is exact (lists and their augmented vectors), and the rerun completes it."""
import signal

import numpy as np
import pymysql
import pytest
from integrity import run_cli
from synthetic import record
from test_graph import check_exact, stored_vectors

from imgsearch.features.color import RgbHistogram
from imgsearch.rerank.maths import dba
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.graph_tables import dba_extractor, find_graph, graph_lag
from imgsearch.store.url import parse_database_url

N = 4500  # three chunks of new lists (2,048 each)
GRAPH_ARGS = ["-e", "rgb", "-m", "cosine", "-n", "8", "--dba", "3"]


def lists_committed(db_url: str) -> int:
    url = parse_database_url(db_url)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           database=url.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM graph_nodes")
            return int(cur.fetchone()[0])
    except pymysql.err.MySQLError:
        return 0  # the tables are not made yet
    finally:
        conn.close()


def check_augmented(store, extractor, graph, metric) -> None:
    current = stored_vectors(store, extractor)
    ids = sorted(current)
    expected = dict(zip(ids, dba(metric.prepare_rows(np.vstack([current[i] for i in ids])).astype(np.float64), 3)))
    for image_id, vector in stored_vectors(store, dba_extractor(store, extractor, graph)).items():
        np.testing.assert_allclose(vector, expected[image_id], atol=1e-5)


@pytest.mark.parametrize("kill_at", [0.0, 0.3, 0.6])
def test_kill_9_during_graph_update_then_rerun(mysql_url, kill_at) -> None:
    rng = np.random.default_rng(5)
    with open_store(parse_database_url(mysql_url), create=True) as store:
        store.ensure_schema()
        row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
        vectors = rng.random((N, 512), dtype=np.float32) ** 4
        for start in range(0, N, 500):
            store.write_batch([(record(f"{i}.jpg"),
                                {row.id: vectors[i]}) for i in range(start, start + 500)])
        store.pack(row)

    code, _ = run_cli(["graph", "--db", mysql_url, *GRAPH_ARGS],
                      kill_when=lambda: lists_committed(mysql_url) >= kill_at * N)
    assert code == -signal.SIGKILL, "the update ended before the kill"
    metric = get_metric("cosine")
    with open_store(parse_database_url(mysql_url)) as store:
        row = store.find_extractor("rgb")
        graph = find_graph(store, row, "cosine")
        assert graph is not None or kill_at == 0
        if graph is not None:
            assert lists_committed(mysql_url) >= kill_at * N
            check_exact(store, row, graph, metric, partial=True)
            check_augmented(store, row, graph, metric)
            assert graph_lag(store, graph, row) > 0

    code, err = run_cli(["graph", "--db", mysql_url, *GRAPH_ARGS])
    assert code == 0, err
    with open_store(parse_database_url(mysql_url)) as store:
        row = store.find_extractor("rgb")
        graph = find_graph(store, row, "cosine")
        check_exact(store, row, graph, metric)
        check_augmented(store, row, graph, metric)
        assert len(stored_vectors(store, dba_extractor(store, row, graph))) == N
