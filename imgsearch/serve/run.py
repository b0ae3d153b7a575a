"""`imgsearch serve`: the configuration checked, the service built, uvicorn started."""
from __future__ import annotations

import errno
import ipaddress
import resource
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from imgsearch.errors import ImgsearchError
from imgsearch.index.watch import watch_folder
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.service import Service
from imgsearch.store import open_store


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files towards `wanted` (within the hard limit): every
    connection is one, and the default soft limit is often 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything is announced or loaded: a port in use is
    one plain error, not an announcement followed by uvicorn's errno."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ImgsearchError(f"cannot serve on {host}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = "another program listens there; choose another with --port" if e.errno == errno.EADDRINUSE else e.strerror
        raise ImgsearchError(f"cannot serve on {host}:{port}: {hint}") from None
    return sock


@contextmanager
def watching(config: ServeConfig) -> Iterator[None]:
    """With `config.watch`, the index kept up to date with its folder in a thread of this
    process, on its own connection; the service's live sync takes each build in. Stopped
    after its current batch when the server stops."""
    if config.watch is None:
        yield
        return
    plan = config.watch
    stop = threading.Event()

    def run() -> None:
        try:
            with open_store(config.url) as store:
                watch_folder(store, None, plan, stop, lambda text: print(f"imgsearch: watch: {text}", flush=True))
        except ImgsearchError as e:  # the service goes on answering; the log says why the index stands still
            print(f"imgsearch: watch stopped: {e}", flush=True)

    thread = threading.Thread(target=run, name="watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_service(config: ServeConfig) -> None:
    import uvicorn

    from imgsearch.serve.app import create_app
    from imgsearch.serve.codec_noise import keep_codec_messages_out_of_the_log
    from imgsearch.serve.protocol import timed_protocol

    if not is_loopback(config.host) and not config.token and not config.no_auth:
        raise ImgsearchError(f"serving {config.host} (not loopback) needs --token or IMGSEARCH_API_TOKEN; "
                             "pass --no-auth to serve it without one on purpose")
    sock = listening_socket(config.host, config.port)
    try:
        service = Service(config)
    except BaseException:
        sock.close()
        raise
    try:
        if config.settings.extractor not in service.resident and service.resident:
            service.config = replace(config, settings=config.settings.with_flags(extractor=next(iter(service.resident))))
        app = create_app(service)
        reading = f" read from the replica {config.replica.redacted()}" if config.replica else ""
        held = ", ".join(f"{name}: {'resident' if index else 'streamed'}" for name, index in service.resident.items())
        augmented = ", with the default re-ranking's augmented vectors" if service.augmented else ""
        print(f"imgsearch: serving {config.url.redacted()}{reading} on http://{config.host}:{config.port}/ "
              f"({held}{augmented})", flush=True)
        allow_open_files(config.max_connections + 256)
        keep_codec_messages_out_of_the_log()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                               http=timed_protocol(config.header_timeout, config.body_timeout),
                                               limit_concurrency=config.max_connections))
        with watching(config):
            server.run(sockets=[sock])
    finally:
        sock.close()
        service.close()
