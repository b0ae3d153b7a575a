"""The scan is exactly a per-row scan of one committed state, under every interleaving the
store allows: parallel parts around a commit, packs of wide vectors on a server with its
default packet limit, and graph updates racing each other."""
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
from cli_runner import imgsearch
from photos import write_collection
from synthetic import delete_images, record
from test_graph import check_exact_up_to_ties

from imgsearch.scan.kernel import scan
from imgsearch.scan.metrics import get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.store import open_store
from imgsearch.store.packed import Snapshot
from imgsearch.store.url import parse_database_url

DIM = 8


def commit_between_parts(store, commit, every_time: bool = False):
    """The store's own class, instrumented: at each parallel attempt part 0 takes its
    snapshot, then `commit()` runs (at the first attempt, or at every one), and only then
    do that attempt's other parts take theirs."""
    base = type(store)
    committed_at: list[threading.Event] = []  # one per attempt, set once part 0 has committed
    lock = threading.Lock()

    def attempt_event(n: int) -> threading.Event:
        with lock:
            while len(committed_at) <= n:
                committed_at.append(threading.Event())
            return committed_at[n]

    class Interleaved(base):
        committed = False
        attempts = {0: 0, 1: 0}

        def stream_blocks(self, extractor, block_rows, packed=True, part=0, parts=1, snapshot=None):
            if parts == 1:
                yield from base.stream_blocks(self, extractor, block_rows, packed, part, parts, snapshot)
                return
            n = Interleaved.attempts.get(part, 0)
            Interleaved.attempts[part] = n + 1
            if part > 0:
                attempt_event(n).wait(30)
            first = True
            for block in base.stream_blocks(self, extractor, block_rows, packed, part, parts, snapshot):
                yield block
                if first and part == 0:
                    first = False
                    if every_time or not Interleaved.committed:
                        Interleaved.committed = True
                        commit()
                    attempt_event(n).set()
            if part == 0:
                attempt_event(n).set()

    store.__class__ = Interleaved
    return store


def test_parallel_scan_repeats_when_a_batch_commits_between_its_parts(db_url) -> None:
    """Image 'target' sits in a packed block of part 1; a batch re-extracting it commits
    after part 0's snapshot and before part 1's. Part 0 never sees the new vector (it read
    the tail before), part 1 drops the old one as stale: without the change counter the
    image vanishes from the ranking."""
    rng = np.random.default_rng(3)
    url = parse_database_url(db_url)
    with open_store(url, create=True) as store:
        row = store.register_extractor("synthetic", "{}", DIM)
        store.write_batch([(record(f"{i}.jpg"), {row.id: rng.random(DIM)}) for i in range(40)])
        store.pack(row, pack_rows=4)  # 10 blocks: even ones in part 0, odd ones in part 1
        ids = {img.path: img.id for img in store.stored_images().values()}
        blocks = {int(b): np.frombuffer(bytes(i), np.int64).tolist()
                  for b, i in store.execute("SELECT block_no, ids FROM packed_blocks")}
        target = next(i for i in blocks[1])
        target_name = next(p for p, i in ids.items() if i == target)
        store.write_batch([(record("tail.jpg"), {row.id: rng.random(DIM)})])  # part 0 has a tail to read first
        new_vector = -np.ones(DIM)  # far from every random vector: it ranks first for itself only

        def reextract() -> None:
            with open_store(url) as writer:
                writer.write_batch([(record(target_name.decode()), {row.id: new_vector})], replaced_ids=[target])

        store = commit_between_parts(store, reextract)
        before = store.changes(row)
        result = StoreScan(store, block_rows=3, parallel=2).top_k(row, get_metric("cosine"), new_vector, 5)
        assert type(store).committed, "the instrumented commit did not run"
        assert result.ranking[0][0] == target, result.ranking
        assert result.state == store.changes(row) == before + 1
        per_row = scan(store.stream_blocks(row, 3, packed=False), new_vector, get_metric("cosine"), 5)
        assert [i for i, _ in result.ranking] == [i for i, _ in per_row.ranking]
        np.testing.assert_allclose([s for _, s in result.ranking], [s for _, s in per_row.ranking], atol=1e-6)


def test_parts_that_never_agree_fall_back_to_one_whole_snapshot(db_url) -> None:
    """A batch commits between the parts at every attempt: after the last attempt one
    connection scans everything (not only part 0) in one snapshot."""
    rng = np.random.default_rng(9)
    url = parse_database_url(db_url)
    with open_store(url, create=True) as store:
        row = store.register_extractor("synthetic", "{}", DIM)
        store.write_batch([(record(f"{i}.jpg"), {row.id: rng.random(DIM)}) for i in range(60)])
        store.pack(row, pack_rows=4)
        added = iter(range(1000, 2000))

        def add_one() -> None:
            with open_store(url) as writer:
                writer.write_batch([(record(f"{next(added)}.jpg"), {row.id: rng.random(DIM)})])

        store = commit_between_parts(store, add_one, every_time=True)
        query = rng.random(DIM)
        result = StoreScan(store, block_rows=3, parallel=3).top_k(row, get_metric("cosine"), query, 10)
        per_row = scan(store.stream_blocks(row, 3, packed=False), query, get_metric("cosine"), 10)
        assert result.rows_scanned == per_row.rows_scanned == 60 + 5  # five attempts, five commits
        assert [i for i, _ in result.ranking] == [i for i, _ in per_row.ranking]


def test_every_write_that_changes_a_scan_moves_the_counter_and_nothing_else_does(db_url) -> None:
    rng = np.random.default_rng(4)
    with open_store(parse_database_url(db_url), create=True) as store:
        row = store.register_extractor("synthetic", "{}", DIM)
        other = store.register_extractor("other", "{}", DIM)
        seen = []

        def state(snapshot_of=row) -> int:
            snapshot = Snapshot()
            list(store.stream_blocks(snapshot_of, 4, snapshot=snapshot))
            assert snapshot.changes == store.changes(snapshot_of)
            return snapshot.changes

        seen.append(state())
        store.write_batch([(record(f"{i}.jpg"), {row.id: rng.random(DIM)}) for i in range(10)])
        seen.append(state())
        store.pack(row, pack_rows=4)
        seen.append(state())
        store.pack(row, pack_rows=4)  # nothing to pack: nothing changes
        seen.append(state())
        image = store.stored_images()[b"3.jpg"]
        store.write_batch([(record("3.jpg"), {row.id: rng.random(DIM)})], replaced_ids=[image.id])
        seen.append(state())
        store.write_batch([(record("x.jpg"), {other.id: rng.random(DIM)})])  # another extractor only
        seen.append(state())
        delete_images(store, [store.stored_images()[b"5.jpg"].id])
        seen.append(state())
        assert seen == [0, 1, 2, 2, 3, 3, 4]
        assert state(other) == 1


def test_a_10240_d_extractor_packs_on_a_server_with_default_max_allowed_packet(mysql_url) -> None:
    """One block of 1,024 x 10,240-d vectors is 40 MiB, over MariaDB's default 16 MiB
    packet: blocks are sized in bytes instead, and the packed scan stays exact."""
    dim, n = 10_240, 2_100
    rng = np.random.default_rng(5)
    with open_store(parse_database_url(mysql_url), create=True) as store:
        packet = int(store.execute("SELECT @@max_allowed_packet")[0][0])
        assert packet <= 16 * 2**20, "the test wants a server with MariaDB's default max_allowed_packet"
        row = store.register_extractor("wide", "{}", dim)
        for start in range(0, n, 150):
            store.write_batch([(record(f"{i}.jpg"), {row.id: rng.random(dim, dtype=np.float32)})
                               for i in range(start, min(start + 150, n))])
        report = store.pack(row)
        assert report.vectors_moved == n
        sizes = [int(s) for (s,) in store.execute("SELECT LENGTH(vecs) FROM packed_blocks")]
        assert max(sizes) <= packet // 3 and sum(sizes) == n * dim * 4
        query = rng.random(dim, dtype=np.float32)
        metric = get_metric("pearson")
        packed = scan(store.stream_blocks(row, 64), query, metric, 10)
        per_row = scan(store.stream_blocks(row, 64, packed=False), query, metric, 10)
        assert [i for i, _ in packed.ranking] == [i for i, _ in per_row.ranking] and packed.rows_scanned == n
        delete_images(store, [store.stored_images()[b"7.jpg"].id])  # a stale entry: the block is rewritten
        assert store.pack(row).blocks_removed == 1
        assert scan(store.stream_blocks(row, 64), query, metric, 10).rows_scanned == n - 1


@pytest.fixture
def built(tmp_path, db_url):
    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb").code == 0
    return folder, db_url


def graph_line(db: str) -> str:
    return next(line for line in imgsearch("stats", "--db", db).out.splitlines() if line.startswith("graph "))


def test_graph_rerun_keeps_its_parameters_and_a_change_says_it_rebuilds(built) -> None:
    _, db = built
    assert imgsearch("graph", "--db", db, "-e", "rgb", "-m", "cosine", "-n", "5", "--dba", "2").code == 0
    assert "5 neighbours per image, augmented vectors over 2 nearest" in graph_line(db)
    run = imgsearch("graph", "--db", db, "-e", "rgb", "-m", "cosine")
    assert run.code == 0 and "rebuilding" not in run.out
    assert "5 neighbours per image, augmented vectors over 2 nearest" in graph_line(db)
    assert "rgb.cosine.dba2" in imgsearch("stats", "--db", db).out
    run = imgsearch("graph", "--db", db, "-e", "rgb", "-m", "cosine", "-n", "6")
    assert "rebuilding the rgb/cosine graph: neighbours 5 -> 6, dba 2 -> 2" in run.out
    assert "6 neighbours per image" in graph_line(db)


def test_a_graph_update_waits_for_the_one_holding_the_lock(built) -> None:
    _, db = built
    with open_store(parse_database_url(db)) as holder:
        with holder.named_lock("graph"):
            process = subprocess.Popen([sys.executable, "-m", "imgsearch", "graph", "--db", db, "-e", "rgb", "-m",
                                        "cosine", "-n", "3"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = process.stderr.readline()
            assert "waiting for another graph update" in line
            time.sleep(0.5)
            assert process.poll() is None, "it went on while the lock was held"
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "3 neighbours per image" in graph_line(db)


def test_build_and_graph_at_once_leave_the_exact_graph(tmp_path, db_url) -> None:
    """A build's graph update and an `imgsearch graph` race; the lists must equal the
    brute-force graph of what was finally stored (the collection twice over: up to ties)."""
    from imgsearch.store.graph_tables import find_graph

    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb").code == 0
    assert imgsearch("graph", "--db", db_url, "-e", "rgb", "-m", "cosine", "-n", "3").code == 0
    write_collection(folder / "more")
    runs = [subprocess.Popen([sys.executable, "-m", "imgsearch", *args, "--db", db_url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for args in (["build", str(folder), "-e", "rgb"],
                                                                  ["graph", "-e", "rgb", "-m", "cosine"])]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert imgsearch("graph", "--db", db_url, "-e", "rgb", "-m", "cosine").code == 0
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("rgb")
        graph = find_graph(store, row, "cosine")
        check_exact_up_to_ties(store, row, graph, get_metric("cosine"))
        assert len(store.image_ids_with_features(row)) == 18


def test_the_change_counter_lives_in_meta_and_is_plain_sql(mysql_url) -> None:
    with open_store(parse_database_url(mysql_url), create=True) as store:
        row = store.register_extractor(f"s{uuid.uuid4().hex[:6]}", "{}", DIM)
        store.write_batch([(record("a.jpg"), {row.id: np.ones(DIM)})])
        assert store.execute("SELECT v FROM meta WHERE k = ?", (f"changes:{row.id}",)) == [("1",)]
