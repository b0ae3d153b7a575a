"""Distinct distractor photos made from the shared sets, deterministically (issue 38): the
shared data holds 9,289 photos, a user 100,000 and more. Image i is made from the sets' photos
by a seeded generator: either one part of one photo (a window of 50 or 70 % of each side, at
a position and a scale no other image of that photo takes: 24 windows a photo, 220,000 in
all) or, for 3 in 10, a mosaic of that window with 1 or 3 small windows (35 %) of other
photos; then mirrored or not, turned by up to 12 degrees, its colours changed (brightness,
saturation, a hue shift) and saved as a JPEG of quality 55-95 at 320-800 pixels on its
longer side. No two are copies: the main windows are each used once and overlap by less
than half; a mosaic's small parts are drawn at random, so one may recur in another mosaic,
turned and coloured otherwise (a quarter of it, as bursts and edits of one photo are in a
real library).

What they stand for and what not: they are unrelated to the dev covers and photographed
things (flowers, Corel's scenes), so they measure how the first stages, the words and the
graph behave as N grows, and what each image costs; they are not camera photos (smaller,
re-compressed, fewer keypoints of their own than a 12 MP photo), they share texture with
their source photo, and their class statistics are the sources'. Costs per image of camera
photos are measured apart (bench/camera.py).

    python bench/distractors.py ../shared/data OUT --count 100000 [--start 0]
"""
from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

SOURCES = ("flowers102/jpg", "corel1k")
WINDOWS_PER_PHOTO = 24  # the main windows of one photo: 2 scales x a 3 x 4 grid of positions
SMALL = 0.35  # the side of a mosaic's other parts
SEED = 20261207


def sources(data: Path) -> list[Path]:
    return sorted(p for folder in SOURCES for p in (data / folder).rglob("*.jpg"))


def window(photo: np.ndarray, slot: int, scale: float | None = None) -> np.ndarray:
    """The slot-th window of the photo on a 3 x 4 grid of positions: scale 0.7 of each side
    for the first 12 slots, 0.5 for the next (neighbouring windows overlap by less than
    half), or the scale given."""
    scale = scale or (0.7 if slot < WINDOWS_PER_PHOTO // 2 else 0.5)
    row, column = divmod(slot % (WINDOWS_PER_PHOTO // 2), 4)
    h, w = photo.shape[:2]
    height, width = int(h * scale), int(w * scale)
    top = int((h - height) * row / 2)
    left = int((w - width) * column / 3)
    return photo[top : top + height, left : left + width]


def restyled(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        pixels = cv2.flip(pixels, 1)
    angle = rng.uniform(-12, 12)
    h, w = pixels.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0 + abs(angle) / 60)  # zoomed: no empty corners
    pixels = cv2.warpAffine(pixels, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.7, 1.3)
    hsv[..., 2] = hsv[..., 2] * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)
    pixels = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    side = int(rng.integers(320, 801))
    scale = side / max(h, w)
    return cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def mosaic(parts: list[np.ndarray]) -> np.ndarray:
    """Two parts side by side, or four in a 2 x 2 grid, each brought to one cell size."""
    cell = (320, 240)
    tiles = [cv2.resize(p, cell, interpolation=cv2.INTER_AREA) for p in parts]
    if len(tiles) == 2:
        return np.hstack(tiles)
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def layout(i: int, n: int) -> tuple[list[tuple[int, int, float | None]], np.random.Generator]:
    """Image i's parts as (photo, window slot, scale: None for the slot's own) among n photos,
    and its generator, drawn on to restyle it (its parts follow from i alone)."""
    rng = np.random.default_rng([SEED, i])
    # window i // n of photo i % n (made_from): every window of every photo once before any repeats
    first = i % n
    parts: list[tuple[int, int, float | None]] = [(first, (i // n) % WINDOWS_PER_PHOTO, None)]
    if rng.random() < 0.3:  # a mosaic: the other parts small windows of other photos
        for _ in range(int(rng.choice([1, 3]))):
            parts.append(((first + 1 + int(rng.integers(n - 1))) % n, int(rng.integers(12)), SMALL))
    return parts, rng


def parts_from(data: Path, i: int, photos: list[Path] | None = None) -> list[Path]:
    """The photos distractor i holds a window of, its main one first."""
    photos = photos or sources(data)
    return [photos[photo] for photo, _, _ in layout(i, len(photos))[0]]


def make(job: tuple[int, list[str], str]) -> None:
    """Image i (the same i, the same image)."""
    i, paths, out = job
    parts, rng = layout(i, len(paths))
    windows = [window(cv2.imread(paths[photo]), slot, scale) for photo, slot, scale in parts]
    pixels = mosaic(windows) if len(windows) > 1 else windows[0]
    target = Path(out) / f"{i // 1000:04d}" / f"{i:07d}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), restyled(pixels, rng), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 96))])


def write_distractors(data: Path, out: Path, count: int, start: int = 0) -> None:
    """Images start .. count-1 into OUT (those already there are kept: the set only grows)."""
    paths = [str(p) for p in sources(data)]
    jobs = [(i, paths, str(out)) for i in range(start, count)
            if not (out / f"{i // 1000:04d}" / f"{i:07d}.jpg").exists()]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for done, _ in enumerate(pool.map(make, jobs, chunksize=64), start=1):
            if done % 5000 == 0:
                print(f"{done} of {len(jobs)} made", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    write_distractors(args.data, args.out, args.count, args.start)


if __name__ == "__main__":
    main()
