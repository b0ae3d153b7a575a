"""Clients that never finish their request (half the headers, or a body shorter than its
Content-Length) are disconnected by their deadline while the service keeps answering."""
from __future__ import annotations

import selectors
import socket
import time

from cli_runner import imgsearch
from photos import write_collection
from served import serving

HALF_HEADERS = 200
SHORT_BODIES = 50


def open_half_requests(port: int) -> list[socket.socket]:
    sockets = []
    for i in range(HALF_HEADERS + SHORT_BODIES):
        s = socket.create_connection(("127.0.0.1", port))
        if i < HALF_HEADERS:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            s.sendall(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{\"name\": ")
        sockets.append(s)
    return sockets


def wait_until_closed(sockets: list[socket.socket], seconds: float) -> int:
    """How many of `sockets` the server closed within `seconds`."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + seconds
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                data = key.fileobj.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                closed += 1
    for s in sockets:
        s.close()
    return closed


def test_half_sent_requests_are_disconnected_and_health_answers_meanwhile(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    write_collection(tmp_path / "photos", ("coffee.png", "chelsea.png"))
    assert imgsearch("build", tmp_path / "photos", "--db", db, "-e", "rgb").code == 0
    with serving(db, tmp_path, "--header-timeout", "2", "--body-timeout", "3") as served, served.client() as http:
        port = int(served.base.rsplit(":", 1)[1])
        sockets = open_half_requests(port)
        for _ in range(5):  # answered while every half request is held
            assert http.get("/api/health").status_code == 200
            assert http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb"}).status_code == 200
        assert wait_until_closed(sockets, 60) == HALF_HEADERS + SHORT_BODIES
        # a client that pauses between whole requests on one connection is not cut
        for _ in range(2):
            assert http.get("/api/health").status_code == 200
            time.sleep(1)
    assert "Traceback" not in served.output(), served.output()
