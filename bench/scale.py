"""The default pipeline at the sizes users have (issue 38): a collection of N photos (the 100
SMVS dev covers, Corel-1k, flowers102, and bench/distractors.py's images up to N), built with
`imgsearch build`'s defaults, then served as `imgsearch serve` serves it. Per N it prints:
  - build: images/s, and the share of its phases (walk and moves, extraction, packing, the
    k-NN graph, calibration, visual words);
  - database bytes an image, by table (SQLite: dbstat; MySQL: information_schema);
  - the service's resident bytes (vectors and augmented vectors) and its process' RSS;
  - upload p50 / p90 of the dev phone photos (uploaded as a client would, top 100) with the
    median of each stage, and their R@1 / R@10 per phone;
  - a name query's p50, and Corel-1k's class P@10 among the N (100 Corel photos by name; a
    distractor counts in the class of the Corel photo it was cut from).
The built index of each N is kept in WORKDIR (a cache folder outside the repository), and
what was measured as WORKDIR/measured-N-SCHEME.json: a later run only measures. Nothing of
this runs in CI.

    python bench/scale.py ../shared/data ~/.cache/imgsearch-bench/scale --sizes 10000,30000,100000 \\
        [--db mysql://root@127.0.0.1:3306/] [--phones Droid,Palm] [--grow]
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import time
from contextlib import closing
from pathlib import Path

import numpy as np
from distractors import parts_from, sources, write_distractors

from imgsearch.serve.config import ServeConfig

SETS = {"covers": "smvs_dvd_dev/Reference", "corel1k": "corel1k", "flowers102": "flowers102/jpg"}
SHARED = 9289  # the photos of SETS
TOP = 100


def collection(data: Path, workdir: Path, n: int) -> Path:
    """WORKDIR/collection-N: the sets linked, and N - 9,289 distractors (whole thousands as
    links to their folders, the rest as links to their files)."""
    folder = workdir / f"collection-{n}"
    distractors = workdir / "distractors"
    wanted = n - SHARED
    write_distractors(data, distractors, wanted)
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in SETS.items():
        if not (folder / name).exists():
            os.symlink((data / source).resolve(), folder / name)
    made = folder / "distractors"
    made.mkdir(exist_ok=True)
    for thousand in range(wanted // 1000):
        link = made / f"{thousand:04d}"
        if not link.exists():
            os.symlink(distractors / f"{thousand:04d}", link)
    rest = made / f"{wanted // 1000:04d}-part"
    rest.mkdir(exist_ok=True)
    for i in range(wanted // 1000 * 1000, wanted):
        link = rest / f"{i:07d}.jpg"
        if not link.exists():
            os.symlink(distractors / f"{i // 1000:04d}" / f"{i:07d}.jpg", link)
    return folder


def database(base: str | None, workdir: Path, n: int) -> str:
    return f"{base}imgsearch_scale_{n}" if base else f"sqlite:///{workdir / f'index-{n}.sqlite3'}"


def grown_from(smaller: str, db: str, folder: Path) -> None:
    """Start the index of `db` as a copy of the smaller one's, its collection folder this
    size's (a library that grew: the build then adds what is new, as a user's next build
    does; the smaller collection's files are all in the larger one). Only where `db` does
    not exist yet."""
    from copy_index import copy_index

    from imgsearch.store import index_exists, open_store
    from imgsearch.store.base import COLLECTION_ROOT_KEY
    from imgsearch.store.url import parse_database_url

    url = parse_database_url(db)
    if index_exists(url):
        return
    if url.scheme == "sqlite":  # pages copied whole: minutes faster than rows
        with closing(sqlite3.connect(parse_database_url(smaller).path)) as source, \
                closing(sqlite3.connect(url.path)) as copy:
            source.backup(copy)
    else:
        copy_index(smaller, db)
    with open_store(url) as store:
        store.set_meta(COLLECTION_ROOT_KEY, str(folder.resolve()))


def copied_from(sqlite: str, db: str, workdir: Path, n: int) -> None:
    """The MySQL index of `db` filled from the SQLite index of the same size (once); its
    build figures are the SQLite build's, marked as such."""
    from copy_index import copy_index

    from imgsearch.store import index_exists
    from imgsearch.store.url import parse_database_url

    kept = workdir / f"build-{n}-mysql.json"
    if index_exists(parse_database_url(db)) and kept.exists():
        return
    started = time.perf_counter()
    copy_index(sqlite, db)
    built = json.loads((workdir / f"build-{n}-sqlite.json").read_text())
    kept.write_text(json.dumps({**built, "copied_from": "sqlite", "copy_seconds": time.perf_counter() - started}))


def build_once(folder: Path, db: str, workdir: Path, n: int) -> dict:
    """Build the index (a no-change build where it was built before); the first build's
    figures are kept beside it."""
    from imgsearch.config import Settings
    from imgsearch.index.build import build
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    kept = workdir / f"build-{n}-{parse_database_url(db).scheme}.json"
    settings = Settings()
    with open_store(parse_database_url(db), create=True) as store:
        started = time.perf_counter()
        report = build(store, str(folder), settings.build_extractors, os.cpu_count() or 1, settings.batch_size,
                       progress=True, default_graph=settings.default_graph)
        seconds = time.perf_counter() - started
    if report.indexed or not kept.exists():
        kept.write_text(json.dumps({"images": report.indexed, "seconds": seconds, "phases": report.phases,
                                    "summary": report.summary().splitlines()[0]}))
    return json.loads(kept.read_text())


def bytes_by_table(db: str) -> dict[str, int]:
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    url = parse_database_url(db)
    with open_store(url) as store:
        if store.dialect == "sqlite":
            rows = store.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            tables = {str(t) for t in store.existing_tables()}
            found: dict[str, int] = {}
            for name, size in rows:  # an index's pages count for its table
                owner = next((t for t in sorted(tables, key=len, reverse=True) if str(name).startswith(f"ix_{t}")
                              or str(name) == t or str(name).startswith(f"sqlite_autoindex_{t}_")), str(name))
                found[owner] = found.get(owner, 0) + int(size)
            return found
        for table in sorted(store.existing_tables()):  # InnoDB's sizes are statistics, updated lazily
            store.execute(f"ANALYZE TABLE {table}")
        rows = store.execute("SELECT table_name, data_length + index_length FROM information_schema.tables "
                             "WHERE table_schema = DATABASE()")
        return {str(t): int(s) for t, s in rows}


def served(db: str, data: Path, phones: list[str], corel: list[str], extractors: tuple[str, ...] = (),
           max_memory: int = ServeConfig.max_memory) -> dict:
    """The service over the index (`extractors` held resident, () every one, within
    max_memory bytes): resident bytes, RSS, the phone photos' uploads and the Corel photos'
    name queries."""
    from imgsearch.config import Settings
    from imgsearch.serve.service import Service
    from imgsearch.store.url import parse_database_url

    before, started = rss_kib(), time.perf_counter()
    service = Service(ServeConfig(parse_database_url(db), extractors, settings=Settings(), max_memory=max_memory))
    loaded = time.perf_counter() - started
    try:
        held = sum(index.state.nbytes for index in [*service.resident.values(), *service.augmented.values()]
                   if index is not None)
        rss = rss_kib()
        uploads, stages, ranks, lists = [], {}, {phone: [] for phone in phones}, {phone: [] for phone in phones}
        for phone in phones:
            for photo in sorted((data / "smvs_dvd_dev" / phone).glob("*.jpg")):
                upload = photo.read_bytes()
                started = time.perf_counter()
                answer = service.search_upload(upload, {"k": TOP})
                uploads.append(time.perf_counter() - started)
                for stage, seconds in answer.get("stages_s", {}).items():
                    stages.setdefault(stage, []).append(seconds)
                right = [r for r in answer["results"] if r["path"] == f"covers/{photo.name}"]
                ranks[phone].append(right[0]["rank"] if right else None)
                lists[phone].append(right[0].get("found_by", []) if right else [])
        names, precision, top10 = [], [], {}
        photos = sources(data)
        for path in corel:
            started = time.perf_counter()
            answer = service.search({"k": 10}, name=path)
            names.append(time.perf_counter() - started)
            top10[path] = [r["path"] for r in answer["results"]]
            precision.append(np.mean([in_class(path, p, data, photos) for p in top10[path]]))
    finally:
        service.close()
    return {"load_s": loaded, "resident_bytes": held, "rss_kib_before": before, "rss_kib": rss, "uploads": uploads,
            "stages": {s: statistics.median(v) for s, v in stages.items()}, "ranks": ranks, "found_by": lists,
            "names": names, "corel_top10": top10, "corel_p10": float(np.mean(precision)) if precision else None}


def in_class(query: str, path: str, data: Path, photos: list[Path]) -> bool:
    """Whether an answer to a Corel photo counts for its class: a Corel photo of the class, or
    a distractor cut from one (a window of a photo of horses shows horses) or holding a window
    of the query photo itself (a mosaic's small part: the same picture, found); a simulated
    image as the image it was cloned from (bench/simulate.py)."""
    path = path.split("/", 2)[2] if path.startswith("simulated/") else path
    if path.startswith("distractors/"):
        parts = [p.relative_to(data).as_posix() for p in parts_from(data, int(Path(path).stem), photos)]
        return parts[0].startswith(query.rsplit("/", 1)[0] + "/") or query in parts
    return path.startswith(query.rsplit("/", 1)[0] + "/")


def rss_kib() -> int:
    """This process' resident memory now (not its peak: the build ran in it before)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def report(n: int, db: str, built: dict, sizes: dict[str, int], found: dict) -> None:
    images = max(built["images"], 1)
    total = sum(sizes.values())
    print(f"\n== {n:,} images, {db.split(':')[0]}")
    if built.get("copied_from"):
        print(f"index copied from {built['copied_from']} in {built['copy_seconds']:.0f} s; that build's figures:")
    print(f"build: {built['images']:,} images in {built['seconds']:.0f} s = {images / built['seconds']:.1f} images/s; "
          + ", ".join(f"{phase} {seconds / built['seconds']:.0%}" for phase, seconds in built["phases"].items()))
    print(f"database: {total / n / 1024:.1f} KiB an image: " + ", ".join(
        f"{table} {size / n / 1024:.1f}" for table, size in sorted(sizes.items(), key=lambda x: -x[1]) if size > n))
    report_served(found)


def report_served(found: dict) -> None:
    print(f"service: loaded in {found.get('load_s', float('nan')):.1f} s; resident vectors "
          f"{found['resident_bytes'] / 2**20:.0f} MiB; the process grew "
          f"{(found['rss_kib'] - found['rss_kib_before']) / 1024:.0f} MiB when it started "
          f"(to {found['rss_kib'] / 1024:.0f} MiB)")
    print(f"upload: p50 {percentile(found['uploads'], 50):.0f} ms, p90 {percentile(found['uploads'], 90):.0f} ms; "
          "stages " + ", ".join(f"{s} {v * 1000:.0f}" for s, v in found["stages"].items()))
    found_by = found.get("found_by", {})
    for phone, ranks in found["ranks"].items():
        r1 = np.mean([r == 1 for r in ranks])
        r10 = np.mean([r is not None and r <= 10 for r in ranks])
        lists = found_by.get(phone) or [[]] * len(ranks)
        print(f"{phone}: R@1 {r1:.3f}, R@10 {r10:.3f} ({len(ranks)} photos); the right cover shortlisted by "
              + ", ".join(f"{stage} {np.mean([stage in f for f in lists]):.3f}" for stage in ("photo", "regions", "words"))
              + f", by none {np.mean([not f for f in lists]):.3f}")
    if found["names"]:
        print(f"name query: p50 {percentile(found['names'], 50):.0f} ms; Corel-1k class P@10 {found['corel_p10']:.3f}")


def corel_sample(data: Path) -> list[str]:
    """100 Corel-1k photos, the same on every run."""
    rng = np.random.default_rng(38)
    corel = sorted(f"corel1k/{p.parent.name}/{p.name}" for p in (data / "corel1k").rglob("*.jpg"))
    return [corel[i] for i in sorted(rng.choice(len(corel), 100, replace=False))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--db", help="a MySQL server URL ending in / (a database per size is made); default: SQLite")
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--copy-from-sqlite", action="store_true",
                        help="with --db: fill each size's MySQL index from the SQLite index of that size in "
                             "WORKDIR (bench/copy_index.py) instead of building it; its build figures are SQLite's")
    parser.add_argument("--grow", action="store_true",
                        help="start each size's index as a copy of the one before it (the build adds the rest)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    corel = corel_sample(args.data)
    smaller = None
    for n in (int(s) for s in args.sizes.split(",")):
        folder = collection(args.data, args.workdir, n)
        db = database(args.db, args.workdir, n)
        if args.copy_from_sqlite and args.db:
            copied_from(database(None, args.workdir, n), db, args.workdir, n)
        elif args.grow and smaller:
            grown_from(smaller, db, folder)
        smaller = db
        built = build_once(folder, db, args.workdir, n)
        sizes, found = bytes_by_table(db), served(db, args.data, args.phones.split(","), corel)
        report(n, db, built, sizes, found)
        kept = args.workdir / f"measured-{n}-{db.split(':')[0]}.json"  # what docs/scaling.md's curves are drawn from
        kept.write_text(json.dumps({"n": n, "built": built, "bytes_by_table": sizes, "served": found}))


if __name__ == "__main__":
    main()
