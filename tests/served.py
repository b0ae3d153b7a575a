"""A real `imgsearch serve` in a child process on a free loopback port, for the API and page tests."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from mysql_server import free_port


@dataclass
class Served:
    base: str
    process: subprocess.Popen
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60, **kwargs)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(db: str, workdir: Path, *args: str, env: dict | None = None) -> Iterator[Served]:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "imgsearch", "serve", "--db", db, "--port", str(port),
                                    "--thumbnails", str(workdir / "thumbnails"), *args],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited:\n{served.output()}")
            try:
                if httpx.get(served.base + "/api/health", timeout=2, headers=_auth(args)).status_code in (200, 401):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer:\n{served.output()}")
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _auth(args: tuple[str, ...]) -> dict:
    return {"Authorization": f"Bearer {args[args.index('--token') + 1]}"} if "--token" in args else {}
