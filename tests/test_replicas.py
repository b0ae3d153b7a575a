"""Reading from a replica: a real primary and replica (two mariadbd, binlog replication by
GTID on loopback). A query on the replica answers what the primary has committed, or
fails: never a stale answer presented as current."""
import pymysql
import pytest
from cli_runner import imgsearch
from mysql_server import HOW_TO_GET_ONE, replicated_pair, server_binary
from photos import write_collection
from test_cli_errors import assert_clean_failure


@pytest.fixture(scope="module")
def pair():
    binary = server_binary()
    if binary is None:
        pytest.fail(f"the replica tests start a primary and a replica of their own. {HOW_TO_GET_ONE}", pytrace=False)
    with replicated_pair(binary) as servers:
        yield servers


def replica_sql(replica, statement: str) -> None:
    conn = pymysql.connect(host="127.0.0.1", port=replica.port, user="root", password="", autocommit=True)
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
    replica_sql(replica, "STOP SLAVE SQL_THREAD")
    try:
        write_collection(folder / "more")
        assert imgsearch("build", folder, "--db", primary_db, "-e", "rgb").code == 0
        stale = imgsearch("query", "b/coffee.jpg", "--db", primary_db, "--replica", replica_db, "-e", "rgb", "--json",
                          env={"IMGSEARCH_REPLICA_WAIT": "2"})
        assert_clean_failure(stale, "did not apply the primary's state", "within 2 s")
    finally:
        replica_sql(replica, "START SLAVE SQL_THREAD")
    on_primary = results(imgsearch("query", "b/coffee.jpg", "--db", primary_db, "-e", "rgb", "-k", "20", "--json"))
    assert len(on_primary) == 17
    configured = tmp_path / "config.ini"
    configured.write_text(f"[database]\nurl = {primary_db}\nreplicas = {replica_db}\nreplica_wait = 30\n")
    assert results(imgsearch("query", "b/coffee.jpg", "--config", configured, "-e", "rgb", "-k", "20", "--json")) == \
        on_primary
