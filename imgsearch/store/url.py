"""Database URLs: parsing, validation and a form safe to print (no password)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from imgsearch.errors import ImgsearchError

SAFE_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DEFAULT_SQLITE_FILE = "imgsearch.sqlite3"
# Seconds the client waits for any one answer of the server: a hung server fails the
# command instead of blocking it forever. Statements wait on locks for at most
# innodb_lock_wait_timeout (50 s by default), so 300 s only ever trips on a real hang.
DEFAULT_READ_TIMEOUT = 300


@dataclass(frozen=True)
class DatabaseUrl:
    scheme: str  # "mysql" or "sqlite"
    path: str = ""  # sqlite file
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = ""
    unix_socket: str | None = None
    read_timeout: int = DEFAULT_READ_TIMEOUT  # [database] read_timeout; not part of the URL

    def redacted(self) -> str:
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        where = self.unix_socket or f"{self.host}:{self.port}"
        secret = ":***" if self.password else ""
        return f"mysql://{self.user}{secret}@{where}/{self.database}"

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted()})"


def parse_database_url(url: str | None) -> DatabaseUrl:
    """`mysql://user:pass@host:port/db[?unix_socket=/path]`, `sqlite:///path`, or a bare
    file path (SQLite). None means the embedded default: imgsearch.sqlite3 in the
    current directory."""
    if not url:
        return DatabaseUrl("sqlite", path=DEFAULT_SQLITE_FILE)
    if "://" not in url:
        return DatabaseUrl("sqlite", path=url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") and not parts.netloc else parts.path
        return DatabaseUrl("sqlite", path=unquote(path) or DEFAULT_SQLITE_FILE)
    if scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ImgsearchError(f"unsupported database scheme {scheme!r}: use mysql://... or sqlite:///...")
    database = unquote(parts.path.lstrip("/"))
    if not SAFE_IDENTIFIER.match(database):
        raise ImgsearchError(
            "the database name in the URL must be 1-64 letters, digits or underscores"
        )
    try:
        port = parts.port or 3306
    except ValueError:
        raise ImgsearchError("the port in the database URL is not a number") from None
    query = parse_qs(parts.query)
    return DatabaseUrl(
        "mysql",
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        unix_socket=query.get("unix_socket", [None])[0],
    )
