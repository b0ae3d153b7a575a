import numpy as np
import pytest

from imgsearch.scan.kernel import RowFilter, TopK, prefetched, scan
from imgsearch.scan.metrics import get_metric


def blocks_of(ids: np.ndarray, x: np.ndarray, size: int):
    for start in range(0, len(ids), size):
        yield ids[start : start + size], x[start : start + size]


def brute_force(ids, x, q, metric, k, exclude=()):
    m = get_metric(metric)
    s = m.prepare_rows(x) @ m.prepare_one(q)
    keep = ~np.isin(ids, exclude)
    order = np.lexsort((ids[keep], -s[keep]))[:k]
    return [(int(i), float(v)) for i, v in zip(ids[keep][order], s[keep][order])]


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
@pytest.mark.parametrize("metric", ["pearson", "bhattacharyya", "cosine"])
def test_scan_equals_brute_force_for_any_block_size(block: int, metric: str) -> None:
    rng = np.random.default_rng(block)
    ids = rng.permutation(5000)[:700].astype(np.int64)
    x = rng.random((700, 32)).astype(np.float32)
    q = rng.random(32).astype(np.float32)
    got = scan(blocks_of(ids, x, block), q, get_metric(metric), k=25, rows=RowFilter((int(ids[3]),)))
    want = brute_force(ids, x, q, metric, 25, exclude=[ids[3]])
    assert [i for i, _ in got.ranking] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got.ranking], [s for _, s in want], atol=1e-6)
    assert got.rows_scanned == 700


@pytest.mark.parametrize("block", [1, 64, 1000])
def test_a_scan_of_allowed_rows_is_the_exact_top_k_among_them(block: int) -> None:
    """A folder's rows only: the top-K among them, not a filtered top-K of everything."""
    rng = np.random.default_rng(block)
    ids = rng.permutation(5000)[:700].astype(np.int64)
    x = rng.random((700, 32)).astype(np.float32)
    q = rng.random(32).astype(np.float32)
    allowed = np.sort(rng.choice(ids, 60, replace=False))
    got = scan(blocks_of(ids, x, block), q, get_metric("pearson"), k=25, rows=RowFilter((int(allowed[0]),), allowed))
    inside = np.isin(ids, allowed)
    want = brute_force(ids[inside], x[inside], q, "pearson", 25, exclude=[allowed[0]])
    assert [i for i, _ in got.ranking] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got.ranking], [s for _, s in want], atol=1e-6)


def test_ties_are_broken_by_id_whatever_the_blocks() -> None:
    ids = np.arange(100, dtype=np.int64)[::-1].copy()
    x = np.tile(np.array([[1.0, 2.0, 3.0]], dtype=np.float32), (100, 1))
    for block in (3, 10, 100):
        got = scan(blocks_of(ids, x, block), np.array([1, 2, 3], np.float32), get_metric("cosine"), k=5)
        assert [i for i, _ in got.ranking] == [0, 1, 2, 3, 4]


def test_topk_keeps_fewer_when_fewer_rows() -> None:
    top = TopK(10)
    top.add(np.array([5, 6]), np.array([0.1, 0.9], np.float32))
    assert top.ranked() == [(6, pytest.approx(0.9)), (5, pytest.approx(0.1))]


def test_prefetched_yields_the_same_blocks_and_reraises() -> None:
    blocks = [(np.arange(i, i + 3), np.full((3, 2), i, np.float32)) for i in range(0, 30, 3)]
    got = list(prefetched(iter(blocks)))
    assert [ids.tolist() for ids, _ in got] == [ids.tolist() for ids, _ in blocks]

    def failing():
        yield blocks[0]
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        list(prefetched(failing()))


def test_exact_duplicates_rank_by_id_in_every_block_layout() -> None:
    """BLAS rounds a row's dot product by its place in a block: identical vectors can score
    an ulp apart. Whatever the cut, duplicates come out in id order."""
    rng = np.random.default_rng(11)
    X = rng.random((203, 96), dtype=np.float32)
    duplicates = [7, 50, 51, 120, 202]
    X[duplicates] = X[3]
    ids = np.arange(len(X), dtype=np.int64)
    q = X[3] + rng.random(96, dtype=np.float32) * 0.01
    metric = get_metric("pearson")
    expected = [3, *duplicates]
    for block_rows in (1, 3, 4, 7, 16, 64, 203):
        blocks = [(ids[i : i + block_rows], X[i : i + block_rows]) for i in range(0, len(X), block_rows)]
        ranking = scan(blocks, q, metric, 6).ranking
        assert [i for i, _ in ranking] == expected, block_rows
        assert max(s for _, s in ranking) - min(s for _, s in ranking) < 1e-6
