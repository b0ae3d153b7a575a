"""Safe decoding of image files into 8-bit BGR arrays.

Every way a file can be unusable (empty, truncated, not an image, too many pixels)
becomes a `SkippedFile` reason instead of an exception, so a build counts it and moves on.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imgsearch import MAX_PIXELS

MAX_FILE_BYTES = int(os.environ.get("IMGSEARCH_MAX_FILE_BYTES", 512 * 1024 * 1024))

IMAGE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .dib .gif .tif .tiff .webp .avif .jp2 .pbm .pgm .ppm .pnm .pxm .ras .sr .hdr .pic".split()
)


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # H x W x 3, uint8, BGR, EXIF orientation applied
    sha256: str


class SkippedFile(Exception):
    """A file that cannot be indexed; str(self) is the reason shown to the user."""


def has_image_suffix(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise SkippedFile(f"file too large ({size} bytes > {MAX_FILE_BYTES})")
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise SkippedFile("permission denied") from None
    except IsADirectoryError:
        raise SkippedFile("is a directory") from None
    except OSError as e:
        raise SkippedFile(f"unreadable ({e.strerror or e})") from None


def decode_bytes(data: bytes) -> np.ndarray:
    """Decode to 8-bit BGR. Grey and 16-bit inputs are converted, alpha is dropped."""
    if not data:
        raise SkippedFile("empty file")
    try:
        # IMREAD_COLOR: always 3-channel 8-bit BGR, EXIF orientation applied.
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise SkippedFile(f"too many pixels (limit {MAX_PIXELS}; set IMGSEARCH_MAX_PIXELS)") from None
        raise SkippedFile("cannot decode (corrupt or unsupported)") from None
    if pixels is None or pixels.size == 0:
        raise SkippedFile("cannot decode (corrupt, truncated or not an image)")
    if pixels.shape[0] * pixels.shape[1] > MAX_PIXELS:
        raise SkippedFile(f"too many pixels (limit {MAX_PIXELS}; set IMGSEARCH_MAX_PIXELS)")
    return pixels


def load_image(path: str | os.PathLike) -> DecodedImage:
    data = read_bytes(path)
    pixels = decode_bytes(data)
    return DecodedImage(pixels=pixels, sha256=hashlib.sha256(data).hexdigest())
