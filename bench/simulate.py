"""A million photos by simulation (issue 38): the rows of a built SQLite index (bench/scale.py's
100,000) cloned with new ids until the collection holds N images, written straight into a copy
of the database, then measured on the query side as bench/scale.py measures a built index.

What a clone is: one stored image other than the SMVS covers (the right answers stay unique),
under a new id and path, with
  - every global vector (features) multiplied by exp(0.5 g), g standard normal per dimension,
    brought back to the original's norm: a cosine of about 0.9 to its source, about what two
    crops of one photo have; the DBA-augmented vector gets the same noise;
  - its visual words renamed by a permutation of the words within groups of 16 words of
    about the same share: each word's posting list grows as it would with N, and a clone
    shares few words with its source;
  - its k-NN list copied, the neighbours moved into its clone where they are clones too;
and the vocabulary's count of images set to N, as a build from scratch at N leaves it (the
words stage sizes its postings budget by it).
Local features (keypoints and descriptors) are not cloned: at 48 KiB an image they would
need 43 GB, and a query reads only its shortlist's rows by primary key, a read that grows
with the depth of the B-tree (one more level per ~100x rows), not with N.

Then, as a client: the service's load time, resident bytes and RSS, upload p50 / p90 with
their stages and R@1 of the dev phone photos, a name query's p50, and the graph's upkeep
when GROW more images arrive (their vectors written, then the incremental graph update a
build runs, timed; those images stay in the simulated index).

    python bench/simulate.py ../shared/data ~/.cache/imgsearch-bench/scale --source 100000 --n 1000000
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
from scale import corel_sample, report_served, served

NOISE = 0.5
# the service's budget for its resident copies, which it counts twice (room to compact):
# 24 GiB holds cnn-spoc and its augmented copy at a million (9,781 MiB held, measured)
RESIDENT_BUDGET = 24 * 2**30
WORD_GROUP = 16
SEED = 38


def copy_index(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(source, target)


def word_order(con: sqlite3.Connection, extractor: int) -> np.ndarray:
    """The extractor's words that have postings, from the rarest to the most frequent (by
    images holding them); numbered as visual_words numbers them (from the vocabulary's base)."""
    rows = con.execute("SELECT word, COUNT(*) FROM visual_words WHERE extractor_id = ? GROUP BY word",
                       (extractor,)).fetchall()
    words = np.array([word for word, _ in rows], np.int64)
    return words[np.argsort(np.array([images for _, images in rows]), kind="stable")]


def renamed_words(order: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(word, its new name): a permutation of the words within groups of WORD_GROUP words of
    about the same share."""
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(order), WORD_GROUP):
        group = order[start : start + WORD_GROUP]
        pairs += zip(group.tolist(), rng.permutation(group).tolist())
    return pairs


def clone(con: sqlite3.Connection, shift: int, cloned: np.ndarray, orders: dict[int, np.ndarray],
          rng: np.random.Generator, arriving: bool = False) -> None:
    """Clone the images of the temporary table `sources` under ids + shift, in one
    transaction. An arriving clone is what a build has just written (its image and
    extracted vectors): no words, no k-NN list, no augmented vector yet."""
    with con:
        con.execute(f"INSERT INTO images (id, path, name, bytes, mtime_ns, sha256, width, height) "
                    f"SELECT id + ?, CAST('simulated/{shift}/' || path AS BLOB), name, bytes, mtime_ns, "
                    f"sha256 || '-{shift}', width, height FROM images WHERE id IN (SELECT id FROM sources)", (shift,))
        derived = {int(e) for (e,) in con.execute("SELECT id FROM extractors WHERE name LIKE '%.dba%'")}
        current, g = -1, np.empty(0, np.float32)  # one noise an image: rows come by image
        rows = con.execute("SELECT extractor_id, image_id, vec FROM features "
                           "WHERE image_id IN (SELECT id FROM sources) ORDER BY image_id")
        while batch := rows.fetchmany(20_000):
            written = []
            for extractor, image, vec in batch:
                if arriving and extractor in derived:
                    continue
                v = np.frombuffer(vec, "<f4")
                if image != current:
                    current, g = image, rng.standard_normal(1280).astype(np.float32) * NOISE
                w = v * np.exp(g[: len(v)])
                norm = np.linalg.norm(w)
                written.append((extractor, image + shift,
                                (w * (np.linalg.norm(v) / norm if norm else 1)).astype("<f4").tobytes()))
            con.executemany("INSERT INTO features (extractor_id, image_id, vec, packed_block) "
                            "VALUES (?, ?, ?, NULL)", written)
        if arriving:
            return
        for extractor, order in orders.items():
            con.execute("DELETE FROM renamed")
            con.executemany("INSERT INTO renamed (old, new) VALUES (?, ?)", renamed_words(order, rng))
            con.execute("INSERT INTO visual_words (extractor_id, word, image_id, n, tf) "
                        "SELECT v.extractor_id, r.new, v.image_id + ?, v.n, v.tf FROM visual_words v "
                        "JOIN renamed r ON r.old = v.word WHERE v.extractor_id = ? "
                        "AND v.image_id IN (SELECT id FROM sources) ORDER BY r.new, v.image_id", (shift, extractor))
            con.execute("INSERT INTO word_images (extractor_id, image_id) SELECT extractor_id, image_id + ? "
                        "FROM word_images WHERE extractor_id = ? AND image_id IN (SELECT id FROM sources)",
                        (shift, extractor))
        nodes = con.execute("SELECT graph_id, image_id, n, kth, neighbours, scores FROM graph_nodes "
                            "WHERE image_id IN (SELECT id FROM sources)")
        while batch := nodes.fetchmany(20_000):
            moved = []
            for graph, image, n, kth, neighbours, scores in batch:
                ids = np.frombuffer(neighbours, "<i8").copy()
                ids[np.isin(ids, cloned)] += shift
                moved.append((graph, image + shift, n, kth, ids.astype("<i8").tobytes(), scores))
            con.executemany("INSERT INTO graph_nodes (graph_id, image_id, n, kth, neighbours, scores) "
                            "VALUES (?, ?, ?, ?, ?, ?)", moved)


def sources_table(con: sqlite3.Connection, images: list[int]) -> None:
    con.execute("CREATE TEMPORARY TABLE IF NOT EXISTS sources (id INTEGER PRIMARY KEY)")
    con.execute("CREATE TEMPORARY TABLE IF NOT EXISTS renamed (old INTEGER PRIMARY KEY, new INTEGER)")
    with con:
        con.execute("DELETE FROM sources")
        con.executemany("INSERT INTO sources (id) VALUES (?)", [(i,) for i in images])


def grow(con: sqlite3.Connection, images: list[int], stride: int, n: int, rng: np.random.Generator) -> None:
    """Clone copies 1, 2, ... of the images (the last one partial) until the collection holds n."""
    words = [int(e) for (e,) in con.execute("SELECT DISTINCT extractor_id FROM word_images")]
    orders = {e: word_order(con, e) for e in words}
    cloned = np.array(sorted(images), np.int64)
    have = int(con.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    copy = 1
    while have < n:
        batch = images[: min(len(images), n - have)]
        sources_table(con, batch)
        started = time.perf_counter()
        clone(con, copy * stride, cloned, orders, rng)
        have += len(batch)
        print(f"{have:,} images ({time.perf_counter() - started:.0f} s for {len(batch):,})", flush=True)
        copy += 1


def simulated(workdir: Path, source_n: int, n: int) -> Path:
    """WORKDIR/index-N-simulated.sqlite3, made from WORKDIR/index-SOURCE.sqlite3 once."""
    target = workdir / f"index-{n}-simulated.sqlite3"
    if target.exists():
        return target
    partial = target.with_suffix(".partial")
    copy_index(workdir / f"index-{source_n}.sqlite3", partial)
    con = sqlite3.connect(partial)
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -2000000")
    max_id = int(con.execute("SELECT MAX(id) FROM images").fetchone()[0])
    stride = 10 ** math.ceil(math.log10(max_id + 1))
    images = [int(i) for (i,) in con.execute("SELECT id FROM images WHERE path NOT LIKE 'covers/%' ORDER BY id")]
    grow(con, images, stride, n, np.random.default_rng(SEED))
    with con:  # as a build from scratch leaves it: the words stage sizes its budget by this count
        con.execute("UPDATE visual_vocabularies SET trained_images = (SELECT COUNT(*) FROM images)")
    con.close()
    partial.rename(target)
    return target


def pack_all(db: str) -> float:
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    started = time.perf_counter()
    with open_store(parse_database_url(db)) as store:
        for extractor in store.extractors():
            store.pack(extractor)
    return time.perf_counter() - started


def graph_upkeep(path: Path, share: float) -> dict:
    """share x N more images arrive (clones of the first sources, their vectors only), then
    the incremental graph update a build runs after writing them, timed."""
    from imgsearch.config import Settings
    from imgsearch.index.graph import update_graphs
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    con = sqlite3.connect(path)
    have = int(con.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    top = int(con.execute("SELECT MAX(id) FROM images").fetchone()[0])
    stride = 10 ** math.ceil(math.log10(int(con.execute("SELECT MAX(id) FROM images WHERE path NOT LIKE "
                                                       "'simulated/%'").fetchone()[0]) + 1))
    images = [int(i) for (i,) in con.execute("SELECT id FROM images WHERE path NOT LIKE 'covers/%' AND id < ? "
                                              "ORDER BY id LIMIT ?", (stride, round(have * share)))]
    sources_table(con, images)
    clone(con, (top // stride + 1) * stride, np.empty(0, np.int64), {}, np.random.default_rng(SEED + 1), arriving=True)
    con.close()
    settings = Settings()
    with open_store(parse_database_url(f"sqlite:///{path}")) as store:
        extractor = store.find_extractor(settings.default_graph[0])
        store.pack(extractor)
        started = time.perf_counter()
        lines = update_graphs(store, extractor, settings.block_rows, settings.pack_rows, progress=False)
        seconds = time.perf_counter() - started
    return {"collection": have, "arriving": len(images), "seconds": seconds, "summary": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--source", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--grow", type=float, default=0.01)
    args = parser.parse_args()
    path = simulated(args.workdir, args.source, args.n)
    db = f"sqlite:///{path}"
    print(f"packing: {pack_all(db):.0f} s")
    # the default upload's scans read cnn-spoc and its augmented copy: those held (the colour
    # histograms, 2.3 KiB an image, are not)
    found = served(db, args.data, args.phones.split(","), corel_sample(args.data), ("cnn-spoc",), RESIDENT_BUDGET)
    print(f"== {args.n:,} images, simulated")
    report_served(found)
    upkeep = graph_upkeep(path, args.grow)
    print(f"graph upkeep: {upkeep['arriving']:,} images arriving in {upkeep['collection']:,}: "
          f"{upkeep['seconds']:.0f} s; " + "; ".join(upkeep["summary"]))
    kept = args.workdir / f"simulated-{args.n}.json"
    kept.write_text(json.dumps({"n": args.n, "served": found, "graph_upkeep": upkeep}))


if __name__ == "__main__":
    main()
