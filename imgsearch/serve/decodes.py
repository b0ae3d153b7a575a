"""Uploads decoded within a memory budget.

A photo's pixels cost far more than its file: a 290 KB PNG can declare 99 million pixels
(about 570 MiB while OpenCV decodes it, 840 MiB by the end of its extraction here). So
the service reads the size an upload declares (its header, through Pillow, without
decoding), refuses one over its own pixel limit (separate from a build's), and lets
decodes run side by side only while their pixels fit the budget; the others wait their
turn, for a bounded time."""
from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from imgsearch.errors import BusyError, SkippedFile

# Bytes held per pixel from decoding to the end of extraction, measured here: the decoded
# BGR image (3), the decoder's own buffers while it runs (3) and the resized and cropped
# copies the extractors make (about 3 at most, for a large photo).
BYTES_PER_PIXEL = 9
DEFAULT_UPLOAD_PIXELS = 50_000_000  # a 50 MP phone photo; larger uploads are refused
DEFAULT_DECODE_MEMORY = 1 << 30
WAIT_SECONDS = 30

# The budget below is the guard; Pillow's own bomb check would only warn or refuse first.
Image.MAX_IMAGE_PIXELS = None


def declared_pixels(data: bytes) -> int | None:
    """Width x height as the file's header declares them; None when Pillow does not know
    the format (OpenCV may still decode it: see DecodeBudget.hold)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Exception:  # any header Pillow cannot read: not for it to judge
        return None
    return width * height


class DecodeBudget:
    """Bytes of decoded pixels in flight, across the service's threads."""

    def __init__(self, capacity: int = DEFAULT_DECODE_MEMORY, max_pixels: int = DEFAULT_UPLOAD_PIXELS,
                 wait: float = WAIT_SECONDS) -> None:
        self.capacity, self.max_pixels, self.wait = capacity, max_pixels, wait
        self.in_flight = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, data: bytes) -> Iterator[None]:
        """Room for decoding and extracting the upload `data`; refuses one over the pixel
        limit (SkippedFile) and, after waiting, one that finds no room (BusyError)."""
        pixels = declared_pixels(data)
        if pixels is not None and pixels > self.max_pixels:
            raise SkippedFile(f"too many pixels for an upload ({pixels:,}; this server takes at most "
                              f"{self.max_pixels:,})")
        # Unknown size: the worst an accepted upload can be. One upload alone always fits.
        weight = min((pixels if pixels is not None else self.max_pixels) * BYTES_PER_PIXEL, self.capacity)
        with self._changed:
            if not self._changed.wait_for(lambda: self.in_flight + weight <= self.capacity, self.wait):
                raise BusyError(f"the server is decoding other large uploads; try again in a moment "
                                f"(in flight: {self.in_flight >> 20} MiB of {self.capacity >> 20} MiB)")
            self.in_flight += weight
        try:
            yield
        finally:
            with self._changed:
                self.in_flight -= weight
                self._changed.notify_all()

    def check_decoded(self, height: int, width: int) -> None:
        """The pixels actually decoded, for a format whose header Pillow could not read."""
        if height * width > self.max_pixels:
            raise SkippedFile(f"too many pixels for an upload ({height * width:,}; this server takes at most "
                              f"{self.max_pixels:,})")
