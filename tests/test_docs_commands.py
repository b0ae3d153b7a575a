"""Every command of the README and the guides in docs/, run as written on a small
collection, so the docs cannot rot: PHOTOS is a folder of sample photos (with 45.jpg,
46.jpg, beaches/ and album/), DATASET a folder of classes, phone-photo.jpg and holiday.jpg
photos beside them; a MySQL URL in a command is the test server's, the service's port a
free one. Each command must succeed. The two commands of "Two commands" are run by
tests/test_harness.py in a fresh clone, and are left out here."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest
from mysql_server import free_port
from photos import PHOTOS, photo, variant, write_collection

ROOT = Path(__file__).resolve().parents[1]
# in the order a reader meets them: the guides' later commands use what earlier ones made
DOCS = ("README.md", "docs/building-and-searching.md", "docs/same-object.md", "docs/duplicates.md",
        "docs/learning-and-reranking.md", "docs/service.md", "docs/mysql-and-scale.md")
LONG_RUNNING = ("imgsearch serve", "imgsearch watch")


def documented_commands() -> list[tuple[str, str]]:
    """(file, command line) of every shell block, comments and the install commands left out."""
    found = []
    for name in DOCS:
        for block in re.findall(r"```sh\n(.*?)```", (ROOT / name).read_text("utf-8"), re.S):
            for line in block.splitlines():
                command = line.split("  #", 1)[0].strip()
                if command and not command.startswith("#") and "pip install" not in command:
                    found.append((name, command))
    return found


def test_the_docs_have_commands_to_run() -> None:
    commands = [c for _, c in documented_commands()]
    assert len(commands) >= 40 and all("pip install" not in c for c in commands)


@pytest.fixture
def sandbox(tmp_path, mysql_url, monkeypatch) -> dict:
    photos = tmp_path / "PHOTOS"
    write_collection(photos)
    for folder, name in (("beaches", "coffee.png"), ("album", "rocket.jpg")):
        (photos / folder).mkdir()
        cv2.imwrite(str(photos / folder / f"{folder}.jpg"), photo(name))
    cv2.imwrite(str(photos / "45.jpg"), photo("chelsea.png"))
    cv2.imwrite(str(photos / "46.jpg"), variant(photo("chelsea.png")))
    for i, name in enumerate(PHOTOS * 2):
        folder = tmp_path / "DATASET" / ("cats" if i % 2 else "others")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.jpg"), variant(photo(name)) if i >= len(PHOTOS) else photo(name))
    cv2.imwrite(str(tmp_path / "phone-photo.jpg"), variant(photo("astronaut.png")))
    cv2.imwrite(str(tmp_path / "holiday.jpg"), variant(photo("coffee.png")))
    shutil.copy(ROOT / "config.example.ini", tmp_path / "config.example.ini")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env.update(IMGSEARCH_DB_URL=f"sqlite:///{tmp_path / 'index.sqlite3'}", IMGSEARCH_CONFIG=str(tmp_path / "none.ini"))
    return {"cwd": tmp_path, "env": env, "mysql": mysql_url, "port": free_port()}


def as_run_here(command: str, box: dict) -> str:
    command = re.sub(r"mysql://imgsearch:secret@[\w.]+:3306/imgsearch", box["mysql"], command)
    command = command.replace("/photos ", "PHOTOS ").replace(":8000", f":{box['port']}")
    return command.replace("python -m imgsearch", f"{sys.executable} -m imgsearch")


def wait_for_service(box: dict, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{box['port']}/api/health", timeout=2)
            return
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.2)


def test_every_documented_command_runs(sandbox) -> None:
    service = None
    ran = []
    try:
        for name, command in documented_commands():
            ran.append(command)
            here = as_run_here(command, sandbox)
            if "imgsearch serve" in command and service is not None:
                continue  # the one service on the port: already started by an earlier page
            if any(long in command for long in LONG_RUNNING):
                args = here.split() + (["--port", str(sandbox["port"])] if "serve" in command else [])
                process = subprocess.Popen(args, cwd=sandbox["cwd"], env=sandbox["env"], stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
                if "serve" in command and service is None:
                    wait_for_service(sandbox, process)
                    service = process
                    continue
                time.sleep(3)
                assert process.poll() is None, f"{name}: {command}\n{process.stdout.read()}"
                process.terminate()
                assert process.wait(120) == 0, f"{name}: {command}"
                continue
            done = subprocess.run(["bash", "-c", here], cwd=sandbox["cwd"], env=sandbox["env"], capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"{name}: {command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
            if command.startswith("python -m imgsearch query") and "--json" in command:
                assert '"results"' in done.stdout, command  # it answered, not merely exited
        assert len(ran) == len(documented_commands())
    finally:
        if service is not None:
            service.terminate()
            service.wait(60)
