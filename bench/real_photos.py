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

    python bench/real_photos.py ../shared/data WORKDIR --protocol photos [--sets covers,droid,palm,corel1k]

Photo to photo (issue 39): the phone photos are in the collection too (with the covers,
corel1k and flowers102 by default), and each is searched by its name, as `imgsearch query
droid/017.jpg` does, for the other phone's photo of its cover and the cover itself (two
right answers). Prints per phone and overall mAP, R-precision (the share of the two in the
top 2), how often both are in the top 2, how often a photo of another cover by the same
phone (the same desk: a same-scene match) is in the top 2, and each right answer missed from
the top 2 by class: lost (not in the top 100; with its rank, of 1,000, in the ranking
verification started from), unverified, outranked by a photo holding the
cover too (the cover's own search verifies it there: a photo of one cover often shows
another beside or beneath it, which the ground truth does not count), outranked by a cover
the photo holds besides its own (a cover verified on the photo's object, or a photo of one),
outranked by a same-scene match (a photo of another cover by the same phone), outranked by another
verified image.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path

COLLECTION = {"covers": "smvs_dvd_dev/Reference", "corel1k": "corel1k", "flowers102": "flowers102/jpg",
              "droid": "smvs_dvd_dev/Droid", "palm": "smvs_dvd_dev/Palm"}
COVERS = ("covers", "corel1k", "flowers102")  # the collection of the covers protocol
PHONE_FOLDER = {"Droid": "droid", "Palm": "palm"}
OBJECT_FOLDERS = ("covers", "droid", "palm")  # images of covers: another cover verified is a real object
TOP = 100
FIRST_STAGE_DEPTH = 1000  # how far a lost right image is looked for in the ranking verify started from


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


def served_index(data: Path, workdir: Path, sets: list[str]):
    """A Service over WORKDIR/index.sqlite3, the collection of `sets` built into it first."""
    from imgsearch.config import Settings
    from imgsearch.serve.config import ServeConfig
    from imgsearch.serve.service import Service
    from imgsearch.store.url import parse_database_url

    db = f"sqlite:///{workdir / 'index.sqlite3'}"
    build_index(collection(data, workdir, sets), db)
    return Service(ServeConfig(parse_database_url(db), ("cnn-spoc",), ("pearson",),
                               Settings(extractor="cnn-spoc", metric="pearson")))


def measure(data: Path, workdir: Path, phones: list[str], rerank: str | None, sets: list[str]) -> None:
    service = served_index(data, workdir, sets)
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


def photo_to_photo(data: Path, workdir: Path, phones: list[str], rerank: str | None, sets: list[str]) -> None:
    service = served_index(data, workdir, sets)
    rows = []
    try:
        holders = photos_holding_each_cover(service, rerank)
        for phone in phones:
            others = [PHONE_FOLDER[p] for p in PHONE_FOLDER if p != phone and PHONE_FOLDER[p] in sets]
            for photo in sorted((data / "smvs_dvd_dev" / phone).glob("*.jpg")):
                started = time.perf_counter()
                answer = service.search({"k": TOP, "rerank": rerank}, name=f"{PHONE_FOLDER[phone]}/{photo.name}")
                seconds = time.perf_counter() - started
                right = [f"covers/{photo.name}", *(f"{folder}/{photo.name}" for folder in others)]
                judged = judge_photo(phone, photo.name, answer["results"], right, seconds, holders)
                rows.append({**judged, "misses": with_first_stage_ranks(service, answer, judged["misses"]),
                             "stages": answer.get("stages_s", {})})
        report_photos(rows, phones)
    finally:
        service.close()


def with_first_stage_ranks(service, answer: dict, misses: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The misses, each lost right image with its rank in the ranking verification started
    from (the answer's re-ranking before verify: where a wider first stage would find it)."""
    if not any(kind == "lost" for kind, *_ in misses):
        return misses
    chain = answer.get("rerank") or ""
    before = chain.rsplit("+", 1)[0] if "+" in chain else "none"
    ranked = [r["path"] for r in service.search({"k": FIRST_STAGE_DEPTH, "rerank": before},
                                                name=answer["query"])["results"]]
    return [(kind, image, f"{before} ranks it {ranked.index(image) + 1 if image in ranked else f'below {FIRST_STAGE_DEPTH}'}"
             if kind == "lost" else detail) for kind, image, detail in misses]


def photos_holding_each_cover(service, rerank: str | None) -> dict[str, set[str]]:
    """Per cover, the phone photos its own search verifies on its object: a photo of one
    cover often holds another beside or beneath it, which the ground truth (one photo a
    phone) does not count. Used only to say why a right image was outranked."""
    holders = {}
    for cover in (f"{n:03d}.jpg" for n in range(1, 101)):
        answer = service.search({"k": TOP, "rerank": rerank}, name=f"covers/{cover}")
        holders[cover] = {r["path"] for r in answer["results"]
                          if r.get("match") == "object" and r["path"].split("/")[0] in PHONE_FOLDER.values()}
    return holders


def judge_photo(phone: str, name: str, results: list[dict], right: list[str], seconds: float,
                holders: dict[str, set[str]]) -> dict:
    """One photo's answer against its right images: AP, how many of them are in the top
    len(right), whether a same-scene photo is there, and each right image missing from the
    top by class (`holders`: per cover, the photos its own search verified on it)."""
    paths = [r["path"] for r in results]
    mine = PHONE_FOLDER[phone] + "/"
    same_scene = [i for i, p in enumerate(paths) if p.startswith(mine) and p not in right]
    ranks = sorted(paths.index(r) + 1 for r in right if r in paths)
    ap = sum((n + 1) / rank for n, rank in enumerate(ranks)) / len(right)
    top = len(right)
    # the covers verified on the photo's object: it holds them (its photos follow them up)
    held = {p.split("/")[1] for p, r in zip(paths, results) if p.startswith("covers/") and r.get("match") == "object"}
    misses = []
    for r in right:
        if r in paths and paths.index(r) < top:
            continue
        if r not in paths:
            misses.append(("lost", r, ""))
            continue
        at = paths.index(r)
        if results[at].get("corners") is None:
            misses.append(("unverified", r, f"at {at + 1} with {results[at].get('inliers')} inliers"))
            continue
        above = [i for i in range(at) if paths[i] not in right]
        kind = ("outranked by a photo holding the cover too" if any(paths[i] in holders.get(name, set()) for i in above)
                else "outranked by another cover the photo holds" if any(
                    paths[i].split("/")[1] in held for i in above)
                else "outranked by same scene" if any(i in same_scene for i in above) else "outranked by another")
        misses.append((kind, r, f"at {at + 1} with {results[at].get('inliers')} inliers; above it "
                              + ", ".join(f"{paths[i]} ({results[i].get('inliers')}, {results[i].get('match', '-')})"
                                          for i in above[:3])))
    labels = [("right" if p in right else "object photo" if p.split("/")[0] in OBJECT_FOLDERS else "chance",
               results[i].get("match")) for i, p in enumerate(paths) if results[i].get("corners") is not None]
    return {"phone": phone, "name": name, "ap": ap, "in_top": sum(1 for rank in ranks if rank <= top), "top": top,
            "scene_in_top": any(i < top for i in same_scene), "misses": misses, "seconds": seconds, "labels": labels}


def report_photos(rows: list[dict], phones: list[str]) -> None:
    print(f"\n{'phone':<8} {'photos':>6} {'mAP':>6} {'R-prec':>6} {'both':>6} {'scene':>6} {'p50 ms':>7}  misses")
    for phone in [*phones, "all"]:
        mine = [r for r in rows if phone in ("all", r["phone"])]
        n = len(mine)
        misses = Counter(kind for r in mine for kind, *_ in r["misses"])
        print(f"{phone:<8} {n:>6} {sum(r['ap'] for r in mine) / n:6.3f} "
              f"{sum(r['in_top'] / r['top'] for r in mine) / n:6.3f} "
              f"{sum(r['in_top'] == r['top'] for r in mine) / n:6.3f} {sum(r['scene_in_top'] for r in mine) / n:6.3f} "
              f"{statistics.median(r['seconds'] * 1000 for r in mine):7.0f}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(misses.items())))
    verdicts = Counter(label for r in rows for label in r["labels"])
    print("\nverified answers (right image / another cover or photo of one / chance: any other image; "
          "object / scene): "
          + ", ".join(f"{image} {label} {count}" for (image, label), count in sorted(verdicts.items(), key=str)))
    stages = sorted({stage for r in rows for stage in r["stages"]})
    print("\nstage medians (ms): " + ", ".join(f"{stage} {1000 * statistics.median(r['stages'].get(stage, 0) for r in rows):.0f}"
                                           for stage in stages))
    print("\nmisses:")
    for r in rows:
        for kind, image, detail in r["misses"]:
            print(f"  {r['phone']}/{r['name']} -> {image}: {kind} {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--protocol", choices=("covers", "photos"), default="covers",
                        help="covers: each photo uploaded, the cover found; photos: the photos indexed too, each "
                             "searched by name for the other photo of its cover and the cover")
    parser.add_argument("--sets", default=None,
                        help="what the collection holds (a smaller one in its own WORKDIR): " + ", ".join(COLLECTION)
                             + f"; default {','.join(COVERS)} (covers), all (photos)")
    parser.add_argument("--rerank", default=None, help="default: the service's default re-ranking")
    args = parser.parse_args()
    phones = args.phones.split(",")
    if args.protocol == "covers":
        measure(args.data, args.workdir, phones, args.rerank, (args.sets or ",".join(COVERS)).split(","))
    else:
        photo_to_photo(args.data, args.workdir, phones, args.rerank, (args.sets or ",".join(COLLECTION)).split(","))


if __name__ == "__main__":
    main()
