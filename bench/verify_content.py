"""What `build --verify-content` costs (issue 36): a collection of --files photos (Corel-1k,
flowers102 and the SMVS photos; copies of them, in their own folder, where the sets run out),
indexed once with a fast descriptor (what a no-change build costs does not depend on it), then
in one run, alternating: no-change builds with and without --verify-content, and a bare read
and sha256 of the same files. Prints the medians, the ratio and the bytes read.

    python bench/verify_content.py ../shared/data ~/.cache/imgsearch-bench/verify [--files 10000]
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETS = ("corel1k", "flowers102", "smvs_dvd_dev")


def collection_of(data: Path, workdir: Path, files: int) -> Path:
    """WORKDIR/collection with `files` photos, made once (hard links where the file system allows)."""
    collection = workdir / "collection"
    if collection.exists() and sum(1 for p in collection.rglob("*.jpg")) == files:
        return collection
    shutil.rmtree(collection, ignore_errors=True)
    sources = sorted(p for name in SETS for p in (data / name).rglob("*.jpg"))
    for i in range(files):
        source = sources[i % len(sources)]
        target = collection / f"round{i // len(sources)}" / source.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)  # copies, not links: each file read from its own blocks
    return collection


def build(collection: Path, db: str, *flags: str) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "imgsearch", "build", str(collection), "--db", db, "-e", "rgb", *flags],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    return time.perf_counter() - started, run.stdout.strip().splitlines()[-1]


def read_and_hash(collection: Path) -> tuple[float, int]:
    started, size = time.perf_counter(), 0
    for path in sorted(collection.rglob("*.jpg")):
        data = path.read_bytes()
        size += len(data)
        hashlib.sha256(data).hexdigest()
    return time.perf_counter() - started, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    collection = collection_of(args.data, args.workdir, args.files)
    db = f"sqlite:///{args.workdir / 'index.sqlite3'}"
    first, line = build(collection, db)
    print(f"first (or cached) build: {first:.1f} s ({line})")
    plain, verified, bare = [], [], []
    for _ in range(args.rounds):
        plain.append(build(collection, db)[0])
        seconds, line = build(collection, db, "--verify-content")
        verified.append(seconds)
        seconds, size = read_and_hash(collection)
        bare.append(seconds)
    print(f"{args.files} files, {size / 2**20:.0f} MiB (warm page cache)")
    print(f"no-change build: median {statistics.median(plain):.2f} s of {[round(x, 2) for x in plain]}")
    print(f"no-change build --verify-content: median {statistics.median(verified):.2f} s of "
          f"{[round(x, 2) for x in verified]} ({line})")
    print(f"bare read + sha256 in one process: median {statistics.median(bare):.2f} s")
    print(f"--verify-content / plain: {statistics.median(verified) / statistics.median(plain):.2f}x")


if __name__ == "__main__":
    main()
