"""Runs the real command line in a child process, as a user would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def imgsearch(*args: str | Path, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> Run:
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "imgsearch", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)
