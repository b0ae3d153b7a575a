"""`imgsearch serve`: options checked, the service built, uvicorn started."""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path

from imgsearch.errors import ImgsearchError
from imgsearch.serve.decodes import DEFAULT_DECODE_MEMORY, DEFAULT_UPLOAD_PIXELS
from imgsearch.serve.service import ServeConfig, Service
from imgsearch.store.url import DatabaseUrl

SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$", re.I)


@dataclass(frozen=True)
class ServeOptions:
    url: DatabaseUrl
    host: str
    port: int
    extractors: tuple[str, ...]
    metrics: tuple[str, ...]
    default_extractor: str
    default_metric: str
    max_memory: str | None
    token: str | None
    no_auth: bool
    upload_limit: str
    thumbnails: Path | None
    block_rows: int
    parallel: int
    regions: str
    replica: DatabaseUrl | None
    replica_wait: float
    header_timeout: float = 10.0  # seconds a client may take to send a request's headers
    body_timeout: float = 60.0  # ... and then its body
    max_connections: int = 1024  # open connections; a request beyond them gets 503 at once
    upload_pixels: int = DEFAULT_UPLOAD_PIXELS
    decode_memory: str | None = None  # a size; None: DEFAULT_DECODE_MEMORY


def parse_size(text: str, what: str) -> int:
    match = SIZE.match(text.strip())
    if not match:
        raise ImgsearchError(f"{what}: {text!r} is not a size such as 500M or 2G")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def half_the_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def thumbnail_folder(url: DatabaseUrl) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    index = str(Path(url.path).resolve()) if url.scheme == "sqlite" else url.redacted()
    return base / "imgsearch" / "thumbnails" / hashlib.sha256(index.encode()).hexdigest()[:16]


def allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files towards `wanted` (within the hard limit): every
    connection is one, and the default soft limit is often 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_service(options: ServeOptions) -> None:
    import uvicorn

    from imgsearch.serve.app import create_app
    from imgsearch.serve.codec_noise import keep_codec_messages_out_of_the_log
    from imgsearch.serve.protocol import timed_protocol

    if not is_loopback(options.host) and not options.token and not options.no_auth:
        raise ImgsearchError(f"serving {options.host} (not loopback) needs --token or IMGSEARCH_API_TOKEN; "
                             "pass --no-auth to serve it without one on purpose")
    config = ServeConfig(options.url, options.extractors, options.metrics, options.default_extractor,
                         options.default_metric,
                         parse_size(options.max_memory, "--max-memory") if options.max_memory else half_the_memory(),
                         options.block_rows, options.parallel, options.regions, options.replica, options.replica_wait,
                         options.upload_pixels,
                         parse_size(options.decode_memory, "--decode-memory") if options.decode_memory
                         else DEFAULT_DECODE_MEMORY)
    service = Service(config)
    try:
        if config.default_extractor not in service.resident and service.resident:
            config = ServeConfig(**{**config.__dict__, "default_extractor": next(iter(service.resident))})
            service.config = config
        app = create_app(service, parse_size(options.upload_limit, "--upload-limit"), options.token,
                         options.thumbnails or thumbnail_folder(options.url))
        reading = f" read from the replica {options.replica.redacted()}" if options.replica else ""
        print(f"imgsearch: serving {options.url.redacted()}{reading} on http://{options.host}:{options.port}/ "
              f"({', '.join(f'{name}: ' + ('resident' if index else 'streamed') for name, index in service.resident.items())})",
              flush=True)
        allow_open_files(options.max_connections + 256)
        keep_codec_messages_out_of_the_log()
        uvicorn.run(app, host=options.host, port=options.port, log_level="warning",
                    http=timed_protocol(options.header_timeout, options.body_timeout),
                    limit_concurrency=options.max_connections)
    finally:
        service.close()
