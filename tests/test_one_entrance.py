"""One entrance: a default upload, as the service runs it (the library's Index over a
pooled connection, the resident copies scanning), reads the `extractors` table and the
graph row once each: what a search needs of the catalog is read when it is planned
(store.catalog), and every stage reads it from there."""
from __future__ import annotations

import re

import cv2
from cli_runner import imgsearch
from photos import photo, variant, write_collection

from imgsearch.config import Settings
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.service import Service
from imgsearch.store.sqlite import SqliteStore
from imgsearch.store.url import parse_database_url


def test_a_default_upload_reads_the_extractors_and_the_graph_row_once_each(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    assert imgsearch("build", folder, "--db", db).code == 0  # the default: cnn-spoc, its graph, sift and words
    statements: list[str] = []
    connect = SqliteStore._connect

    def traced(self: SqliteStore):
        conn = connect(self)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(SqliteStore, "_connect", traced)
    service = Service(ServeConfig(parse_database_url(db), settings=Settings()))
    try:
        upload = cv2.imencode(".jpg", variant(photo("chelsea.png")))[1].tobytes()
        service.search_upload(upload, {})  # the first: the resident copies take in what they lack
        statements.clear()
        answer = service.search_upload(upload, {})
    finally:
        service.close()
    assert answer["rerank"] == "dba-aqe:3+verify" and answer["results"][0]["path"] == "a/chelsea.jpg"
    reads = {table: sum(bool(re.search(rf"\bFROM {table}\b", s)) for s in statements) for table in ("extractors",
                                                                                                    "graphs")}
    assert reads == {"extractors": 1, "graphs": 1}, reads
