"""The small linear algebra every layer shares: one L2 normaliser and its epsilon, and the
BLAS threads a scan runs on."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
from threadpoolctl import ThreadpoolController

EPS = 1e-6


def l2n(v: np.ndarray) -> np.ndarray:
    """L2-normalised float32: a vector, or each row of a matrix."""
    return (v / (np.linalg.norm(v, axis=-1, keepdims=True) + EPS)).astype(np.float32)


class BlasThreads:
    """BLAS at one thread while any scan runs, all of its own again when the last one ends.
    Scans run one thread each: beside a database server a multi-threaded BLAS fights it for
    the cores; side by side in a service's threads they share them; and alone, a second
    BLAS thread left spinning after a resident scan slowed the photo's SIFT that follows
    from 47 to 73 ms at 30,000 images, more than it saved. BLAS's thread count is the
    process's, so it is set here under one lock: a limit restored by each scan on its way
    out (threadpool_limits) left the process at one thread for good when two overlapping
    scans ended in the order they began."""

    def __init__(self) -> None:
        self.running = 0
        self._lock = threading.Lock()
        self._controller: ThreadpoolController | None = None
        self._all = 1

    def _set(self, threads: int | None) -> None:
        """`threads` for BLAS; None: all of them."""
        if self._controller is None:  # made at the first scan: numpy's BLAS is loaded by then
            self._controller = ThreadpoolController()
            self._all = max([1, *(int(info["num_threads"]) for info in self._controller.select(user_api="blas").info())])
        self._controller.limit(limits=self._all if threads is None else threads, user_api="blas")

    @contextmanager
    def one(self) -> Iterator[None]:
        """Around one scan."""
        with self._lock:
            self.running += 1
            if self.running == 1:
                self._set(1)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
                if self.running == 0:
                    self._set(None)


BLAS_THREADS = BlasThreads()


def one_blas_thread() -> AbstractContextManager[None]:
    """The process's BLAS at one thread for the block's scan (BlasThreads)."""
    return BLAS_THREADS.one()
