"""An index that follows its folder: file-system events (watchdog: inotify on Linux) turn
into the same incremental build, debounced: a build starts once the folder has been quiet
for `quiet` seconds, so a camera import of 500 files is a few builds, not 500, and a file
still being written (its events keep coming) waits until it stops changing. A full pass at
start and every `rescan` seconds catches what no event said (the watcher was down, a
network folder). The folders below folder links are watched too; a root swapped for another
folder is followed to the new one; a root that disappears (an unmounted disk) is waited for.
Stopping (Ctrl-C, SIGTERM) ends the running build after its current batch: every batch
written is whole."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from imgsearch.errors import ImgsearchError
from imgsearch.features.registry import CnnOptions
from imgsearch.index.build import BuildReport, build, resolve_collection_root
from imgsearch.index.images import has_image_suffix
from imgsearch.index.walk import folder_identity
from imgsearch.store.base import FeatureStore
from imgsearch.store.packed import DEFAULT_PACK_ROWS

QUIET_SECONDS = 2.0
RESCAN_SECONDS = 3600.0


class _Changes(FileSystemEventHandler):
    """When the folder last changed, and whether it has since the last build started."""

    def __init__(self) -> None:
        self.changed = threading.Event()
        self.last = 0.0

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reading a file changes nothing: the build's own reads must not wake it
        paths = [p for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if not event.is_directory and not any(has_image_suffix(Path(os.fsdecode(p))) for p in paths):
            return  # not a photo (an index or a temporary file kept in the folder): no build
        self.last = time.monotonic()
        self.changed.set()


class _Watches:
    """The observer's watches: the collection root and the real folders of the folder links
    the last build followed (inotify does not follow a link, so a photo added below one sent
    no event). Re-aimed when that set changes or the root is another folder now."""

    def __init__(self, changes: _Changes) -> None:
        self.observer = Observer()
        self.changes = changes
        self.observer.start()

    def aim(self, folders: tuple[str, ...]) -> None:
        self.observer.unschedule_all()
        for folder in folders:
            try:
                self.observer.schedule(self.changes, folder, recursive=True)
            except OSError:  # gone since the build saw it: the next full pass says so
                continue

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join()


def follow(root: Path, run_build: Callable[[Callable[[], bool]], BuildReport], stop: threading.Event,
           said: Callable[[str], None], quiet: float = QUIET_SECONDS, rescan: float = RESCAN_SECONDS) -> None:
    """Build now, then again after each quiet spell following a change, and every `rescan`
    seconds, until `stop` is set. run_build(should_stop) runs one incremental build; said()
    hears each build's summary and what the watcher does. A root replaced by another folder
    (a rename, a restored backup) is watched anew with a full pass; while the root is
    missing nothing is built, so nothing is removed, and its return is a full pass."""
    changes = _Changes()
    watches = _Watches(changes)
    watched: tuple[int, int] | None = None  # the root folder the watches were aimed with
    links: tuple[str, ...] = ()
    missing = False
    try:
        next_pass = 0.0
        while not stop.is_set():
            identity = folder_identity(root)
            if identity is None:
                if not missing:
                    said(f"{root} is gone: waiting for it to come back (nothing is removed meanwhile)")
                    missing, watched = True, None
                    watches.aim(())
                stop.wait(min(quiet, 1.0))
                continue
            if identity != watched:
                if missing:
                    said(f"{root} is back: a full pass")
                elif watched is not None:
                    said(f"{root} is another folder now: watching it, a full pass")
                missing, watched, next_pass = False, identity, 0.0
                watches.aim((str(root), *links))
            now = time.monotonic()
            due = changes.changed.is_set() and now - changes.last >= quiet
            if due or now >= next_pass:
                changes.changed.clear()
                try:
                    report = run_build(stop.is_set)
                except ImgsearchError:
                    if folder_identity(root) != watched:  # gone or swapped during the build: as above
                        continue
                    raise
                said(report.summary())
                next_pass = time.monotonic() + rescan
                followed = tuple(link.target for link in report.followed)
                if followed != links:
                    links = followed
                    watches.aim((str(root), *links))
                continue
            stop.wait(min(quiet / 4, max(next_pass - now, 0.05)))
    finally:
        watches.stop()


@dataclass(frozen=True)
class WatchPlan:
    """What a watcher builds with (the build's own choices) and how it waits."""

    extractors: tuple[str, ...]
    workers: int
    batch_size: int
    options: CnnOptions = CnnOptions()
    pack_rows: int = DEFAULT_PACK_ROWS
    block_rows: int = 1024
    quiet: float = QUIET_SECONDS
    rescan: float = RESCAN_SECONDS
    default_graph: tuple[str, str] | None = None  # see build


def watch_folder(store: FeatureStore, folder: str | None, plan: WatchPlan, stop: threading.Event,
                 said: Callable[[str], None]) -> None:
    """follow() the collection of this index (or `folder`, for a new one) with its builds."""
    root = resolve_collection_root(store, folder)

    def one_build(should_stop: Callable[[], bool]) -> BuildReport:
        return build(store, str(root), plan.extractors, plan.workers, plan.batch_size, progress=False,
                     options=plan.options, pack_rows=plan.pack_rows, block_rows=plan.block_rows,
                     should_stop=should_stop, default_graph=plan.default_graph)

    follow(root, one_build, stop, said, plan.quiet, plan.rescan)
