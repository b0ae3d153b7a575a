"""Real phone photos of known objects (issue 29's instrument): the Stanford Mobile Visual
Search DVD covers, photographed with phones, searched among thousands of other photos with
the defaults a user gets, through the service as a client uploads them.

    python bench/real_photos.py ../shared/data WORKDIR [--phones Droid,Palm] [--rerank NAME]

The collection is smvs_dvd_dev/Reference (the 100 covers), corel1k and flowers102 (9,289
images), linked into WORKDIR/collection and built once with `imgsearch build`'s defaults
into WORKDIR/index.sqlite3 (kept between runs). Each phone photo is uploaded to a Service
over that index (its resident vectors, the default re-ranking) asking for the top 100; the
right answer is the cover of the same file name. Prints per phone and overall R@1, R@10,
R@100, mAP (AP = 1 / the right cover's rank), the upload-to-answer time p50 and p90, and
how many images other than covers verified (chance: "chance"), where the misses go:
  - lost: the right cover is not among the 100 answered (the first stages lost it);
  - unverified: it is there, not verified, with the inliers it had;
  - beaten: it is verified, but a wrong image ranks above it (with their inliers).
Nothing here depends on file names but the ground truth.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path

COLLECTION = {"covers": "smvs_dvd_dev/Reference", "corel1k": "corel1k", "flowers102": "flowers102/jpg"}
TOP = 100


def collection(data: Path, workdir: Path, sets: list[str]) -> Path:
    folder = workdir / "collection"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in ((name, COLLECTION[name]) for name in sets):
        link = folder / name
        if not link.exists():
            os.symlink((data / source).resolve(), link)
    return folder


def build_index(folder: Path, db: str) -> None:
    from imgsearch.config import Settings
    from imgsearch.index.build import build
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url

    with open_store(parse_database_url(db), create=True) as store:
        started = time.perf_counter()
        report = build(store, str(folder), Settings().build_extractors, os.cpu_count() or 1, 256, progress=True,
                       default_graph=Settings().default_graph)  # as `imgsearch build` keeps it
        print(f"build: {report.summary().splitlines()[0]} ({time.perf_counter() - started:.0f} s)")


def classify(paths: list[str], extras: list[dict], right: str) -> tuple[int | None, str, str]:
    """(rank of the right cover or None, its class, a detail line)."""
    if right not in paths:
        first = extras[0] if extras else {}
        return None, "lost", f"first {paths[0] if paths else '-'} ({first.get('inliers', '-')} inliers)"
    rank = paths.index(right) + 1
    mine = extras[rank - 1]
    if rank == 1:
        return 1, "hit", ""
    first = extras[0]
    detail = f"right at {rank} with {mine.get('inliers', '-')} inliers; first {paths[0]} with {first.get('inliers', '-')}"
    return rank, ("beaten" if mine.get("corners") else "unverified"), detail


def measure(data: Path, workdir: Path, phones: list[str], rerank: str | None, sets: list[str]) -> None:
    from imgsearch.config import Settings
    from imgsearch.serve.config import ServeConfig
    from imgsearch.serve.service import Service
    from imgsearch.store.url import parse_database_url

    db = f"sqlite:///{workdir / 'index.sqlite3'}"
    build_index(collection(data, workdir, sets), db)
    service = Service(ServeConfig(parse_database_url(db), ("cnn-spoc",), ("pearson",), Settings(extractor="cnn-spoc", metric="pearson")))
    rows = []
    try:
        asked = {"k": TOP, "rerank": rerank}
        for phone in phones:
            for photo in sorted((data / "smvs_dvd_dev" / phone).glob("*.jpg")):
                upload = photo.read_bytes()
                started = time.perf_counter()
                answer = service.search_upload(upload, asked)
                seconds = time.perf_counter() - started
                paths = [r["path"] for r in answer["results"]]
                extras = [{"inliers": r.get("inliers"), "corners": r.get("corners")} for r in answer["results"]]
                right = f"covers/{photo.name}"
                rank, kind, detail = classify(paths, extras, right)
                # a wrong image verified: another cover is a real object in some photos, any other is chance
                chance = sum(1 for p, e in zip(paths, extras) if e["corners"] and not p.startswith("covers/"))
                rows.append((phone, photo.name, rank, kind, detail, seconds, chance, answer.get("stages_s", {})))
        report(rows, phones)
    finally:
        service.close()


def report(rows: list[tuple], phones: list[str]) -> None:
    print(f"\n{'phone':<8} {'photos':>6} {'R@1':>6} {'R@10':>6} {'R@100':>6} {'mAP':>6} {'p50 ms':>7} {'p90 ms':>7} {'chance':>6}  misses")
    for phone in [*phones, "all"]:
        mine = [r for r in rows if phone in ("all", r[0])]
        n = len(mine)
        ranks = [r[2] for r in mine]
        hits = {k: sum(1 for x in ranks if x is not None and x <= k) / n for k in (1, 10, 100)}
        mean_ap = sum(1 / x for x in ranks if x is not None) / n
        times = sorted(r[5] * 1000 for r in mine)
        misses = Counter(r[3] for r in mine if r[3] != "hit")
        print(f"{phone:<8} {n:>6} {hits[1]:6.3f} {hits[10]:6.3f} {hits[100]:6.3f} {mean_ap:6.3f} "
              f"{statistics.median(times):7.0f} {times[int(0.9 * (n - 1))]:7.0f} {sum(r[6] for r in mine):6d}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(misses.items())))
    stages = sorted({stage for r in rows for stage in r[7]})
    print("\nstage medians (ms): " + ", ".join(f"{stage} {1000 * statistics.median(r[7].get(stage, 0) for r in rows):.0f}"
                                           for stage in stages))
    print("\nmisses:")
    for phone, name, _, kind, detail, *_ in rows:
        if kind != "hit":
            print(f"  {phone}/{name}: {kind}: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--sets", default=",".join(COLLECTION),
                        help="what the collection holds (a smaller one in its own WORKDIR): " + ", ".join(COLLECTION))
    parser.add_argument("--rerank", default=None, help="default: the service's default re-ranking")
    args = parser.parse_args()
    measure(args.data, args.workdir, args.phones.split(","), args.rerank, args.sets.split(","))


if __name__ == "__main__":
    main()
