"""Moves and renames keep the photo: a folder renamed, then built, keeps every row (id,
vectors, local features, words, hashes, graph lists) at the new paths with nothing
extracted again; copies stay two rows; a moved file whose content changed is new."""
from __future__ import annotations

import shutil

import cv2
from cli_runner import imgsearch
from photos import photo, variant, write_collection

from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

EXTRACTORS = ("-e", "rgb", "-e", "sift", "-e", "phash")
PER_IMAGE_TABLES = ("features", "local_features", "visual_words", "word_images", "image_hashes", "graph_nodes")


def rows_by_content(db: str) -> dict[str, tuple[int, str]]:
    """sha256 -> (image id, path)."""
    with open_store(parse_database_url(db)) as store:
        return {row.sha256: (row.id, path.decode()) for path, row in store.stored_images().items()}


def per_image_rows(db: str) -> dict[str, list]:
    with open_store(parse_database_url(db)) as store:
        return {table: sorted(store.execute(f"SELECT image_id, COUNT(*) FROM {table} GROUP BY image_id"))
                for table in PER_IMAGE_TABLES}


def test_a_renamed_folder_keeps_its_rows_and_is_not_extracted_again(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder / "trip")
    assert imgsearch("build", folder, "--db", db_url, *EXTRACTORS).code == 0
    assert imgsearch("graph", "--db", db_url, "-e", "rgb", "-m", "cosine", "-n", "3").code == 0
    before, tables = rows_by_content(db_url), per_image_rows(db_url)
    (folder / "trip").rename(folder / "japan")
    run = imgsearch("build", folder, "--db", db_url, *EXTRACTORS)
    assert run.code == 0, run.err
    assert "indexed 0, moved 9, unchanged 0, removed 0" in run.out
    after = rows_by_content(db_url)
    assert {sha: image_id for sha, (image_id, _) in after.items()} == {sha: i for sha, (i, _) in before.items()}
    assert {sha: path for sha, (_, path) in after.items()} == {
        sha: path.replace("trip/", "japan/", 1) for sha, (_, path) in before.items()}
    assert per_image_rows(db_url) == tables  # vectors, local features, words, hashes, graph lists: all kept
    found = imgsearch("query", "japan/b/astronaut.jpg", "--db", db_url, "-e", "rgb", "--json").json()
    assert found["results"][0]["path"].startswith("japan/")
    assert imgsearch("query", "trip/b/astronaut.jpg", "--db", db_url, "-e", "rgb").code != 0
    again = imgsearch("build", folder, "--db", db_url, *EXTRACTORS)
    assert "indexed 0, unchanged 9, removed 0" in again.out  # the new paths are simply unchanged now


def test_copies_stay_two_rows_and_a_changed_file_is_not_a_move(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    paths = write_collection(folder, ("astronaut.png", "chelsea.png", "coffee.png"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb").code == 0
    before = rows_by_content(db_url)
    copied, changed = paths[0], paths[1]
    shutil.copy(copied, folder / "one.jpg")
    shutil.move(copied, folder / "two.jpg")  # one content at two new paths, gone from the old
    changed.unlink()
    cv2.imwrite(str(folder / "edited.jpg"), variant(photo("chelsea.png")))  # gone, and back changed
    run = imgsearch("build", folder, "--db", db_url, "-e", "rgb")
    assert run.code == 0, run.err
    assert "indexed 2, moved 1, unchanged 1, removed 1" in run.out
    with open_store(parse_database_url(db_url)) as store:
        stored = store.stored_images()
    sha = next(s for s, (_, path) in before.items() if path.endswith("astronaut.jpg"))
    kept = [row for row in stored.values() if row.sha256 == sha]
    assert len(kept) == 2 and before[sha][0] in {row.id for row in kept}  # one keeps the id, the copy is new
    assert {p.decode() for p in stored} == {"b/coffee.jpg", "one.jpg", "two.jpg", "edited.jpg"}


def test_a_file_moved_into_another_shard_keeps_its_row_whichever_shard_builds_first(db_url, tmp_path) -> None:
    from imgsearch.index.shards import shard_of

    folder = tmp_path / "photos"
    write_collection(folder / "trip")
    for first in ("1/2", "2/2"):
        run = [imgsearch("build", folder, "--db", db_url, "-e", "rgb", "--shard", s) for s in ("1/2", "2/2")]
        assert all(r.code == 0 for r in run), [r.err for r in run]
        before = rows_by_content(db_url)
        target = "japan" if first == "1/2" else "trip"
        source = "trip" if target == "japan" else "japan"
        (folder / source).rename(folder / target)
        crossing = [path for _, path in before.values()
                    if shard_of(path.encode(), 2) != shard_of(path.replace(source, target, 1).encode(), 2)]
        assert crossing  # the rename moves some files into the other shard
        second = "2/2" if first == "1/2" else "1/2"
        runs = [imgsearch("build", folder, "--db", db_url, "-e", "rgb", "--shard", s) for s in (first, second)]
        assert all(r.code == 0 for r in runs), [r.err for r in runs]
        assert sum(int(r.out.split("moved ")[1].split(",")[0]) for r in runs if "moved " in r.out) == 9
        assert all("indexed 0," in r.out for r in runs)
        after = rows_by_content(db_url)
        assert {sha: i for sha, (i, _) in after.items()} == {sha: i for sha, (i, _) in before.items()}
        assert {path for _, path in after.values()} == {p.replace(source, target, 1) for _, p in before.values()}


def test_shard_builds_side_by_side_claim_each_moved_row_once(db_url, tmp_path) -> None:
    import subprocess
    import sys

    folder = tmp_path / "photos"
    write_collection(folder / "trip")
    for s in ("1/2", "2/2"):
        assert imgsearch("build", folder, "--db", db_url, "-e", "rgb", "--shard", s).code == 0
    before = rows_by_content(db_url)
    (folder / "trip").rename(folder / "japan")
    runs = [subprocess.Popen([sys.executable, "-m", "imgsearch", "build", str(folder), "--db", db_url, "-e", "rgb",
                              "--shard", s], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for s in ("1/2", "2/2")]
    outs = [r.communicate(timeout=300) for r in runs]
    assert all(r.returncode == 0 for r in runs), [err for _, err in outs]
    after = rows_by_content(db_url)
    assert {path for _, path in after.values()} == {p.replace("trip", "japan", 1) for _, p in before.values()}
    # every file once, each with its id: a row is claimed by one build at most, and the shard
    # a file left does not delete a row another shard's new file may claim
    assert {sha: i for sha, (i, _) in after.items()} == {sha: i for sha, (i, _) in before.items()}
