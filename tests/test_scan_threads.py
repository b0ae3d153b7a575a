"""The resident scans' BLAS threads: a scan alone gets all of them, overlapping scans one
each, and the process is back at all of them when the last one ends, whatever the order
they end in (a limit each scan restored on its way out left it at one thread)."""
from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from imgsearch.serve.resident import ScanThreads


def blas_threads() -> int:
    return max(int(info["num_threads"]) for info in ThreadpoolController().select(user_api="blas").info())


def test_a_scan_alone_gets_every_blas_thread_and_overlapping_scans_one_each() -> None:
    np.ones(4) @ np.ones(4)  # BLAS loaded
    with threadpool_limits(limits=2, user_api="blas"):  # the process's own count, on any machine
        threads = ScanThreads()
        with threads.held() as alone:
            assert alone == 2 and blas_threads() == 2
        assert blas_threads() == 2
        first = threads.held()
        assert first.__enter__() == 2
        second = threads.held()
        assert second.__enter__() == 1 and blas_threads() == 1
        first.__exit__(None, None, None)  # the first to begin ends first
        assert blas_threads() == 1 and threads.running == 1
        second.__exit__(None, None, None)
        assert blas_threads() == 2 and threads.running == 0


def test_a_scan_that_fails_gives_its_threads_back() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        threads = ScanThreads()
        try:
            with threads.held():
                raise ValueError("a scan failed")
        except ValueError:
            pass
        assert threads.running == 0 and blas_threads() == 2
