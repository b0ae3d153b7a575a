"""Safe decoding of image files into 8-bit BGR arrays.

Every way a file can be unusable (empty, truncated, not an image, too many pixels)
becomes a `SkippedFile` reason instead of an exception, so a build counts it and moves on.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imgsearch import MAX_PIXELS
from imgsearch.errors import SkippedFile

MAX_FILE_BYTES = int(os.environ.get("IMGSEARCH_MAX_FILE_BYTES", 512 * 1024 * 1024))

IMAGE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .dib .gif .tif .tiff .webp .avif .jp2 .pbm .pgm .ppm .pnm .pxm .ras .sr .hdr .pic".split()
)


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # H x W x 3, uint8, BGR, EXIF orientation applied
    sha256: str


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
        raise SkippedFile("permission denied", looked=False) from None
    except IsADirectoryError:
        raise SkippedFile("is a directory") from None
    except OSError as e:
        # gone, or a link to nowhere, since the walk saw it: the path holds no image
        looked = e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
        raise SkippedFile(f"unreadable ({e.strerror or e})", looked=looked) from None


def decode_bytes(data: bytes, flag: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode to 8-bit BGR. Grey and 16-bit inputs are converted, alpha is dropped.
    `flag`: IMREAD_COLOR, or an IMREAD_REDUCED_COLOR_n (a JPEG's DCT scaling)."""
    if not data:
        raise SkippedFile("empty file")
    try:
        # IMREAD_COLOR and IMREAD_REDUCED_COLOR_n: always 3-channel 8-bit BGR, EXIF orientation applied.
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise SkippedFile(f"too many pixels (limit {MAX_PIXELS}; set IMGSEARCH_MAX_PIXELS)") from None
        raise SkippedFile("cannot decode (corrupt or unsupported)") from None
    if pixels is None or pixels.size == 0:
        raise SkippedFile("cannot decode (corrupt, truncated or not an image)")
    if pixels.shape[0] * pixels.shape[1] > MAX_PIXELS:
        raise SkippedFile(f"too many pixels (limit {MAX_PIXELS}; set IMGSEARCH_MAX_PIXELS)")
    return pixels


# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 of its size from the DCT coefficients, several
# times faster than the full decode and a resize after it.
JPEG_SCALES = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
TURNED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class SizedImage:
    pixels: np.ndarray  # BGR, EXIF orientation applied, its longer side at most the side asked for
    height: int  # the image's own size, orientation applied
    width: int

    @property
    def scale(self) -> float:
        """The pixels' size over the image's own."""
        return max(self.pixels.shape[:2]) / max(self.height, self.width)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) of a JPEG as its header says, EXIF orientation applied; None for
    anything else or a header Pillow cannot read."""
    if data[:2] != b"\xff\xd8":
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112) in TURNED_ORIENTATIONS
    except Exception:  # a damaged header: the full decode says what is wrong
        return None
    return (width, height) if turned else (height, width)


def decode_to_side(data: bytes, side: int) -> SizedImage:
    """Decode once at the size the extractors need: a JPEG at the smallest DCT scale whose
    longer side still reaches `side`, anything else in full; then one area resize down to
    `side` when larger. The image's own size comes with it."""
    size = jpeg_size(data)
    flag = cv2.IMREAD_COLOR
    if size is not None:
        if size[0] * size[1] > MAX_PIXELS:  # the bomb check the full decode would make
            raise SkippedFile(f"too many pixels (limit {MAX_PIXELS}; set IMGSEARCH_MAX_PIXELS)")
        flag = next((f for factor, f in JPEG_SCALES if max(size) // factor >= side), cv2.IMREAD_COLOR)
    pixels = decode_bytes(data, flag)
    height, width = size if size is not None and flag != cv2.IMREAD_COLOR else pixels.shape[:2]
    return SizedImage(shrunk_to_side(pixels, side), height, width)


def shrunk_to_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """The image with its longer side at most `side` (area interpolation), else as it is."""
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return pixels
    return cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA)


def load_image(path: str | os.PathLike) -> DecodedImage:
    data = read_bytes(path)
    pixels = decode_bytes(data)
    return DecodedImage(pixels=pixels, sha256=hashlib.sha256(data).hexdigest())
