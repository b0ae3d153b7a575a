"""Which files a sharded build indexes: a stable hash of the relative path, so N machines
that see the same folder split it with no file done twice and no coordination."""
from __future__ import annotations

import hashlib
import re

from imgsearch.errors import ImgsearchError

Shard = tuple[int, int]  # (index from 0, count)


def parse_shard(text: str) -> Shard:
    """'2/3' -> (1, 3): shards are numbered from 1 on the command line."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ImgsearchError(f"--shard {text!r}: give I/N with 1 <= I <= N, e.g. 2/3")
    return int(match.group(1)) - 1, int(match.group(2))


def shard_of(relpath: bytes, count: int) -> int:
    """The shard (from 0) of a relative path, as the file system's bytes: the first 8 bytes
    of its SHA-256, big-endian, modulo the count. The same on every machine and Python."""
    return int.from_bytes(hashlib.sha256(relpath).digest()[:8], "big") % count


def in_shard(relpath: bytes, shard: Shard | None) -> bool:
    return shard is None or shard_of(relpath, shard[1]) == shard[0]
