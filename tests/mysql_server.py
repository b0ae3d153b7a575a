"""A real MySQL/MariaDB server for the tests, found or started in this order:

1. IMGSEARCH_TEST_MYSQL_URL, e.g. mysql://root:@127.0.0.1:3306/ (the tests create and
   drop their own databases there);
2. a throwaway server started from the installed mariadbd/mysqld binaries in a temp dir;
3. a testcontainers MySQL container, when a Docker engine answers;
4. otherwise the server binaries are installed (as root with apt-get: system_parts), or
   the run fails with the line that installs them. Never a mock.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pymysql
import pytest
from system_parts import MYSQL_SERVER

SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the test MySQL server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", password="", connect_timeout=1).close()
            return
        except pymysql.err.OperationalError:
            time.sleep(0.05)
    raise RuntimeError(f"the test MySQL server did not answer within {seconds} s")


class ServerProcess:
    """A MariaDB/MySQL server of our own in a temp dir, which tests may stop and restart."""

    def __init__(self, server: str, logging: tuple[str, ...] = ("--skip-log-bin",), buffer_pool: str = "256M") -> None:
        self.server = server
        self.workdir = Path(tempfile.mkdtemp(prefix="imgsearch-mysql-"))
        self.data, self.log = self.workdir / "data", self.workdir / "error.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        install_db = _which("mariadb-install-db") or _which("mysql_install_db")
        if install_db and "mariadb" in Path(server).name:
            init = [install_db, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
                    "--skip-test-db", *as_root]
        else:
            init = [server, "--no-defaults", "--initialize-insecure", f"--datadir={self.data}", *as_root]
        subprocess.run(init, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.command = [
            server, "--no-defaults", f"--datadir={self.data}", f"--socket={self.workdir / 'mysqld.sock'}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.workdir / 'mysqld.pid'}",
            f"--log-error={self.log}", *logging, f"--innodb-buffer-pool-size={buffer_pool}", *as_root,
        ]

    @property
    def url(self) -> str:
        return f"mysql://root:@127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_up(self.port, self.process, self.log)

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.kill() if kill else self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def fresh_database(base_url: str, prefix: str = "imgsearch_t") -> Iterator[str]:
    """The URL of a new, uniquely named database on the server of `base_url` (created by
    whoever opens it first), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield base_url + name
    finally:
        parts = urlsplit(base_url)
        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=unquote(parts.username or "root"),
                               password=unquote(parts.password or ""), autocommit=True)
        try:
            with conn.cursor() as cur:
                # A test that failed mid-stream may still hold a lock: do not hang the run on it.
                cur.execute("SET SESSION lock_wait_timeout = 10")
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


def server_base_url(url: str) -> str:
    """mysql://user:pass@host:port/ of a URL, with or without a database part (the tests
    append their own database names)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb") or not parts.netloc:
        raise RuntimeError(f"IMGSEARCH_TEST_MYSQL_URL must look like mysql://user:pass@host:3306/, not {url!r}")
    return f"mysql://{parts.netloc}/"


@contextmanager
def replicated_pair(server: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """A primary with a binary log and a replica applying it by GTID, both on loopback."""
    primary = ServerProcess(server, ("--log-bin=primary-bin", "--server-id=1", "--binlog-format=ROW"))
    replica = ServerProcess(server, ("--skip-log-bin", "--server-id=2"))
    try:
        primary.start()
        replica.start()
        conn = pymysql.connect(host="127.0.0.1", port=replica.port, user="root", password="", autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='root', "
                        "MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos")
            cur.execute("START SLAVE")
        conn.close()
        yield primary, replica
    finally:
        replica.remove()
        primary.remove()


def server_binary() -> str:
    """The installed mariadbd or mysqld, installed first where missing (system_parts)."""
    return MYSQL_SERVER.ensure()


def own_server_binary(why: str) -> str:
    """server_binary(), or the test fails saying why it needs a server of its own."""
    try:
        return server_binary()
    except RuntimeError as e:
        pytest.fail(f"{why}: {e}", pytrace=False)


@contextmanager
def throwaway_server(server: str) -> Iterator[str]:
    """Start `server` (mariadbd or mysqld) on a free port in a temp data dir."""
    instance = ServerProcess(server)
    try:
        instance.start()
        yield instance.url
    finally:
        instance.remove()


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextmanager
def container_server() -> Iterator[str]:
    from testcontainers.mysql import MySqlContainer

    with MySqlContainer("mariadb:11.4", username="root", password="test") as container:
        port = container.get_exposed_port(3306)
        yield f"mysql://root:test@{container.get_container_host_ip()}:{port}/"


@contextmanager
def mysql_server() -> Iterator[str]:
    """Yields a base URL mysql://user:pass@host:port/ with no database part."""
    if os.environ.get("IMGSEARCH_TEST_MYSQL_URL"):
        yield server_base_url(os.environ["IMGSEARCH_TEST_MYSQL_URL"])
        return
    installed = MYSQL_SERVER.find()
    if installed is None and _docker_answers():
        with container_server() as url:
            yield url
        return
    with throwaway_server(installed or server_binary()) as url:
        yield url
