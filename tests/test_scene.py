"""Which part of the photo a verified image matched (rerank.scene): the photo's object, or
only the place it was taken. A photo of the same object elsewhere ranks above a photo of
another object on the same desk, though the desk gives that one more inliers, and the answer
says which is which."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from cli_runner import imgsearch
from photos import photo

from imgsearch.keypoints import LocalFeatures
from imgsearch.rerank.expansion import second_query
from imgsearch.rerank.scene import OBJECT, SCENE, match_kinds, unexplained
from imgsearch.rerank.verify import Verification, inlier_points, verified_keys

SIZE = (1000, 1000)  # height, width


def scattered(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A query's keypoints: 200 on an object in the middle, 200 on the border around it;
    returns the points and the indices of each part."""
    middle = rng.uniform(350, 650, (200, 2))
    border = np.vstack([rng.uniform([0, 0], [1000, 150], (100, 2)), rng.uniform([0, 850], [1000, 1000], (100, 2))])
    return np.vstack([middle, border]), np.arange(200), np.arange(200, 400)


def test_the_matches_nearest_the_centre_are_the_object_and_the_others_the_scene() -> None:
    rng = np.random.default_rng(3)
    points, middle, border = scattered(rng)
    inliers = [points[middle[:30]], None, points[border[:80]], points[middle[100:125]], points[border[120:180]]]
    assert match_kinds(SIZE, inliers) == [OBJECT, None, SCENE, OBJECT, SCENE]
    # what matched, not how much: the scene's larger groups change nothing
    assert match_kinds(SIZE, [points[border[:150]], points[middle[:20]]]) == [SCENE, OBJECT]
    # a copy of the whole photo matched the object and more: it shows the object
    assert match_kinds(SIZE, [points, points[border[:80]], points[middle[:30]]]) == [OBJECT, SCENE, OBJECT]


def test_matches_of_one_part_of_the_photo_are_the_object_wherever_it_lies() -> None:
    points, _, border = scattered(np.random.default_rng(4))
    assert match_kinds(SIZE, [points[border[:40]], points[border[40:100]]]) == [OBJECT, OBJECT]
    assert match_kinds(SIZE, [None, None]) == [None, None]


def test_the_object_ranks_above_the_scene_with_more_inliers_and_both_above_the_unverified() -> None:
    points, middle, border = scattered(np.random.default_rng(5))
    corners = np.zeros((4, 2), np.float32)
    results = [Verification(60, corners, 100, -20.0, border[:60]), Verification(25, corners, 90, -9.0, middle[:25]),
               None, Verification(3, None, 40)]
    kinds = match_kinds(SIZE, [inlier_points(r, points) for r in results])
    assert kinds == [SCENE, OBJECT, None, None]
    keys = verified_keys(np.array([0.2, 0.1, 0.9, 0.8]), results, kinds)
    assert list(np.argsort(-keys, kind="stable")) == [1, 0, 2, 3]


def shot(subject: np.ndarray, place: np.ndarray, corners: np.ndarray, view: np.ndarray | None = None) -> np.ndarray:
    """`subject` lying in `place` (a 1600 x 1200 frame) at `corners`, the whole seen through
    the homography `view` (a camera moved a little), as a phone photo of a desk."""
    h, w = subject.shape[:2]
    H = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), corners)
    frame = cv2.resize(place, (1600, 1200))
    warped = cv2.warpPerspective(subject, H, (1600, 1200))
    mask = cv2.warpPerspective(np.ones((h, w), np.uint8), H, (1600, 1200))
    pixels = np.where(mask[..., None] > 0, warped, frame)
    return pixels if view is None else cv2.warpPerspective(pixels, view, (1600, 1200), borderMode=cv2.BORDER_REFLECT)


MIDDLE = np.float32([[600, 380], [1000, 400], [990, 800], [610, 790]])


def write_desk_photos(folder: Path, query: Path) -> None:
    """A collection holding another object on the query's desk (desk-coffee.jpg), the
    query's object elsewhere (sofa-astronaut.jpg) and two other photos; the query: the
    object on the desk, the camera moved a little."""
    quarters = [cv2.resize(photo(name), (800, 600)) for name in ("hubble_deep_field.jpg", "rocket.jpg",
                                                                  "motorcycle_left.png", "ihc.png")]
    desk = np.vstack([np.hstack(quarters[:2]), np.hstack(quarters[2:])])
    folder.mkdir()
    cv2.imwrite(str(folder / "desk-coffee.jpg"), shot(photo("coffee.png"), desk, MIDDLE))
    cv2.imwrite(str(folder / "sofa-astronaut.jpg"),
                shot(photo("astronaut.png"), photo("chelsea.png"), np.float32([[200, 150], [700, 250], [650, 900],
                                                                               [150, 800]])))
    for name in ("color.png", "retina.jpg"):
        cv2.imwrite(str(folder / name.replace(".png", ".jpg")), photo(name))
    moved = np.float64([[1.02, 0.01, -20], [-0.01, 1.01, 12], [0, 0, 1]])
    cv2.imwrite(str(query), shot(photo("astronaut.png"), desk, MIDDLE, moved))


def test_another_object_on_the_same_desk_is_said_to_share_only_the_scene(tmp_path, db_url) -> None:
    folder, query = tmp_path / "photos", tmp_path / "desk-astronaut.jpg"
    write_desk_photos(folder, query)
    assert imgsearch("build", folder, "--db", db_url).code == 0

    run = imgsearch("query", query, "--db", db_url, "-k", "4", "--json")
    assert run.code == 0, run.err
    verified = [r for r in run.json()["results"] if r["corners"] is not None]
    assert [(r["path"], r["match"]) for r in verified] == [("sofa-astronaut.jpg", "object"), ("desk-coffee.jpg", "scene")]
    elsewhere, same_desk = verified
    assert same_desk["inliers"] > elsewhere["inliers"]  # by inliers alone the desk would come first
    assert all(r["match"] is None for r in run.json()["results"] if r["corners"] is None)
    # expand 0: no second query, as --help says
    alone = imgsearch("query", query, "--db", db_url, "-k", "4", "--json", "--rerank", "verify:100,1e-6,0")
    assert alone.code == 0, alone.err
    assert "expansion" not in alone.json()["stages_s"]
    assert [r["path"] for r in alone.json()["results"] if r["corners"] is not None] == [r["path"] for r in verified]
    text = imgsearch("query", query, "--db", db_url, "-k", "4").out.splitlines()
    assert text[2].endswith(f"same object: {elsewhere['inliers']} of {elsewhere['matches']} points agree")
    assert text[3].endswith(f"same scene only: {same_desk['inliers']} of {same_desk['matches']} points agree")

    # the photo itself in the collection (a user searching with a photo they keep): its copy
    # matches the whole photo, object and desk, and tells no part from the other
    shutil.copy(query, folder / "desk-astronaut.jpg")
    assert imgsearch("build", folder, "--db", db_url).code == 0
    again = imgsearch("query", query, "--db", db_url, "-k", "5", "--json").json()["results"]
    assert [(r["path"], r["match"]) for r in again if r["corners"] is not None] == [
        ("desk-astronaut.jpg", "object"), ("sofa-astronaut.jpg", "object"), ("desk-coffee.jpg", "scene")]


def test_the_expanded_query_is_the_object_of_the_photo_and_of_its_best_object_match_carried_into_it() -> None:
    rng = np.random.default_rng(6)
    points, middle, border = scattered(rng)
    query = LocalFeatures(np.column_stack([points, np.full(400, 4.0), np.zeros(400)]).astype(np.float32),
                          rng.integers(0, 255, (400, 128)).astype(np.uint8))
    # the stored image: its 100 features at half the photo's scale, 20 px off; a homography brings them back
    stored_points = np.column_stack([(points[:100] - 20) / 2, np.full(100, 2.0), np.full(100, 90.0)])
    stored = LocalFeatures(stored_points.astype(np.float32), rng.integers(0, 255, (100, 128)).astype(np.float32))
    back = np.array([[2.0, 0, 20], [0, 2.0, 20], [0, 0, 1]])
    corners = np.zeros((4, 2), np.float32)
    results = [Verification(30, corners, 60, -12.0, middle[:30], back), Verification(80, corners, 90, -30.0, border[:80],
                                                                                      np.eye(3))]
    model = second_query(query, SIZE, results, [stored, stored])
    assert model is not None
    # the object: where its matches' inliers are (the hull of the 30)
    outline = cv2.convexHull(points[middle[:30]].astype(np.float32))
    on_object = np.array([cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0 for x, y in points])
    assert 30 <= on_object.sum() < 200 and not on_object[200:].any()
    # the photo's own features on its object (its surroundings left out), then the match's that land there
    assert len(model) == on_object.sum() + on_object[:100].sum()
    carried_back = model.keypoints[on_object.sum():]
    np.testing.assert_allclose(carried_back[:, :2], points[:100][on_object[:100]], atol=1e-3)
    np.testing.assert_allclose(carried_back[:, 2:], [[4.0, 90.0]] * len(carried_back), atol=1e-3)
    assert second_query(query, SIZE, [Verification(3, None, 40), None], [stored, stored]) is None  # nothing verified
    assert second_query(query, SIZE, results, [stored, stored], anchors=0) is None


def test_what_only_the_expanded_query_verified_ranks_between_the_object_and_the_scene() -> None:
    points, middle, border = scattered(np.random.default_rng(7))
    corners = np.zeros((4, 2), np.float32)
    results = [Verification(70, corners, 100, -20.0, border[:70]), Verification(20, corners, 90, -9.0, middle[:20]),
               Verification(2, None, 30), None]
    again = [None, None, Verification(90, corners, 120, -25.0, middle[:90]), None]
    kinds = match_kinds(SIZE, [inlier_points(r, points) for r in results[:2]] + [points[middle[:90]], None])
    keys = verified_keys(np.array([0.5, 0.1, 0.2, 0.9]), results, kinds, again)
    assert list(np.argsort(-keys, kind="stable")) == [1, 2, 0, 3]


def test_where_only_the_surroundings_verified_the_second_query_is_what_they_left_unexplained() -> None:
    rng = np.random.default_rng(8)
    points, middle, border = scattered(rng)
    query = LocalFeatures(np.column_stack([points, np.full(400, 4.0), np.zeros(400)]).astype(np.float32),
                          rng.integers(0, 255, (400, 128)).astype(np.uint8))
    desk = Verification(150, np.zeros((4, 2), np.float32), 200, -60.0, border[:150], np.eye(3))
    stored = LocalFeatures(query.keypoints[:100], query.descriptors[:100].astype(np.float32))
    model = second_query(query, SIZE, [desk], [stored])
    left = unexplained(points, SIZE, [points[border[:150]]])
    assert model is not None and left[middle].all() and left.sum() < 400
    # the photo's own features there, none of the desk photo's
    np.testing.assert_array_equal(model.keypoints, query.keypoints[left])
