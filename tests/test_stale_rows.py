"""A path that no longer holds the image stored for it stops answering: other bytes that do
not decode, a broken link, a folder, an empty file. The build removes such a row and names
it; a move whose old path holds something else now is still a move; a file replaced by
other bytes of the same size and time is caught by --verify-content."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
from cli_runner import imgsearch
from photos import photo

from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

# root reads every file whatever its mode (tests/faults/test_unseen_files.py)
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
NAMES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "motorcycle_left.png")


def six_photos(folder):
    """a/100.jpg ... a/105.jpg, as the issue's Corel photos."""
    (folder / "a").mkdir(parents=True)
    for i, name in enumerate(NAMES):
        cv2.imwrite(str(folder / "a" / f"{100 + i}.jpg"), photo(name))
    return folder / "a"


def rows(db: str) -> dict[str, int]:
    """path -> image id."""
    with open_store(parse_database_url(db)) as store:
        return {path.decode(): row.id for path, row in store.stored_images().items()}


def answered(db: str, query) -> list[str]:
    found = imgsearch("query", query, "--db", db, "-e", "rgb", "-k", "20", "--json")
    assert found.code == 0, found.err
    return [hit["path"] for hit in found.json()["results"]]


def scores(db: str, query) -> dict[str, float]:
    found = imgsearch("query", query, "--db", db, "-e", "rgb", "-k", "20", "--rerank", "none", "--json").json()
    return {hit["path"]: hit["score"] for hit in found["results"]}


def test_rows_of_paths_that_hold_no_image_go_and_a_move_away_from_them_is_kept(db_url, tmp_path) -> None:
    a = six_photos(tmp_path / "photos")
    assert imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb").code == 0
    before = rows(db_url)
    os.truncate(a / "101.jpg", 1000)  # other bytes that do not decode
    (a / "102.jpg").unlink()
    (a / "102.jpg").symlink_to("/nonexistent.jpg")  # a broken link
    (a / "103.jpg").rename(a / "103b.jpg")
    (a / "103.jpg").mkdir()  # a folder where the file was: the file moved
    (a / "104.jpg").rename(a / "104b.jpg")
    (a / "104.jpg").touch()  # an empty file where the file was: the file moved
    run = imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb")
    assert run.code == 0, run.err
    assert "indexed 0, moved 2, unchanged 2, removed 2," in run.out, run.out
    assert "removed the row of a/101.jpg: cannot decode" in run.out
    assert "removed the row of a/102.jpg: broken or looping symlink" in run.out
    assert "kept" not in run.out
    after = rows(db_url)
    assert after == {"a/100.jpg": before["a/100.jpg"], "a/103b.jpg": before["a/103.jpg"],
                     "a/104b.jpg": before["a/104.jpg"], "a/105.jpg": before["a/105.jpg"]}
    assert sorted(answered(db_url, a / "105.jpg")) == ["a/100.jpg", "a/103b.jpg", "a/104b.jpg"]
    again = imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb")
    assert "indexed 0, unchanged 4, removed 0," in again.out and "removed the row" not in again.out


def test_a_path_turned_folder_or_folder_link_and_a_file_emptied_in_place_lose_their_rows(db_url, tmp_path) -> None:
    a = six_photos(tmp_path / "photos")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(a / "105.jpg", elsewhere / "inside.jpg")
    assert imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb").code == 0
    (a / "100.jpg").unlink()
    (a / "100.jpg").mkdir()
    (a / "101.jpg").unlink()
    (a / "101.jpg").symlink_to(elsewhere, target_is_directory=True)  # its photo is indexed below it
    (a / "102.jpg").write_bytes(b"")
    run = imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb")
    assert run.code == 0, run.err
    assert "indexed 1, unchanged 3, removed 3," in run.out, run.out
    for line in ("removed the row of a/100.jpg: a folder now", "removed the row of a/101.jpg: a link to a folder now",
                 "removed the row of a/102.jpg: empty file"):
        assert line in run.out, run.out
    assert set(rows(db_url)) == {"a/101.jpg/inside.jpg", "a/103.jpg", "a/104.jpg", "a/105.jpg"}


def test_a_file_the_build_may_not_read_keeps_its_row(db_url, tmp_path) -> None:
    """Issue 18's promise: where the build could not look, the row stays (root reads every
    file whatever its mode: the build runs without the capabilities that let it)."""
    a = six_photos(tmp_path / "photos")
    assert imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb").code == 0
    before = rows(db_url)
    os.truncate(a / "101.jpg", 1000)  # changed, so the build must read it; and it may not
    (a / "101.jpg").chmod(0)
    try:
        run = subprocess.run([*WITHOUT_OVERRIDE, sys.executable, "-m", "imgsearch", "build", str(tmp_path / "photos"),
                              "--db", db_url, "-e", "rgb"], capture_output=True, text=True, timeout=300)
    finally:
        (a / "101.jpg").chmod(0o644)
    assert run.returncode == 0, run.stderr
    assert "skipped a/101.jpg: permission denied" in run.stderr and "removed 0," in run.stdout, run.stdout + run.stderr
    assert rows(db_url) == before


def same_size_other_bytes(target, pixels) -> None:
    """Replace the file by an encoding of other pixels, padded to its old size (a decoder
    stops at the JPEG's end), with its old modification time: what `cp -p` of another
    photo of the same size does."""
    kept = target.stat()
    data = next(data for quality in range(95, 5, -5)
                if len(data := cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
                <= kept.st_size)
    target.write_bytes(data.ljust(kept.st_size, b"\0"))
    os.utime(target, ns=(kept.st_atime_ns, kept.st_mtime_ns))


def test_verify_content_catches_other_bytes_of_the_same_size_and_time(db_url, tmp_path) -> None:
    a = six_photos(tmp_path / "photos")
    assert imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb").code == 0
    before = rows(db_url)
    same_size_other_bytes(a / "100.jpg", photo(NAMES[5]))
    plain = imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb")
    assert "indexed 0, unchanged 6, removed 0," in plain.out, plain.out  # the documented shortcut
    assert scores(db_url, a / "105.jpg")["a/100.jpg"] < 0.9  # its old content still answers for it
    verified = imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "rgb", "--verify-content")
    assert verified.code == 0, verified.err
    assert "indexed 1, unchanged 5, removed 0," in verified.out, verified.out
    assert "verified the content of 6 files of the stored size and time: 1 of them had changed" in verified.out
    assert rows(db_url) == before  # the row kept its id, with the new content's vectors
    assert scores(db_url, a / "105.jpg")["a/100.jpg"] > 0.99
