"""`imgsearch duplicates` on both backends: exact copies by sha256, near copies by the
descriptor, the same pairs from the graph as from the self-join, a reference folder, and
outputs a script can use. Nothing is deleted."""
import csv
import io
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo, write_one_scene

from imgsearch.duplicates import graph_pairs, self_join_pairs
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


@pytest.fixture
def copies(tmp_path, db_url):
    """Distinct photos; chelsea with a half-size copy and a re-compressed one; coffee
    twice byte for byte (an exact copy) under another folder."""
    folder = tmp_path / "photos"
    for sub in ("album", "phone", "other"):
        (folder / sub).mkdir(parents=True)
    for name in ("astronaut.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "color.png"):
        cv2.imwrite(str(folder / "other" / name.replace(".png", ".jpg")), photo(name))
    cat = photo("chelsea.png")
    cv2.imwrite(str(folder / "album" / "cat.jpg"), cat, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(folder / "phone" / "cat-small.jpg"), cv2.resize(cat, None, fx=0.5, fy=0.5))
    cv2.imwrite(str(folder / "phone" / "cat-q30.jpg"), cat, [cv2.IMWRITE_JPEG_QUALITY, 30])
    cv2.imwrite(str(folder / "album" / "coffee.jpg"), photo("coffee.png"))
    shutil.copy(folder / "album" / "coffee.jpg", folder / "phone" / "coffee-copy.jpg")
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc").code == 0
    return folder, db_url


def report(db: str, *args: str) -> dict:
    run = imgsearch("duplicates", "--db", db, "--json", *args)
    assert run.code == 0, run.err
    return run.json()


def test_exact_and_near_copies_are_grouped_with_a_stated_keeper(copies) -> None:
    folder, db = copies
    found = report(db)
    groups = {g["keep"]["path"]: g for g in found["groups"]}
    assert set(groups) == {"album/cat.jpg", "album/coffee.jpg"}
    cat = groups["album/cat.jpg"]  # the full-size copy: most pixels (then oldest, then path)
    assert cat["reason"] == "near"
    assert sorted(m["path"] for m in cat["members"]) == ["phone/cat-q30.jpg", "phone/cat-small.jpg"]
    assert all(m["score"] >= found["threshold"] for m in cat["members"])
    coffee = groups["album/coffee.jpg"]  # same bytes: kept by path, the other is an exact copy
    (copy,) = coffee["members"]
    assert coffee["reason"] == "exact" and (copy["path"], copy["score"], copy["reason"]) == ("phone/coffee-copy.jpg",
                                                                                            1.0, "exact")
    assert report(db) == found  # deterministic


def test_the_graph_gives_the_same_pairs_as_the_self_join(copies) -> None:
    _, db = copies
    assert imgsearch("graph", "--db", db, "-e", "cnn-spoc", "-m", "cosine", "-n", "5").code == 0
    with open_store(parse_database_url(db)) as store:
        row = store.find_extractor("cnn-spoc")
        metric = get_metric("cosine")
        from_graph = graph_pairs(store, row, metric, 0.9)
        joined = self_join_pairs(store, row, metric, 0.9, 4)
        assert from_graph is not None
        as_set = [set(zip(p[0].tolist(), p[1].tolist())) for p in (from_graph, joined)]
        assert as_set[0] == as_set[1] and len(as_set[0]) >= 3
        assert graph_pairs(store, row, metric, 0.0) is None  # lists stop above 0: the graph cannot hold those pairs
    with_graph, without = report(db), report(db, "--no-graph")
    assert with_graph["pairs_from"] == "graph" and without["pairs_from"] == "self-join"
    assert with_graph["groups"] == without["groups"]


def test_a_reference_folder_keeps_its_copy_and_reports_only_the_others(copies) -> None:
    folder, db = copies
    found = report(db, "--reference", str(folder / "phone"))
    assert sorted(g["keep"]["path"] for g in found["groups"]) == ["phone/cat-q30.jpg", "phone/coffee-copy.jpg"]
    members = sorted(m["path"] for g in found["groups"] for m in g["members"])
    assert members == ["album/cat.jpg", "album/coffee.jpg"]  # phone/cat-small duplicates a phone image: not reported
    run = imgsearch("duplicates", "--db", db, "--reference", "/elsewhere")
    assert run.code == 1 and "not under the indexed collection" in run.err


def test_to_remove_csv_and_text_outputs_delete_nothing(copies) -> None:
    folder, db = copies
    run = imgsearch("duplicates", "--db", db, "--to-remove", "-0")
    listed = [p for p in run.out.split("\0") if p]
    kept = {str(folder / g["keep"]["path"]) for g in report(db)["groups"]}
    assert not kept & set(listed)  # never a representative
    assert sorted(listed) == sorted(str(folder / p) for p in ("phone/cat-q30.jpg", "phone/cat-small.jpg",
                                                               "phone/coffee-copy.jpg"))
    assert all((folder / p).exists() for p in ("phone/cat-q30.jpg", "phone/cat-small.jpg", "phone/coffee-copy.jpg"))
    rows = list(csv.reader(io.StringIO(imgsearch("duplicates", "--db", db, "--csv").out)))
    assert rows[0] == ["group", "role", "reason", "score", "path"] and len(rows) == 1 + 5
    text = imgsearch("duplicates", "--db", db).out
    assert text.startswith("2 groups, 3 copies") and "keep album/cat.jpg" in text
    assert json.loads(imgsearch("duplicates", "--db", db, "--json", "-t", "1").out)["groups"][0]["reason"] == "exact"


def test_rules_that_give_more_pairs_than_a_report_checks_are_refused_before_any_is_checked(copies) -> None:
    _, db = copies
    run = imgsearch("duplicates", "--db", db, "--threshold", "-1", "--max-pairs", "10")
    assert run.code == 1 and "give more than 10 candidate pairs" in run.err and "--max-pairs" in run.err, run.err
    assert "group" not in run.out
    assert imgsearch("duplicates", "--db", db, "--threshold", "-1", "--max-pairs", "100").code == 0  # 66 pairs


def test_pairs_are_exact_against_brute_force(db_url) -> None:
    from imgsearch.store.records import ImageRecord

    rng = np.random.default_rng(12)
    X = rng.random((300, 32), dtype=np.float32)
    X[150:] = X[:150] + rng.normal(0, 0.05, (150, 32)).astype(np.float32)  # each a noisy twin of another
    with open_store(parse_database_url(db_url), create=True) as store:
        row = store.register_extractor("synthetic", "{}", 32)
        store.write_batch([(ImageRecord(f"{i}.jpg".encode(), b"x", 1, 1, "0" * 64, 1, 1), {row.id: v})
                           for i, v in enumerate(X)])
        store.pack(row, pack_rows=64)
        ids = sorted(img.id for img in store.stored_images().values())
        left, right, scores = self_join_pairs(store, row, get_metric("cosine"), 0.97, 50)
    P = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = P @ P.T
    expected = {(ids[a], ids[b]) for a, b in zip(*np.nonzero(np.triu(S >= 0.97, 1)))}
    assert set(zip(left.tolist(), right.tolist())) == expected and len(expected) >= 100


def test_the_service_reports_duplicates_and_shows_them_as_rows(copies, tmp_path) -> None:
    from served import serving

    _, db = copies
    with serving(db, tmp_path) as served, served.client() as http:
        answer = http.get("/api/duplicates").json()
        assert "root" not in answer  # no server path in a response
        cli = report(db)
        cli.pop("root")
        assert answer == cli
        assert http.get("/api/duplicates", params={"reference": "../etc"}).status_code == 404  # no such folder in it
        assert http.get("/api/duplicates", params={"threshold": "2"}).status_code == 422
        page = http.get("/duplicates")
        assert page.status_code == 200 and "duplicates.js" in page.text


HOSTILE = [b"quote'\"s.jpg", b"new\nline.jpg", b"tab\there.jpg", b"\xe5\x90\x8d\xe5\x89\x8d.jpg", b"bad-\xff\xfe.jpg",
           b"comma,semi;.jpg", b"-dash.jpg"]


def test_hostile_file_names_round_trip_in_every_output(tmp_path, db_url) -> None:
    import os

    folder = tmp_path / "photos"
    folder.mkdir()
    data = cv2.imencode(".jpg", photo("coffee.png"))[1].tobytes()
    for name in HOSTILE:
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            handle.write(data)  # all one picture: one group of exact copies
    cv2.imwrite(str(folder / "other.jpg"), photo("rocket.jpg"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc").code == 0
    names = set(HOSTILE)
    found = report(db_url)
    (group,) = found["groups"]
    paths = {os.fsencode(group["keep"]["path"]), *(os.fsencode(m["path"]) for m in group["members"])}
    assert paths == names
    run = subprocess.run([sys.executable, "-m", "imgsearch", "duplicates", "--db", db_url, "--csv"], capture_output=True)
    rows = list(csv.reader(io.StringIO(run.stdout.decode("utf-8", "surrogateescape"), newline="")))
    assert {os.fsencode(r[4]) for r in rows[1:]} == names
    run = subprocess.run([sys.executable, "-m", "imgsearch", "duplicates", "--db", db_url, "--to-remove", "-0"],
                         capture_output=True)
    removed = {p for p in run.stdout.split(b"\0") if p}
    assert removed == {os.path.join(os.fsencode(folder), n) for n in names - {os.fsencode(group["keep"]["path"])}}
    text = imgsearch("duplicates", "--db", db_url)
    assert text.code == 0 and "\\n" in text.out and "Traceback" not in text.err  # one line per image: newline escaped


def test_groups_are_the_same_on_both_backends(tmp_path, mysql_url) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        cv2.imwrite(str(folder / name.replace(".png", ".jpg")), photo(name))
        cv2.imwrite(str(folder / name.replace(".png", "-half.jpg")), cv2.resize(photo(name), None, fx=0.6, fy=0.6))
    shutil.copy(folder / "coffee.jpg", folder / "coffee-again.jpg")
    outputs = []
    for db in (f"sqlite:///{tmp_path / 'a.sqlite3'}", mysql_url):
        assert imgsearch("build", folder, "--db", db, "-e", "cnn-spoc").code == 0
        outputs.append([(g["keep"]["path"], [(m["path"], m["reason"], round(m["score"], 4)) for m in g["members"]])
                        for g in report(db)["groups"]])
    assert outputs[0] == outputs[1] and len(outputs[0]) == 3


@pytest.fixture
def turned_copies(tmp_path, db_url):
    """chelsea with a quarter-size, a turned, a cropped and a slightly turned copy, among
    other photos; built with the default extractors plus local features."""
    folder = tmp_path / "photos"
    (folder / "album").mkdir(parents=True)
    (folder / "copies").mkdir()
    for name in ("astronaut.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png", "coffee.png", "color.png",
                 "motorcycle_left.png"):
        cv2.imwrite(str(folder / "album" / name.replace(".png", ".jpg")), photo(name))
    cat = photo("chelsea.png")
    cv2.imwrite(str(folder / "album" / "cat.jpg"), cat, [cv2.IMWRITE_JPEG_QUALITY, 95])
    h, w = cat.shape[:2]
    turn = cv2.warpAffine(cat, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0), (w, h))
    made = {
        "quarter.jpg": cv2.resize(cat, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA),
        "turned.jpg": cv2.rotate(cat, cv2.ROTATE_90_CLOCKWISE),
        "cropped.jpg": cat[h // 6 : h - h // 6, w // 6 : w - w // 6],  # the middle 44 %
        "tilted.jpg": turn,
    }
    for name, pixels in made.items():
        cv2.imwrite(str(folder / "copies" / name), pixels)
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "phash", "-e", "sift").code == 0
    return folder, db_url


def test_hashes_find_resized_and_turned_copies_and_verification_cropped_ones(turned_copies) -> None:
    _, db = turned_copies
    found = report(db)
    assert found["sources"] == ["near", "hash", "verified"]
    (group,) = found["groups"]
    assert group["keep"]["path"] == "album/cat.jpg"
    reasons = {m["path"]: m["reason"] for m in group["members"]}
    assert set(reasons) == {"copies/quarter.jpg", "copies/turned.jpg", "copies/cropped.jpg", "copies/tilted.jpg"}
    assert (reasons["copies/turned.jpg"], reasons["copies/cropped.jpg"]) == ("hash", "verified")
    plain = report(db, "--hash-bits", "-1", "--min-inliers", "-1")
    assert plain["sources"] == ["near"]
    (group,) = plain["groups"]  # the descriptor alone misses the quarter turn and the crop
    assert {m["path"] for m in group["members"]} == {"copies/quarter.jpg", "copies/tilted.jpg"}
    hashed = report(db, "--min-inliers", "-1")
    assert hashed["sources"] == ["near", "hash"]
    assert {m["path"] for m in hashed["groups"][0]["members"]} == {"copies/quarter.jpg", "copies/tilted.jpg",
                                                                  "copies/turned.jpg"}


def test_the_service_reports_the_same_sources_and_rules_as_the_cli(turned_copies, tmp_path) -> None:
    from served import serving

    _, db = turned_copies
    with serving(db, tmp_path) as served, served.client() as http:
        for params, flags in (({}, ()), ({"hash_bits": "-1"}, ("--hash-bits", "-1")),
                              ({"min_inliers": "60", "hash_bits": "3"}, ("--min-inliers", "60", "--hash-bits", "3"))):
            answer = http.get("/api/duplicates", params=params).json()
            cli = report(db, *flags)
            cli.pop("root")
            assert answer == cli
        assert http.get("/api/duplicates", params={"hash_bits": "64"}).status_code == 422


@pytest.fixture
def one_scene(tmp_path, db_url):
    """Two photographs of one scene (the same background, its subject elsewhere and larger
    in the second: a burst), and a cropped, brightened copy of the first, among others."""
    folder = tmp_path / "photos"
    write_one_scene(folder / "trip")
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "phash", "-e", "sift").code == 0
    return folder, db_url


def test_two_photographs_of_one_scene_are_never_copies_and_never_to_remove(one_scene, tmp_path) -> None:
    from served import serving

    _, db = one_scene
    compared = imgsearch("compare", "trip/shot-1.jpg", "trip/shot-2.jpg", "--db", db)
    assert "the same object" in compared.out  # the background verifies: geometry alone cannot tell
    found = report(db)
    (group,) = found["groups"]
    assert group["keep"]["path"] == "trip/shot-1.jpg"
    assert [m["path"] for m in group["members"]] == ["trip/shot-1-edit.jpg"]
    (scene,) = found["same_scene"]
    assert scene["reason"] == "same scene"
    assert {scene["keep"]["path"], *(m["path"] for m in scene["members"])} == {"trip/shot-1.jpg", "trip/shot-2.jpg"}
    removed = imgsearch("duplicates", "--db", db, "--to-remove").out.split()
    assert [p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] for p in removed] == ["trip/shot-1-edit.jpg"]
    rows = list(csv.reader(io.StringIO(imgsearch("duplicates", "--db", db, "--csv").out)))
    assert [r[1] for r in rows if r[4] == "trip/shot-2.jpg"] == ["photo"]
    text = imgsearch("duplicates", "--db", db).out
    assert "group 2 (same scene)" in text and "keep them all" in text
    with serving(db, tmp_path) as served, served.client() as http:
        answer = http.get("/api/duplicates").json()
    assert answer["same_scene"] == found["same_scene"] and answer["groups"] == found["groups"]
