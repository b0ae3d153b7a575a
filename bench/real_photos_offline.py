"""Where real phone photos' right answers are lost, and what a decision rule would make of
them, offline: the instrument behind issue 29's choices (docs/benchmarks.md).

    python bench/real_photos_offline.py ../shared/data WORKDIR [--phones Droid,Palm] [--regions crops]

WORKDIR holds the index bench/real_photos.py built. For each phone photo it takes the two
first stages' candidates as a verified search does (the global stage with the query's
regions, and the visual words), then:
  1. shortlists: how often the right cover is within the global top 10 / 100 / 300, the
     words' top 10 / 50 / 100, and their unions;
  2. rules: every candidate of the global top 300 and the words' top 100 verified once
     (ratio-test matches, RANSAC, the outline checks, any inlier count), then ranked as
     the service ranks under each decision rule, for two candidate sets. Per rule: R@1 per
     phone, "chance" (verified images that are not covers: nothing in Corel-1k or
     flowers102 is one of the objects, so each is a false alarm), and "wrong first".
Nothing here depends on file names but the ground truth.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

GLOBAL, WORDS = 300, 100
SETS = ((300, 100), (100, 50))  # (global, words) candidates verified


def candidates(data: Path, workdir: Path, phones: list[str], regions: str) -> list[dict]:
    from imgsearch.query import photo_local, photo_of_bytes, photo_vector, stored_extractor
    from imgsearch.rerank.first_stage import word_candidates
    from imgsearch.rerank.query import local_extractor
    from imgsearch.rerank.verify import Evidence, verify_all
    from imgsearch.scan.metrics import get_metric
    from imgsearch.scan.store_scan import StoreScan
    from imgsearch.store import open_store
    from imgsearch.store.catalog import read_catalog
    from imgsearch.store.url import parse_database_url

    anything = Evidence(false_alarms=math.inf)  # every homography that passes the outline checks
    found = []
    with open_store(parse_database_url(f"sqlite:///{workdir / 'index.sqlite3'}")) as store:
        row, extractor = stored_extractor(store, "cnn-spoc")
        local_row = local_extractor(read_catalog(store, "cnn-spoc", "pearson"))
        scan, metric = StoreScan(store), get_metric("pearson")
        for phone in phones:
            for photo_path in sorted((data / "smvs_dvd_dev" / phone).glob("*.jpg")):
                photo = photo_of_bytes(photo_path.read_bytes())
                vector = photo_vector(extractor, photo.pixels, None if regions == "none" else regions)
                global_ = [i for i, _ in scan.top_k(row, metric, vector, GLOBAL).ranking]
                query = photo_local(photo)(local_row)
                by_words = [i for i, _ in word_candidates(store, local_row, query.features, [], WORDS)]
                ids = list(dict.fromkeys(global_ + by_words))
                stored = store.local_features(local_row, ids)
                images = store.images_by_ids(ids)
                ids = [i for i in ids if i in stored and i in images]
                results = verify_all(query.features, query.scale, query.size,
                                     [(stored[i], (images[i].height, images[i].width)) for i in ids], anything)
                names = {i: images[i].path.decode() for i in ids}
                found.append({"phone": phone, "right": f"covers/{photo_path.name}", "global": global_,
                              "words": by_words, "names": names,
                              "verified": {i: (r.inliers, r.matches, r.significance) for i, r in zip(ids, results)
                                           if r.corners is not None}})
                print(f"{phone}/{photo_path.name}", end="\r", flush=True)
    return found


def rank_of(ids: list[int], names: dict[int, str], right: str) -> int:
    listed = [names.get(i) for i in ids]
    return listed.index(right) + 1 if right in listed else 10**9


def shortlists(found: list[dict], phones: list[str]) -> None:
    print(f"\n{'phone':<6} " + " ".join(f"{h:>9}" for h in ("global@10", "@100", "@300", "words@10", "@50", "@100",
                                                              "100+50", "300+100")))
    for phone in [*phones, "all"]:
        mine = [f for f in found if phone in ("all", f["phone"])]
        g = [rank_of(f["global"], f["names"], f["right"]) for f in mine]
        w = [rank_of(f["words"], f["names"], f["right"]) for f in mine]
        share = [sum(x <= k for x in g) / len(mine) for k in (10, 100, 300)]
        share += [sum(x <= k for x in w) / len(mine) for k in (10, 50, 100)]
        share += [sum(a <= gk or b <= wk for a, b in zip(g, w)) / len(mine) for gk, wk in SETS[::-1]]
        print(f"{phone:<6} " + " ".join(f"{x:9.3f}" for x in share))


Rule = Callable[[int, float], bool]  # (inliers, log10 false alarms) -> verified


def at_least(cut: int) -> Rule:
    return lambda k, significance: k >= cut


def below(exponent: int) -> Rule:
    return lambda k, significance: significance < exponent


RULES: dict[str, Rule] = {**{f"k >= {c}": at_least(c) for c in (15, 12, 10, 8)},
                          **{f"NFA < 1e{e}": below(e) for e in (0, -4, -8, -10)}}


def rules(found: list[dict], phones: list[str]) -> None:
    for global_n, words_n in SETS:
        print(f"\nverified: global top {global_n} + words top {words_n}")
        print(f"{'rule':<14} " + " ".join(f"{p:>6}" for p in phones) + f" {'all':>6} {'chance':>6} {'wrong first':>11}")
        for name, rule in RULES.items():
            hits = dict.fromkeys(phones, 0)
            chance = wrong_first = 0
            for f in found:
                plain = f["global"][:global_n]
                checked = set(plain) | set(f["words"][:words_n])
                score = {i: -rank for rank, i in enumerate(plain)}  # the global order
                keyed = []
                for i in checked:
                    k, _, significance = f["verified"].get(i, (0, 0, math.inf))
                    ok = i in f["verified"] and rule(k, significance)
                    if ok or i in score:
                        keyed.append(((1, k, score.get(i, -10**6)) if ok else (0, 0, score[i]), i, ok))
                    chance += ok and not f["names"][i].startswith("covers/")
                _, first, ok = max(keyed)
                hits[f["phone"]] += f["names"][first] == f["right"]
                wrong_first += ok and f["names"][first] != f["right"]
            n_of = {p: sum(f["phone"] == p for f in found) for p in phones}
            print(f"{name:<14} " + " ".join(f"{hits[p] / n_of[p]:6.3f}" for p in phones)
                  + f" {sum(hits.values()) / len(found):6.3f} {chance:6d} {wrong_first:11d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--regions", default="crops", help="the query's regions in the global stage (none: whole photo)")
    args = parser.parse_args()
    phones = args.phones.split(",")
    found = candidates(args.data, args.workdir, phones, args.regions)
    shortlists(found, phones)
    rules(found, phones)
    print(f"\n(median {np.median([len(f['verified']) for f in found]):.0f} candidates a photo verify at any count)")
    weakest = max((f["verified"][i][2], f["phone"], f["right"]) for f in found for i in f["verified"]
                  if f["names"][i] == f["right"])
    print(f"the least significant verification of a right cover: NFA 10^{weakest[0]:.1f} ({weakest[1]} {weakest[2]})")
    print("\nthe most significant verifications of images that are not covers (k inliers of n matches):")
    chance = sorted((significance, k, n, f["phone"], f["right"], f["names"][i])
                    for f in found for i, (k, n, significance) in f["verified"].items()
                    if not f["names"][i].startswith("covers/"))
    for nfa, k, n, phone, right, name in chance[:8]:
        print(f"  NFA 10^{nfa:.1f}: {k} of {n}: {phone} {right.split('/')[-1]} -> {name}")


if __name__ == "__main__":
    main()
