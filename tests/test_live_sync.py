"""A running service follows builds made beside it in every read, not only in its vectors:
after a verified upload (the words stage writes a temporary table on the service's own
connection), photos added, deleted and changed by a build are seen by uploads, name
queries, `under`, files, thumbnails, compare, duplicates and stats, on SQLite and MariaDB;
and on SQLite no reader pins the write-ahead log, so it stops growing."""
import sqlite3
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
from cli_runner import imgsearch
from photos import photo, write_collection
from served import Served, serving


def _jpeg(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", pixels)[1].tobytes()


def _upload(http, pixels: np.ndarray, **fields: str) -> dict:
    answer = http.post("/api/search", files={"image": ("q.jpg", _jpeg(pixels))}, data={"k": "5", **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _by_name(http, name: str, **fields) -> dict:
    answer = http.post("/api/search", json={"name": name, "k": 20, **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _image_id(http, name: str) -> int:
    answer = _by_name(http, name, include_self=True)
    return next(r["id"] for r in answer["results"] if r["path"] == name)


def _first_verified(http, pixels: np.ndarray) -> str:
    answer = _upload(http, pixels)
    assert answer["results"], answer
    return answer["results"][0]["path"]


def _served_sees(served: Served, name: str, pixels: np.ndarray) -> None:
    """Every read of the service finds `name` with the content `pixels`."""
    with served.client() as http:
        assert _first_verified(http, pixels) == name
        image_id = _image_id(http, name)
        meta = http.get(f"/api/images/{image_id}")
        assert meta.status_code == 200 and meta.json()["path"] == name
        assert (meta.json()["width"], meta.json()["height"]) == (pixels.shape[1], pixels.shape[0])
        file = http.get(f"/api/images/{image_id}/file")
        assert file.status_code == 200, file.text
        assert cv2.imdecode(np.frombuffer(file.content, np.uint8), cv2.IMREAD_COLOR).shape == pixels.shape
        assert http.get(f"/api/images/{image_id}/thumbnail").status_code == 200
        folder = str(Path(name).parent)
        inside = _by_name(http, name, under=folder, include_self=True)
        assert name in [r["path"] for r in inside["results"]]
        compared = http.post("/api/compare", files={"image": ("q.jpg", _jpeg(pixels))}, data={"b": name})
        assert compared.status_code == 200, compared.text
        assert compared.json()["scores"]["cnn-spoc"]["cosine"] > 0.9, compared.json()


def _served_lost(served: Served, name: str, old_id: int) -> None:
    with served.client() as http:
        assert http.get(f"/api/images/{old_id}").status_code == 404
        assert http.get(f"/api/images/{old_id}/file").status_code == 404
        assert http.post("/api/search", json={"name": name}).status_code == 404
        groups = http.get("/api/duplicates").json()["groups"]
        assert all(m["path"] != name for g in groups for m in g["members"])
        assert all(g["members"] for g in groups)


def _images_in_stats(served: Served) -> int:
    with served.client() as http:
        stats = http.get("/api/stats").json()
        health = http.get("/api/health").json()
    assert all(lag >= 0 for lag in health["sync_lag_changes"].values()), health
    return stats["images"]


def test_added_deleted_and_changed_photos_reach_every_read_of_a_running_service(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"))
    assert imgsearch("build", folder, "--db", db_url).code == 0
    with serving(db_url, tmp_path) as served:
        with served.client() as http:
            # the first verified upload: from it on, the words stage has used the connection
            assert _first_verified(http, photo("coffee.png")) == "b/coffee.jpg"
        assert _images_in_stats(served) == 5

        added = photo("color.png")
        cv2.imwrite(str(folder / "b" / "color.jpg"), added)
        assert imgsearch("build", folder, "--db", db_url).code == 0
        _served_sees(served, "b/color.jpg", added)
        assert _images_in_stats(served) == 6

        with served.client() as http:
            deleted_id = _image_id(http, "a/chelsea.jpg")
        (folder / "a" / "chelsea.jpg").unlink()
        assert imgsearch("build", folder, "--db", db_url).code == 0
        _served_lost(served, "a/chelsea.jpg", deleted_id)
        with served.client() as http:
            assert all(r["path"] != "a/chelsea.jpg" for r in _upload(http, photo("chelsea.png"))["results"])
        assert _images_in_stats(served) == 5

        changed = photo("ihc.png")
        cv2.imwrite(str(folder / "a" / "rocket.jpg"), changed)
        assert imgsearch("build", folder, "--db", db_url).code == 0
        _served_sees(served, "a/rocket.jpg", changed)
        with served.client() as http:
            old_content = _upload(http, photo("rocket.jpg"))["results"]
            assert all(not (r["path"] == "a/rocket.jpg" and r["corners"]) for r in old_content), old_content


def test_no_reader_of_a_running_service_pins_the_write_ahead_log(tmp_path) -> None:
    """A reader holding an old snapshot stops every checkpoint at its mark, and the log then
    grows with each build for as long as the service runs."""
    folder = tmp_path / "photos"
    write_collection(folder, ("astronaut.png", "chelsea.png", "coffee.png"))
    path = tmp_path / "index.sqlite3"
    db = f"sqlite:///{path}"
    assert imgsearch("build", folder, "--db", db).code == 0
    with serving(db, tmp_path) as served:
        for step, name in enumerate(("rocket.jpg", "color.png", "ihc.png")):
            with served.client() as http:
                _first_verified(http, photo("coffee.png"))
            cv2.imwrite(str(folder / f"new{step}.jpg"), photo(name))
            assert imgsearch("build", folder, "--db", db).code == 0
            with served.client() as http:
                assert _first_verified(http, photo(name)) == f"new{step}.jpg"
        with closing(sqlite3.connect(path)) as conn:
            busy, frames, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames > 0 and checkpointed == frames, (busy, frames, checkpointed)
