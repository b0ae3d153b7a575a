"""A build that cannot see part of its collection (a folder it may not list, a file it
may not stat) keeps those rows and says so: only a positive "does not exist" removes."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from integrity import write_small_images

# Root reads every file whatever its mode: run the build without the capabilities that
# let it, so a mode-000 folder is as closed to it as to any other user.
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def build(folder: Path | None, db: Path) -> subprocess.CompletedProcess:
    """A build of `folder`, or of the folder the index already holds."""
    named = [str(folder)] if folder else []
    return subprocess.run([*WITHOUT_OVERRIDE, sys.executable, "-m", "imgsearch", "build", *named, "--db", str(db),
                           "-e", "rgb", "-j", "1"], capture_output=True, text=True, timeout=300)


def stored_paths(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {os.fsdecode(p) for (p,) in conn.execute("SELECT path FROM images")}


@pytest.fixture
def collection(tmp_path: Path):
    folder = tmp_path / "photos"
    write_small_images(folder / "beaches", 30)
    write_small_images(folder / "cities" / "rome", 12, seed=1)
    write_small_images(folder / "forests", 5, seed=2)
    yield folder
    for sub in folder.rglob("*"):  # let pytest clean up what the test closed
        if sub.is_dir():
            sub.chmod(0o755)
    for sub in (folder / "beaches", folder / "cities", folder / "cities" / "rome"):
        sub.chmod(0o755)


def test_a_folder_that_cannot_be_listed_keeps_its_rows(collection: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    first = build(collection, db)
    assert first.returncode == 0, first.stderr
    everything = stored_paths(db)
    assert len(everything) == 47

    (collection / "beaches").chmod(0o000)  # cannot list, cannot reach what is inside
    (collection / "cities" / "rome").chmod(0o600)  # can list names, cannot stat them
    (collection / "forests" / "img0000.png").unlink()  # really gone
    second = build(collection, db)
    assert second.returncode == 0, second.stderr
    assert stored_paths(db) == everything - {"forests/img0000.png"}
    assert "removed 1," in second.stdout, second.stdout
    assert "kept 30 unseen" in second.stdout, second.stdout
    assert "kept 30 rows under beaches/: cannot list folder (Permission denied)" in second.stdout, second.stdout

    (collection / "beaches").chmod(0o755)
    (collection / "cities" / "rome").chmod(0o755)
    (collection / "beaches" / "img0001.png").unlink()
    third = build(collection, db)
    assert third.returncode == 0, third.stderr
    assert "removed 1," in third.stdout and "kept" not in third.stdout, third.stdout
    assert stored_paths(db) == everything - {"forests/img0000.png", "beaches/img0001.png"}


def test_an_unreadable_collection_root_removes_nothing(collection: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    assert build(collection, db).returncode == 0
    collection.chmod(0o300)  # can enter, cannot list
    try:
        again = build(None, db)
    finally:
        collection.chmod(0o755)
    assert again.returncode == 0, again.stderr
    assert len(stored_paths(db)) == 47
    assert "removed 0," in again.stdout and "kept 47 rows under the collection root" in again.stdout, again.stdout
