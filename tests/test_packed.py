"""Packed blocks + tail + stale list must always equal the per-row table, whatever
sequence of adds, updates, deletes and packs came before (property-based)."""
import itertools
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mysql_server import fresh_database
from synthetic import delete_images, record

from imgsearch.plan import SearchPlan
from imgsearch.scan.kernel import scan
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.packed import Snapshot
from imgsearch.store.url import parse_database_url

DIM = 4

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 6)),
        st.tuples(st.just("update"), st.integers(0, 50)),
        st.tuples(st.just("replace"), st.integers(0, 50)),  # content changed: old vectors dropped first
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("pack"), st.integers(1, 5)),
    ),
    min_size=1,
    max_size=25,
)


def contents(store, extractor, **kwargs) -> dict[int, tuple]:
    found = {}
    for ids, vectors in store.stream_blocks(extractor, 3, **kwargs):
        for i, v in zip(ids.tolist(), vectors.tolist()):
            assert i not in found, f"image {i} streamed twice"
            found[i] = tuple(v)
    return found


def apply(store, extractor, ops, rng) -> None:
    names = itertools.count()
    for op, arg in ops:
        before = store.changes(extractor)
        content_before = contents(store, extractor, packed=False)
        blocks_before = store.packed_counts(extractor)
        paths = sorted(store.stored_images())
        if op == "add":
            store.write_batch([(record(f"{uuid.uuid4().hex}-{next(names)}.jpg"), {extractor.id: rng.random(DIM)})
                               for _ in range(arg)])
        elif op in ("update", "replace") and paths:
            image = store.stored_images()[paths[arg % len(paths)]]
            replaced = [image.id] if op == "replace" else []
            store.write_batch([(record(image.path.decode()), {extractor.id: rng.random(DIM)})], replaced_ids=replaced)
        elif op == "delete" and paths:
            delete_images(store, [store.stored_images()[paths[arg % len(paths)]].id])
        elif op == "pack":
            store.pack(extractor, pack_rows=arg)
        check_packed_equals_rows(store, extractor)
        # The change counter moves with every write that changes what a scan sees, and
        # only then (a pack that found nothing to do leaves it).
        moved = store.changes(extractor) != before
        changed = (contents(store, extractor, packed=False) != content_before
                   or store.packed_counts(extractor) != blocks_before)
        assert moved or not changed, (op, arg)
        assert store.changes(extractor) >= before


def check_packed_equals_rows(store, extractor) -> None:
    snapshot = Snapshot()
    truth = contents(store, extractor, packed=False, snapshot=snapshot)
    assert snapshot.changes == store.changes(extractor)
    assert contents(store, extractor) == truth
    for parts in (2, 3):
        union: dict = {}
        for part in range(parts):
            piece = contents(store, extractor, part=part, parts=parts)
            assert not set(piece) & set(union)
            union.update(piece)
        assert union == truth
    if truth:
        q = np.arange(DIM, dtype=np.float32) + 1
        metric = get_metric("cosine")
        packed = scan(store.stream_blocks(extractor, 2), q, metric, 5).ranking
        per_row = scan(store.stream_blocks(extractor, 2, packed=False), q, metric, 5).ranking
        assert [i for i, _ in packed] == [i for i, _ in per_row]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, seed=st.integers(0, 2**16))
def test_packed_scan_equals_per_row_scan_sqlite(tmp_path_factory, ops, seed) -> None:
    path = tmp_path_factory.mktemp("packed") / "p.sqlite3"
    with open_store(parse_database_url(f"sqlite:///{path}"), create=True) as store:
        extractor = store.register_extractor("synthetic", "{}", DIM)
        apply(store, extractor, ops, np.random.default_rng(seed))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, seed=st.integers(0, 2**16))
def test_packed_scan_equals_per_row_scan_mysql(mysql_base_url, ops, seed) -> None:
    with fresh_database(mysql_base_url, "imgsearch_h") as url, \
            open_store(parse_database_url(url), create=True) as store:
        extractor = store.register_extractor("synthetic", "{}", DIM)
        apply(store, extractor, ops, np.random.default_rng(seed))


PACK_SCRIPT = """
import sys
import imgsearch.store.packed as packing
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url
# Steps of 20 vectors: PACK_STEP_BYTES would pack these 4-d vectors in one transaction, and a
# kill after its commit would prove nothing.
packing.PACK_STEP_BYTES = 20 * 4 * 4
with open_store(parse_database_url(sys.argv[1])) as store:
    extractor = store.find_extractor(sys.argv[2])
    print("start", flush=True)
    store.pack(extractor, pack_rows=int(sys.argv[3]))
"""


def unpacked_rows(db_url: str, extractor_name: str) -> int:
    with open_store(parse_database_url(db_url)) as store:
        return store.packed_counts(store.find_extractor(extractor_name))[1]


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6, 0.9])
def test_a_killed_pack_leaves_exact_results(db_url, fraction) -> None:
    rng = np.random.default_rng(int(fraction * 10))
    with open_store(parse_database_url(db_url), create=True) as store:
        synthetic = store.register_extractor("synthetic", "{}", DIM)
        store.write_batch([(record(f"{i}.jpg"), {synthetic.id: rng.random(DIM)}) for i in range(4000)])
        store.pack(synthetic, pack_rows=50)
        images = list(store.stored_images().values())
        delete_images(store, [img.id for img in images[::7]])
        store.write_batch([(record(f"new{i}.jpg"), {synthetic.id: rng.random(DIM)}) for i in range(3000)])
        store.write_batch([(record(img.path.decode()), {synthetic.id: rng.random(DIM)}) for img in images[1::5]])
        truth = contents(store, synthetic, packed=False)
        tail = store.packed_counts(synthetic)[1]
    # Tiny blocks and steps make the pack thousands of statements in many committed steps;
    # the kill comes once a given share of the tail is packed, as seen from another connection.
    block_rows = "1" if db_url.startswith("sqlite") else "5"
    child = subprocess.Popen([sys.executable, "-c", PACK_SCRIPT, db_url, "synthetic", block_rows],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "start"
    while child.poll() is None and tail - unpacked_rows(db_url, "synthetic") < fraction * tail:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the pack ended before the kill: the test would prove nothing"
    with open_store(parse_database_url(db_url)) as store:
        synthetic = store.find_extractor("synthetic")
        assert contents(store, synthetic) == truth
        store.pack(synthetic, pack_rows=50)  # a rerun finishes the job
        assert contents(store, synthetic) == truth
        assert store.packed_counts(synthetic)[1:] == (0, 0)


def test_an_index_from_before_packing_is_upgraded_by_build(tmp_path) -> None:
    import sqlite3

    from cli_runner import imgsearch
    from photos import write_collection

    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "rocket.jpg"))
    db = tmp_path / "old.sqlite3"
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    with sqlite3.connect(db) as conn:  # turn it back into the layout of the first release
        conn.executescript(
            "DROP TABLE packed_blocks; DROP TABLE packed_stale; DROP INDEX ix_features_tail;"
            "CREATE TABLE f2 (extractor_id INTEGER NOT NULL, image_id INTEGER NOT NULL, vec BLOB NOT NULL,"
            " PRIMARY KEY (extractor_id, image_id)) WITHOUT ROWID;"
            "INSERT INTO f2 SELECT extractor_id, image_id, vec FROM features; DROP TABLE features;"
            "ALTER TABLE f2 RENAME TO features;"
        )
    run = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb")
    assert run.code != 0 and "older imgsearch" in run.err
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    run = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "--json")
    assert run.code == 0, run.err
    assert [r["name"] for r in run.json()["results"]] == ["rocket.jpg"]


@pytest.mark.parametrize("parallel", [2, 3])
def test_parallel_query_equals_the_single_connection_one(db_url, parallel) -> None:
    from imgsearch.features.color import RgbHistogram
    from imgsearch.query import run_query

    rng = np.random.default_rng(parallel)
    with open_store(parse_database_url(db_url), create=True) as store:
        row = store.register_extractor("rgb", RgbHistogram().params_json(), 512)
        store.write_batch([(record(f"{i}.jpg"), {row.id: rng.random(512)}) for i in range(300)])
        store.pack(row, pack_rows=16)
        store.write_batch([(record(f"tail{i}.jpg"), {row.id: rng.random(512)}) for i in range(40)])
        delete_images(store, [img.id for img in list(store.stored_images().values())[::9]])
        single = run_query(store, "tail3.jpg", SearchPlan.of("rgb", "cosine", k=25, block_rows=7))
        split = run_query(store, "tail3.jpg", SearchPlan.of("rgb", "cosine", k=25, block_rows=7, parallel=parallel))
    assert [m.path for m in split.matches] == [m.path for m in single.matches]
    np.testing.assert_allclose([m.score for m in split.matches], [m.score for m in single.matches], atol=1e-6)


def handler_reads(store) -> int:
    with store.conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%%'")
        return sum(int(v) for _, v in cur.fetchall())


def test_a_batch_write_reads_rows_by_key_not_the_whole_table(mysql_url) -> None:
    """The rows a batch replaces are found by key. As INSERT ... SELECT the server scanned
    every row of the extractor per batch (the optimizer misled by the sampled statistics of
    the two-valued extractor_id): 41,384 rows read here for 256 new images, and a million-
    image build became quadratic. Rows read are counted, not timed."""
    with open_store(parse_database_url(mysql_url), create=True) as store:
        a, b = store.register_extractor("a", "{}", 4), store.register_extractor("b", "{}", 4)
        rng = np.random.default_rng(0)

        def batch(start: int) -> list:
            return [(record(f"{i}.jpg"),
                     {a.id: rng.random(4), b.id: rng.random(4)}) for i in range(start, start + 256)]

        for start in range(0, 20_480, 256):
            store.write_batch(batch(start))
        before = handler_reads(store)
        store.write_batch(batch(20_480))
        assert handler_reads(store) - before < 5_000
        before = handler_reads(store)
        store.write_batch(batch(0), replaced_ids=range(1, 257))
        assert handler_reads(store) - before < 5_000
