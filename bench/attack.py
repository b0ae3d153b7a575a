"""The service attacked as an operator's bad day would, against a real `imgsearch serve` on
loopback, with the counts the reliability issue asks for:

    python bench/attack.py FOLDER [--fuzz 10000] [--half-open 1000] [--swap-seconds 30]

FOLDER holds a few photos (e.g. the first 50 of Corel-1k); they are indexed (rgb) into a
temporary SQLite file. Then:
  (a) fuzzed JSON bodies and uploads (random structures, huge and non-finite numbers, lone
      surrogates, deep nesting; mutated, truncated and random image bytes, pixel bombs):
      every answer must be a JSON 4xx or a right answer; the count of others is printed;
  (b) half-open connections (half the headers, or a body shorter than its length): the
      health endpoint's latency while they are held, and how long until the server has
      closed every one of them;
  (c) an indexed file and a link to a file outside the collection swapped back and forth
      (renameat2 RENAME_EXCHANGE) while clients ask for the file and its thumbnail (the
      cache emptied after each): bytes from outside and broken bodies are counted.
Only loopback is contacted. Nothing is asserted: the figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

ALLOWED = {200, 400, 404, 413, 415, 422}
FIELDS = ("name", "extractor", "metric", "k", "offset", "rerank", "whiten", "include_self", "regions")
RENAME_EXCHANGE, AT_FDCWD = 2, -100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(db: str, workdir: Path, port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "imgsearch", "serve", "--db", db, "--port", str(port),
                                "--thumbnails", str(workdir / "thumbnails"), "-e", "rgb"],
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"serve did not start:\n{log.read_text()}")


def json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(10**30), 10**30)
    if kind == 2:
        return rng.choice([float("inf"), float("-inf"), float("nan"), 1e308, -0.0, 1.5, 5.0])
    if kind == 3:
        return rng.randint(-3, 1200)
    if kind in (4, 5):
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(12)))
    if kind == 6:
        return rng.choice(["coffee.jpg", "rgb", "cosine", "aqe:2", "diffusion", " 5", "٥", "1_0", "true", "crops"])
    if kind == 7:
        return str(rng.randint(0, 2000))
    if kind in (8, 9):
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(FIELDS): json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def json_body(rng: random.Random, names: list[str]) -> bytes:
    roll = rng.random()
    if roll < 0.02:
        depth = rng.choice([100, 5000, 100_000])
        return b"[" * depth + b"]" * depth
    body = {rng.choice(FIELDS): json_value(rng) for _ in range(rng.randrange(6))}
    if roll < 0.5:
        body["name"] = rng.choice(names)
    text = json.dumps(body, allow_nan=True)
    if rng.random() < 0.15:
        text = text.replace('"', '"\\ud800', 1)
    return text.encode()


def image_body(rng: random.Random, bases: list[bytes]) -> bytes:
    base = bytearray(rng.choice(bases))
    roll = rng.random()
    if roll < 0.1:
        return os.urandom(rng.randrange(1, 4000))
    if roll < 0.2:
        return bytes(base[: rng.randrange(1, len(base))])
    for _ in range(rng.randrange(1, 8)):
        base[rng.randrange(len(base))] = rng.randrange(256)
    return bytes(base)


def fuzz(base: str, count: int, names: list[str], bases: list[bytes]) -> None:
    rng = random.Random(7)
    statuses: dict[int, int] = {}
    wrong = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(count):
            if i % 2:
                response = http.post("/api/search", content=json_body(rng, names),
                                     headers={"content-type": "application/json"})
            else:
                response = http.post("/api/search", files={"image": ("x.jpg", image_body(rng, bases))},
                                     data={"extractor": "rgb", "k": str(rng.randint(1, 20))})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                answer = response.json()
                ok = response.status_code in ALLOWED and (("results" in answer) == (response.status_code == 200))
            except ValueError:
                ok = False
            if not ok:
                wrong.append((response.status_code, response.text[:200]))
    print(f"(a) fuzzed requests: {count} ({count // 2} uploads, {count - count // 2} JSON bodies); statuses "
          f"{dict(sorted(statuses.items()))}; neither JSON 4xx nor a right answer: {len(wrong)}")
    for status, text in wrong[:5]:
        print(f"    {status}: {text}")


def half_open(base: str, port: int, count: int) -> None:
    sockets = []
    started = time.monotonic()
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " if i % 2 else
                  b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"name\": ")
        sockets.append(s)
    opened = time.monotonic() - started
    latencies = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(20):
            t = time.perf_counter()
            status = http.get("/api/health").status_code
            latencies.append((time.perf_counter() - t) * 1000)
            assert status == 200, status
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    closed, last = 0, 0.0
    while closed < count and time.monotonic() - started < 300:
        for key, _ in selector.select(timeout=1):
            try:
                data = key.fileobj.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                closed += 1
                last = time.monotonic() - started
    for s in sockets:
        s.close()
    print(f"(b) half-open connections: {count} opened in {opened:.1f} s; /api/health meanwhile p50 "
          f"{statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms; closed by the server: {closed} "
          f"of {count}, the last {last:.1f} s after the first was opened (header deadline 10 s, body 60 s)")


def swap_race(base: str, folder: Path, outside: Path, thumbnails: Path, seconds: float) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    target, link = folder / "race.png", folder / "race-link.png"
    original, secret = target.read_bytes(), (outside / "secret.png").read_bytes()
    stop = threading.Event()
    swaps = [0]

    def swap() -> None:
        while not stop.is_set():
            libc.renameat2(AT_FDCWD, bytes(target), AT_FDCWD, bytes(link), RENAME_EXCHANGE)
            swaps[0] += 1
        if swaps[0] % 2:
            libc.renameat2(AT_FDCWD, bytes(target), AT_FDCWD, bytes(link), RENAME_EXCHANGE)

    counts = {"file whole": 0, "thumbnail made": 0, "refused (404)": 0, "outside bytes": 0, "broken bodies": 0}
    with httpx.Client(base_url=base, timeout=30) as http:
        image_id = http.post("/api/search", json={"name": "race.png", "extractor": "rgb", "k": 1,
                                                   "include_self": True}).json()["results"][0]["id"]
        thread = threading.Thread(target=swap)
        thread.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for what in ("file", "thumbnail"):
                shutil.rmtree(thumbnails, ignore_errors=True)
                try:
                    response = http.get(f"/api/images/{image_id}/{what}")
                except httpx.TransportError:
                    counts["broken bodies"] += 1
                    continue
                if response.status_code == 404:
                    counts["refused (404)"] += 1
                elif what == "file":
                    counts["file whole" if response.content == original else "outside bytes"] += 1
                else:
                    thumb = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
                    counts["outside bytes" if thumb[..., 2].mean() > 128 else "thumbnail made"] += 1
        stop.set()
        thread.join()
    print(f"(c) link exchange for {seconds:.0f} s ({swaps[0]:,} swaps): {counts}; secret bytes {len(secret)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--fuzz", type=int, default=10_000)
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--swap-seconds", type=float, default=30)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    workdir = Path(tempfile.mkdtemp(prefix="imgsearch-attack-"))
    folder, outside = workdir / "photos", workdir / "private"
    folder.mkdir()
    outside.mkdir()
    sources = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[: args.photos]
    for path in sources:
        shutil.copy(path, folder / path.name)
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "race.png"), rng.integers(0, 60, (300, 400, 3)).astype(np.uint8))
    red = np.zeros((300, 400, 3), np.uint8)
    red[:] = (0, 0, 255)
    cv2.imwrite(str(outside / "secret.png"), red)
    (folder / "race-link.png").symlink_to(outside / "secret.png")
    db = f"sqlite:///{workdir / 'index.sqlite3'}"
    subprocess.run([sys.executable, "-m", "imgsearch", "build", str(folder), "--db", db, "-e", "rgb"], check=True,
                   capture_output=True)
    port = free_port()
    log = workdir / "serve.log"
    process = start_serve(db, workdir, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        bases = [path.read_bytes() for path in sources[:10]]
        fuzz(base, args.fuzz, [p.name for p in sources] + ["nope.jpg"], bases)
        half_open(base, port, args.half_open)
        swap_race(base, folder, outside, workdir / "thumbnails", args.swap_seconds)
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text(errors="replace")
    print(f"serve log: {len(text.splitlines())} lines, {text.count('refused an upload')} refused uploads, "
          f"{text.count('Traceback')} tracebacks, {text.count('Corrupt JPEG') + text.count('libpng')} codec lines")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
