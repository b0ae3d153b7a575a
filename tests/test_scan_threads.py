"""The scans' BLAS threads: one while any scan runs, and the process back at all of
them when the last one ends, whatever the order they end in (a limit each scan restored on
its way out left it at one thread for good)."""
from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from imgsearch.linalg import BlasThreads


def blas_threads() -> int:
    return max(int(info["num_threads"]) for info in ThreadpoolController().select(user_api="blas").info())


def test_overlapping_scans_give_the_process_its_blas_threads_back_in_any_order() -> None:
    np.ones(4) @ np.ones(4)  # BLAS loaded
    with threadpool_limits(limits=2, user_api="blas"):  # the process's own count, on any machine
        threads = BlasThreads()
        with threads.one():
            assert blas_threads() == 1
        assert blas_threads() == 2
        first, second = threads.one(), threads.one()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first to begin ends first
        assert blas_threads() == 1 and threads.running == 1
        second.__exit__(None, None, None)
        assert blas_threads() == 2 and threads.running == 0


def test_a_scan_that_fails_gives_the_threads_back() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        threads = BlasThreads()
        try:
            with threads.one():
                raise ValueError("a scan failed")
        except ValueError:
            pass
        assert threads.running == 0 and blas_threads() == 2
