"""The README's promise: a new re-ranking is a pure function plus one entry. A toy one,
registered here and nowhere else, runs through `query`, `eval` and the service."""
from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import write_collection

from imgsearch.config import Settings
from imgsearch.evaluate import evaluate, labelled_images
from imgsearch.plan import SearchPlan
from imgsearch.query import run_query
from imgsearch.rerank.registry import RERANKINGS, SHORTLIST, on_shortlist, register, unregister
from imgsearch.serve.app import create_app
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.service import Service
from imgsearch.specs import FRACTION, whole_below
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def farthest_first(Q: np.ndarray, X: np.ndarray, damping: float = 1.0, shortlist: int = 50) -> np.ndarray:
    """The least similar first: plain scores negated (and damped)."""
    return -damping * (Q @ X.T)


@pytest.fixture
def toy():
    register(on_shortlist("farthest", farthest_first, "the least similar first (a test's toy)",
                          {"damping": FRACTION, "shortlist": whole_below(4)}))
    yield RERANKINGS["farthest"]
    unregister("farthest")


def test_a_registered_toy_reranking_runs_in_query_eval_and_the_service(toy, tmp_path, db_url) -> None:
    assert SHORTLIST in toy.needs and not toy.accepts_regions
    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb").code == 0
    url = parse_database_url(db_url)

    with open_store(url) as store:
        plain = run_query(store, "coffee.jpg", SearchPlan.of("rgb", "cosine", k=8))
        toyed = run_query(store, "coffee.jpg", SearchPlan.of("rgb", "cosine", k=3, rerank="farthest:0.5,100"))
    assert [m.id for m in toyed.matches] == [m.id for m in reversed(plain.matches)][:3]
    np.testing.assert_allclose([m.score for m in toyed.matches], [-0.5 * m.score for m in reversed(plain.matches)][:3],
                               atol=1e-5)
    assert toyed.rows_scanned == plain.rows_scanned and toyed.state == plain.state

    images = labelled_images(folder)
    plain_eval = evaluate(folder, "rgb", "cosine", workers=1, progress=False)
    toy_eval = evaluate(folder, "rgb", "cosine", workers=1, progress=False, rerank="farthest:1,1000")
    assert toy_eval["n_queries"] == plain_eval["n_queries"] == len(images.paths)
    assert toy_eval["P@1"] != plain_eval["P@1"]

    service = Service(ServeConfig(url, ("rgb",), ("cosine",), Settings(extractor="rgb", metric="cosine"), thumbnails=tmp_path / "thumbs"))

    async def ask(body: dict) -> httpx.Response:
        app = create_app(service)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as http:
            return await http.post("/api/search", json=body)

    try:
        answer = asyncio.run(ask({"name": "coffee.jpg", "metric": "cosine", "k": 3, "rerank": "farthest:0.5,100"}))
        assert answer.status_code == 200, answer.text
        assert [r["id"] for r in answer.json()["results"]] == [m.id for m in toyed.matches]
        # the re-ranking scans the resident copy, and answers as the CLI does from the store
        assert answer.json()["served"] == "resident" and answer.json()["rerank"] == "farthest:0.5,100"
        refused = asyncio.run(ask({"name": "coffee.jpg", "rerank": "farthest:2"}))
        assert refused.status_code == 422 and "damping of farthest must be a number from 0 to 1" in refused.text
    finally:
        service.close()


def test_without_its_entry_the_toy_is_unknown(tmp_path) -> None:
    assert "farthest" not in RERANKINGS
    with pytest.raises(Exception, match="unknown method 'farthest'"):
        SearchPlan.of("rgb", "cosine", rerank="farthest")
