"""The visual-word first stage's recall as the vocabulary grows and the postings budget
changes (issue 38): on an index bench/scale.py built, each vocabulary is learned as a build
learns it (index.words.learned_from, the same draw of images) from SAMPLE descriptors, every
image's words are assigned in memory, and each dev phone photo (its local features as an
upload extracts them) is scored by the words stage's own rule (store.words_tables:
query_word_weights, tf-idf) against an in-memory inverted file. Per vocabulary and budget it
prints in how many of the photos the right cover is among the words' first 50 (what the
stage adds to verification), its median rank there, and the postings the stage reads.

    python bench/vocabulary.py ../shared/data ~/.cache/imgsearch-bench/scale/index-30000.sqlite3 \\
        --samples 500000,1000000,2000000 --budgets 30000,100000
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

CHUNK = 2000  # images whose features are read at once


def main() -> None:
    from imgsearch.index.extraction import cached_extractor
    from imgsearch.index.words import learned_from
    from imgsearch.names import display
    from imgsearch.query import photo_of_bytes
    from imgsearch.rerank.first_stage import WORD_CANDIDATES
    from imgsearch.store import open_store
    from imgsearch.store.url import parse_database_url
    from imgsearch.store.words_tables import query_word_weights

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("index", help="an SQLite file or a database URL")
    parser.add_argument("--samples", default="500000,2000000")
    parser.add_argument("--budgets", default="30000,100000")
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--shares", choices=("sample", "all"), default="sample",
                        help="each word's share of the images sampled to learn (as a build keeps it) or of all")
    parser.add_argument("--norm", choices=("plain", "idf"), default="plain",
                        help="an image's counts divided by their L2 norm (plain, as stored) or by that of counts x idf")
    args = parser.parse_args()
    url = args.index if "://" in args.index else f"sqlite:///{Path(args.index).resolve()}"
    with open_store(parse_database_url(url)) as store:
        local = next(e for e in store.extractors() if e.kind.verifies and store.has_vectors(e))
        ids = sorted(store.image_ids_with_features(local))
        paths = {i: display(image.path) for i, image in store.images_by_ids(ids).items()}
        started = time.perf_counter()
        descriptors: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), CHUNK):
            found = store.local_features(local, ids[start : start + CHUNK])
            descriptors.update((i, f.descriptors) for i, f in found.items())
        print(f"{len(ids)} images, {sum(len(d) for d in descriptors.values())} descriptors read in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        extractor = cached_extractor(local.name, local.params).for_query()
        queries = []  # (phone, the right cover's id, the photo's descriptors)
        cover_ids = {p: i for i, p in paths.items() if p.startswith("covers/")}
        for phone in args.phones.split(","):
            for photo in sorted((args.data / "smvs_dvd_dev" / phone).glob("*.jpg")):
                pixels = photo_of_bytes(photo.read_bytes()).pixels
                queries.append((phone, cover_ids[f"covers/{photo.name}"], extractor.extract(pixels).descriptors))
        for sample in (int(s) for s in args.samples.split(",")):
            started = time.perf_counter()
            vocabulary, used, known = learned_from(store, local, ids, sample)
            learned = time.perf_counter() - started
            started = time.perf_counter()
            rest = [i for i in ids if i not in known]
            words = dict(known)
            for start in range(0, len(rest), CHUNK):
                chunk = rest[start : start + CHUNK]
                words.update(zip(chunk, vocabulary.words_of_images([descriptors[i] for i in chunk])))
            assigned = time.perf_counter() - started
            if args.shares == "all":
                vocabulary = vocabulary.with_shares(list(words.values()))
            column = {i: n for n, i in enumerate(ids)}
            rows, cols, tf = [], [], []
            idf = -np.log(vocabulary.shares.astype(np.float64))
            for i in ids:
                found, counts = np.unique(words[i], return_counts=True)
                rows.append(found)
                cols.append(np.full(len(found), column[i]))
                weighed = counts * (idf[found] if args.norm == "idf" else 1.0)
                tf.append(counts / np.sqrt((weighed.astype(np.float64) ** 2).sum()))
            postings = csr_matrix((np.concatenate(tf), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(vocabulary.size, len(ids)))
            lengths = np.diff(postings.indptr)
            print(f"\n{vocabulary.size} words from {used} descriptors: learned in {learned:.0f} s, "
                  f"{len(rest)} images assigned in {assigned:.0f} s; posting list median {np.median(lengths[lengths > 0]):.0f}, "
                  f"mean {lengths.mean():.1f}", flush=True)
            for budget in (int(b) for b in args.budgets.split(",")):
                found_in, ranks, read, share_used = {}, [], [], []
                for phone, right, query in queries:
                    query_words = vocabulary.words(query)
                    weights = query_word_weights(query_words, vocabulary.shares, len(ids), budget)
                    share_used.append(len(weights) / len(np.unique(query_words)))
                    used_words = np.array([w for w, _ in weights])
                    scores = np.asarray(postings[used_words].T @ np.array([w for _, w in weights])).ravel()
                    read.append(int(lengths[used_words].sum()))
                    best = np.lexsort((np.arange(len(ids)), -scores))[:WORD_CANDIDATES]
                    hit = np.flatnonzero(best == column[right])
                    found_in.setdefault(phone, []).append(bool(len(hit)))
                    if len(hit):
                        ranks.append(int(hit[0]) + 1)
                shares = ", ".join(f"{phone} {sum(v)}/{len(v)}" for phone, v in found_in.items())
                print(f"  budget {budget}: the right cover in the words' first {WORD_CANDIDATES}: {shares}; median rank "
                      f"{statistics.median(ranks) if ranks else '-'}; postings read median {statistics.median(read):.0f}, "
                      f"of the photo's words {statistics.median(share_used):.0%}",
                      flush=True)


if __name__ == "__main__":
    main()
