"""Which part of the query photo a verified image matched: the photo's object, or only its
surroundings (the desk, the wall, the room it was taken in). Photos of one shooting session
verify against each other on their shared background, often with more inliers than a photo
of the same object taken elsewhere; ranked by inliers alone, the other objects on the same
desk come first (issue 39).

The verified images are grouped by where their inliers lie in the query photo (one group:
images matching the same part), and the group whose inliers lie nearest the photo's centre
is the object: the part a person aims the camera at. The others matched the scene. Two
observations make this hold without knowing the object: an image matching the object and
one matching the background share almost no cells of the photo, and a photo of an object
has it nearer the centre than its surroundings. Measured on the development photos (SMVS
DVD, two phones; docs/benchmarks.md) the inliers of a right answer lie 0.13 of the
photo's size from its centre at the median, a same-desk photo's 0.37. With one group there
is nothing to tell apart: every verified image matched the object. A user's box makes the
box the photo, so every match is inside it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OBJECT, SCENE = "object", "scene"
GRID = 12  # cells a side: where in the photo inliers lie, coarse enough that two matches of one part meet
SHARED = 0.5  # share of an image's inliers in cells a group already holds that joins it to the group


def _cells(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """How many of the points fall in each of the GRID x GRID cells of a photo (height, width)."""
    height, width = size
    x = np.clip((points[:, 0] / max(width, 1) * GRID).astype(np.int64), 0, GRID - 1)
    y = np.clip((points[:, 1] / max(height, 1) * GRID).astype(np.int64), 0, GRID - 1)
    return np.bincount(y * GRID + x, minlength=GRID * GRID)


def _off_centre(points: np.ndarray, size: tuple[int, int]) -> float:
    """The points' mean distance from the photo's centre, in shares of its width and height."""
    if not len(points):
        return float("inf")
    height, width = size
    return float(np.mean(np.hypot(points[:, 0] / max(width, 1) - 0.5, points[:, 1] / max(height, 1) - 0.5)))


def match_kinds(query_points: np.ndarray, size: tuple[int, int],
                inliers: Sequence[np.ndarray | None]) -> list[str | None]:
    """Per image, OBJECT or SCENE where it is verified (`inliers`: the indices of the query
    keypoints it matched), None where not: the verified are taken most inliers first; each
    joins the group holding the cells of SHARED of its inliers, else starts a group; the
    group nearest the centre is the object. query_points: the query's keypoints (x, y
    first), size: its (height, width)."""
    verified = sorted((i for i, found in enumerate(inliers) if found is not None), key=lambda i: -len(inliers[i]))
    groups: list[tuple[np.ndarray, list[np.ndarray], list[int]]] = []  # (inliers per cell, their points, members)
    for i in verified:
        points = query_points[inliers[i], :2]
        cells = _cells(points, size)
        shares = [float(cells[held > 0].sum()) / max(int(cells.sum()), 1) for held, _, _ in groups]
        best = int(np.argmax(shares)) if shares else -1
        if best >= 0 and shares[best] >= SHARED:
            groups[best][0][:] += cells
            groups[best][1].append(points)
            groups[best][2].append(i)
        else:
            groups.append((cells.copy(), [points], [i]))
    kinds: list[str | None] = [None] * len(inliers)
    if not groups:
        return kinds
    aimed = min(range(len(groups)), key=lambda g: _off_centre(np.vstack(groups[g][1]), size))
    for g, (_, _, members) in enumerate(groups):
        for i in members:
            kinds[i] = OBJECT if g == aimed else SCENE
    return kinds
