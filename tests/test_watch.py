"""`imgsearch watch`: a photo copied into the folder is indexed without anyone asking, a
burst of 500 is a few builds, not 500, and a watcher stopped mid-burst leaves whole batches
that its next start completes (what no event told it included). It keeps following: below
a folder link, after the folder was swapped for another by rename, and after it was gone
for a while (nothing removed meanwhile) - in `watch` and in `serve --watch`."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest
from cli_runner import imgsearch
from faults.integrity import check_integrity, write_small_images
from photos import photo, write_collection
from served import serving

from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

DEADLINE = 120  # seconds: a watcher that has not done it by then never will (not a speed check)


class Watcher:
    """`imgsearch watch` in a child process, its summary lines collected as they come."""

    def __init__(self, folder: Path, db: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imgsearch", "watch", str(folder), "--db", db, "-e", "rgb", "--quiet-seconds",
             "0.5", "--batch-size", "16", "-j", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def builds(self) -> list[str]:
        return [line for line in self.lines if " indexed " in line]

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert self.process.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, f"{what}; the watcher said:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(DEADLINE)


def indexed(db: str) -> set[str]:
    try:
        with open_store(parse_database_url(db)) as store:
            return {path.decode() for path in store.stored_images()}
    except Exception:
        return set()


def test_a_copied_photo_is_indexed_and_a_burst_is_a_few_builds(tmp_path, db_url) -> None:
    folder = tmp_path / "photos"
    write_small_images(folder / "first", 5)
    watcher = Watcher(folder, db_url)
    try:
        watcher.wait_for(lambda: len(watcher.builds()) >= 1, "the pass at start")
        assert len(indexed(db_url)) == 5
        cv2.imwrite(str(folder / "new.jpg"), photo("coffee.png"))
        watcher.wait_for(lambda: "new.jpg" in indexed(db_url), "the copied photo indexed")
        builds = len(watcher.builds())
        write_small_images(folder / "import", 500, seed=3)
        watcher.wait_for(lambda: len(indexed(db_url)) == 506, "the 500 photos indexed")
        assert len(watcher.builds()) - builds <= 10, watcher.builds()  # debounced, not one build a file
        (folder / "import").rename(folder / "trip")
        watcher.wait_for(lambda: any(p.startswith("trip/") for p in indexed(db_url))
                         and not any(p.startswith("import/") for p in indexed(db_url)), "the renamed folder")
        # the build's line is printed after its transaction commits: wait for it too
        watcher.wait_for(lambda: any("moved 500" in line for line in watcher.builds()), "the move reported")
    finally:
        assert watcher.stop() == 0, "\n".join(watcher.lines)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_watcher_stopped_mid_build_leaves_whole_batches_and_its_next_start_completes(tmp_path, how) -> None:
    folder = tmp_path / "photos"
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    write_small_images(folder / "first", 3)
    watcher = Watcher(folder, db)
    watcher.wait_for(lambda: len(watcher.builds()) >= 1, "the pass at start")
    write_small_images(folder / "import", 2000, seed=4)
    watcher.wait_for(lambda: len(indexed(db)) > 3, "the burst's build begun")
    if how == signal.SIGTERM:
        assert watcher.stop() == 0, "\n".join(watcher.lines)
        assert any("stopped when asked" in line for line in watcher.lines), watcher.lines
    else:
        watcher.process.kill()
        assert watcher.process.wait(DEADLINE) == -signal.SIGKILL
    done = check_integrity(db, ("rgb",))  # what was written is whole
    assert 3 < done < 2003
    again = Watcher(folder, db)  # nothing happens in the folder now: only its start finds the rest
    try:
        again.wait_for(lambda: len(indexed(db)) == 2003, "the rest indexed at start")
    finally:
        assert again.stop() == 0


def test_serve_watch_answers_for_a_photo_copied_in_after_it_started(tmp_path, db_url) -> None:
    folder = tmp_path / "photos"
    write_collection(folder)
    db = db_url  # SQLite and MariaDB: the service's own watcher writes beside its live sync
    assert imgsearch("build", folder, "--db", db).code == 0
    with serving(db, tmp_path, "--watch") as served, served.client() as http:
        cv2.imwrite(str(folder / "copied.jpg"), photo("coffee.png"))
        deadline = time.monotonic() + DEADLINE
        while http.post("/api/search", json={"name": "copied.jpg", "k": 1}).status_code != 200:
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.2)
        # the summary is printed when the build ends (after packing and upkeep): the photo answers earlier
        while "imgsearch: watch: indexed 1," not in served.output():
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.2)
        assert "imgsearch: watch: indexed 1," in served.output()


@contextmanager
def following(front: str, folder: Path, db: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """`imgsearch watch` or `serve --watch` following the folder (rgb only); what it has
    said so far. The hourly full pass never comes within a test: events (or their absence)
    must do it."""
    if front == "watch":
        watcher = Watcher(folder, db)
        try:
            yield lambda: "\n".join(watcher.lines)
        finally:
            assert watcher.stop() == 0, "\n".join(watcher.lines)
        return
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    env = {**os.environ, "IMGSEARCH_BUILD_EXTRACTORS": "rgb"}
    with serving(db, tmp_path, "--watch", env=env) as served:
        yield served.output
        assert "watch stopped" not in served.output()


def wait_until(condition: Callable[[], bool], what: str, said: Callable[[], str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what}; the watcher said:\n{said()}"
        time.sleep(0.1)


FRONTS = ["watch", "serve --watch"]


@pytest.mark.parametrize("front", FRONTS)
def test_changes_below_a_followed_folder_link_are_followed(tmp_path, db_url, front) -> None:
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    write_small_images(folder / "here", 2)
    write_small_images(elsewhere, 2, seed=1)
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    with following(front, folder, db_url, tmp_path) as said:
        wait_until(lambda: {"linked/img0000.png", "linked/img0001.png"} <= indexed(db_url), "the link's photos", said)
        cv2.imwrite(str(elsewhere / "added.jpg"), photo("coffee.png"))
        wait_until(lambda: "linked/added.jpg" in indexed(db_url), "a photo added below the link indexed", said)
        (elsewhere / "img0000.png").unlink()
        wait_until(lambda: "linked/img0000.png" not in indexed(db_url), "a photo deleted below the link removed", said)


@pytest.mark.parametrize("front", FRONTS)
def test_a_folder_swapped_by_rename_is_followed_to_the_new_one(tmp_path, db_url, front) -> None:
    folder, new = tmp_path / "photos", tmp_path / "photos.new"
    write_small_images(folder / "old", 3)
    write_small_images(new / "fresh", 4, seed=2)
    with following(front, folder, db_url, tmp_path) as said:
        wait_until(lambda: len(indexed(db_url)) == 3, "the pass at start", said)
        folder.rename(tmp_path / "photos.old")
        new.rename(folder)
        wait_until(lambda: indexed(db_url) == {f"fresh/img000{i}.png" for i in range(4)}, "the new folder's photos, "
                   "and only them", said)
        cv2.imwrite(str(folder / "later.jpg"), photo("coffee.png"))  # and its events are heard from then on
        wait_until(lambda: "later.jpg" in indexed(db_url), "a photo added to the new folder", said)


@pytest.mark.parametrize("front", FRONTS)
def test_a_folder_gone_and_made_again_is_waited_for_and_nothing_is_removed_meanwhile(tmp_path, db_url, front) -> None:
    folder, backup = tmp_path / "photos", tmp_path / "backup"
    write_small_images(folder / "kept", 3)
    with following(front, folder, db_url, tmp_path) as said:
        wait_until(lambda: len(indexed(db_url)) == 3, "the pass at start", said)
        shutil.copytree(folder, backup)
        shutil.rmtree(folder)
        wait_until(lambda: "is gone: waiting for it to come back" in said(), "the wait said", said)
        time.sleep(3)  # longer than a quiet spell: a build now would remove every row
        assert len(indexed(db_url)) == 3
        shutil.copytree(backup, folder)  # restored: another folder at the same path
        cv2.imwrite(str(folder / "since.jpg"), photo("coffee.png"))
        wait_until(lambda: "since.jpg" in indexed(db_url) and len(indexed(db_url)) == 4, "the restored folder "
                   "followed", said)
        assert "is back: a full pass" in said()
