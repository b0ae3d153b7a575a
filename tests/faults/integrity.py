"""What must hold in an index after any crash: whole batches only, no orphans, no
duplicates, and the packed copy equal to the per-row truth."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pymysql

from imgsearch.errors import ImgsearchError
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def write_small_images(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        tile = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i:04d}.png"), cv2.resize(tile, (48, 48), interpolation=cv2.INTER_NEAREST))


def contents(store, extractor, packed: bool) -> dict[int, bytes]:
    found = {}
    for ids, vectors in store.stream_blocks(extractor, 97, packed=packed):
        for i, v in zip(ids.tolist(), vectors):
            assert i not in found, f"image {i} streamed twice"
            found[i] = v.tobytes()
    return found


def check_integrity(db_url: str, extractors: tuple[str, ...], expected_images: int | None = None) -> int:
    """Asserts the invariants; returns the number of indexed images."""
    try:
        store = open_store(parse_database_url(db_url))
    except ImgsearchError as e:  # killed before it created anything: nothing to check
        assert expected_images is None and ("does not exist" in str(e) or "no index" in str(e)), e
        return 0
    with store:
        rows = [store.find_extractor(name) for name in extractors]
        images = store.stored_images()
        assert len({img.path for img in images.values()}) == len(images)
        orphans = store.execute("SELECT COUNT(*) FROM features f LEFT JOIN images i ON i.id = f.image_id WHERE i.id IS NULL")
        assert orphans[0][0] == 0, "feature rows without their image"
        for row in rows:
            if row is None:
                assert not images, "images stored without their extractor"
                continue
            with_vector = store.image_ids_with_features(row)
            assert with_vector == {img.id for img in images.values()}, f"a half-written batch for {row.name}"
            assert contents(store, row, packed=True) == contents(store, row, packed=False)
        if expected_images is not None:
            assert len(images) == expected_images
        return len(images)


def run_cli(args: list[str], kill_when: Callable[[], bool] | None = None) -> tuple[int, str]:
    """Run the CLI; with kill_when, kill -9 it as soon as that condition holds (polled)."""
    child = subprocess.Popen([sys.executable, "-m", "imgsearch", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    if kill_when is not None:
        while child.poll() is None:
            if kill_when():
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    out, err = child.communicate()
    return child.returncode, err


def committed_images(db_url: str) -> int:
    """Images a build has committed so far, seen from another connection (0 before any)."""
    url = parse_database_url(db_url)
    try:
        conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                               database=url.database, connect_timeout=2)
    except pymysql.err.MySQLError:
        return 0
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM images")
            return int(cur.fetchone()[0])
    except pymysql.err.MySQLError:
        return 0
    finally:
        conn.close()
