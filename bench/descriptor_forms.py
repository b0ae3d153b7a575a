"""How a stored local descriptor's form changes verification, on the dev set: each of the
200 SMVS Droid and Palm phone photos (query features, as a search extracts them) matched
against all 100 covers (stored features, as a build extracts them) the way verification
matches them (19,800 pairs). Per form: the right cover verified first, every right cover
verified, the median inliers of the right pairs, wrong pairs verified (two-cover photos and
same-desk photos make a few real ones), bytes a keypoint's descriptor takes, and the
seconds the matching took (one run, same machine, forms one after the other).

    python bench/descriptor_forms.py ../shared/data [--phones Droid,Palm] [--learn 300]

PCA forms learn their basis from RootSIFT of `--learn` photos of Corel-1k and flowers102
(never the dev set): what a shipped basis would be learned from.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from imgsearch.features.local import SiftExtractor
from imgsearch.keypoints import descriptor_levels, level_values
from imgsearch.query import photo_local, photo_of_bytes
from imgsearch.rerank.verify import SEARCH_EVIDENCE, ratio_matches, root_sift, verify
from imgsearch.store.records import ExtractorRow

Form = Callable[[np.ndarray], np.ndarray]  # SIFT values -> the rows matching compares (unit rows)


def learned_basis(paths: list[Path], dims: int) -> tuple[np.ndarray, np.ndarray]:
    stored = SiftExtractor()
    rows = np.vstack([root_sift(stored.extract(cv2.imread(str(p))).descriptors) for p in paths])
    mean = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    return mean, vt[:dims].T.astype(np.float32)


def pca_form(mean: np.ndarray, basis: np.ndarray, bits: int | None, spread: np.ndarray | None) -> Form:
    def form(descriptors: np.ndarray) -> np.ndarray:
        x = (root_sift(descriptors) - mean) @ basis
        if bits is not None and spread is not None:
            top = 2**bits - 1
            levels = np.clip(np.rint((x / spread + 1) / 2 * top), 0, top)
            x = (levels / top * 2 - 1) * spread
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return form


def matched(query: np.ndarray, candidates: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """ratio_matches, each candidate in a product of its own (no padding: PCA rows can score below 0)."""
    return [ratio_matches(query, [c])[0] for c in candidates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--phones", default="Droid,Palm")
    parser.add_argument("--learn", type=int, default=300)
    parser.add_argument("--forms", help="only the forms whose name holds one of these (comma-separated), e.g. now,PCA-64 4")
    args = parser.parse_args()
    dev = args.data / "smvs_dvd_dev"
    covers = sorted((dev / "Reference").glob("*.jpg"))
    photos = [p for phone in args.phones.split(",") for p in sorted((dev / phone).glob("*.jpg"))]
    stored_extractor = SiftExtractor()
    stored, sizes = [], []
    for p in covers:  # 500 px: a build decodes them whole
        image = cv2.imread(str(p))
        stored.append(stored_extractor.extract(image))
        sizes.append(image.shape[:2])
    # each photo's features as a search takes them: decoded as an upload is, then its local features
    row = ExtractorRow(0, stored_extractor.name, json.dumps(stored_extractor.params), stored_extractor.dim)
    queries = [photo_local(photo_of_bytes(p.read_bytes()))(row) for p in photos]
    learn = sorted((args.data / "corel1k").rglob("*.jpg")) + sorted((args.data / "flowers102" / "jpg").glob("*.jpg"))
    learn = learn[:: max(1, len(learn) // args.learn)][: args.learn]
    mean, basis = learned_basis(learn, 128)
    forms: dict[str, tuple[Form, Form, int]] = {
        "4-bit roots (stored now)": (root_sift, lambda d: root_sift(level_values(descriptor_levels(d))), 64)}
    sample = np.vstack([root_sift(f.descriptors) for f in stored[:20]])
    for dims in (64, 48, 32):
        b = basis[:, :dims]
        spread = np.percentile(np.abs((sample - mean) @ b), 99.5, axis=0)
        full = pca_form(mean, b, None, None)
        forms[f"PCA-{dims} float32"] = (full, full, dims * 4)
        forms[f"PCA-{dims} 4-bit"] = (full, pca_form(mean, b, 4, spread), dims // 2)
    wanted = [w for w in (args.forms or "").split(",") if w]
    for name, (query_form, stored_form, nbytes) in forms.items():
        if wanted and not any(w in name for w in wanted):
            continue
        candidates = [stored_form(f.descriptors) for f in stored]
        right_first = all_right = wrong = 0
        inliers, seconds = [], 0.0
        for query, photo in zip(queries, photos):
            started = time.perf_counter()
            pairs = matched(query_form(query.features.descriptors), candidates)
            seconds += time.perf_counter() - started
            found = [verify(query.features.keypoints, f.keypoints, m, s, query.scale, query.size, SEARCH_EVIDENCE)
                     for f, s, m in zip(stored, sizes, pairs)]
            right = next(i for i, p in enumerate(covers) if p.name == photo.name)
            verified = [i for i, v in enumerate(found) if v.corners is not None]
            all_right += right in verified
            inliers.append(found[right].inliers if right in verified else 0)
            wrong += sum(i != right for i in verified)
            best = max(verified, key=lambda i: found[i].inliers, default=None)
            right_first += best == right
        print(f"{name}: right first {right_first}/{len(photos)}, all right verified {all_right}, median inliers "
              f"{statistics.median(inliers):.0f}, wrong pairs verified {wrong}, {nbytes} bytes a descriptor, "
              f"matching {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
