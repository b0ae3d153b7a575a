import numpy as np
import pytest
from synthetic import record

from imgsearch.errors import ImgsearchError
from imgsearch.evaluate import retrieval_metrics, stratified_folds
from imgsearch.learn.whiten import learn_lw, learn_pca_whitening, learn_triplet
from imgsearch.plan import SearchPlan
from imgsearch.rerank.maths import alpha_qe, aqe, dba, diffusion
from imgsearch.scan.metrics import get_metric


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_aqe_is_the_mean_of_query_and_its_neighbours() -> None:
    rng = np.random.default_rng(0)
    X = unit(rng.standard_normal((30, 8)))
    q = X[:1]
    top = np.argsort(-(q @ X.T)[0], kind="stable")[:4]
    expanded = unit(q[0] + X[top].sum(axis=0))
    np.testing.assert_allclose(aqe(q, X, 4)[0], X @ expanded, atol=1e-6)
    np.testing.assert_allclose(alpha_qe(q, X, 4, alpha=0.0), aqe(q, X, 4), atol=1e-6)


def test_dba_moves_each_vector_towards_its_neighbours_by_their_similarity() -> None:
    rng = np.random.default_rng(1)
    X = unit(rng.standard_normal((20, 5)))
    augmented = dba(X, 2)
    for i in (0, 7):
        top = np.argsort(-(X[i] @ X.T), kind="stable")[:3]  # itself, then its two nearest
        weights = np.clip(X[top] @ X[i], 0, None)  # 1 for itself
        np.testing.assert_allclose(augmented[i], unit(weights @ X[top]), atol=1e-6)


def test_diffusion_follows_the_manifold() -> None:
    """Points along two arcs: the far end of the query's own arc must outrank the other
    arc, although the other arc's nearest point is closer in plain cosine."""
    t = np.linspace(0, 1.4, 40)
    arc_a = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], axis=1)
    arc_b = np.stack([np.cos(t[:10]) * 0.2, np.sin(t[:10]) * 0.2, np.ones(10)], axis=1) + [0.9, 0, 0]
    X = unit(np.vstack([arc_a, arc_b]))
    q = X[:1]
    plain = (q @ X.T)[0]
    far_end, other = 39, 40 + int(np.argmax(plain[40:]))
    assert plain[far_end] < plain[other]
    diffused = diffusion(q, X, k=3, alpha=0.99, gamma=1.0, query_k=3)[0]
    assert diffused[far_end] > diffused[other]


def test_k_reciprocal_keeps_mutual_neighbours_together() -> None:
    from imgsearch.rerank.maths import k_reciprocal

    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(4), 12)
    X = unit(rng.standard_normal((4, 16))[labels] * 1.0 + rng.standard_normal((48, 16)) * 0.9)
    S = k_reciprocal(X, X, k1=8, k2=3, lambda_=0.3)
    assert S.shape == (48, 48) and np.all(np.isfinite(S))
    plain = retrieval_metrics(X @ X.T, labels)["mAP"]
    assert retrieval_metrics(S, labels)["mAP"] > plain


def test_per_query_universes_equal_the_whole_collection_formula() -> None:
    """A shortlist as long as the collection gives Zhong et al.'s distances over all of it;
    a shorter one changes only images outside it (they rank below)."""
    from imgsearch.rerank.maths import k_reciprocal, k_reciprocal_distance

    rng = np.random.default_rng(9)
    X = unit(rng.standard_normal((30, 8)))
    whole = -k_reciprocal_distance(np.maximum(2 - 2 * (X @ X.T), 0), np.arange(30), np.arange(30), 6, 3, 0.3)
    per_query = k_reciprocal(X, X, k1=6, k2=3, lambda_=0.3, shortlist=29)
    off_diagonal = ~np.eye(30, dtype=bool)
    np.testing.assert_allclose(per_query[off_diagonal], whole[off_diagonal], atol=1e-9)
    short = k_reciprocal(X, X, k1=6, k2=3, lambda_=0.3, shortlist=10)
    for i in range(30):
        top = np.argsort(-(X @ X[i]))[1:11]
        assert set(np.argsort(-short[i])[:10]) == set(top)


def test_full_pca_whitening_makes_the_training_covariance_identity() -> None:
    rng = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    X = (rng.standard_normal((500, 6)) * np.arange(1, 7)) @ rotation
    learned = learn_pca_whitening(X)
    projected = (X - learned.mean) @ learned.projection.T
    np.testing.assert_allclose(np.cov(projected, rowvar=False, bias=True), np.eye(6), atol=1e-6)


@pytest.mark.parametrize("learn", [
    lambda X, labels: learn_lw(X, labels),
    lambda X, labels: learn_triplet(X, labels, dims=4, n_triplets=3000),
], ids=["lw", "triplet"])
def test_supervised_maps_learned_on_other_images_beat_plain_on_held_out_ones(learn) -> None:
    """Classes differ along two directions buried under larger noise in ten others."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(6), 40)
    centres = np.zeros((6, 12))
    centres[:, :2] = rng.standard_normal((6, 2))
    X = unit(centres[labels] + rng.standard_normal((240, 12)) * np.r_[0.15, 0.15, np.full(10, 1.0)])
    folds = stratified_folds(labels, 2)
    train, test = folds == 0, folds == 1
    plain = retrieval_metrics(X[test] @ X[test].T, labels[test])["mAP"]
    mapped = learn(X[train], labels[train]).apply(X[test])
    assert retrieval_metrics(mapped @ mapped.T, labels[test])["mAP"] > plain + 0.1


def test_folds_are_disjoint_and_stratified() -> None:
    labels = np.repeat(np.arange(4), [10, 11, 12, 13])
    folds = stratified_folds(labels, 3)
    for c in range(4):
        counts = np.bincount(folds[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("spec", ["--rerank=aqe:3", "--whiten=lw", "--whiten=pca:2,0.25"])
def test_eval_takes_learned_and_reranking_steps(tmp_path, spec) -> None:
    import cv2
    from cli_runner import imgsearch

    rng = np.random.default_rng(4)
    for cls, bgr in {"reds": (30, 30, 200), "greens": (30, 200, 30), "blues": (200, 30, 30)}.items():
        (tmp_path / cls).mkdir()
        for i in range(6):
            image = np.clip(np.array(bgr) + rng.integers(-40, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), image)
    run = imgsearch("eval", tmp_path, "-e", "hsv72", "-m", "bhattacharyya", spec, "--json", "-j", "1")
    assert run.code == 0, run.err
    result = run.json()
    assert result["n_queries"] == 18 and result["mAP"] > 0.6
    assert ("folds" in result) == spec.startswith("--whiten")


@pytest.mark.parametrize("spec,alpha", [("aqe:4", 0.0), ("alpha-qe:4,3", 3.0)])
@pytest.mark.parametrize("metric_name", ["cosine", "pearson", "bhattacharyya"])
def test_query_expansion_at_query_time_equals_the_direct_formula(db_url, spec, alpha, metric_name) -> None:
    from imgsearch.features.color import RgbHistogram
    from imgsearch.query import run_query
    from imgsearch.scan.metrics import get_metric
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    rng = np.random.default_rng(5)
    X = rng.random((60, 512)).astype(np.float32) ** 3
    with open_store(parse_database_url(db_url), create=True) as store:
        row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
        store.write_batch([(record(f"{i}.jpg"), {row.id: v})
                           for i, v in enumerate(X)])
        store.pack(row, 16)
        result = run_query(store, "0.jpg", SearchPlan.of("rgb", metric_name, k=8, block_rows=7, rerank=spec))
    metric = get_metric(metric_name)
    P = metric.prepare_rows(X).astype(np.float64)
    first = P @ P[0]  # the query's own row is among what it expands with, as in eval's leave-one-out
    top = np.argsort(-first, kind="stable")[:4]
    expanded = P[0] + (np.maximum(first[top], 0) ** alpha) @ P[top]
    scores = P[1:] @ (expanded / np.linalg.norm(expanded))
    expected = [f"{i + 1}.jpg".encode() for i in np.argsort(-scores, kind="stable")[:8]]
    assert [m.name for m in result.matches] == expected


@pytest.mark.parametrize("metric_name", ["pearson", "bhattacharyya", "cosine"])
def test_learned_map_at_query_time_is_what_eval_measures(db_url, metric_name) -> None:
    """`learn` + `query --whiten` score exactly as eval's learned step: the map fitted on
    vectors prepared for the metric, scores by dot product in its space (no clipping)."""
    from imgsearch.evaluate import _fold_scores
    from imgsearch.features.color import RgbHistogram
    from imgsearch.learn.stored import learn_map
    from imgsearch.learn.whiten import WHITENINGS
    from imgsearch.query import run_query
    from imgsearch.specs import parse_spec
    from imgsearch.store import open_store
    from imgsearch.store.records import ImageRecord
    from imgsearch.store.url import parse_database_url

    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(4), 15)
    centres = rng.random((4, 512)) * 0.2
    X = (centres[labels] + rng.random((60, 512))).astype(np.float32)
    paths = [f"c{c}/{i}.jpg" for i, c in enumerate(labels)]
    metric = get_metric(metric_name)
    with open_store(parse_database_url(db_url), create=True) as store:
        row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
        store.write_batch([(ImageRecord(p.encode(), p.split("/")[1].encode(), 1, 1, "0" * 64, 1, 1), {row.id: v})
                           for p, v in zip(paths, X)])
        trained_on, dims = learn_map(store, row, metric, "mine", "lw", 100)
        assert (trained_on, dims) == (60, 3)
        result = run_query(store, "0.jpg", SearchPlan.of("rgb", metric_name, k=10, block_rows=7, whiten="mine"))
        other = "cosine" if metric_name != "cosine" else "pearson"
        with pytest.raises(ImgsearchError, match=f"learned on {metric_name} vectors"):
            run_query(store, "0.jpg", SearchPlan.of("rgb", other, k=10, block_rows=7, whiten="mine"))
    prepared = metric.prepare_rows(X).astype(np.float64)
    scores = _fold_scores(prepared, labels, prepared, parse_spec("lw", WHITENINGS), None)[0, 1:]
    # In a 3-d learned space same-class images score a few 1e-7 apart: the order among such
    # near-ties may differ between eval's float64 and the scan's float32, so each result's
    # eval score must be the score of its rank.
    score_of = {paths[i + 1].encode(): s for i, s in enumerate(scores)}
    np.testing.assert_allclose([score_of[m.path] for m in result.matches], np.sort(scores)[::-1][:10], atol=1e-5)
    np.testing.assert_allclose([m.score for m in result.matches], np.sort(scores)[::-1][:10], atol=1e-5)


@pytest.mark.parametrize("command", ["query", "eval"])
def test_help_names_the_paper_behind_each_reranking(command) -> None:
    from cli_runner import imgsearch

    run = imgsearch(command, "--help")
    text = " ".join(run.out.split())
    for paper in ("Chum et al., ICCV 2007", "Radenovic et al., TPAMI 2018", "Arandjelovic & Zisserman, CVPR 2012",
                  "Iscen et al., CVPR 2017", "Zhong et al., CVPR 2017"):
        assert paper in text, paper
    if command == "query":
        assert "imgsearch graph" in text


def test_graph_help_explains_incremental_upkeep() -> None:
    from cli_runner import imgsearch

    text = " ".join(imgsearch("graph", "--help").out.split())
    assert "kept up to date by every build" in text and "--dba" in text
