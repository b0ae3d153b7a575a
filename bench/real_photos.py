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
where the misses go:
  - lost: the right cover is not among the 100 answered (the first stages lost it);
  - unverified: it is there, not verified, with the inliers it had;
  - beaten: it is verified, but a wrong image ranks above it (with their inliers).
Nothing here depends on file names but the ground truth.

`--rules` also searches every photo once more with a verification floor of 4 inliers (top
1,000) and ranks each answer again under other decision rules, offline: fixed inlier cuts,
and a cut relative to the query's own noise floor (the next best candidate's inliers),
printing R@1 and how many wrong images each rule verifies (what lets unrelated photos
verify elsewhere). A measurement to choose a rule by, not a rule.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from scipy.special import gammaln

from imgsearch.features.local import DEFAULT_MAX_SIDE
from imgsearch.rerank.verify import RANSAC_PIXELS

COLLECTION = {"covers": "smvs_dvd_dev/Reference", "corel1k": "corel1k", "flowers102": "flowers102/jpg"}
TOP = 100


def collection(data: Path, workdir: Path) -> Path:
    folder = workdir / "collection"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in COLLECTION.items():
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
        report = build(store, str(folder), Settings().build_extractors, os.cpu_count() or 1, 256, progress=True)
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


def measure(data: Path, workdir: Path, phones: list[str], rerank: str | None, rules: bool = False) -> None:
    from imgsearch.plan import SearchPlan
    from imgsearch.serve.config import ServeConfig
    from imgsearch.serve.service import Service
    from imgsearch.store.url import parse_database_url

    db = f"sqlite:///{workdir / 'index.sqlite3'}"
    build_index(collection(data, workdir), db)
    service = Service(ServeConfig(parse_database_url(db), ("cnn-spoc",), ("pearson",), "cnn-spoc", "pearson"))
    rows = []
    try:
        def plan_of(**changes) -> SearchPlan:
            return SearchPlan.of("cnn-spoc", "pearson", regions=service.config.regions, **changes)

        plan = plan_of(k=TOP, rerank=rerank)
        for phone in phones:
            for photo in sorted((data / "smvs_dvd_dev" / phone).glob("*.jpg")):
                upload = photo.read_bytes()
                started = time.perf_counter()
                answer = service.search_upload(upload, plan)
                seconds = time.perf_counter() - started
                paths = [r["path"] for r in answer["results"]]
                extras = [{"inliers": r.get("inliers"), "corners": r.get("corners")} for r in answer["results"]]
                rank, kind, detail = classify(paths, extras, f"covers/{photo.name}")
                rows.append((phone, photo.name, rank, kind, detail, seconds))
        report(rows, phones)
        if rules:
            decision_rules(service, plan_of, data, phones)
    finally:
        service.close()


def report(rows: list[tuple], phones: list[str]) -> None:
    print(f"\n{'phone':<8} {'photos':>6} {'R@1':>6} {'R@10':>6} {'R@100':>6} {'mAP':>6} {'p50 ms':>7} {'p90 ms':>7}  misses")
    for phone in [*phones, "all"]:
        mine = [r for r in rows if phone in ("all", r[0])]
        n = len(mine)
        ranks = [r[2] for r in mine]
        hits = {k: sum(1 for x in ranks if x is not None and x <= k) / n for k in (1, 10, 100)}
        mean_ap = sum(1 / x for x in ranks if x is not None) / n
        times = sorted(r[5] * 1000 for r in mine)
        misses = Counter(r[3] for r in mine if r[3] != "hit")
        print(f"{phone:<8} {n:>6} {hits[1]:6.3f} {hits[10]:6.3f} {hits[100]:6.3f} {mean_ap:6.3f} "
              f"{statistics.median(times):7.0f} {times[int(0.9 * (n - 1))]:7.0f}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(misses.items())))
    print("\nmisses:")
    for phone, name, _, kind, detail, _ in rows:
        if kind != "hit":
            print(f"  {phone}/{name}: {kind}: {detail}")


def fixed_cut(cut: int, k: int, next_best: int) -> bool:
    return k >= cut


def above_noise_floor(low: int, ratio: float, k: int, next_best: int) -> bool:
    return k >= 15 or (k >= low and k >= ratio * max(next_best, 1))


def a_contrario(log10_nfa_below: float, k: int, next_best: int, n: int, alpha: float) -> bool:
    """Moisan & Stival 2004 (ORSA) at RANSAC's fixed threshold: the number of false alarms of
    a homography with k inliers among n tentative matches, each a chance inlier with
    probability alpha (the threshold's disc over the photo's area), is
    (n - 4) C(n, k) C(k, 4) alpha^(k - 4); verified when it is below 10^log10_nfa_below."""
    if k <= 4 or n <= 4:
        return False
    log_choose = (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + gammaln(k + 1) - gammaln(5)
                  - gammaln(k - 3)) / np.log(10)
    return bool(np.log10(n - 4) + log_choose + (k - 4) * np.log10(alpha) < log10_nfa_below)


RULES = {
    **{f"k >= {c}": functools.partial(fixed_cut, c) for c in (15, 12, 10, 8)},
    **{f"k >= 15, or k >= {low} and >= {ratio} x the next best": functools.partial(above_noise_floor, low, ratio)
       for low in (6, 8) for ratio in (1.5, 2.0)},
}
A_CONTRARIO = {f"NFA < 1e{e}": functools.partial(a_contrario, float(e)) for e in (0, -2, -4)}


def decision_rules(service, plan_of, data: Path, phones: list[str]) -> None:
    answers = []
    plan = plan_of(k=1000, rerank="verify:300,4")
    for phone in phones:
        for photo in sorted((data / "smvs_dvd_dev" / phone).glob("*.jpg")):
            upload = photo.read_bytes()
            results = service.search_upload(upload, plan)["results"]
            height, width = cv2.imdecode(np.frombuffer(upload, np.uint8), cv2.IMREAD_GRAYSCALE).shape
            # RANSAC's threshold is RANSAC_PIXELS at the extraction size: its disc over that area
            scale = min(1.0, DEFAULT_MAX_SIDE / max(height, width))
            alpha = np.pi * RANSAC_PIXELS**2 / (height * width * scale * scale)
            answers.append((phone, f"covers/{photo.name}", alpha,
                            [(r["path"], r["score"], r.get("inliers") or 0, r.get("corners") is not None,
                              r.get("matches") or 0) for r in results]))
    print(f"\n{'decision rule (floor 4 inliers, top 1000)':<48} " + " ".join(f"{p:>6}" for p in phones)
          + f" {'all':>6}  wrong verified  wrong first")
    rules = {**RULES, **A_CONTRARIO}
    for name, rule in rules.items():
        hits, wrong, wrong_first = Counter(), 0, 0
        for phone, right, alpha, results in answers:
            counts = sorted((k for _, _, k, v, _ in results if v), reverse=True)
            verified = []
            for _, _, k, v, n in results:
                others = list(counts)
                if v:
                    others.remove(k)
                next_best = others[0] if others else 0
                verified.append(v and (rule(k, next_best, n, alpha) if name in A_CONTRARIO else rule(k, next_best)))
            keys = [10 + k + score / 4 if ok else score for (_, score, k, _, _), ok in zip(results, verified)]
            first = max(range(len(results)), key=lambda i: (keys[i], -i))
            hits[phone] += results[first][0] == right
            wrong += sum(ok for (path, *_), ok in zip(results, verified) if path != right)
            wrong_first += verified[first] and results[first][0] != right
        n = {p: sum(1 for a in answers if a[0] == p) for p in phones}
        print(f"{name:<48} " + " ".join(f"{hits[p] / n[p]:6.3f}" for p in phones)
              + f" {sum(hits.values()) / len(answers):6.3f}  {wrong:14d}  {wrong_first:11d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--rerank", default=None, help="default: the service's default re-ranking")
    parser.add_argument("--rules", action="store_true", help="also rank again under other decision rules")
    args = parser.parse_args()
    measure(args.data, args.workdir, args.phones.split(","), args.rerank, args.rules)


if __name__ == "__main__":
    main()
