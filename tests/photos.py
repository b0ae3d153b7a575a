"""Real photos for tests, from the files scikit-image ships (no downloads)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
          "ihc.png", "retina.jpg", "motorcycle_left.png", "color.png")


def photo(name: str) -> np.ndarray:
    """A sample photo as 8-bit BGR."""
    pixels = cv2.imread(str(SKIMAGE_DATA / name), cv2.IMREAD_COLOR)
    assert pixels is not None, name
    return pixels


def variant(pixels: np.ndarray) -> np.ndarray:
    """A cropped, flipped and darkened copy: still the same photo to a person."""
    h, w = pixels.shape[:2]
    cropped = pixels[h // 10 : h - h // 10, w // 10 : w - w // 10]
    return (cv2.flip(cropped, 1) * 0.85).astype(np.uint8)


def write_collection(folder: Path, names: tuple[str, ...] = PHOTOS) -> list[Path]:
    """One JPEG per sample photo, in two sub-folders; returns the written paths."""
    paths = []
    for i, name in enumerate(names):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / (Path(name).stem + ".jpg")
        cv2.imwrite(str(path), photo(name))
        paths.append(path)
    return paths


def _shot(background: np.ndarray, subject: np.ndarray, x: float, y: float, size: float) -> np.ndarray:
    """The background with the subject pasted at (x, y), `size` of the frame's height tall."""
    shot = background.copy()
    h, w = shot.shape[:2]
    side = int(h * size)
    pasted = cv2.resize(subject, (side, side), interpolation=cv2.INTER_AREA)
    top, left = int(y * (h - side)), int(x * (w - side))
    shot[top : top + side, left : left + side] = pasted
    return shot


def write_one_scene(folder: Path) -> None:
    """Two photographs of one scene (the same background, its subject elsewhere and larger
    in the second: a burst), a cropped, brightened copy of the first (shot-1-edit.jpg), and
    five other photos."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("rocket.jpg", "hubble_deep_field.jpg", "ihc.png", "color.png", "motorcycle_left.png"):
        cv2.imwrite(str(folder / name.replace(".png", ".jpg")), photo(name))
    background, subject = photo("astronaut.png"), photo("chelsea.png")[50:250, 150:350]
    first = _shot(background, subject, 0.1, 0.7, 0.3)
    h, w = first.shape[:2]
    cv2.imwrite(str(folder / "shot-1.jpg"), first, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(folder / "shot-2.jpg"), _shot(background, subject, 0.8, 0.4, 0.45), [cv2.IMWRITE_JPEG_QUALITY, 95])
    copy = np.clip(first[h // 12 : h - h // 12, w // 12 : w - w // 12] * 1.15, 0, 255).astype(np.uint8)
    cv2.imwrite(str(folder / "shot-1-edit.jpg"), copy)
