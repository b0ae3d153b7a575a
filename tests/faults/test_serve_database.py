"""A running `serve` outlives its database: stopped, killed, or closing idle connections
(wait_timeout), the service answers 503 while it is gone, exactly again from the first
request after it is back, and logs the outage once and the recovery once."""
from __future__ import annotations

import time
import uuid

import pymysql
import pytest
from cli_runner import imgsearch
from photos import write_collection
from served import serving


def search(http) -> tuple[int, dict]:
    answer = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 4})
    return answer.status_code, answer.json()


def admin(server) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="", autocommit=True)


@pytest.fixture
def indexed(own_server, tmp_path):
    db = own_server.url + f"serve_outage_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png", "color.png"))
    assert imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "hsv72").code == 0
    expected = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "-k", "4", "--json").json()
    return db, [r["path"] for r in expected["results"]]


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
def test_the_service_answers_again_from_the_first_request_after_a_restart(own_server, indexed, tmp_path, kill) -> None:
    db, expected = indexed
    with serving(db, tmp_path) as served, served.client() as http:
        status, answer = search(http)
        assert status == 200 and [r["path"] for r in answer["results"]] == expected
        for _ in range(2):  # two outages: each is logged once, and each recovery once
            own_server.stop(kill=kill)
            try:
                for path in ("/api/health", "/api/stats", "/api/images/1"):
                    gone = http.get(path)
                    assert gone.status_code == 503, gone.text
                    assert str(own_server.port) not in gone.text and "mysql://" not in gone.text, gone.text
                status, answer = search(http)
                assert status == 503 and "gone away" in answer["error"] or "cannot reach" in answer["error"], answer
            finally:
                own_server.start()
            status, answer = search(http)  # the first request after the return
            assert status == 200, answer
            assert [r["path"] for r in answer["results"]] == expected
            assert http.get("/api/health").status_code == 200
        log = served.output()
    assert log.count("the database stopped answering") == 2, log
    assert log.count("the database answers again") == 2, log
    assert "Traceback" not in log


def test_connections_the_server_closed_while_idle_are_replaced(own_server, indexed, tmp_path) -> None:
    db, expected = indexed
    conn = admin(own_server)
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL wait_timeout = 2")
    try:
        with serving(db, tmp_path) as served, served.client() as http:
            assert search(http)[0] == 200
            time.sleep(3.5)  # every connection the service keeps is closed by the server now
            for _ in range(2):
                status, answer = search(http)
                assert status == 200, answer
                assert [r["path"] for r in answer["results"]] == expected
                assert http.get("/api/health").status_code == 200
                time.sleep(3.5)
            log = served.output()
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL wait_timeout = 28800")
        conn.close()
    assert "stopped answering" not in log, log
