"""CNN build speed: `build --extractor cnn-gem` vs the bare network forward passes on the
same images, measured in one run.

    python bench/build_cnn.py ../shared/data/corel1k

The bare side runs the network once per image on pre-made input blobs (decoding and
resizing not timed) in one process with the runtime's default threads; the build side
is what a user runs: walk, decode, resize, forward, pool, write, in worker processes.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from imgsearch.features.cnn import DEFAULT_MAX_SIDE, backbone, preprocess
from imgsearch.index.build import build, collection_images
from imgsearch.index.images import load_image
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--extractor", default="cnn-gem")
    args = parser.parse_args()
    files = collection_images(args.folder)
    net = backbone()
    print(f"{len(files)} images; {os.cpu_count()} cores; runtime {net.runtime}; max side {DEFAULT_MAX_SIDE}")
    blobs = [preprocess(load_image(f).pixels, DEFAULT_MAX_SIDE) for f in files]
    net.run(blobs[0])
    started = time.perf_counter()
    for blob in blobs:
        net.run(blob)
    bare = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(parse_database_url(f"sqlite:///{tmp}/b.sqlite3"), create=True) as store:
            started = time.perf_counter()
            report = build(store, str(args.folder), (args.extractor,), workers=os.cpu_count() or 1,
                           batch_size=256, progress=False)
            ours = time.perf_counter() - started
    assert report.indexed == len(files), report.summary()
    print(f"bare forward passes {bare:.1f} s ({len(files) / bare:.1f} img/s); "
          f"build {args.extractor} {ours:.1f} s ({len(files) / ours:.1f} img/s); ratio {ours / bare:.2f}  [target <= 1.3]")


if __name__ == "__main__":
    main()
