"""Decode + extract, and the worker pool that runs it: shared by build and eval."""
from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import numpy as np

from imgsearch.features.base import Extractor
from imgsearch.features.registry import make_extractor

T = TypeVar("T")
R = TypeVar("R")


@functools.cache
def cached_extractor(name: str) -> Extractor:
    """One instance per process: workers build their extractors once, not per image."""
    return make_extractor(name)


def extract_all(pixels: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
    return {name: cached_extractor(name).extract(pixels) for name in names}


def map_in_workers(fn: Callable[[T], R], items: list[T], workers: int) -> Iterator[R]:
    """fn over items, in `workers` processes (in this one when workers is 1), results in
    completion order. Chunks amortise the inter-process hand-off on small images."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    chunksize = max(1, min(16, len(items) // (workers * 8)))
    # Not fork: a child forked from a parent whose OpenCV thread pool already ran can
    # deadlock on that pool's inherited locks. forkserver children start from a clean process.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet_worker) as pool:
        yield from pool.map(fn, items, chunksize=chunksize)


def _quiet_worker() -> None:
    # One decode per process at a time: OpenCV's own threads would oversubscribe the cores.
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
