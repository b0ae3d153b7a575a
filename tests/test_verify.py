"""Local features and geometric verification: a known homography is recovered, unrelated
photos never verify, degenerate geometry never counts, and query, the service and the
SQL tables agree."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import PHOTOS, photo, write_collection
from served import serving

from imgsearch.features.registry import make_extractor
from imgsearch.keypoints import DESCRIPTOR_BITS, SQRT_TOP, LocalFeatures, descriptor_levels, level_values
from imgsearch.rerank.verify import (
    ORIENTATION_DEGREES,
    Evidence,
    Verification,
    inlier_chance,
    log10_false_alarms,
    ratio_matches,
    root_sift,
    verify,
    verify_all,
)
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

TRUE_CORNERS = np.float32([[520, 310], [1130, 400], [1060, 930], [450, 830]])


def printed(pixels: np.ndarray, background: np.ndarray, corners: np.ndarray = TRUE_CORNERS) -> np.ndarray:
    """`pixels` as a tilted print in a 1600 x 1200 photo of `background`, its corners there."""
    h, w = pixels.shape[:2]
    H = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), corners)
    frame = cv2.resize(background, (1600, 1200))
    warped = cv2.warpPerspective(pixels, H, (1600, 1200))
    mask = cv2.warpPerspective(np.ones((h, w), np.uint8), H, (1600, 1200))
    return np.where(mask[..., None] > 0, warped, frame)


def features(pixels: np.ndarray) -> tuple[LocalFeatures, float]:
    extractor = make_extractor("sift")
    return extractor.extract(pixels), min(1.0, extractor.max_side / max(pixels.shape[:2]))


def test_a_warped_photo_verifies_with_its_homography() -> None:
    stored = photo("astronaut.png")
    query, scale = features(printed(stored, photo("hubble_deep_field.jpg")))
    found = verify_all(query, scale, (1200, 1600), [(features(stored)[0], stored.shape[:2])])[0]
    assert found.inliers >= 15 and found.corners is not None
    np.testing.assert_allclose(found.corners, TRUE_CORNERS, atol=4)


def test_unrelated_photos_never_verify() -> None:
    extracted = {name: (features(photo(name))[0], photo(name).shape[:2]) for name in PHOTOS}
    for name in PHOTOS:
        query, scale = features(printed(photo(name), photo("color.png")))
        others = [extracted[other] for other in PHOTOS if other not in (name, "color.png")]
        results = verify_all(query, scale, (1200, 1600), others)
        assert all(r.corners is None for r in results), (name, [r.inliers for r in results])


def test_degenerate_geometry_never_counts() -> None:
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(0, 400, 60), rng.uniform(0, 300, 60), np.ones(60), np.zeros(60)])
    matches = (np.arange(60), np.arange(60))
    mirrored = points.copy()
    mirrored[:, 0] = 400 - mirrored[:, 0]
    assert verify(mirrored, points, matches, (300, 400), 1.0, (300, 400)).corners is None  # a flipped homography
    on_a_line = points.copy()
    on_a_line[:, 1] = 2 * on_a_line[:, 0] / 4  # every point on one line
    assert verify(on_a_line, on_a_line, matches, (300, 400), 1.0, (300, 400)).corners is None
    assert verify(points, points, matches, (300, 400), 1.0, (300, 400)).corners is not None  # the same points do


def test_batched_matching_finds_what_each_candidate_alone_finds() -> None:
    """Candidates of many lengths, grouped into products in length order: each gets its own
    ratio-test matches, computed here one candidate at a time by plain distances."""
    rng = np.random.default_rng(7)
    query = root_sift(rng.random((300, 128)) ** 3)
    lengths = [500, 1, 40, 0, 3000, 120, 2, 400, 700, 60]  # one longer than a product, two too short to match
    candidates = [root_sift(rng.random((n, 128)) ** 3) for n in lengths]
    for j in (2, 5, 7):  # some true matches: noisy copies of query rows
        candidates[j][:20] = root_sift(query[j: j + 20] ** 2 + 0.002 * rng.random((20, 128)))
    found = ratio_matches(query, candidates)
    for candidate, (q, c) in zip(candidates, found):
        if len(candidate) < 2:
            assert len(q) == 0
            continue
        distances = np.sqrt(((query[:, None, :] - candidate[None, :, :]) ** 2).sum(axis=2))
        nearest = np.sort(distances, axis=1)
        expected = np.flatnonzero(nearest[:, 0] < 0.8 * nearest[:, 1])
        assert q.tolist() == expected.tolist()
        assert c.tolist() == np.argmin(distances[expected], axis=1).tolist()
    assert sum(len(q) for q, _ in found) >= 60


def test_chance_explains_more_inliers_among_more_matches() -> None:
    """The significance test: more inliers are less likely by chance, more matches make the
    same inliers more likely, and a larger photo (more room to miss) makes them less likely."""
    frame = np.float32([[0, 0], [640, 0], [640, 480], [0, 480]])
    chance = inlier_chance(8.0, frame, (480, 640))
    assert log10_false_alarms(13, 40, chance) < log10_false_alarms(12, 40, chance)
    assert log10_false_alarms(12, 400, chance) > log10_false_alarms(12, 40, chance)
    assert log10_false_alarms(12, 40, inlier_chance(8.0, 2 * frame, (960, 1280))) < log10_false_alarms(12, 40, chance)
    assert log10_false_alarms(4, 40, chance) == np.inf  # a homography's own 4 points prove nothing
    # only the part of the photo the outline covers counts: a model that squeezes the
    # stored image into a corner (or off the photo) finds agreement there cheaply
    assert inlier_chance(8.0, frame / 4, (480, 640)) == pytest.approx(16 * chance)
    assert inlier_chance(8.0, frame + [600, 0], (480, 640)) == pytest.approx(16 * chance)


def test_the_same_inliers_are_evidence_among_few_matches_and_chance_among_many() -> None:
    """10 agreeing inliers over the whole photo: evidence among 20 matches, what chance
    gives among 150 (a fixed count would decide both alike)."""
    frame = np.float32([[0, 0], [640, 0], [640, 480], [0, 480]])
    chance = inlier_chance(8.0, frame, (480, 640)) * 2 * ORIENTATION_DEGREES / 360
    evidence = Evidence()
    for matches, verified in ((20, True), (150, False)):
        found = Verification(10, frame, matches, log10_false_alarms(10, matches, chance))
        assert evidence.accepts(found) == verified, (matches, found.significance)
    assert not Evidence(min_inliers=40).accepts(Verification(10, frame, 20, log10_false_alarms(10, 20, chance)))


def test_inliers_count_only_where_their_orientation_agrees_with_the_homography() -> None:
    """Correspondences that agree on where a homography puts them but not on which way
    their keypoints turn (as chance matches do) are not evidence; turned with the
    homography, the same positions are."""
    rng = np.random.default_rng(2)
    n = 30
    stored = np.column_stack([rng.uniform(20, 380, n), rng.uniform(20, 280, n), np.ones(n), rng.uniform(0, 360, n)])
    turn = np.deg2rad(25)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    query = stored.copy()
    query[:, :2] = stored[:, :2] @ rotation.T + [60, 10]
    query[:, 3] = (stored[:, 3] + 25) % 360  # y down: a turn by +25 degrees adds 25 to every angle
    matches = (np.arange(n), np.arange(n))
    turned = verify(query, stored, matches, (300, 400), 1.0, (480, 640))
    assert turned.corners is not None and turned.inliers == n
    query[:, 3] = rng.uniform(0, 360, n)
    unturned = verify(query, stored, matches, (300, 400), 1.0, (480, 640))
    assert unturned.corners is None and unturned.inliers < n / 2


@pytest.fixture
def indexed(tmp_path, db_url):
    folder = tmp_path / "photos"
    write_collection(folder)
    run = imgsearch("build", folder, "--db", db_url, "-e", "rgb", "-e", "sift")
    assert run.code == 0, run.err
    # on a background that is not in the collection
    cv2.imwrite(str(tmp_path / "phone.jpg"), printed(photo("coffee.png"), photo("brick.png")))
    cv2.imwrite(str(tmp_path / "flat.jpg"), np.full((300, 400, 3), 128, np.uint8))
    return folder, db_url


def test_query_and_the_service_verify_the_same_way(indexed, tmp_path) -> None:
    folder, db = indexed
    args = ("--db", db, "-e", "rgb", "--rerank", "verify:9,1e-10", "--json", "-k", "4")
    cli = imgsearch("query", tmp_path / "phone.jpg", *args)
    assert cli.code == 0, cli.err
    first = cli.json()["results"][0]
    assert first["path"].endswith("coffee.jpg") and first["inliers"] >= 15
    np.testing.assert_allclose(first["corners"], TRUE_CORNERS, atol=8)
    assert all(r["corners"] is None for r in cli.json()["results"][1:])
    plain = imgsearch("query", tmp_path / "flat.jpg", "--db", db, "-e", "rgb", "--json", "-k", "4").json()
    flat = imgsearch("query", tmp_path / "flat.jpg", *args)
    assert flat.code == 0 and [r["id"] for r in flat.json()["results"]] == [r["id"] for r in plain["results"]]
    by_name = imgsearch("query", "coffee.jpg", *args).json()["results"]
    assert by_name[0]["name"] != "coffee.jpg" and all(r["corners"] is None for r in by_name)  # nothing else is it
    with serving(db, tmp_path) as served, served.client() as http:
        upload = http.post("/api/search", files={"image": ("phone.jpg", (tmp_path / "phone.jpg").read_bytes())},
                           data={"extractor": "rgb", "rerank": "verify:9,1e-10", "k": "4"}).json()
        assert [(r["id"], r["inliers"]) for r in upload["results"]] == [(r["id"], r["inliers"])
                                                                      for r in cli.json()["results"]]
        assert upload["rerank"] == "verify:9,1e-10"
    refused = imgsearch("query", "coffee.jpg", "--db", db, "-e", "sift")
    assert refused.code != 0 and "local features" in refused.err


def test_local_features_follow_the_images(indexed) -> None:
    folder, db = indexed
    url = parse_database_url(db)

    def stored() -> dict[str, int]:
        with open_store(url) as store:
            rows = store.execute("SELECT i.path, l.n FROM local_features l JOIN images i ON i.id = l.image_id")
            return {bytes(p).decode(): int(n) for p, n in rows}

    before = stored()
    assert len(before) == len(PHOTOS) and all(n > 0 for p, n in before.items() if not p.endswith("color.jpg"))  # a gradient: no keypoints
    (folder / "a" / "chelsea.jpg").unlink()
    cv2.imwrite(str(folder / "b" / "coffee.jpg"), cv2.flip(photo("coffee.png"), 0))  # new content
    assert imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "sift").code == 0
    after = stored()
    assert set(after) == set(before) - {"a/chelsea.jpg"}
    with open_store(url) as store:
        row = store.find_extractor("sift")
        image = store.find_images(b"b/coffee.jpg")[0]
        kept = store.local_features(row, [image.id])[image.id]
    expected = make_extractor("sift").extract(cv2.imread(str(folder / "b" / "coffee.jpg")))
    # descriptors stored in DESCRIPTOR_BITS a dimension: their roots within half a step
    np.testing.assert_array_equal(kept.descriptors, level_values(descriptor_levels(expected.descriptors)))
    step = SQRT_TOP / (2**DESCRIPTOR_BITS - 1)
    roots = np.minimum(np.sqrt(expected.descriptors.astype(np.float32)), SQRT_TOP)
    assert np.all(np.abs(np.sqrt(kept.descriptors) - roots) <= step / 2 + 1e-5)
    # keypoints stored in float16: within half a unit of its last place of each value
    np.testing.assert_allclose(kept.keypoints, expected.keypoints, rtol=2.0**-11)
    assert kept.keypoints.dtype == np.float32
    # an index written before holds float32 keypoints and whole SIFT bytes: read as stored
    with open_store(url) as store, store.transaction():
        store.execute("UPDATE local_features SET keypoints = ?, descriptors = ? WHERE image_id = ?",
                      (expected.keypoints.astype("<f4").tobytes(), expected.descriptors.tobytes(), image.id))
    with open_store(url) as store:
        before = store.local_features(row, [image.id])[image.id]
    np.testing.assert_array_equal(before.keypoints, expected.keypoints)
    np.testing.assert_array_equal(before.descriptors, expected.descriptors)


def test_queries_verify_by_default_where_local_features_are_stored(indexed, tmp_path) -> None:
    folder, db = indexed
    default = imgsearch("query", tmp_path / "phone.jpg", "--db", db, "-e", "rgb", "--json", "-k", "3")
    assert default.code == 0, default.err
    first = default.json()["results"][0]
    assert first["path"].endswith("coffee.jpg") and first["corners"] is not None
    off = imgsearch("query", tmp_path / "phone.jpg", "--db", db, "-e", "rgb", "--json", "-k", "3", "--rerank", "none")
    assert "inliers" not in off.json()["results"][0]
    with serving(db, tmp_path) as served, served.client() as http:
        upload = http.post("/api/search", files={"image": ("phone.jpg", (tmp_path / "phone.jpg").read_bytes())},
                           data={"extractor": "rgb", "k": "3"}).json()
        assert upload["rerank"] == "verify" and upload["results"][0]["id"] == first["id"]
        by_name = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 3}).json()
        assert by_name["rerank"] == "verify" and all(r["corners"] is None for r in by_name["results"])
        plain = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 3, "rerank": "none"})
        assert plain.json()["rerank"] is None and plain.json()["served"] == "resident"


def test_without_local_features_nothing_verifies_by_default(tmp_path) -> None:
    folder, db = tmp_path / "photos", f"sqlite:///{tmp_path / 'plain.sqlite3'}"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    cv2.imwrite(str(tmp_path / "phone.jpg"), printed(photo("coffee.png"), photo("brick.png")))
    run = imgsearch("query", tmp_path / "phone.jpg", "--db", db, "-e", "rgb", "--json")
    assert run.code == 0 and "inliers" not in run.json()["results"][0]
    refused = imgsearch("query", tmp_path / "phone.jpg", "--db", db, "-e", "rgb", "--rerank", "verify")
    assert refused.code != 0 and "run `imgsearch build` again" in refused.err


def test_the_command_lines_text_marks_the_verified_match_and_says_what_the_score_is(tmp_path, db_url) -> None:
    """Read as a newcomer reads `query phone-photo.jpg`: the first line says how the answer
    is ranked and what the score column holds, the verified match says so with its agreeing
    points (its score may be below the next line's), and `--json` is unchanged."""
    folder = tmp_path / "photos"
    write_collection(folder, tuple(name for name in PHOTOS if name != "hubble_deep_field.jpg"))  # the background
    assert imgsearch("build", folder, "--db", db_url).code == 0
    query = tmp_path / "phone-photo.jpg"
    cv2.imwrite(str(query), printed(photo("astronaut.png"), photo("hubble_deep_field.jpg")))
    run = imgsearch("query", query, "--db", db_url, "-k", "3")
    assert run.code == 0, run.err
    ranked, score, first, *rest, spent = run.out.splitlines()
    assert ranked.startswith("ranked by dba-aqe:3+verify: the same object first (verified")
    assert score.startswith("score: similarity once the query and each image are joined by their nearest")
    found = imgsearch("query", query, "--db", db_url, "-k", "3", "--json").json()
    best = found["results"][0]
    assert first == (f"   1  b/astronaut.jpg  {best['score']:.6f}  same object: {best['inliers']} of {best['matches']} "
                     "points agree")
    assert len(rest) == 2 and not any("same object" in line for line in rest) and spent.startswith("spend ")
    assert set(best) == {"rank", "id", "name", "path", "score", "inliers", "matches", "significance", "corners",
                         "match", "found_by"} and best["match"] == "object"
    plain = imgsearch("query", query, "--db", db_url, "-k", "3", "--rerank", "none").out.splitlines()
    assert plain[:2] == ["ranked by score", "score: pearson similarity of the cnn-spoc descriptors, 1 the most alike"]
    assert all("same object" not in line for line in plain)

