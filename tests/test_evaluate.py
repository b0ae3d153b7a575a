import cv2
import numpy as np
import pytest
from cli_runner import imgsearch

from imgsearch.evaluate import retrieval_metrics


def test_metrics_on_a_hand_checked_ranking() -> None:
    # Four items, classes A A B B. Scores make query 0 rank: 2 (B), 1 (A), 3 (B).
    labels = np.array([0, 0, 1, 1])
    scores = np.array([
        [9, 5, 6, 1],
        [5, 9, 1, 6],   # query 1 ranks: 3 (B), 0 (A), 2 (B)
        [6, 1, 9, 5],   # query 2 ranks: 0 (A), 3 (B), 1 (A)
        [1, 6, 5, 9],   # query 3 ranks: 1 (A), 2 (B), 0 (A)
    ], dtype=np.float32)
    m = retrieval_metrics(scores, labels)
    assert m["mAP"] == pytest.approx(0.5)  # every query: its one relevant item at rank 2
    assert m["P@1"] == 0.0
    assert m["P@10"] == pytest.approx(0.1)  # one hit, divided by k as the standard P@k
    assert m["n_queries"] == 4


def test_perfect_separation_gives_map_one() -> None:
    labels = np.repeat(np.arange(3), 5)
    rng = np.random.default_rng(0)
    vectors = np.eye(3)[labels] + rng.normal(0, 0.01, (15, 3))
    m = retrieval_metrics((vectors @ vectors.T).astype(np.float32), labels)
    assert m["mAP"] == pytest.approx(1.0)
    assert m["P@1"] == 1.0


def test_eval_command_on_a_class_folder(tmp_path) -> None:
    rng = np.random.default_rng(3)
    bases = {"reds": (30, 30, 200), "greens": (30, 200, 30), "blues": (200, 30, 30)}
    for cls, bgr in bases.items():
        (tmp_path / cls).mkdir()
        for i in range(6):
            noise = rng.integers(-25, 25, size=(40, 40, 3))
            image = np.clip(np.array(bgr) + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), image)
    run = imgsearch("eval", tmp_path, "-e", "hsv72", "-m", "bhattacharyya", "--json", "-j", "2")
    assert run.code == 0, run.err
    result = run.json()
    assert set(result) == {"mAP", "P@1", "P@10", "P@20", "P@100", "n_queries"}
    assert result["n_queries"] == 18
    assert result["mAP"] > 0.9
