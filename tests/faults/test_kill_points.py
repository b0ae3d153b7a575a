"""The whole build (extraction in workers, batch writes, packing, graph upkeep) and the
service killed with SIGKILL at many points, then rerun: the index equals a clean build's,
image by image and vector by vector, its graph is exact and its answers are the same."""
from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pymysql
import pytest
from cli_runner import imgsearch
from integrity import check_integrity, run_cli, write_small_images
from served import serving
from test_graph import check_exact_up_to_ties

from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.graph_tables import find_graph
from imgsearch.store.url import parse_database_url

FIRST, ADDED = 300, 1200  # indexed with the graph first, then added by the build that is killed
EXTRACTORS = ("rgb", "hsv72")
# Shares of the added images committed when the kill comes; 1.0: all of them, so the
# kill lands in packing or the graph update that end the build.
KILL_AT = (0.0, 0.25, 0.5, 0.75, 1.0)


def build_args(folder: Path, db: str, workers: int) -> list[str]:
    return ["build", str(folder), "--db", db, "-e", "rgb", "-e", "hsv72", "--batch-size", "16", "-j", str(workers)]


def committed(db: str, where: str = "") -> int:
    """Images committed so far (those `where` says), read from another connection (0 before
    the tables exist)."""
    url = parse_database_url(db)
    count = f"SELECT COUNT(*) FROM images {where}"
    try:
        if url.scheme == "sqlite":
            with sqlite3.connect(f"file:{url.path}?mode=ro", uri=True, timeout=1) as conn:
                return int(conn.execute(count).fetchone()[0])
        conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                               database=url.database, connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute(count)
                return int(cur.fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, pymysql.err.MySQLError):
        return 0


def indexed_state(db: str) -> dict:
    """What a clean build must equal: every path with its hash and vectors."""
    with open_store(parse_database_url(db)) as store:
        images = store.stored_images()
        by_id = {row.id: path for path, row in images.items()}
        state: dict = {path: [row.sha256] for path, row in sorted(images.items())}
        for name in EXTRACTORS:
            row = store.find_extractor(name)
            for ids, vectors in store.stream_blocks(row, 256):
                for image_id, vector in zip(ids.tolist(), vectors):
                    state[by_id[image_id]].append(vector.tobytes())
    return state


def prepared_collection(root: Path) -> tuple[Path, Path]:
    folder, added = root / "photos", root / "added"
    write_small_images(folder / "first", FIRST, seed=11)
    write_small_images(added, ADDED, seed=12)
    return folder, added


def index_with_graph(folder: Path, db: str) -> None:
    assert imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "hsv72").code == 0
    made = imgsearch("graph", "--db", db, "-e", "hsv72", "-m", "cosine", "-n", "5")
    assert made.code == 0, made.err


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The state a build of the whole collection reaches without interruption."""
    root = tmp_path_factory.mktemp("clean")
    folder, added = prepared_collection(root)
    db = f"sqlite:///{root / 'clean.sqlite3'}"
    index_with_graph(folder, db)
    shutil.copytree(added, folder / "added")
    assert imgsearch(*build_args(folder, db, 2)).code == 0
    return indexed_state(db)


def check_equals_clean(db: str, clean: dict) -> None:
    check_integrity(db, EXTRACTORS, expected_images=FIRST + ADDED)  # whole batches, packed == per-row
    assert indexed_state(db) == clean
    with open_store(parse_database_url(db)) as store:
        row = store.find_extractor("hsv72")
        check_exact_up_to_ties(store, row, find_graph(store, row, "cosine"), get_metric("cosine"))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kill_at", KILL_AT)
@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_build_killed_at_any_point_then_rerun_equals_a_clean_build(request, tmp_path, clean, backend, kill_at,
                                                                     workers) -> None:
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("mysql_url")
    folder, added = prepared_collection(tmp_path)
    index_with_graph(folder, db)
    shutil.copytree(added, folder / "added")
    target = FIRST + kill_at * ADDED
    code, _ = run_cli(build_args(folder, db, workers), kill_when=lambda: committed(db) >= target)
    assert code == -signal.SIGKILL, "the build ended before the kill: this kill point proves nothing"
    check_integrity(db, EXTRACTORS)  # what was committed is whole
    code, err = run_cli(build_args(folder, db, workers))
    assert code == 0, err
    check_equals_clean(db, clean)


RENAMED = f"WHERE SUBSTR(path, 1, 8) = X'{b'renamed/'.hex()}'"  # paths are bytes: no LIKE on SQLite's BLOBs


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_build_killed_among_moves_then_rerun_keeps_every_row(request, tmp_path, backend) -> None:
    """A renamed folder of 1,200 images: the build is killed when half of them are at their
    new paths; the rerun moves the rest. Every image keeps its id and vectors, and the
    graph stays exact."""
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("mysql_url")
    folder, added = prepared_collection(tmp_path)
    shutil.copytree(added, folder / "added")
    index_with_graph(folder, db)
    with open_store(parse_database_url(db)) as store:
        ids_before = {row.sha256: row.id for row in store.stored_images().values()}
    state_before = {path.replace(b"added/", b"renamed/", 1): value for path, value in indexed_state(db).items()}
    (folder / "added").rename(folder / "renamed")
    code, _ = run_cli(build_args(folder, db, 1), kill_when=lambda: committed(db, RENAMED) >= ADDED // 2)
    assert code == -signal.SIGKILL, "the build ended before the kill: this kill point proves nothing"
    check_integrity(db, EXTRACTORS, expected_images=FIRST + ADDED)  # nothing lost, nothing doubled
    assert 0 < committed(db, RENAMED) < ADDED  # killed among the moves
    code, err = run_cli(build_args(folder, db, 1))
    assert code == 0, err
    with open_store(parse_database_url(db)) as store:
        assert {row.sha256: row.id for row in store.stored_images().values()} == ids_before
        row = store.find_extractor("hsv72")
        check_exact_up_to_ties(store, row, find_graph(store, row, "cosine"), get_metric("cosine"))
    assert indexed_state(db) == state_before


@pytest.mark.parametrize("during", ["requests", "a build"])
def test_serve_killed_then_restarted_answers_as_query(tmp_path, during) -> None:
    folder, added = prepared_collection(tmp_path)
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    index_with_graph(folder, db)
    with serving(db, tmp_path, "-e", "rgb") as served, served.client() as http:
        build = None
        if during == "a build":
            shutil.copytree(added, folder / "added")
            build = subprocess.Popen([sys.executable, "-m", "imgsearch", *build_args(folder, db, 1)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while committed(db) < FIRST + ADDED // 3:
                time.sleep(0.01)
        for i in range(20):
            answer = http.post("/api/search", json={"name": f"first/img{i:04d}.png", "extractor": "rgb"})
            assert answer.status_code == 200, answer.text
        served.process.send_signal(signal.SIGKILL)
        served.process.wait()
        if build is not None:
            assert build.wait() == 0
    with serving(db, tmp_path, "-e", "rgb") as served, served.client() as http:
        for name in ("first/img0007.png", "first/img0123.png"):
            answer = http.post("/api/search", json={"name": name, "extractor": "rgb", "k": 5}).json()
            cli = imgsearch("query", name, "--db", db, "-e", "rgb", "-k", "5", "--json").json()
            assert [r["id"] for r in answer["results"]] == [r["id"] for r in cli["results"]]
            np.testing.assert_allclose([r["score"] for r in answer["results"]],
                                       [r["score"] for r in cli["results"]], atol=1e-5)
            assert answer["state"] == cli["state"]
