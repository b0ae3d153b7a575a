"""Walking a collection folder: every file once, never following directory symlinks
(so symlink loops cannot trap the walk), problems reported instead of raised."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imgsearch.errors import ImgsearchError


@dataclass(frozen=True)
class FoundFile:
    path: Path  # absolute
    relpath: bytes  # relative to the collection root, file system bytes
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Problem:
    relpath: bytes
    reason: str
    unlisted_folder: bool = False  # a folder whose entries could not be listed: what it holds is unknown


def walk_collection(root: Path) -> Iterator[FoundFile | Problem]:
    """Yield the regular files below root in a stable (sorted) order, and a Problem for
    each entry that cannot be looked at."""
    root_bytes = os.fsencode(root)
    problems: list[Problem] = []

    def on_error(error: OSError) -> None:
        where = os.fsencode(error.filename or root)
        problems.append(Problem(os.path.relpath(where, root_bytes), f"cannot list folder ({error.strerror})",
                                unlisted_folder=True))

    for dirpath, dirnames, filenames in os.walk(root_bytes, onerror=on_error, followlinks=False):
        dirnames.sort()
        yield from problems
        problems.clear()
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            relpath = os.path.relpath(full, root_bytes)
            try:
                st = os.stat(full)
            except OSError as e:
                reason = "broken or looping symlink" if os.path.islink(full) else f"cannot stat ({e.strerror})"
                yield Problem(relpath, reason)
                continue
            if not os.path.isfile(full):
                yield Problem(relpath, "not a regular file")
                continue
            yield FoundFile(Path(os.fsdecode(full)), relpath, st.st_size, st.st_mtime_ns)
    yield from problems


def folder_prefix(root: Path, folder: str, what: str = "folder") -> bytes:
    """The relative-path prefix of the images under `folder` (absolute, relative to the
    working directory when it exists there, else relative to the collection root): b"" for
    the root itself. Refuses a folder outside the collection."""
    path = Path(folder).expanduser()
    path = path.resolve() if path.is_absolute() or path.exists() else root / path
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ImgsearchError(f"{what} {folder} is not under the indexed collection {root}") from None
    return os.fsencode(relative) + os.sep.encode() if str(relative) != "." else b""
