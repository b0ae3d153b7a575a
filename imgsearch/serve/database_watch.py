"""An outage of the database, told once: a line when it stops answering the service and
one when it answers again, not one per request."""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("imgsearch.serve")


class DatabaseWatch:
    """Says once when the database stops answering the service, and once when it answers
    again: an outage is two log lines, not one per request."""

    def __init__(self) -> None:
        self._down_since: float | None = None
        self._lock = threading.Lock()

    def failed(self, message: str) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("imgsearch: the database stopped answering: %s", message)

    def answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                log.warning("imgsearch: the database answers again (down %.1f s)", time.monotonic() - self._down_since)
                self._down_since = None
