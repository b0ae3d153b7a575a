"""An index that follows its folder: file-system events (watchdog: inotify on Linux) turn
into the same incremental build, debounced: a build starts once the folder has been quiet
for `quiet` seconds, so a camera import of 500 files is a few builds, not 500, and a file
still being written (its events keep coming) waits until it stops changing. A full pass at
start and every `rescan` seconds catches what no event said (the watcher was down, a
network folder). Stopping (Ctrl-C, SIGTERM) ends the running build after its current
batch: every batch written is whole."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from imgsearch.features.registry import CnnOptions
from imgsearch.index.build import BuildReport, build, resolve_collection_root
from imgsearch.index.images import has_image_suffix
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


def follow(root: Path, run_build: Callable[[Callable[[], bool]], BuildReport], stop: threading.Event,
           said: Callable[[BuildReport], None], quiet: float = QUIET_SECONDS, rescan: float = RESCAN_SECONDS) -> None:
    """Build now, then again after each quiet spell following a change, and every `rescan`
    seconds, until `stop` is set. run_build(should_stop) runs one incremental build; said()
    hears each build's report."""
    changes = _Changes()
    observer = Observer()
    observer.schedule(changes, str(root), recursive=True)
    observer.start()
    try:
        next_pass = 0.0
        while not stop.is_set():
            now = time.monotonic()
            due = changes.changed.is_set() and now - changes.last >= quiet
            if due or now >= next_pass:
                changes.changed.clear()
                said(run_build(stop.is_set))
                next_pass = time.monotonic() + rescan
                continue
            stop.wait(min(quiet / 4, max(next_pass - now, 0.05)))
    finally:
        observer.stop()
        observer.join()


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
                 said: Callable[[BuildReport], None]) -> None:
    """follow() the collection of this index (or `folder`, for a new one) with its builds."""
    root = resolve_collection_root(store, folder)

    def one_build(should_stop: Callable[[], bool]) -> BuildReport:
        return build(store, str(root), plan.extractors, plan.workers, plan.batch_size, progress=False,
                     options=plan.options, pack_rows=plan.pack_rows, block_rows=plan.block_rows,
                     should_stop=should_stop, default_graph=plan.default_graph)

    follow(root, one_build, stop, said, plan.quiet, plan.rescan)
