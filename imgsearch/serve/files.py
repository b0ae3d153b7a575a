"""Indexed files by id: the original, only if it is still the indexed file under the
collection root, and a bounded thumbnail made on first use and cached.

Every check is made on one open descriptor, never on a path opened again later: the
path is walked component by component with O_NOFOLLOW from the root's descriptor, so a
link swapped in anywhere below the root (even between two requests' checks) is refused,
and what is sent or thumbnailed is exactly the descriptor that passed the checks. A folder
link the build followed is not read as a link: its place opens the real folder the build
walked, and only when that is still the same folder (device and inode)."""
from __future__ import annotations

import errno
import hashlib
import mimetypes
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from imgsearch.errors import NotFoundError
from imgsearch.index.images import decode_bytes
from imgsearch.index.walk import CollectionFolder
from imgsearch.store.records import StoredImage

THUMBNAIL_SIDE = 256  # pixels on the longer side
THUMBNAIL_QUALITY = 85
CHUNK = 256 * 1024


@dataclass(frozen=True)
class OpenedFile:
    """An indexed file, open: its descriptor, the length it had when it was checked."""

    fd: int
    size: int
    media_type: str


@contextmanager
def opened_indexed_file(folder: CollectionFolder, image: StoredImage) -> Iterator[OpenedFile]:
    """The file of `image` in the collection, open for reading; refused when any component
    below the root is (now) a link the build did not follow, it is not a regular file, or
    it is not the file that was indexed (size or mtime)."""
    parts = [p for p in image.path.split(b"/") if p]
    if not parts or any(p in (b".", b"..") for p in parts):
        raise NotFoundError(f"the file of image {image.id} is not below the collection root")
    fd = _open_below(folder, parts, image.id)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotFoundError(f"the file of image {image.id} is no longer the indexed file (not a regular file)")
        if info.st_size != image.bytes or info.st_mtime_ns != image.mtime_ns:
            raise NotFoundError(f"the file of image {image.id} changed since it was indexed; run `imgsearch build`")
        kind = mimetypes.guess_type(os.fsdecode(image.name))[0] or "application/octet-stream"
        yield OpenedFile(fd, info.st_size, kind)
    finally:
        os.close(fd)


def _open_below(collection: CollectionFolder, parts: list[bytes], image_id: int) -> int:
    folder = os.open(collection.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, part in enumerate(parts[:-1], 1):
            link = collection.followed.get(b"/".join(parts[:depth]))
            if link is None:
                below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            else:
                below = os.open(link.target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                info = os.fstat(below)
                if (info.st_dev, info.st_ino) != (link.device, link.inode):
                    os.close(below)
                    raise NotFoundError(f"the file of image {image_id} is no longer the indexed file "
                                        "(the linked folder it was found in is another folder now)")
            os.close(folder)
            folder = below
        # O_NONBLOCK: a FIFO swapped in must not hang the open; the fstat refuses it next.
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError as e:
        raise NotFoundError(_why_not(e, image_id)) from None
    finally:
        os.close(folder)


def _why_not(error: OSError, image_id: int) -> str:
    if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return f"the file of image {image_id} is no longer the indexed file (a link or not a file)"
    return f"the file of image {image_id} is gone from the collection"


def read_exactly(opened: OpenedFile) -> Iterator[bytes]:
    """The descriptor's bytes, `opened.size` of them from its start, or an error: a file
    cut short while it is sent breaks the response instead of ending it early."""
    offset = 0
    while offset < opened.size:
        chunk = os.pread(opened.fd, min(CHUNK, opened.size - offset), offset)
        if not chunk:
            raise OSError(f"the file shrank to {offset} of {opened.size} bytes while it was sent")
        offset += len(chunk)
        yield chunk


class IndexedFileResponse(Response):
    """The indexed file of an image, sent from the one descriptor that passed the checks,
    with that descriptor's length."""

    def __init__(self, folder: CollectionFolder, image: StoredImage) -> None:
        self._opening = opened_indexed_file(folder, image)
        self._opened = self._opening.__enter__()  # NotFoundError here: nothing is held open
        super().__init__(media_type=self._opened.media_type,
                         headers={"content-length": str(self._opened.size), "cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            chunks = read_exactly(self._opened)
            while (chunk := await run_in_threadpool(next, chunks, None)) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._opening.__exit__(None, None, None)


def indexed_bytes(folder: CollectionFolder, image: StoredImage) -> bytes:
    """The whole content of the indexed file, checked against its stored sha256."""
    with opened_indexed_file(folder, image) as opened:
        data = b"".join(read_exactly(opened))
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise NotFoundError(f"the file of image {image.id} changed since it was indexed; run `imgsearch build`")
    return data


def thumbnail(folder: CollectionFolder, image: StoredImage, cache: Path) -> Path:
    """A JPEG of at most THUMBNAIL_SIDE pixels a side, cached by id and content hash,
    made only from bytes whose hash is the stored one."""
    cached = cache / f"{image.id}-{image.sha256[:16]}.jpg"
    if cached.exists():
        return cached
    pixels = decode_bytes(indexed_bytes(folder, image))
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
