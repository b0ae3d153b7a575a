"""Files by id under attack: the indexed file and a link to a file outside the collection
swapped back and forth (renameat2 RENAME_EXCHANGE) while clients ask for the file and its
thumbnail. Nothing from outside may be sent or cached, and no body may break off."""
from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from cli_runner import imgsearch
from served import serving

RENAME_EXCHANGE = 2
AT_FDCWD = -100
RACE_SECONDS = 4


def exchange_loop(a: Path, b: Path, stop: threading.Event) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    swaps = 0
    while not stop.is_set():
        if libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")
        swaps += 1
    if swaps % 2:  # leave the indexed file where it was
        libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE)
    return swaps


def test_a_link_swapped_in_during_requests_never_sends_an_outside_file(tmp_path: Path) -> None:
    folder, outside = tmp_path / "photos" / "sub", tmp_path / "private"
    folder.mkdir(parents=True)
    outside.mkdir()
    rng = np.random.default_rng(3)
    pixels = (rng.integers(0, 60, (300, 400, 3))).astype(np.uint8)  # dark noise
    cv2.imwrite(str(folder / "photo.png"), pixels)
    secret_pixels = np.zeros((300, 400, 3), np.uint8)
    secret_pixels[:] = (0, 0, 255)  # bright red: a thumbnail of it is easy to tell apart
    cv2.imwrite(str(outside / "secret.png"), secret_pixels)
    (folder / "link.png").symlink_to(outside / "secret.png")  # skipped by the build
    original = (folder / "photo.png").read_bytes()
    secret = (outside / "secret.png").read_bytes()
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    assert imgsearch("build", tmp_path / "photos", "--db", db, "-e", "rgb").code == 0

    with serving(db, tmp_path) as served, httpx.Client(base_url=served.base, timeout=30) as http:
        image_id = http.post("/api/search", json={"name": "photo.png", "extractor": "rgb", "include_self": True,
                                                   "k": 1}).json()["results"][0]["id"]
        stop = threading.Event()
        swapper = threading.Thread(target=exchange_loop, args=(folder / "photo.png", folder / "link.png", stop))
        outcomes: dict[str, int] = {"whole": 0, "refused": 0}
        leaks, broken = [], []
        swapper.start()
        try:
            deadline = time.monotonic() + RACE_SECONDS
            while time.monotonic() < deadline:
                for what in ("file", "thumbnail"):
                    try:
                        answer = http.get(f"/api/images/{image_id}/{what}")
                    except httpx.TransportError as e:  # a body that broke off
                        broken.append(repr(e))
                        continue
                    if answer.status_code == 404:
                        outcomes["refused"] += 1
                        continue
                    assert answer.status_code == 200, answer.text
                    if what == "file":
                        if answer.content != original:
                            leaks.append(answer.content == secret)
                        else:
                            outcomes["whole"] += 1
                    else:
                        thumb = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
                        if thumb[..., 2].mean() > 128:
                            leaks.append("thumbnail of the outside file")
        finally:
            stop.set()
            swapper.join()
        assert not leaks and not broken, (len(leaks), broken[:3], outcomes)
        assert outcomes["whole"] > 0 and outcomes["refused"] > 0, outcomes  # the race really ran
        after = http.get(f"/api/images/{image_id}/thumbnail")  # the cached one, after the race
        thumb = cv2.imdecode(np.frombuffer(after.content, np.uint8), cv2.IMREAD_COLOR)
        assert after.status_code == 200 and thumb[..., 2].mean() < 128
        assert http.get(f"/api/images/{image_id}/file").content == original
    assert "Too little data" not in served.output() and "Traceback" not in served.output(), served.output()
    assert os.path.islink(folder / "link.png") and not os.path.islink(folder / "photo.png")
