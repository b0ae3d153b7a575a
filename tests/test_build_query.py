"""build and query end to end, on SQLite and on a real MySQL/MariaDB server."""
import os
import shutil

import cv2
import numpy as np
import pytest
from bad_files import write_bad_files
from cli_runner import imgsearch
from photos import PHOTOS, photo, variant, write_collection

from imgsearch.index.build import build
from imgsearch.plan import SearchPlan
from imgsearch.query import run_query
from imgsearch.scan.kernel import scan
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


@pytest.fixture
def collection(tmp_path):
    folder = tmp_path / "photos"
    write_collection(folder)
    return folder


def test_cli_build_then_query_finds_the_edited_copy(db_url, collection, tmp_path) -> None:
    edited = tmp_path / "edited-chelsea.jpg"
    cv2.imwrite(str(edited), variant(photo("chelsea.png")))

    run = imgsearch("build", collection, "--db", db_url, "--workers", "2")
    assert run.code == 0, run.err
    assert f"indexed {len(PHOTOS)}," in run.out

    for extractor, metric in (("hsv72", "bhattacharyya"), ("rgb", "pearson"), ("hsv72", "pearson")):
        run = imgsearch("query", edited, "--db", db_url, "-e", extractor, "-m", metric, "--json")
        assert run.code == 0, run.err
        result = run.json()
        # the default build stores local features, so a photo query is verified by default,
        # and says how long each stage of it took
        assert set(result) == {"query", "extractor", "metric", "elapsed_s", "rows_scanned", "state",
                               "close_match", "rerank", "stages_s", "results"}
        assert result["rerank"] == "verify"  # no graph for these extractors: verification alone
        assert {"global", "words", "matching and ransac"} <= set(result["stages_s"])
        assert set(result["results"][0]) - {"corners"} == {"rank", "id", "name", "path", "score", "inliers", "matches",
                                                                   "significance", "match", "found_by"}
        assert "photo" in result["results"][0]["found_by"]  # the whole photo's ranking brought its own file
        assert result["results"][0]["path"] == os.path.join("a", "chelsea.jpg")
        assert [r["rank"] for r in result["results"]] == list(range(1, len(PHOTOS) + 1))
        scores = [r["score"] for r in result["results"]]
        assert scores == sorted(scores, reverse=True)


def test_query_by_name_leaves_itself_out_unless_asked(db_url, collection) -> None:
    assert imgsearch("build", collection, "--db", db_url).code == 0
    run = imgsearch("query", "coffee.jpg", "--db", db_url, "-k", "3")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert len(lines) == 6 and lines[0].startswith("ranked by ") and lines[-1].startswith("spend ")
    assert all("coffee.jpg" not in line for line in lines)

    with_self = imgsearch("query", "coffee.jpg", "--db", db_url, "-k", "3", "--include-self", "--json").json()
    assert with_self["results"][0]["name"] == "coffee.jpg"
    plain = imgsearch("query", "coffee.jpg", "--db", db_url, "-k", "3", "--include-self", "--rerank", "none",
                      "--json").json()
    assert plain["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)  # itself, by the metric alone

    by_path = imgsearch("query", collection / "b" / "coffee.jpg", "--db", db_url, "--json").json()
    assert "coffee.jpg" not in [r["name"] for r in by_path["results"]]


def test_ambiguous_name_lists_the_candidates(db_url, collection) -> None:
    shutil.copy(collection / "b" / "coffee.jpg", collection / "a" / "coffee.jpg")
    assert imgsearch("build", collection, "--db", db_url).code == 0
    run = imgsearch("query", "coffee.jpg", "--db", db_url)
    assert run.code != 0
    assert "ambiguous" in run.err and "a/coffee.jpg" in run.err and "b/coffee.jpg" in run.err
    assert imgsearch("query", "a/coffee.jpg", "--db", db_url).code == 0


def test_rerun_is_incremental_and_follows_changes(db_url, collection) -> None:
    url = parse_database_url(db_url)
    with open_store(url, create=True) as store:
        first = build(store, str(collection), ("hsv72",), workers=1, batch_size=4, progress=False)
        assert (first.indexed, first.unchanged, first.removed) == (len(PHOTOS), 0, 0)
        again = build(store, None, ("hsv72",), workers=1, batch_size=4, progress=False)
        assert (again.indexed, again.unchanged) == (0, len(PHOTOS))

        before = {img.path: img for img in store.stored_images().values()}
        (collection / "a" / "chelsea.jpg").unlink()
        cv2.imwrite(str(collection / "b" / "coffee.jpg"), photo("rocket.jpg"))  # new content
        touched = collection / "b" / "astronaut.jpg"
        os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same bytes
        cv2.imwrite(str(collection / "b" / "new.png"), photo("ihc.png"))
        changed = build(store, None, ("hsv72", "rgb"), workers=2, batch_size=4, progress=False)

        images = store.stored_images()
        assert b"a/chelsea.jpg" not in images and b"b/new.png" in images
        assert changed.removed == 1
        assert images[b"b/coffee.jpg"].id == before[b"b/coffee.jpg"].id
        assert images[b"b/coffee.jpg"].sha256 != before[b"b/coffee.jpg"].sha256
        assert images[b"b/astronaut.jpg"].mtime_ns == before[b"b/astronaut.jpg"].mtime_ns + 10**9
        counts = store.count_features()
        assert sorted(counts.values()) == [len(PHOTOS), len(PHOTOS)]  # -1 removed, +1 new, both extractors

        hsv = store.find_extractor("hsv72")
        stored = store.vector(hsv, images[b"b/coffee.jpg"].id)
        from imgsearch.features.color import Hsv72Histogram

        on_disk = cv2.imread(str(collection / "b" / "coffee.jpg"))
        np.testing.assert_allclose(stored, Hsv72Histogram().extract(on_disk), atol=1e-6)


def test_bad_files_are_skipped_counted_and_the_rest_indexed(db_url, collection) -> None:
    expected = write_bad_files(collection / "junk")
    run = imgsearch("build", collection, "--db", db_url, "--verbose")
    assert run.code == 0, run.err
    assert f"indexed {len(PHOTOS)}," in run.out and f"skipped {len(expected)}" in run.out
    for name, reason in expected.items():
        line = next(line for line in run.err.splitlines() if f"junk/{name}:" in line)
        assert reason in line
    assert "Traceback" not in run.err


def test_scan_ranking_equals_numpy_brute_force(db_url, tmp_path) -> None:
    """Many stored vectors streamed in small blocks rank exactly as one in-memory product."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(120):
        tile = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.resize(tile, (32, 32), interpolation=cv2.INTER_NEAREST))
    with open_store(parse_database_url(db_url), create=True) as store:
        build(store, str(folder), ("rgb",), workers=1, batch_size=16, progress=False)
        row = store.find_extractor("rgb")
        ids, vectors = [], []
        for block_ids, block in store.stream_blocks(row, 1000):
            ids.append(block_ids)
            vectors.append(block)
        ids, vectors = np.concatenate(ids), np.vstack(vectors)
        assert len(ids) == 120
        q = vectors[5]
        metric = get_metric("pearson")
        s = metric.prepare_rows(vectors) @ metric.prepare_one(q)
        true_score = dict(zip(ids.tolist(), s.tolist()))
        want = np.sort(s)[::-1][:30]
        got = scan(store.stream_blocks(row, 7), q, metric, 30)
        assert_same_ranking_up_to_ties(got.ranking, true_score, want)

        result = run_query(store, "005.png", SearchPlan.of("rgb", "pearson", k=30, block_rows=7, include_self=True))
        by_name = {img.name: img.id for img in store.images_by_ids(ids.tolist()).values()}
        assert_same_ranking_up_to_ties(
            [(by_name[m.name], m.score) for m in result.matches], true_score, want
        )


def assert_same_ranking_up_to_ties(ranking, true_score: dict, want_scores: np.ndarray) -> None:
    """Same scores rank by rank; rows of (nearly) equal score may swap places."""
    got_ids = [i for i, _ in ranking]
    assert len(set(got_ids)) == len(got_ids) == len(want_scores)
    np.testing.assert_allclose([sc for _, sc in ranking], want_scores, atol=1e-6)
    np.testing.assert_allclose([true_score[i] for i in got_ids], want_scores, atol=1e-6)


def test_odd_file_names_are_stored_and_returned_exactly(db_url, tmp_path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    names = [
        b"x'); DROP TABLE images; --.jpg",
        "猫 \"quoted\" 100% \\ back.jpg".encode(),
        "rtl\u200fmark 🎉.jpg".encode(),
        b"latin1-\xe9t\xe9.jpg",  # not valid UTF-8
    ]
    for i, name in enumerate(names):
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(cv2.imencode(".jpg", photo(PHOTOS[i]))[1].tobytes())
    run = imgsearch("build", folder, "--db", db_url, "-e", "rgb")
    assert run.code == 0 and "indexed 4," in run.out, run.err
    with open_store(parse_database_url(db_url)) as store:
        assert sorted(img.path for img in store.stored_images().values()) == sorted(names)
        assert store.count_images() == 4  # the table survived the name
    result = imgsearch("query", os.fsdecode(names[0]), "--db", db_url, "-e", "rgb", "--json").json()
    assert sorted(os.fsencode(r["name"]) for r in result["results"]) == sorted(names[1:])
