"""Folder links (photos on another disk): followed by default, each real folder walked once,
every link not followed named in the summary with its reason, and the service serves files
found below a followed link from that folder only."""
import os

import cv2
from cli_runner import imgsearch
from photos import photo
from served import serving

from imgsearch.index.walk import FollowedLink, FoundFile, Problem, walk_collection


def _photos(folder, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / (name.split(".")[0] + ".jpg")), photo(name))


def _layout(tmp_path):
    """A collection with one real folder, two links to one folder on "another disk", a link
    back into the collection, one to a folder holding it, and a link loop below the outside
    folder."""
    root = tmp_path / "library" / "photos"
    _photos(root / "home", ("astronaut.png",))
    outside = tmp_path / "disk2" / "holidays"
    _photos(outside, ("coffee.png", "chelsea.png"))
    _photos(outside / "inner", ("rocket.jpg",))
    os.symlink(outside, root / "holidays")
    os.symlink(outside, root / "zz-again")  # the same folder a second time
    os.symlink(root / "home", root / "home-link")  # into the collection
    os.symlink(tmp_path / "library", root / "up")  # holds the collection: a loop
    os.symlink(outside, outside / "inner" / "loop")  # a loop inside the linked folder
    return root, outside


def test_the_walk_follows_each_real_folder_once_and_says_why_it_left_a_link(tmp_path) -> None:
    root, outside = _layout(tmp_path)
    entries = list(walk_collection(root))
    files = sorted(e.relpath for e in entries if isinstance(e, FoundFile))
    assert files == [b"holidays/chelsea.jpg", b"holidays/coffee.jpg", b"holidays/inner/rocket.jpg", b"home/astronaut.jpg"]
    followed = [e for e in entries if isinstance(e, FollowedLink)]
    assert [(f.relpath, f.target) for f in followed] == [(b"holidays", str(outside.resolve()))]
    reasons = {e.relpath: e.reason for e in entries if isinstance(e, Problem) and e.folder_link}
    assert set(reasons) == {b"zz-again", b"home-link", b"up", b"holidays/inner/loop"}
    assert "the same folder as holidays" in reasons[b"zz-again"]
    assert "into the collection" in reasons[b"home-link"]
    assert "holding the collection" in reasons[b"up"]

    unfollowed = list(walk_collection(root, follow_links=False))
    assert [e.relpath for e in unfollowed if isinstance(e, FoundFile)] == [b"home/astronaut.jpg"]
    assert {e.relpath for e in unfollowed if isinstance(e, Problem) and e.folder_link} == \
        {b"holidays", b"zz-again", b"home-link", b"up"}


def test_build_indexes_linked_folders_names_the_rest_and_keeps_rows_when_told_not_to_follow(tmp_path) -> None:
    root, _ = _layout(tmp_path)
    db = tmp_path / "index.sqlite3"
    run = imgsearch("build", root, "--db", db, "-e", "rgb")
    assert run.code == 0, run.err
    assert "indexed 4," in run.out and "4 folder links not followed" in run.out
    assert "followed folder link holidays -> " in run.out
    for link in ("zz-again", "home-link", "up", "holidays/inner/loop"):
        assert f"not followed: folder link {link}: " in run.out
    again = imgsearch("build", root, "--db", db, "-e", "rgb", "--no-follow-links")
    assert again.code == 0, again.err
    assert "removed 0," in again.out and "kept 3 unseen" in again.out
    assert "not followed: folder link holidays: folder link not followed (--no-follow-links)" in again.out


def test_the_service_serves_files_below_a_followed_link_and_nothing_swapped_in_for_it(tmp_path) -> None:
    root, outside = _layout(tmp_path)
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    assert imgsearch("build", root, "--db", db, "-e", "rgb").code == 0
    with serving(db, tmp_path) as served, served.client() as http:
        answer = http.post("/api/search", json={"name": "holidays/inner/rocket.jpg", "k": 5, "include_self": True,
                                                "extractor": "rgb"}).json()
        image = next(r for r in answer["results"] if r["path"] == "holidays/inner/rocket.jpg")
        file = http.get(f"/api/images/{image['id']}/file")
        assert file.status_code == 200 and file.content == (outside / "inner" / "rocket.jpg").read_bytes()
        assert http.get(f"/api/images/{image['id']}/thumbnail").status_code == 200

        # the link now names another folder holding a file of the same name and size
        impostor = tmp_path / "elsewhere"
        (impostor / "inner").mkdir(parents=True)
        original = outside / "inner" / "rocket.jpg"
        (impostor / "inner" / "rocket.jpg").write_bytes(original.read_bytes())
        mtime = original.stat().st_mtime_ns
        os.utime(impostor / "inner" / "rocket.jpg", ns=(mtime, mtime))
        (root / "holidays").unlink()
        os.symlink(impostor, root / "holidays")
        assert http.get(f"/api/images/{image['id']}/file").status_code == 200  # still the indexed folder's file
        os.rename(outside, tmp_path / "moved")
        os.symlink(impostor, outside)  # the indexed folder's path is now a link to the impostor
        refused = http.get(f"/api/images/{image['id']}/file")
        assert refused.status_code == 404 and "another folder" in refused.json()["error"]


def test_under_a_followed_link_searches_its_folder(tmp_path) -> None:
    root, _ = _layout(tmp_path)
    db = tmp_path / "index.sqlite3"
    assert imgsearch("build", root, "--db", db, "-e", "rgb").code == 0
    found = imgsearch("query", "home/astronaut.jpg", "--db", db, "-e", "rgb", "--under", "holidays/inner", "--json")
    assert found.code == 0, found.err
    assert [r["path"] for r in found.json()["results"]] == ["holidays/inner/rocket.jpg"]
