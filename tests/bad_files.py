"""Writers of the awkward files a real photo folder contains."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from photos import photo
from PIL import Image


def png_bomb(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose header claims width x height black RGB pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    body = b"".join(compressor.compress(row) for _ in range(min(height, 64))) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def exif_rotated_jpeg(pixels_bgr: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG stored sideways with an EXIF tag saying how to turn it upright."""
    image = Image.fromarray(cv2.cvtColor(pixels_bgr, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=92)
    return out.getvalue()


def write_bad_files(folder: Path) -> dict[str, str]:
    """Files that must be skipped, with the words their reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    good = jpeg_bytes(photo("coffee.png"))
    files = {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (good[: len(good) // 3], "decode"),
        "corrupt.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "decode"),
        "text-named.jpg": (b"this is not an image\n" * 10, "decode"),
        "bomb.png": (png_bomb(30_000, 30_000), "too many pixels"),
        "notes.txt": (b"holiday notes", "not an image"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}
