from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mysql_server import ServerProcess, fresh_database, mysql_server, own_server_binary  # noqa: E402
from system_parts import CHROMIUM  # noqa: E402

from imgsearch.store.url import parse_database_url  # noqa: E402

# Modules that start servers or browsers, kill processes or fuzz: the README's test
# command runs them all; `python -m pytest -m "not slow"` leaves them out while working.
SLOW_MODULES = {"test_harness.py", "test_replicas.py", "test_page.py", "test_docs_commands.py", "test_watch.py",
                "test_service_stalls.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # a test that drives the browser is slow wherever it lives
        if item.path.name in SLOW_MODULES or item.path.parent.name == "faults" or "browser" in item.fixturenames:
            item.add_marker(pytest.mark.slow)


LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def browser() -> Iterator:
    """Debian's chromium, driven by Playwright (never a downloaded browser); installed first
    where missing (system_parts)."""
    try:
        chromium = CHROMIUM.ensure()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def mysql_base_url() -> Iterator[str]:
    try:
        with mysql_server() as url:
            yield url
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def own_server() -> Iterator[ServerProcess]:
    """A server of the test's own, which it may crash and restart (never the shared one)."""
    # These tests crash and restart a server, which only an installed binary allows.
    server = ServerProcess(own_server_binary("the crash tests stop and restart a MySQL/MariaDB server of their own"))
    server.start()
    yield server
    server.remove()


def admin_connection(base_url: str) -> pymysql.connections.Connection:
    url = parse_database_url(base_url + "mysql")
    return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password, autocommit=True)


@pytest.fixture
def mysql_url(mysql_base_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    with fresh_database(mysql_base_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite3'}"
    return request.getfixturevalue("mysql_url")


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's config.ini or IMGSEARCH_* settings."""
    for key in list(os.environ):
        if key.startswith("IMGSEARCH_") and key != "IMGSEARCH_TEST_MYSQL_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("IMGSEARCH_CONFIG", str(tmp_path / "absent-config.ini"))
