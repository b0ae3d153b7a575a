"""Walking a collection folder: every file once, in a stable (sorted) order, problems
reported instead of raised. Folder links are followed (as `find -L` and photo managers do)
unless the build says not to, each real folder visited once: a link into the collection,
to a folder holding it, or to a folder already walked is reported and not followed, so
neither a loop nor a second copy of a folder can enter the index."""
from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.errors import ImgsearchError

# The meta key holding the folder links a build followed (CollectionFolder).
FOLLOWED_LINKS_KEY = "followed_links"
NOT_FOLLOWED = "folder link not followed (--no-follow-links)"


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
    folder_link: bool = False  # a link to a folder, not followed: the summary names each one
    holds_no_image: bool = False  # looked at, and no file is there (a broken link, a FIFO): a row of it goes

    @property
    def not_a_file(self) -> bool:
        """The path is no file now (a folder, a link to one, a broken link): a row stored
        for a file at this path describes what was there before."""
        return self.holds_no_image or self.unlisted_folder or self.folder_link


@dataclass(frozen=True)
class FollowedLink:
    """A folder link the walk followed: the real folder it named then, by path and by
    identity, so that its files are served from that folder and no other."""

    relpath: bytes  # the link, relative to the collection root
    target: str  # the real folder (absolute, no links in it)
    device: int
    inode: int


@dataclass(frozen=True)
class CollectionFolder:
    """Where the indexed files are: the root, and the folder links the build followed."""

    root: Path
    followed: dict[bytes, FollowedLink] = field(default_factory=dict)

    @staticmethod
    def links_to_meta(links: list[FollowedLink]) -> str:
        return json.dumps([[os.fsdecode(k.relpath), k.target, k.device, k.inode] for k in links])

    @classmethod
    def from_meta(cls, root: str, links: str | None) -> CollectionFolder:
        followed = [FollowedLink(os.fsencode(rel), target, int(device), int(inode))
                    for rel, target, device, inode in json.loads(links or "[]")]
        return cls(Path(root), {k.relpath: k for k in followed})


Entry = FoundFile | Problem | FollowedLink


def walk_collection(root: Path, follow_links: bool = True) -> Iterator[Entry]:
    """Yield the regular files below root, a FollowedLink before the files of each folder
    link it follows, and a Problem for each entry that cannot be looked at."""
    root_bytes = os.fsencode(root)
    real_root = os.path.realpath(root_bytes)
    try:
        walked = {_identity(os.stat(root_bytes)): b"."}
    except OSError as e:
        yield Problem(b".", f"cannot list folder ({e.strerror})", unlisted_folder=True)
        return
    pending = [b""]  # folders to list, relative to root: a stack, so the walk is depth-first and sorted
    while pending:
        folder = pending.pop()
        full_folder = os.path.join(root_bytes, folder) if folder else root_bytes
        try:
            with os.scandir(full_folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as e:
            yield Problem(folder or b".", f"cannot list folder ({e.strerror})", unlisted_folder=True)
            continue
        below = []
        for entry in entries:
            relpath = os.path.join(folder, entry.name) if folder else entry.name
            if _is_folder(entry):
                decision = _folder_decision(entry, relpath, real_root, walked, follow_links)
                if decision is not None:
                    yield decision
                if decision is None or isinstance(decision, FollowedLink):
                    below.append(relpath)
                continue
            yield _file(entry.path, relpath)
        pending.extend(reversed(below))


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a link: a link to a folder is a folder here
    except OSError:
        return False


def _folder_decision(entry: os.DirEntry, relpath: bytes, real_root: bytes, walked: dict[tuple[int, int], bytes],
                     follow_links: bool) -> FollowedLink | Problem | None:
    """None to walk a real folder, a FollowedLink to walk a link's folder, or why not."""
    link = entry.is_symlink()
    if link and not follow_links:
        return Problem(relpath, NOT_FOLLOWED, folder_link=True)
    try:
        info = os.stat(entry.path)
    except OSError as e:
        return Problem(relpath, f"cannot look at folder ({e.strerror})", unlisted_folder=True)
    identity = _identity(info)
    if link:
        target = os.path.realpath(entry.path)
        if os.path.commonpath([target, real_root]) == real_root:
            return Problem(relpath, "folder link into the collection: its files are indexed at their own path",
                           folder_link=True)
        if os.path.commonpath([target, real_root]) == target:
            return Problem(relpath, "folder link to a folder holding the collection: not followed", folder_link=True)
    if identity in walked:
        return Problem(relpath, f"the same folder as {os.fsdecode(walked[identity])}: indexed once, there",
                       folder_link=link)
    walked[identity] = relpath
    return FollowedLink(relpath, os.fsdecode(target), info.st_dev, info.st_ino) if link else None


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of the folder, None while it is missing or no folder."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _file(full: bytes, relpath: bytes) -> FoundFile | Problem:
    try:
        st = os.stat(full)
    except OSError as e:
        if os.path.islink(full):
            return Problem(relpath, "broken or looping symlink", holds_no_image=True)
        return Problem(relpath, f"cannot stat ({e.strerror})", holds_no_image=e.errno in (errno.ENOENT, errno.ENOTDIR))
    if not stat.S_ISREG(st.st_mode):
        return Problem(relpath, "not a regular file", holds_no_image=True)
    return FoundFile(Path(os.fsdecode(full)), relpath, st.st_size, st.st_mtime_ns)


def folder_prefix(root: Path, folder: str, what: str = "folder") -> bytes:
    """The relative-path prefix of the images under `folder`: b"" for the root itself. An
    absolute folder must be under the root; a relative one is taken from the working
    directory where that names a folder under the root (a shell user in the collection),
    else from the root (what a client of the service names). Refuses a folder outside the
    collection; the message names no path the caller did not give."""
    path = Path(folder).expanduser()
    # normalised, not resolved: a folder below a followed folder link stays below the root
    if path.is_absolute():
        candidates = [Path(os.path.abspath(path))]
    else:
        candidates = ([Path(os.path.abspath(path))] if path.exists() else []) + [Path(os.path.normpath(root / path))]
    for candidate in candidates:
        try:
            relative = candidate.relative_to(root)
        except ValueError:
            continue
        return os.fsencode(relative) + os.sep.encode() if str(relative) != "." else b""
    raise ImgsearchError(f"{what} {folder} is not under the indexed collection")
