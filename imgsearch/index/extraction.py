"""Decode + extract, and the worker pool that runs it: shared by build and eval."""
from __future__ import annotations

import functools
import os
import select
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from loky import ProcessPoolExecutor

from imgsearch.errors import ImgsearchError, SkippedFile
from imgsearch.features.base import Extractor
from imgsearch.features.registry import make_extractor
from imgsearch.index.images import load_image
from imgsearch.keypoints import LocalFeatures

T = TypeVar("T")
R = TypeVar("R")


# (extractor name, its params JSON): enough for a worker process to rebuild the extractor,
# fitted state included.
ExtractorSpec = tuple[str, str]


@functools.cache
def cached_extractor(name: str, stored_params: str | None = None) -> Extractor:
    """One instance per process: workers build their extractors once, not per image."""
    return make_extractor(name, stored_params)


def spec_of(extractor: Extractor) -> ExtractorSpec:
    return extractor.name, extractor.params_json()


def extract_all(pixels: np.ndarray, specs: Iterable[ExtractorSpec], scale: float = 1.0) -> dict[str, Any]:
    """Each extractor's output for these pixels, `scale` times the image's own size: local
    features' keypoints are given back in the image's own pixels."""
    found: dict[str, Any] = {}
    for name, params in specs:
        output = cached_extractor(name, params).extract(pixels)
        found[name] = output.scaled(1 / scale) if isinstance(output, LocalFeatures) and scale != 1 else output
    return found


def map_in_workers(fn: Callable[[T], R], items: list[T], workers: int) -> Generator[R, None, None]:
    """fn over items, in `workers` processes (in this one when workers is 1), results in
    completion order. Chunks amortise the inter-process hand-off on small images."""
    if workers <= 1:
        with one_core():
            yield from map(fn, items)
        return
    if len(items) <= 1:
        yield from map(fn, items)
        return
    chunksize = max(1, min(16, len(items) // (workers * 8)))
    # loky's workers are fresh interpreters (fork + exec): no lock inherited from a parent
    # whose OpenCV thread pool already ran (what a plain fork can deadlock on), and, unlike
    # the standard library's spawn and forkserver, they never import the caller's main
    # module again: a script without `if __name__ == "__main__":`, stdin and a notebook work.
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_of, initargs=(os.getpid(),))
    try:
        yield from pool.map(fn, items, chunksize=chunksize)
    finally:
        # a consumer that stops early (a build told to stop) does not wait for the rest
        pool.shutdown(wait=True, kill_workers=True)


def _worker_of(build_pid: int) -> None:
    _quiet_worker()
    threading.Thread(target=_exit_with, args=(build_pid,), daemon=True, name="exit-with-build").start()


def _exit_with(pid: int) -> None:
    """End this worker as soon as process `pid` (the build) is gone, however it died. A
    worker killed build leaves otherwise waits on its task queue forever (it holds that
    queue's write end itself), and with it the forkserver and the resource tracker."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (Linux < 5.3, other systems): ask once a second
        while _alive(pid):
            time.sleep(1)
    else:
        select.select([handle], [], [])  # readable once the process has exited
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quiet_worker() -> None:
    # One image per process at a time: OpenCV's and the network's own threads would
    # oversubscribe the cores that the other workers use.
    cv2.setNumThreads(1)
    os.environ["IMGSEARCH_WORKER"] = "1"


@contextmanager
def one_core() -> Iterator[None]:
    """A one-worker build in this process uses one core, as each worker of a larger one
    does: shard builders side by side (or beside other work) do not oversubscribe."""
    threads, flag = cv2.getNumThreads(), os.environ.get("IMGSEARCH_WORKER")
    _quiet_worker()
    try:
        yield
    finally:
        cv2.setNumThreads(threads)
        if flag is None:
            os.environ.pop("IMGSEARCH_WORKER", None)


FIT_SAMPLE = 256


def _decode_for_fit(path: Path) -> np.ndarray | None:
    try:
        return load_image(path).pixels
    except SkippedFile:
        return None


def fit_on_folder(extractor: Extractor, paths: list[Path], sample: int = FIT_SAMPLE) -> Extractor:
    """Fit an extractor that learns from the collection on an evenly spaced sample of it."""
    chosen = paths[:: max(1, len(paths) // sample)][:sample]
    images = [im for im in map(_decode_for_fit, chosen) if im is not None]
    if not images:
        raise ImgsearchError(f"{extractor.name} learns from the collection, but no image could be read")
    return extractor.fit(images)
