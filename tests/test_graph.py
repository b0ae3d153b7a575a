"""The stored k-NN graph equals the exact graph of the current vectors after any sequence
of adds, re-extractions, deletions and interrupted updates, and an update only computes
the lists it must."""
import itertools

import numpy as np
import pytest

from imgsearch.graph import update_graph
from imgsearch.similarity import get_metric
from imgsearch.store import open_store
from imgsearch.store.base import ImageRecord
from imgsearch.store.graph_tables import create_graph, graph_lag, neighbour_lists
from imgsearch.store.url import parse_database_url

DIM = 8
K = 5
names = itertools.count()


def record() -> ImageRecord:
    name = f"img-{next(names)}.jpg"
    return ImageRecord(name.encode(), name.encode(), 1, 1, "0" * 64, 1, 1)


def add(store, extractor, rng, n: int) -> None:
    store.write_batch([(record(), {extractor.id: rng.standard_normal(DIM)}) for _ in range(n)])


def exact_graph(store, extractor, metric, k: int) -> dict[int, tuple[list[int], np.ndarray]]:
    ids, vectors = zip(*store.stream_blocks(extractor, 1000, packed=False))
    ids, X = np.concatenate(ids), metric.prepare_rows(np.vstack(vectors))
    scores = X @ X.T
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {int(i): (ids[order[r]].tolist(), scores[r, order[r]]) for r, i in enumerate(ids)}


def check_exact(store, extractor, graph, metric) -> None:
    truth = exact_graph(store, extractor, metric, graph.k)
    stored = neighbour_lists(store, graph, sorted(truth))
    assert set(stored) == set(truth)
    for image_id, (ids, scores) in truth.items():
        assert stored[image_id].ids.tolist() == ids, image_id
        np.testing.assert_allclose(stored[image_id].scores, scores, atol=1e-5)
    assert graph_lag(store, graph, extractor) == 0


@pytest.fixture
def store(db_url):
    with open_store(parse_database_url(db_url), create=True) as s:
        s.ensure_schema()
        yield s


@pytest.mark.parametrize("metric_name", ["cosine", "pearson"])
def test_incremental_updates_stay_exact(store, metric_name):
    rng = np.random.default_rng(7)
    metric = get_metric(metric_name)
    extractor = store.register_extractor("v", "{}", DIM)
    add(store, extractor, rng, 40)
    graph = create_graph(store, extractor, metric_name, K)
    first = update_graph(store, graph, extractor, metric, block_rows=7, chunk_rows=16)
    assert first.nodes_added == 40
    check_exact(store, extractor, graph, metric)

    add(store, extractor, rng, 6)
    store.pack(extractor, block_rows=9)
    report = update_graph(store, graph, extractor, metric, block_rows=7, chunk_rows=4)
    assert report.nodes_added == 6 and report.lists_recomputed == 0  # the other 40 lists were not recomputed
    assert report.lists_extended > 0
    check_exact(store, extractor, graph, metric)

    images = sorted(store.stored_images().values(), key=lambda i: i.id)
    store.delete_images([images[0].id, images[10].id])
    store.write_batch([(ImageRecord(images[20].path, images[20].name, 1, 1, "0" * 64, 1, 1),
                        {extractor.id: rng.standard_normal(DIM)})])
    assert graph_lag(store, graph, extractor) > 0
    report = update_graph(store, graph, extractor, metric, block_rows=5)
    assert 0 < report.nodes_added < 44  # only the changed image and the lists that held a removed one
    check_exact(store, extractor, graph, metric)


def test_interrupted_update_is_completed_by_the_next(store):
    rng = np.random.default_rng(3)
    metric = get_metric("cosine")
    extractor = store.register_extractor("v", "{}", DIM)
    add(store, extractor, rng, 30)
    graph = create_graph(store, extractor, "cosine", K)
    update_graph(store, graph, extractor, metric, block_rows=8)
    add(store, extractor, rng, 25)

    def stop_after_first_chunk(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        update_graph(store, graph, extractor, metric, block_rows=8, progress=stop_after_first_chunk, chunk_rows=10)
    assert graph_lag(store, graph, extractor) == 15  # one whole chunk of 10 landed
    update_graph(store, graph, extractor, metric, block_rows=8)
    check_exact(store, extractor, graph, metric)


def test_small_collection_has_short_lists_that_fill_up(store):
    rng = np.random.default_rng(1)
    metric = get_metric("cosine")
    extractor = store.register_extractor("v", "{}", DIM)
    add(store, extractor, rng, 3)
    graph = create_graph(store, extractor, "cosine", K)
    update_graph(store, graph, extractor, metric, block_rows=8)
    assert all(len(nl.ids) == 2 for nl in neighbour_lists(store, graph, list(range(1, 100))).values())
    add(store, extractor, rng, 5)
    update_graph(store, graph, extractor, metric, block_rows=8)
    check_exact(store, extractor, graph, metric)


def test_changing_k_rebuilds_the_graph(store):
    rng = np.random.default_rng(2)
    metric = get_metric("cosine")
    extractor = store.register_extractor("v", "{}", DIM)
    add(store, extractor, rng, 12)
    graph = create_graph(store, extractor, "cosine", K)
    update_graph(store, graph, extractor, metric, block_rows=8)
    wider = create_graph(store, extractor, "cosine", K + 3)
    assert graph_lag(store, wider, extractor) == 12
    update_graph(store, wider, extractor, metric, block_rows=8)
    check_exact(store, extractor, wider, metric)
