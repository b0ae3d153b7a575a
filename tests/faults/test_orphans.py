"""A build killed with SIGKILL takes its whole process tree with it: no worker, forkserver
or resource tracker of it outlives it by more than a few seconds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from integrity import write_small_images


def in_session(session: int) -> list[int]:
    """Live processes of a session (its id is the pid of the process that started it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields after the name: state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


def test_no_process_of_a_killed_build_outlives_it(tmp_path: Path) -> None:
    write_small_images(tmp_path / "photos", 3000)
    build = subprocess.Popen([sys.executable, "-m", "imgsearch", "build", str(tmp_path / "photos"), "--db",
                              str(tmp_path / "index.sqlite3"), "-e", "rgb", "-e", "hsv72", "-j", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(in_session(build.pid)) < 4:  # the build, the forkserver (or tracker) and two workers
        assert build.poll() is None, "the build ended before its workers could be seen"
        assert time.monotonic() < deadline, in_session(build.pid)
        time.sleep(0.05)
    time.sleep(0.5)  # extraction under way
    build.send_signal(signal.SIGKILL)
    build.wait()
    deadline = time.monotonic() + 10
    while (left := in_session(build.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in left]
    finally:
        for pid in left:
            os.kill(pid, signal.SIGKILL)
