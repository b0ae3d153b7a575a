"""uvicorn's HTTP/1.1 protocol with the read timeouts it lacks.

uvicorn (0.29-0.54 at least) waits for a request's headers and body as long as a client
cares to take: a request with half its headers, or a body shorter than its
Content-Length, holds its connection open forever, and a few thousand such clients hold
the server. Here each connection gets a deadline while it owes the server something:
its headers (from the moment it is ready for a request), then its body (from the end of
the headers). A client past the deadline is disconnected; a request received whole is
never cut, however long the search it asks for takes. The number of open connections is
bounded by uvicorn's limit_concurrency (beyond it new requests get 503 at once)."""
from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    body_timeout: float = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._cycle_seen: object | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm(self.header_timeout)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self.cycle is not self._cycle_seen:  # a request's headers arrived
            self._cycle_seen = self.cycle
            self._arm(self.body_timeout)

    def on_response_complete(self) -> None:
        answered = self.cycle
        super().on_response_complete()  # may already start a pipelined request (handle_events)
        if not self.transport.is_closing() and self.cycle is answered:
            self._arm(self.header_timeout)  # the next request on this connection owes its headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            return  # the request came in whole: what remains is the server's work
        self.transport.close()


def timed_protocol(header_timeout: float, body_timeout: float) -> type[TimedH11Protocol]:
    """The protocol class with these deadlines, in seconds."""
    return type("TimedH11Protocol", (TimedH11Protocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
