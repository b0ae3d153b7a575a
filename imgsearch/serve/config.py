"""The one configuration of `imgsearch serve`: what it serves and how it answers HTTP,
made once by the command line and read by the service, the app and the server."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from imgsearch.config import Settings
from imgsearch.errors import ImgsearchError
from imgsearch.index.watch import WatchPlan
from imgsearch.serve.decodes import DEFAULT_DECODE_MEMORY, DEFAULT_UPLOAD_PIXELS
from imgsearch.store.url import DatabaseUrl, scheme_of

SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$", re.I)
DEFAULT_UPLOAD_LIMIT = 20 * 2**20
# A duplicates report through the service: 50,000 pairs are about 10 minutes of checking
# (11.5 ms a pair plus decoding); the command line takes up to duplicates.DEFAULT_MAX_PAIRS.
DEFAULT_SERVED_PAIRS = 50_000
DEFAULT_REPORT_SECONDS = 900.0


@dataclass(frozen=True)
class ServeConfig:
    url: DatabaseUrl
    extractors: tuple[str, ...] = ()  # held resident; () = every extractor of the index
    metrics: tuple[str, ...] = ("pearson",)  # prepared copies kept in memory per extractor
    # what a request leaves out takes from these, as `query` does: extractor, metric,
    # regions, block_rows, parallel
    settings: Settings = Settings()
    max_memory: int = 4 * 2**30  # bytes of resident vectors in all
    replica: DatabaseUrl | None = None  # read here, after catching up with `url` (the primary) at every request
    replica_wait: float = 10
    upload_pixels: int = DEFAULT_UPLOAD_PIXELS  # an upload declaring more is refused before decoding
    decode_memory: int = DEFAULT_DECODE_MEMORY  # bytes of uploads' pixels decoded at once
    max_pairs: int = DEFAULT_SERVED_PAIRS  # candidate pairs a duplicates report may check
    report_seconds: float = DEFAULT_REPORT_SECONDS  # a duplicates report taking longer is stopped
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # bearer token every /api request must carry
    no_auth: bool = False  # serve a non-loopback address without a token, on purpose
    upload_limit: int = DEFAULT_UPLOAD_LIMIT  # bytes of a request body
    thumbnails: Path | None = None  # cached thumbnails; None: thumbnail_folder(url)
    header_timeout: float = 10.0  # seconds a client may take to send a request's headers
    body_timeout: float = 60.0  # ... and then its body
    max_connections: int = 1024  # open connections; a request beyond them gets 503 at once
    watch: WatchPlan | None = None  # keep the index up to date with its folder, in this process

    @property
    def thumbnail_cache(self) -> Path:
        return self.thumbnails or thumbnail_folder(self.url)


def parse_size(text: str, what: str) -> int:
    match = SIZE.match(text.strip())
    if not match:
        raise ImgsearchError(f"{what}: {text!r} is not a size such as 500M or 2G")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def half_the_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def thumbnail_folder(url: DatabaseUrl) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    index = scheme_of(url).identity(url)
    return base / "imgsearch" / "thumbnails" / hashlib.sha256(index.encode()).hexdigest()[:16]
