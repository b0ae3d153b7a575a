"""Reading from a replica: a real primary and replica (two mariadbd, binlog replication by
GTID on loopback). A query on the replica answers what the primary has committed, or
fails: never a stale answer presented as current."""
import os

import pymysql
import pytest
from cli_runner import imgsearch
from mysql_server import own_server_binary, replicated_pair
from photos import write_collection
from served import free_port, serving
from test_cli_errors import assert_clean_failure

from imgsearch.errors import DatabaseError
from imgsearch.store import open_store
from imgsearch.store.mysql import PrimaryClock
from imgsearch.store.url import parse_database_url


@pytest.fixture(scope="module")
def pair():
    with replicated_pair(own_server_binary("the replica tests start a primary and a replica of their own")) as servers:
        yield servers


def server_sql(server, statement: str) -> None:
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def results(run) -> list:
    assert run.code == 0, run.err
    return [(r["path"], round(r["score"], 5)) for r in run.json()["results"]]


def test_queries_on_a_replica_see_the_primary_or_fail(pair, tmp_path) -> None:
    primary, replica = pair
    primary_db, replica_db = primary.url + "imgsearch_r", replica.url + "imgsearch_r"
    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", primary_db, "-e", "rgb").code == 0
    on_primary = results(imgsearch("query", "b/coffee.jpg", "--db", primary_db, "-e", "rgb", "--json"))
    for parallel in ("1", "2"):
        assert results(imgsearch("query", "b/coffee.jpg", "--db", primary_db, "--replica", replica_db, "-e", "rgb",
                                 "-P", parallel, "--json")) == on_primary
    server_sql(replica, "STOP SLAVE SQL_THREAD")
    try:
        write_collection(folder / "more")
        assert imgsearch("build", folder, "--db", primary_db, "-e", "rgb").code == 0
        stale = imgsearch("query", "b/coffee.jpg", "--db", primary_db, "--replica", replica_db, "-e", "rgb", "--json",
                          env={"IMGSEARCH_REPLICA_WAIT": "2"})
        assert_clean_failure(stale, "did not apply the primary's state", "within 2 s")
    finally:
        server_sql(replica, "START SLAVE SQL_THREAD")
    on_primary = results(imgsearch("query", "b/coffee.jpg", "--db", primary_db, "-e", "rgb", "-k", "20", "--json"))
    assert len(on_primary) == 17
    configured = tmp_path / "config.ini"
    configured.write_text(f"[database]\nurl = {primary_db}\nreplicas = {replica_db}\nreplica_wait = 30\n")
    assert results(imgsearch("query", "b/coffee.jpg", "--config", configured, "-e", "rgb", "-k", "20", "--json")) == \
        on_primary


def test_two_servers_on_a_replica_answer_the_primary_state_or_fail(pair, tmp_path) -> None:
    """Two `serve` processes, each keeping its resident copy from the replica, answer as
    `query` on the primary does, at the primary's state, right after each build there."""
    primary, replica = pair
    primary_db, replica_db = primary.url + "imgsearch_s", replica.url + "imgsearch_s"
    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", primary_db, "-e", "rgb").code == 0

    def primary_state() -> int:
        with open_store(parse_database_url(primary_db)) as store:
            return store.changes(store.find_extractor("rgb"))

    def on_primary() -> list:
        return results(imgsearch("query", "b/coffee.jpg", "--db", primary_db, "-e", "rgb", "-k", "30", "--json"))

    env = {**os.environ, "IMGSEARCH_REPLICA_WAIT": "3"}
    serve_args = ("--replica", replica_db, "-e", "rgb")
    with serving(primary_db, tmp_path, *serve_args, env=env) as one, serving(primary_db, tmp_path, *serve_args,
                                                                              env=env) as two, \
            one.client() as first, two.client() as second:

        def answers() -> list[tuple[list, int, int]]:
            found = []
            for http in (first, second):
                answer = http.post("/api/search", json={"name": "b/coffee.jpg", "extractor": "rgb", "k": 30})
                assert answer.status_code == 200, answer.text
                assert answer.json()["served"] == "resident"
                stats = http.get("/api/stats").json()
                assert stats["replica"] == parse_database_url(replica_db).redacted()
                found.append(([(r["path"], round(r["score"], 5)) for r in answer.json()["results"]],
                              answer.json()["state"], stats["extractors"]["rgb"]["resident_state"]))
            return found

        assert answers() == [(on_primary(), primary_state(), primary_state())] * 2
        for more in ("more", "yet more"):
            write_collection(folder / more)
            assert imgsearch("build", folder, "--db", primary_db, "-e", "rgb").code == 0
            assert answers() == [(on_primary(), primary_state(), primary_state())] * 2
        assert len(on_primary()) == 26

        server_sql(replica, "STOP SLAVE SQL_THREAD")
        try:
            (folder / "yet more" / "a" / "chelsea.jpg").unlink()
            assert imgsearch("build", folder, "--db", primary_db, "-e", "rgb").code == 0
            for http in (first, second):
                stale = http.post("/api/search", json={"name": "b/coffee.jpg", "extractor": "rgb"})
                assert stale.status_code == 503
                assert "did not apply the primary's state" in stale.json()["error"]
                assert http.get("/api/health").status_code == 503
        finally:
            server_sql(replica, "START SLAVE SQL_THREAD")
        assert answers() == [(on_primary(), primary_state(), primary_state())] * 2
        assert len(on_primary()) == 25


def test_the_primary_clock_reconnects_once_then_names_the_primary(pair) -> None:
    """A `serve` process keeps one connection to the primary for the GTID positions: one
    the server closed meanwhile (wait_timeout, a restart) is replaced; a primary that does
    not answer is an error naming it."""
    primary, _ = pair
    clock = PrimaryClock(parse_database_url(primary.url + "mysql"), 5)
    try:
        first = clock.position()
        server_sql(primary, f"KILL CONNECTION {clock._conn.thread_id()}")
        assert clock.position() == first  # answered on a fresh connection, nothing written meanwhile
    finally:
        clock.close()
    nowhere = PrimaryClock(parse_database_url(f"mysql://root:@127.0.0.1:{free_port()}/mysql"), 5)
    with pytest.raises(DatabaseError, match="cannot reach the MySQL server"):
        nowhere.position()
