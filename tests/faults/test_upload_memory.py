"""Uploads cost memory by their pixels, not their bytes: one declaring more pixels than
the service takes is refused before it is decoded, decodes in flight stay within their
budget, and damaged uploads leave one line each in the log, not the codecs' complaints."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
from bad_files import png_bomb
from cli_runner import imgsearch
from photos import write_collection
from served import serving


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def striped_png(height: int, width: int) -> bytes:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[::40] = (40, 200, 90)
    return cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def indexed(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    write_collection(tmp_path / "photos", ("coffee.png", "chelsea.png"))
    assert imgsearch("build", tmp_path / "photos", "--db", db, "-e", "rgb").code == 0
    return db


def test_an_upload_of_too_many_pixels_is_refused_before_it_is_decoded(tmp_path) -> None:
    db = indexed(tmp_path)
    huge = striped_png(9950, 9950)  # 99 M pixels in about 300 KB
    with serving(db, tmp_path, "--upload-limit", "2M") as served, served.client() as http:
        before = peak_rss_mib(served.process.pid)
        answer = http.post("/api/search", files={"image": ("huge.png", huge)}, data={"extractor": "rgb"})
        assert answer.status_code == 415 and "too many pixels for an upload" in answer.json()["error"], answer.text
        assert peak_rss_mib(served.process.pid) - before < 100  # decoding it would take ~570 MiB
        assert http.post("/api/search", files={"image": ("bomb.png", png_bomb(60_000, 60_000))},
                         data={"extractor": "rgb"}).status_code == 415


def test_decodes_in_flight_stay_within_the_budget(tmp_path) -> None:
    db = indexed(tmp_path)
    big = striped_png(5000, 5000)  # 25 M pixels: ~150 MiB while decoded
    with serving(db, tmp_path, "--upload-limit", "5M", "--upload-pixels", "30000000",
                 "--decode-memory", "300M") as served, served.client() as http:
        http.post("/api/search", files={"image": ("warm.png", striped_png(500, 500))}, data={"extractor": "rgb"})
        before = peak_rss_mib(served.process.pid)
        statuses = []

        def upload() -> None:
            statuses.append(http.post("/api/search", files={"image": ("big.png", big)},
                                      data={"extractor": "rgb"}).status_code)

        threads = [threading.Thread(target=upload) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 4
        growth = peak_rss_mib(served.process.pid) - before
        assert growth < 220, growth  # one decode at a time: ~145 MiB (four at once without it: 384-391 MiB)


def test_damaged_uploads_leave_one_line_each_and_no_codec_noise(tmp_path) -> None:
    db = indexed(tmp_path)
    rng = np.random.default_rng(5)
    pixels = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    bases = [cv2.imencode(ext, pixels)[1].tobytes() for ext in (".jpg", ".png")]
    refused = 0
    with serving(db, tmp_path) as served, served.client() as http:
        for i in range(120):
            damaged = bytearray(bases[i % 2])
            for _ in range(3):
                damaged[rng.integers(20, len(damaged))] = rng.integers(0, 256)
            answer = http.post("/api/search", files={"image": ("x.jpg", bytes(damaged))}, data={"extractor": "rgb"})
            assert answer.status_code in (200, 415), answer.text
            refused += answer.status_code == 415
        log = served.output()
    assert refused > 0
    assert log.count("refused an upload") == refused, log[-2000:]
    for noise in ("Corrupt JPEG data", "libpng", "Premature end", "[ERROR:", "[ WARN:"):
        assert noise not in log, log[-2000:]
