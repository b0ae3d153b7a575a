"""Database URLs (parsing, validation, a form safe to print: no password) and the kinds of
database they name."""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from imgsearch.errors import ImgsearchError

SAFE_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DEFAULT_SQLITE_FILE = "imgsearch.sqlite3"
# Seconds the client waits for any one answer of the server: a hung server fails the
# command instead of blocking it forever. Statements wait on locks for at most
# innodb_lock_wait_timeout (50 s by default), so 300 s only ever trips on a real hang.
DEFAULT_READ_TIMEOUT = 300


@dataclass(frozen=True)
class DatabaseUrl:
    scheme: str  # the name of its Scheme
    path: str = ""  # an embedded database's file
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = ""
    unix_socket: str | None = None
    read_timeout: int = DEFAULT_READ_TIMEOUT  # [database] read_timeout; not part of the URL

    def redacted(self) -> str:
        """The URL without its password: what logs, errors and answers may show."""
        return scheme_of(self).redact(self)

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted()})"


@dataclass(frozen=True)
class Scheme:
    """A kind of database the index lives in, declared once: how its URL reads and prints,
    the module of its store, and what it can do. A new backend is its module (STORE, the
    FeatureStore class; database_exists(url); remove_if_empty(url)), its schema in sql/,
    and a record here."""

    name: str
    url_names: tuple[str, ...]  # the URL schemes that name it
    read: Callable[[SplitResult], DatabaseUrl]
    redact: Callable[[DatabaseUrl], str]
    backend: str  # its module, imported when first used (a driver is loaded only where it is named)
    embedded: bool = False  # a file the tool makes: one a failed first build leaves empty goes
    password_apart: bool = False  # takes a password given apart from the URL ([database] password)
    replicas: bool = False  # reads may go to replicas of the server (store.replica)

    def module(self) -> ModuleType:
        return importlib.import_module(self.backend)

    def identity(self, url: DatabaseUrl) -> str:
        """What names this index across processes: its file, or its server and database."""
        return str(Path(url.path).resolve()) if self.embedded else url.redacted()


def _read_sqlite(parts: SplitResult) -> DatabaseUrl:
    path = parts.path[1:] if parts.path.startswith("/") and not parts.netloc else parts.path
    return DatabaseUrl(SQLITE.name, path=unquote(path) or DEFAULT_SQLITE_FILE)


def _read_mysql(parts: SplitResult) -> DatabaseUrl:
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
        MYSQL.name,
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        unix_socket=query.get("unix_socket", [None])[0],
    )


def _redact_mysql(url: DatabaseUrl) -> str:
    where = url.unix_socket or f"{url.host}:{url.port}"
    secret = ":***" if url.password else ""
    return f"mysql://{url.user}{secret}@{where}/{url.database}"


SQLITE = Scheme("sqlite", ("sqlite",), _read_sqlite, lambda url: f"sqlite:///{url.path}", "imgsearch.store.sqlite",
                embedded=True)
MYSQL = Scheme("mysql", ("mysql", "mariadb", "mysql+pymysql"), _read_mysql, _redact_mysql, "imgsearch.store.mysql",
               password_apart=True, replicas=True)
SCHEMES: dict[str, Scheme] = {scheme.name: scheme for scheme in (SQLITE, MYSQL)}
SCHEME_OF_URL = {url_name: scheme for scheme in SCHEMES.values() for url_name in scheme.url_names}


def scheme_of(url: DatabaseUrl) -> Scheme:
    return SCHEMES[url.scheme]


def parse_database_url(url: str | None) -> DatabaseUrl:
    """`mysql://user:pass@host:port/db[?unix_socket=/path]`, `sqlite:///path`, or a bare
    file path (SQLite). None means the embedded default: imgsearch.sqlite3 in the
    current directory."""
    if not url:
        return DatabaseUrl(SQLITE.name, path=DEFAULT_SQLITE_FILE)
    if "://" not in url:
        return DatabaseUrl(SQLITE.name, path=url)
    parts = urlsplit(url)
    scheme = SCHEME_OF_URL.get(parts.scheme.lower())
    if scheme is None:
        known = " or ".join(f"{s.url_names[0]}://..." for s in SCHEMES.values())
        raise ImgsearchError(f"unsupported database scheme {parts.scheme.lower()!r}: use {known}")
    return scheme.read(parts)
