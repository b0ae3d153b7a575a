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
