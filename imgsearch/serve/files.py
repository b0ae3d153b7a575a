"""Indexed files by id: the original, only if it is still the indexed file under the
collection root, and a bounded thumbnail made on first use and cached."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import cv2

from imgsearch.errors import NotFoundError
from imgsearch.index.images import decode_bytes, read_bytes
from imgsearch.store.records import StoredImage

THUMBNAIL_SIDE = 256  # pixels on the longer side
THUMBNAIL_QUALITY = 85


def indexed_file(root: Path, image: StoredImage) -> Path:
    """The file of `image` under `root`, refused when anything in its path is (now) a
    symlink, it left the root, or it is not the file that was indexed (size or mtime)."""
    root = root.resolve()
    candidate = Path(os.fsdecode(os.path.join(os.fsencode(root), image.path)))
    try:
        resolved = candidate.resolve(strict=True)
        info = os.lstat(candidate)
    except (OSError, RuntimeError):
        raise NotFoundError(f"the file of image {image.id} is gone from the collection") from None
    if resolved != candidate or not resolved.is_relative_to(root) or not stat.S_ISREG(info.st_mode):
        raise NotFoundError(f"the file of image {image.id} is no longer the indexed file (a link or not a file)")
    if info.st_size != image.bytes or info.st_mtime_ns != image.mtime_ns:
        raise NotFoundError(f"the file of image {image.id} changed since it was indexed; run `imgsearch build`")
    return resolved


def thumbnail(root: Path, image: StoredImage, cache: Path) -> Path:
    """A JPEG of at most THUMBNAIL_SIDE pixels a side, cached by id and content hash."""
    cached = cache / f"{image.id}-{image.sha256[:16]}.jpg"
    if cached.exists():
        return cached
    pixels = decode_bytes(read_bytes(indexed_file(root, image)))
    height, width = pixels.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    if scale < 1:
        pixels = cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:
        raise NotFoundError(f"no thumbnail can be made of image {image.id}")
    cache.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed: a reader never sees half a thumbnail.
    with tempfile.NamedTemporaryFile(dir=cache, suffix=".part", delete=False) as handle:
        handle.write(encoded.tobytes())
    os.replace(handle.name, cached)
    return cached
