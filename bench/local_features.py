"""What local features cost per image, for choosing their defaults: extraction time and
stored bytes for several keypoint caps and extraction sizes, on the same photos, in one run.

    python bench/local_features.py ../shared/data [--images 300]

The photos: an evenly spaced sample of Corel-1k and the Oxford flowers (as a collection
holds them), and the same sample enlarged to 12 MP (as a camera makes them). Nothing is
asserted; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2

from imgsearch.features.local import SiftExtractor

CAPS = (200, 400, 800)
SIDES = (480, 640, 960)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    paths = sorted((args.data / "corel1k").rglob("*.jpg")) + sorted((args.data / "flowers102" / "jpg").glob("*.jpg"))
    sample = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths[:: max(1, len(paths) // args.images)][: args.images]]
    large = [cv2.resize(im, (4000, 3000), interpolation=cv2.INTER_CUBIC) for im in sample[:30]]
    cv2.setNumThreads(1)  # one core, as each build worker
    print(f"{len(sample)} collection photos (256-320 px), {len(large)} of them at 12 MP; one core")
    print(f"{'features':>8} {'side':>5} {'ms/img':>8} {'KB/img':>8} {'keypoints':>9} {'ms/12MP':>8}")
    for cap in CAPS:
        for side in SIDES:
            extractor = SiftExtractor(cap, side)
            started = time.perf_counter()
            found = [extractor.extract(im) for im in sample]
            per_image = (time.perf_counter() - started) * 1000 / len(sample)
            started = time.perf_counter()
            for im in large:
                extractor.extract(im)
            per_large = (time.perf_counter() - started) * 1000 / len(large)
            print(f"{cap:>8} {side:>5} {per_image:8.1f} {statistics.mean(f.nbytes for f in found) / 1024:8.1f} "
                  f"{statistics.mean(len(f) for f in found):9.0f} {per_large:8.1f}")


if __name__ == "__main__":
    main()
