"""What a renamed folder costs a build (issue 31): 1,000 photos indexed with the default
extractors (the first build: what a rename cost before, every photo extracted again),
then, in one run: a build with no change, the folder renamed and built (the moves), and a
bare read and sha256 of the same files.

    python bench/moves.py ../shared/data/flowers102/jpg WORKDIR [--files 1000]
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path


def build(folder: Path, db: str) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "imgsearch", "build", str(folder), "--db", db],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    return time.perf_counter() - started, run.stdout.splitlines()[0]


def arguments(doc: str) -> argparse.Namespace:
    """PHOTOS (a folder of JPEGs) WORKDIR [--files N]: what this bench and bench/watch.py take."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--files", type=int, default=1000)
    return parser.parse_args()


def fresh_collection(args: argparse.Namespace, folder: str) -> tuple[Path, list[Path]]:
    """WORKDIR/collection made anew with the first --files photos in its `folder`; the
    collection and every photo of PHOTOS, sorted (the rest are there to copy in later)."""
    collection = args.workdir / "collection"
    shutil.rmtree(args.workdir, ignore_errors=True)
    (collection / folder).mkdir(parents=True)
    sources = sorted(args.photos.glob("*.jpg"))
    for source in sources[: args.files]:
        shutil.copy(source, collection / folder / source.name)
    return collection, sources


def main() -> None:
    args = arguments(__doc__)
    collection, _ = fresh_collection(args, "trip")
    db = f"sqlite:///{args.workdir / 'index.sqlite3'}"
    first, line = build(collection, db)
    print(f"first build: {first:.1f} s ({line})")
    unchanged, line = build(collection, db)
    print(f"no change: {unchanged:.2f} s ({line})")
    (collection / "trip").rename(collection / "japan")
    moved, line = build(collection, db)
    print(f"folder renamed: {moved:.2f} s ({line})")
    started = time.perf_counter()
    for path in sorted((collection / "japan").iterdir()):
        hashlib.sha256(path.read_bytes()).hexdigest()
    reading = time.perf_counter() - started
    print(f"reading and hashing the files: {reading:.2f} s")
    print(f"renamed / (no change + reading): {moved / (unchanged + reading):.2f}x; "
          f"renamed / first build (what a rename cost before): {moved / first:.3f}x")


if __name__ == "__main__":
    main()
