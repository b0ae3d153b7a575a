"""The page as a user sees a real phone photo verified: `imgsearch serve` over the index
bench/real_photos.py built, one phone photo uploaded in Debian's chromium (Playwright, no
browser download), the first result focused so its outline is drawn on the photo, and a
screenshot written.

    python bench/real_photo_page.py ../shared/data/smvs_dvd_dev/Palm/043.jpg WORKDIR docs/real-photo-page.png
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("workdir", type=Path, help="bench/real_photos.py's WORKDIR (its index.sqlite3)")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "imgsearch", "serve", "--db",
                               f"sqlite:///{args.workdir / 'index.sqlite3'}", "--port", str(port),
                               "--thumbnails", str(args.workdir / "thumbnails")])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the service did not start")
            time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            page.wait_for_selector("#extractor option", state="attached")
            page.set_input_files("#file", str(args.photo))
            page.wait_for_selector("#results li button.hit.verified", timeout=60_000)
            first = page.locator("#results li button.hit").first
            print(f"first: {first.get_attribute('data-path')}: {first.inner_text()!r}")
            first.focus()
            page.wait_for_function("document.querySelector('#outline-shape').getAttribute('points') !== ''")
            page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete)")
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
