"""What the web service does, apart from HTTP: resident indexes per extractor within a
memory budget, searches answered from them (or by the streaming scan when re-ranking,
a learned map, a metric not held in memory or the budget says so), images by id."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from imgsearch.duplicates import DEFAULT_EXTRACTOR, CopyRules, as_json
from imgsearch.errors import BusyError, NotFoundError, TooMuchWork
from imgsearch.index.walk import FOLLOWED_LINKS_KEY, CollectionFolder
from imgsearch.library import Index, search_plan
from imgsearch.plan import SearchPlan
from imgsearch.query import photo_of_bytes
from imgsearch.scan.metrics import get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.database_watch import DatabaseWatch
from imgsearch.serve.decodes import DecodeBudget
from imgsearch.serve.pool import ConnectionPool
from imgsearch.serve.resident import ResidentIndex, ResidentScan
from imgsearch.store import open_store
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore
from imgsearch.store.records import StoredImage
from imgsearch.store.replica import ReplicaReads

log = logging.getLogger("imgsearch.serve")

# Memory per resident row beyond its prepared vectors: the id, and room for one
# compaction (the base matrix is rebuilt beside the old one).
COMPACTION_HEADROOM = 2.0


@dataclass
class Service:
    config: ServeConfig
    resident: dict[str, ResidentIndex | None] = field(default_factory=dict)  # None: served by the streaming scan
    # a resident extractor's graph vectors, which its default re-ranking scans (not searched by themselves)
    augmented: dict[str, ResidentIndex] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    watch: DatabaseWatch = field(default_factory=DatabaseWatch)

    def __post_init__(self) -> None:
        self.decodes = DecodeBudget(self.config.decode_memory, self.config.upload_pixels)
        self._replica = ReplicaReads(self.config.url, self.config.replica, self.config.replica_wait) \
            if self.config.replica else None
        self._pool = ConnectionPool(self._open)
        # one report at a time: it holds a core and a connection for minutes where a search takes milliseconds
        self._reports = threading.BoundedSemaphore(1)
        with self.db() as store:
            counts = store.count_features()
            rows = store.extractors()
        budget = self.config.max_memory
        metrics = [get_metric(m) for m in self.config.metrics]
        searched = [row for row in rows if (row.name in self.config.extractors if self.config.extractors
                                            else row.kind.searched and not row.derived)]
        # a searched extractor's graph vectors, which the default re-ranking scans by cosine
        augmented = [row for row in rows if row.derived_from in {r.name for r in searched}
                     and row not in searched]
        for row, row_metrics in [(row, metrics) for row in searched] + [(row, [get_metric("cosine")]) for row in augmented]:
            need = int(counts.get(row.id, 0) * (row.dim * 4 * len(row_metrics) + 8) * COMPACTION_HEADROOM)
            held = None
            if need <= budget:
                budget -= need
                held = ResidentIndex(self._open, row, row_metrics)
            if not row.derived:
                self.resident[row.name] = held
            elif held is not None:
                self.augmented[row.name] = held

    def public(self, message: str) -> str:
        """An error message fit for a response: where the database is stays in the log."""
        for url, name in ((self.config.url, "the database"), (self.config.replica, "the replica")):
            if url is not None:
                message = message.replace(f" at {url.redacted()}", "").replace(url.redacted(), name)
        return message

    def _open(self) -> FeatureStore:
        return self._replica.open() if self._replica else open_store(self.config.url)

    def close(self) -> None:
        for index in [*self.resident.values(), *self.augmented.values()]:
            if index is not None:
                index.close()
        self._pool.close()
        if self._replica:
            self._replica.close()

    def _caught_up(self) -> None:
        """On a replica, wait until it holds what the primary had committed when the request
        came in: every read of the request (the resident copy's counter check included,
        on its own connection to the same replica) sees that state or a later one."""
        if self._replica:
            with self.db() as store:
                self._replica.catch_up(store)

    @contextmanager
    def db(self) -> Iterator[FeatureStore]:
        """A connection of this request's own (serve.pool)."""
        with self._pool.connection() as store:
            yield store

    def index(self, store: FeatureStore) -> Index:
        """The library's one entrance over a connection of this request's, scanning the
        resident copies where they hold what a scan reads (ResidentScan), else the store."""
        settings = self.config.settings
        return Index(store, settings, ResidentScan(store, {**self.resident, **self.augmented},
                                                   StoreScan(store, settings.block_rows, settings.parallel)))

    def search_upload(self, data: bytes, asked: dict[str, Any], box: tuple[int, int, int, int] | None = None) -> dict:
        """The answer for an uploaded photo, or for the part of it inside `box` (x, y, width,
        height in its pixels): that crop is the query photo, its regions and all. asked:
        what Index.plan takes."""
        self._caught_up()
        plan = search_plan(self.config.settings, **asked)  # a bad field refused before the photo is decoded
        with self.decodes.hold(data):  # SkippedFile: too many pixels; BusyError: no room now
            photo = photo_of_bytes(data, box)  # SkippedFile: not an image, or a decompression bomb
            self.decodes.check_decoded(photo.height, photo.width)
        return self._search(plan, photo=photo, label="upload")

    def search(self, asked: dict[str, Any], **query: Any) -> dict:
        """The answer for an indexed image (name=...) or a vector (vector=...)."""
        self._caught_up()
        return self._search(search_plan(self.config.settings, **asked), **query)

    def _search(self, plan: SearchPlan, **query: Any) -> dict:
        """The library's answer, and what the service says besides: the results after the
        offset, how many images were searched, and whether the resident copy served it."""
        with self.db() as store:
            result = self.index(store).answer(plan, **query)
        index = self.resident.get(plan.extractor)
        resident = index is not None and not plan.whiten and plan.metric.name in self.config.metrics
        answer = result.as_json()
        answer["results"] = answer["results"][plan.offset :]
        answer.update(total=result.total, under=plan.under, offset=plan.offset,
                      served="resident" if resident else "streamed")
        return answer

    def image(self, image_id: int) -> StoredImage:
        self._caught_up()
        with self.db() as store:
            return self._image(store, image_id)

    def image_on_disk(self, image_id: int) -> tuple[CollectionFolder, StoredImage]:
        """The collection's folder and the image's row: where its file is."""
        self._caught_up()
        with self.db() as store:
            root = store.get_meta(COLLECTION_ROOT_KEY)
            if root is None:
                raise NotFoundError("nothing is indexed yet")
            return CollectionFolder.from_meta(root, store.get_meta(FOLLOWED_LINKS_KEY)), self._image(store, image_id)

    @staticmethod
    def _image(store: FeatureStore, image_id: int) -> StoredImage:
        found = store.images_by_ids([image_id]).get(image_id)
        if found is None:
            raise NotFoundError(f"no indexed image has id {image_id}")
        return found

    def stats(self) -> dict:
        self._caught_up()
        with self.db() as store:
            counts = store.count_features()
            extractors = store.extractors()
            images = store.count_images()
            changes = {e.name: store.changes(e) for e in extractors}
            advice = store.cache_advice()
        served = {}
        for e in extractors:
            if e.name not in self.resident:
                continue
            index = self.resident[e.name]
            state = index.state if index is not None else None
            served[e.name] = {
                "dim": e.dim, "vectors": counts.get(e.id, 0), "served": "resident" if index else "streamed",
                "state": changes[e.name], "resident_state": state.changes if state else None,
                "resident_rows": state.rows if state else None, "resident_bytes": state.nbytes if state else 0,
                "syncs": index.syncs if index else 0,
            }
        return {"images": images, "extractors": served, "metrics": list(self.config.metrics),
                "default_extractor": self.config.settings.extractor, "default_metric": self.config.settings.metric,
                "database": self.config.url.scheme, "cache_advice": advice,
                "replica": self.config.replica.redacted() if self.config.replica else None,
                "uptime_s": round(time.time() - self.started, 1)}

    def compare(self, upload: bytes | None, a: str | None, b: str) -> dict:
        """The uploaded photo (else the indexed image named a) against the indexed image b."""
        self._caught_up()
        with self.decodes.hold(upload) if upload is not None else nullcontext(), self.db() as store:
            return self.index(store).compare(upload if upload is not None else a or "", b).as_json()

    def duplicates(self, extractor: str | None, rules: CopyRules, reference: str | None) -> dict:
        """The duplicates report, one at a time (BusyError while another is made), within
        the configured pairs and seconds (TooMuchWork past them)."""
        if not self._reports.acquire(blocking=False):
            raise BusyError("another duplicates report is being made; try again when it is done")
        try:
            self._caught_up()
            deadline = time.monotonic() + self.config.report_seconds

            def within_time(phase: str, done: int, total: int) -> None:
                if time.monotonic() > deadline:
                    raise TooMuchWork(f"the report took over {self.config.report_seconds:.0f} s ({phase}: {done} of "
                                      f"{total}) and was stopped: narrow its rules (a higher threshold)")

            with self.db() as store:
                report = self.index(store).duplicates(extractor or DEFAULT_EXTRACTOR, rules, reference,
                                                      progress=within_time, max_pairs=self.config.max_pairs)
        finally:
            self._reports.release()
        answer = as_json(report)
        answer.pop("root")  # no server path in a response
        return answer

    def health(self) -> dict:
        self._caught_up()
        with self.db() as store:
            lag = {e.name: store.changes(e) - index.state.changes
                   for e in store.extractors()
                   if (index := self.resident.get(e.name) or self.augmented.get(e.name)) is not None}
        return {"database": "reachable", "sync_lag_changes": lag}
