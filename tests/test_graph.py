"""The stored k-NN graph equals the exact graph of the current vectors after any sequence
of adds, re-extractions, deletions and interrupted updates, and an update only computes
the lists it must."""
import itertools

import numpy as np
import pytest
from synthetic import delete_images, record

from imgsearch.index.graph import update_graph
from imgsearch.plan import SearchPlan
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.graph_tables import create_graph, dba_extractor, find_graph, graph_lag, list_capacity, neighbour_lists
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

DIM = 8
K = 5
names = itertools.count()


def next_record() -> ImageRecord:
    return record(f"img-{next(names)}.jpg")


def add(store, extractor, rng, n: int) -> None:
    store.write_batch([(next_record(), {extractor.id: rng.standard_normal(DIM)}) for _ in range(n)])


def exact_order(store, extractor, metric) -> dict[int, tuple[list[int], np.ndarray]]:
    """Every image's other images, most similar first, with their scores."""
    ids, vectors = zip(*store.stream_blocks(extractor, 1000, packed=False))
    ids, X = np.concatenate(ids), metric.prepare_rows(np.vstack(vectors))
    scores = X @ X.T
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :-1]
    return {int(i): (ids[order[r]].tolist(), scores[r, order[r]]) for r, i in enumerate(ids)}


def check_exact(store, extractor, graph, metric, partial: bool = False) -> None:
    """Each stored list is exactly the top of the collection, at least k long (or all);
    every image has one unless `partial` (an update was cut short)."""
    truth = exact_order(store, extractor, metric)
    stored = neighbour_lists(store, graph, sorted(truth))
    assert set(stored) <= set(truth) if partial else set(stored) == set(truth)
    truth = {i: truth[i] for i in stored}
    for image_id, (ids, scores) in truth.items():
        n = len(stored[image_id].ids)
        assert min(graph.k, len(ids)) <= n <= list_capacity(graph)
        assert stored[image_id].ids.tolist() == ids[:n], image_id
        np.testing.assert_allclose(stored[image_id].scores, scores[:n], atol=1e-5)
    if not partial:
        assert graph_lag(store, graph, extractor) == 0


def check_exact_up_to_ties(store, extractor, graph, metric) -> None:
    """check_exact for collections with exact duplicates: every stored list holds the true
    top scores, each neighbour with its own true score. Which of several tied images comes
    first may differ by one float rounding between computations (and between machines'
    BLAS kernels), so ids are checked through their scores."""
    truth = exact_order(store, extractor, metric)
    stored = neighbour_lists(store, graph, sorted(truth))
    assert set(stored) == set(truth) and graph_lag(store, graph, extractor) == 0
    for image_id, (ids, scores) in truth.items():
        held = stored[image_id]
        assert min(graph.k, len(ids)) <= len(held.ids) <= list_capacity(graph)
        np.testing.assert_allclose(held.scores, scores[: len(held.ids)], atol=1e-5)
        own_score = dict(zip(ids, scores))
        np.testing.assert_allclose(held.scores, [own_score[i] for i in held.ids.tolist()], atol=1e-5)


@pytest.fixture
def store(db_url):
    with open_store(parse_database_url(db_url), create=True) as s:
        s.ensure_schema()
        yield s


def graphed(store, seed: int, n: int, metric_name: str = "cosine", dba: int = 0, **update):
    """n random vectors of extractor "v" and their graph of K neighbours, made."""
    rng = np.random.default_rng(seed)
    metric = get_metric(metric_name)
    extractor = store.register_extractor("v", "{}", DIM)
    add(store, extractor, rng, n)
    graph = create_graph(store, extractor, metric_name, K, dba)
    report = update_graph(store, graph, extractor, metric, **{"block_rows": 8, **update})
    return rng, metric, extractor, graph, report


@pytest.mark.parametrize("metric_name", ["cosine", "pearson"])
def test_incremental_updates_stay_exact(store, metric_name):
    rng, metric, extractor, graph, first = graphed(store, 7, 40, metric_name, block_rows=7, chunk_rows=16)
    assert first.nodes_added == 40
    check_exact(store, extractor, graph, metric)

    add(store, extractor, rng, 6)
    store.pack(extractor, pack_rows=9)
    report = update_graph(store, graph, extractor, metric, block_rows=7, chunk_rows=4)
    assert report.nodes_added == 6 and report.lists_recomputed == 0  # the other 40 lists were not recomputed
    assert report.lists_extended > 0
    check_exact(store, extractor, graph, metric)

    images = sorted(store.stored_images().values(), key=lambda i: i.id)
    delete_images(store, [images[0].id, images[10].id])
    store.write_batch([(ImageRecord(images[20].path, images[20].name, 1, 1, "0" * 64, 1, 1),
                        {extractor.id: rng.standard_normal(DIM)})])
    assert graph_lag(store, graph, extractor) > 0
    report = update_graph(store, graph, extractor, metric, block_rows=5)
    assert report.lists_trimmed > 0 and report.nodes_added == 1  # the changed image; trimmed lists stay exact
    check_exact(store, extractor, graph, metric)

    # Deleting more members than a list's slack leaves it shorter than k: recomputed.
    victim = sorted(store.stored_images().values(), key=lambda i: i.id)[5].id
    held = neighbour_lists(store, graph, [victim])[victim].ids[:6].tolist()
    delete_images(store, held)
    report = update_graph(store, graph, extractor, metric, block_rows=5)
    assert report.lists_recomputed >= 1 and victim in neighbour_lists(store, graph, [victim])
    check_exact(store, extractor, graph, metric)


def test_interrupted_update_is_completed_by_the_next(store):
    rng, metric, extractor, graph, _ = graphed(store, 3, 30)
    add(store, extractor, rng, 25)

    def stop_after_first_chunk(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        update_graph(store, graph, extractor, metric, block_rows=8, progress=stop_after_first_chunk, chunk_rows=10)
    assert graph_lag(store, graph, extractor) == 15  # one whole chunk of 10 landed
    update_graph(store, graph, extractor, metric, block_rows=8)
    check_exact(store, extractor, graph, metric)


def test_small_collection_has_short_lists_that_fill_up(store):
    rng, metric, extractor, graph, _ = graphed(store, 1, 3)
    assert all(len(nl.ids) == 2 and nl.complete for nl in neighbour_lists(store, graph, list(range(1, 100))).values())
    add(store, extractor, rng, 5)
    update_graph(store, graph, extractor, metric, block_rows=8)
    check_exact(store, extractor, graph, metric)


def test_changing_k_rebuilds_the_graph(store):
    _, metric, extractor, graph, _ = graphed(store, 2, 12)
    wider = create_graph(store, extractor, "cosine", K + 3)
    assert graph_lag(store, wider, extractor) == 12
    update_graph(store, wider, extractor, metric, block_rows=8)
    check_exact(store, extractor, wider, metric)


@pytest.mark.parametrize("metric_name", ["cosine", "bhattacharyya"])
@pytest.mark.parametrize("spec", ["diffusion:5,0.99,3,4,1000", "diffusion:5,0.9,1,3,12",
                                  "k-reciprocal:5,3,0.3,1000", "k-reciprocal:5,3,0.3,12"])
def test_query_time_graph_reranking_equals_what_eval_measures(store, spec, metric_name):
    """`query --rerank` on the stored graph ranks as the in-memory function eval scores,
    with the whole collection as shortlist and with a short one."""
    from imgsearch.features.color import RgbHistogram
    from imgsearch.query import run_query
    from imgsearch.rerank.registry import parse_reranking

    rng = np.random.default_rng(4)
    centres = rng.random((4, 512)) ** 4
    X = (centres[np.arange(48) % 4] + rng.random((48, 512)) ** 4 * 0.8).astype(np.float32)
    metric = get_metric(metric_name)
    row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
    store.write_batch([(record(f"{i}.jpg"), {row.id: v})
                       for i, v in enumerate(X)])
    store.pack(row, 16)
    update_graph(store, create_graph(store, row, metric_name, 6), row, metric, block_rows=16)
    (parsed,) = parse_reranking(spec).stages
    expected = parsed.reranking.method.function(*[metric.prepare_rows(X).astype(np.float64)] * 2, **parsed.values)
    for query in (0, 5):
        result = run_query(store, f"{query}.jpg", SearchPlan.of("rgb", metric_name, k=10, block_rows=7, rerank=spec))
        scores = np.delete(expected[query], query)
        others = np.delete(np.arange(48), query)
        assert [m.name for m in result.matches] == [f"{i}.jpg".encode() for i in others[np.argsort(-scores)[:10]]]
        np.testing.assert_allclose([m.score for m in result.matches], np.sort(scores)[::-1][:10], atol=1e-4)


def test_graph_reranking_needs_a_graph_and_says_how_to_make_one(store):
    from imgsearch.errors import ImgsearchError
    from imgsearch.features.color import RgbHistogram
    from imgsearch.query import run_query

    row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
    store.write_batch([(next_record(), {row.id: np.random.default_rng(0).random(512)})])
    name = next(iter(store.stored_images())).decode()
    with pytest.raises(ImgsearchError, match="imgsearch graph -e rgb -m cosine"):
        run_query(store, name, SearchPlan.of("rgb", "cosine", k=5, block_rows=7, rerank="diffusion"))


def test_cli_graph_is_made_once_then_kept_up_to_date_by_build(db_url, tmp_path):
    import cv2
    from cli_runner import imgsearch
    from photos import photo, variant, write_collection
    from served import serving

    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "hsv72").code == 0
    run = imgsearch("graph", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya", "-n", "4")
    assert run.code == 0, run.err
    assert "k=4: 9 lists computed" in run.out

    cv2.imwrite(str(folder / "a" / "chelsea-copy.jpg"), variant(photo("chelsea.png")))
    run = imgsearch("build", folder, "--db", db_url, "-e", "hsv72")
    assert run.code == 0, run.err
    assert "graph hsv72/bhattacharyya k=4: 1 lists computed" in run.out
    plain = imgsearch("query", "chelsea.jpg", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya", "--json").json()
    for spec in ("diffusion:4,0.99,3,3", "k-reciprocal:4,2,0.3"):
        run = imgsearch("query", "chelsea.jpg", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya",
                        "--rerank", spec, "--json")
        assert run.code == 0 and run.err == "", run.err
        names = [r["name"] for r in run.json()["results"]]
        assert "chelsea-copy.jpg" in names[:3] and len(names) == 9 and "chelsea.jpg" not in names, names
        # the state and rows of the scan that made the shortlist, as a plain query reports them
        assert (run.json()["state"], run.json()["rows_scanned"]) == (plain["state"], plain["rows_scanned"]) == (
            plain["state"], 10)
    with serving(db_url, tmp_path, "-m", "bhattacharyya") as served, served.client() as http:
        request = {"name": "chelsea.jpg", "extractor": "hsv72", "metric": "bhattacharyya", "k": 3}
        answers = [http.post("/api/search", json={**request, **extra}).json()
                   for extra in ({}, {"rerank": "diffusion:4,0.99,3,3"}, {"rerank": "k-reciprocal:4,2,0.3"})]
        assert {(a["state"], a["rows_scanned"], a["total"]) for a in answers} == {(plain["state"], 10, 9)}, answers

    shown = imgsearch("show", "chelsea.jpg", "--db", db_url, "-e", "hsv72").out
    assert "graph hsv72/bhattacharyya: 8 nearest" in shown and "chelsea-copy.jpg" in shown

    (folder / "a" / "chelsea-copy.jpg").unlink()
    run = imgsearch("query", "chelsea.jpg", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya", "--rerank",
                    "diffusion:4")
    assert run.code == 0
    run = imgsearch("build", folder, "--db", db_url, "-e", "hsv72")
    assert "removed 1" in run.out and "after removals" in run.out
    run = imgsearch("query", "chelsea.jpg", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya", "--rerank",
                    "diffusion:4,0.99,3,3", "--json")
    assert run.code == 0 and run.err == "" and len(run.json()["results"]) == 8
    assert imgsearch("graph", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya", "--drop").code == 0
    run = imgsearch("query", "chelsea.jpg", "--db", db_url, "-e", "hsv72", "-m", "bhattacharyya", "--rerank",
                    "k-reciprocal")
    assert run.code == 1 and "imgsearch graph -e hsv72 -m bhattacharyya" in run.err


def stored_vectors(store, extractor) -> dict[int, np.ndarray]:
    return {int(i): v for ids, X in store.stream_blocks(extractor, 64) for i, v in zip(ids, X)}


def test_augmented_vectors_follow_every_change(store):
    from imgsearch.rerank.maths import dba
    from imgsearch.store.graph_tables import dba_extractor

    rng, metric, extractor, graph, _ = graphed(store, 11, 25, "pearson", dba=2)
    derived = dba_extractor(store, extractor, graph)

    def check() -> None:
        current = stored_vectors(store, extractor)
        ids = sorted(current)
        expected = dba(metric.prepare_rows(np.vstack([current[i] for i in ids])).astype(np.float64), 2)
        augmented = stored_vectors(store, derived)
        assert sorted(augmented) == ids
        np.testing.assert_allclose(np.vstack([augmented[i] for i in ids]), expected, atol=1e-5)
        assert store.packed_counts(derived)[1:] == (0, 0)  # packed after the update

    check()
    add(store, extractor, rng, 7)
    images = sorted(store.stored_images().values(), key=lambda i: i.id)
    delete_images(store, [images[3].id])
    store.write_batch([(ImageRecord(images[8].path, images[8].name, 1, 1, "0" * 64, 1, 1),
                        {extractor.id: rng.standard_normal(DIM)})])
    update_graph(store, graph, extractor, metric, block_rows=8, chunk_rows=3)
    check()


def test_query_time_dba_aqe_scans_the_stored_augmented_vectors(store):
    from imgsearch.errors import ImgsearchError
    from imgsearch.features.color import RgbHistogram
    from imgsearch.query import run_query
    from imgsearch.rerank.maths import dba

    rng = np.random.default_rng(12)
    X = (rng.random((40, 512)) ** 3).astype(np.float32)
    metric = get_metric("bhattacharyya")
    row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
    store.write_batch([(record(f"{i}.jpg"), {row.id: v})
                       for i, v in enumerate(X)])
    with pytest.raises(ImgsearchError, match="--dba 2"):
        run_query(store, "0.jpg", SearchPlan.of("rgb", "bhattacharyya", k=8, block_rows=7, rerank="dba-aqe:2,4"))
    with pytest.raises(ImgsearchError, match="cannot follow a learned map"):
        run_query(store, "0.jpg", SearchPlan.of("rgb", "bhattacharyya", k=8, block_rows=7, rerank="dba-aqe:2,4", whiten="any"))
    update_graph(store, create_graph(store, row, "bhattacharyya", 4, dba=2), row, metric, block_rows=16)
    result = run_query(store, "0.jpg", SearchPlan.of("rgb", "bhattacharyya", k=8, block_rows=7,
                                                     rerank="dba-aqe:2,4,0"))  # alpha 0: the plain AQE below
    P = metric.prepare_rows(X).astype(np.float64)
    D = dba(P, 2)
    top = np.argsort(-(D @ P[0]), kind="stable")[:4]  # its own augmented vector among them, as in eval
    expanded = P[0] + D[top].sum(axis=0)
    scores = D[1:] @ (expanded / np.linalg.norm(expanded))
    assert [m.name for m in result.matches] == [f"{i + 1}.jpg".encode() for i in np.argsort(-scores)[:8]]
    np.testing.assert_allclose([m.score for m in result.matches], np.sort(scores)[::-1][:8], atol=1e-5)


def test_query_says_when_the_graph_lags_behind(store):
    from imgsearch.features.color import RgbHistogram
    from imgsearch.query import run_query

    rng = np.random.default_rng(13)
    row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
    metric = get_metric("cosine")

    def add_images(start: int, n: int) -> None:
        store.write_batch([(record(f"{i}.jpg"),
                            {row.id: rng.random(512)}) for i in range(start, start + n)])

    add_images(0, 12)
    graph = create_graph(store, row, "cosine", 4)
    update_graph(store, graph, row, metric, block_rows=8)
    diffusion = SearchPlan.of("rgb", "cosine", k=5, block_rows=8, rerank="diffusion:4")
    k_reciprocal = SearchPlan.of("rgb", "cosine", k=5, block_rows=8, rerank="k-reciprocal:4")
    assert run_query(store, "0.jpg", diffusion).notes == []
    add_images(12, 2)
    assert "graph -e rgb -m cosine" in run_query(store, "0.jpg", diffusion).notes[0]
    update_graph(store, graph, row, metric, block_rows=8)
    assert run_query(store, "0.jpg", k_reciprocal).notes == []
    delete_images(store, [store.find_images(b"3.jpg")[0].id])
    assert run_query(store, "0.jpg", k_reciprocal).notes


def test_lists_holding_pages_through_every_list(store):
    from imgsearch.store.graph_tables import lists_holding

    _, _, extractor, graph, _ = graphed(store, 21, 30)
    everything = neighbour_lists(store, graph, list(range(1, 1000)))
    target = next(iter(everything))
    expected = {i for i, nl in everything.items() if target in nl.ids.tolist()}
    assert expected and set(lists_holding(store, graph, {target}, page=4)) == expected


def test_an_update_never_clears_a_removal_marked_while_it_ran(store):
    """A build that changes an image again while an update handles its first change
    leaves its own mark: the next update sees it."""
    from imgsearch.store.graph_tables import removed_images, save_lists

    rng, metric, extractor, graph, _ = graphed(store, 17, 12)
    image = sorted(store.stored_images().values(), key=lambda i: i.id)[4]

    def change() -> None:
        store.write_batch([(ImageRecord(image.path, image.name, 1, 1, "0" * 64, 1, 1),
                            {extractor.id: rng.standard_normal(DIM)})])

    change()
    seen = removed_images(store, graph)
    change()  # while the update runs
    save_lists(store, graph, {}, forgotten={image.id}, removed=seen)
    assert set(removed_images(store, graph)) == {image.id}
    update_graph(store, graph, extractor, metric, block_rows=8)
    assert removed_images(store, graph) == {}
    check_exact(store, extractor, graph, metric)


def test_augmented_vectors_are_packed_by_pack_rows_not_by_the_read_block_size(db_url, tmp_path):
    """`graph` and `build` read the collection in blocks of [query] block_rows and pack
    the graph's augmented vectors [build] pack_rows a row: two settings, never swapped."""
    from cli_runner import imgsearch
    from photos import write_collection

    folder = tmp_path / "photos"
    write_collection(folder)
    sizes = {"IMGSEARCH_PACK_ROWS": "3", "IMGSEARCH_BLOCK_ROWS": "2"}

    def augmented_block_sizes() -> list[int]:
        with open_store(parse_database_url(db_url)) as store:
            row = store.find_extractor("rgb")
            derived = dba_extractor(store, row, find_graph(store, row, "cosine"))
            return [int(n) for (n,) in store.execute("SELECT n FROM packed_blocks WHERE extractor_id = ?",
                                                      (derived.id,))]

    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb", env=sizes).code == 0
    made = imgsearch("graph", "--db", db_url, "-e", "rgb", "-m", "cosine", "-n", "3", "--dba", "2", env=sizes)
    assert made.code == 0, made.err
    assert sorted(augmented_block_sizes()) == [3, 3, 3]
    write_collection(folder / "more", ("coffee.png", "rocket.jpg", "chelsea.png", "color.png"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb", env=sizes).code == 0
    after = augmented_block_sizes()
    assert sum(after) == 13 and max(after) == 3, after


def test_augmentation_ignores_unrelated_neighbours_and_the_default_keeps_a_copy_first() -> None:
    """Similarity-weighted DBA and alpha-QE: among photos unlike each other (Pearson about
    0) every vector stays its own, and a copy of one of them is still found first."""
    from imgsearch.rerank.maths import dba, dba_aqe

    rng = np.random.default_rng(3)
    X = np.linalg.qr(rng.standard_normal((64, 6)))[0].T  # six orthogonal unit vectors
    np.testing.assert_allclose(dba(X, 3), X, atol=1e-6)
    scores = dba_aqe(X[[4]] + 0.05 * rng.standard_normal((1, 64)) / 8, X)
    assert int(np.argmax(scores)) == 4
