"""The default pipeline end to end: a default build keeps the graph the default re-ranking
reads; `query` with no flags runs dba-aqe+verify, ranks exactly as `eval` with no flags
measures it (evaluate.reranked_scores on the same vectors and local features), and the
service answers the same, from memory; a dropped graph stays dropped."""
from __future__ import annotations

import numpy as np
from cli_runner import imgsearch
from photos import write_collection
from served import serving

from imgsearch.evaluate import reranked_scores
from imgsearch.rerank.registry import DEFAULT_RERANK, parse_reranking
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.graph_tables import find_graph
from imgsearch.store.url import parse_database_url


def test_a_default_build_keeps_the_graph_and_query_runs_what_eval_measures(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder)
    built = imgsearch("build", folder, "--db", db_url)
    assert built.code == 0, built.err
    assert "graph cnn-spoc/pearson k=3" in built.out
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("cnn-spoc")
        local = store.find_extractor("sift")
        graph = find_graph(store, row, "pearson")
        assert graph is not None and (graph.k, graph.dba) == (3, 3)
        images = sorted(store.stored_images().values(), key=lambda image: image.id)
        ids = [image.id for image in images]
        vectors = store.vectors(row, ids)
        features = store.local_features(local, ids)
    X = get_metric("pearson").prepare_rows(np.vstack([vectors[i] for i in ids])).astype(np.float64)
    expected = reranked_scores(X, parse_reranking(DEFAULT_RERANK),
                               [(features[i], (image.height, image.width)) for i, image in zip(ids, images)])
    for q in (0, 4):
        name = images[q].path.decode()
        answer = imgsearch("query", name, "--db", db_url, "-k", "5", "--json").json()
        assert answer["rerank"] == "dba-aqe:3+verify"
        others = [i for i in np.argsort(-expected[q], kind="stable") if i != q]
        assert [r["id"] for r in answer["results"]] == [ids[i] for i in others[:5]]
    with serving(db_url, tmp_path) as served, served.client() as http:
        served_answer = http.post("/api/search", json={"name": name, "k": 5}).json()
    assert served_answer["served"] == "resident" and served_answer["rerank"] == "dba-aqe:3+verify"
    assert [r["id"] for r in served_answer["results"]] == [r["id"] for r in answer["results"]]

    assert imgsearch("graph", "--db", db_url, "--drop").code == 0
    assert imgsearch("build", folder, "--db", db_url).code == 0
    with open_store(parse_database_url(db_url)) as store:
        assert find_graph(store, store.find_extractor("cnn-spoc"), "pearson") is None  # the user's choice kept
    assert imgsearch("query", name, "--db", db_url, "--json").json()["rerank"] == "verify"

