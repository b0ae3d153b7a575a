"""Which part of the query photo a verified image matched: the photo's object, or only its
surroundings (the desk, the wall, the room it was taken in). Photos of one shooting session
verify against each other on their shared background, often with more inliers than a photo
of the same object taken elsewhere; ranked by inliers alone, the other objects on the same
desk come first (issue 39).

The verified images are grouped by where their inliers lie in the query photo (one group:
images matching the same part, each holding most of the other's cells), and the group whose
inliers lie nearest the photo's centre holds the object: the part a person aims the camera
at. An image matched the object when most of its inliers lie there, or when most of the
object's lie where it matched (a copy of the whole photo, a burst: the object and more);
the others matched only the scene. Two observations make this hold without knowing the
object: an image matching the object and one matching the background share almost no cells
of the photo, and a photo of an object has it nearer the centre than its surroundings.
Measured on the development photos (SMVS DVD, two phones; docs/benchmarks.md) the inliers
of a right answer lie 0.13 of the photo's size from its centre at the median, a same-desk
photo's 0.37. With one group there is nothing to tell apart: every verified image matched
the object. A user's box makes the box the photo, so every match is inside it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OBJECT, SCENE = "object", "scene"
GRID = 12  # cells a side: where in the photo inliers lie, coarse enough that two matches of one part meet
SHARED = 0.5  # share of inliers in cells another match holds that makes the two matches of one part


def _cell_of(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The GRID x GRID cell of a photo (height, width) each point (x, y first) lies in."""
    height, width = size
    x = np.clip((points[:, 0] / max(width, 1) * GRID).astype(np.int64), 0, GRID - 1)
    y = np.clip((points[:, 1] / max(height, 1) * GRID).astype(np.int64), 0, GRID - 1)
    return y * GRID + x


def _cells(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """How many of the points fall in each of the GRID x GRID cells of a photo (height, width)."""
    return np.bincount(_cell_of(points, size), minlength=GRID * GRID)


def off_centre(points: np.ndarray, size: tuple[int, int]) -> float:
    """The points' mean distance from the photo's centre, in shares of its width and height."""
    if not len(points):
        return float("inf")
    height, width = size
    return float(np.mean(np.hypot(points[:, 0] / max(width, 1) - 0.5, points[:, 1] / max(height, 1) - 0.5)))


def _held(counts: np.ndarray, cells: np.ndarray) -> float:
    """The share of the points counted per cell in `counts` that lie in cells where `cells`
    has points."""
    return float(counts[cells > 0].sum()) / max(int(counts.sum()), 1)


def _parts(size: tuple[int, int], inliers: Sequence[np.ndarray | None]) -> tuple[list[str | None], list[float]]:
    """match_kinds, and each verified image's share of inliers on the object's cells."""
    verified = sorted((i for i, found in enumerate(inliers) if found is not None), key=lambda i: -len(inliers[i]))
    cells = {i: _cells(inliers[i], size) for i in verified}  # type: ignore[arg-type]
    groups: list[tuple[np.ndarray, list[int]]] = []  # (inliers per cell, members)
    for i in verified:
        # both ways: a copy of the whole photo holds every part's cells, and no part holds its
        shares = [min(_held(cells[i], held), _held(held, cells[i])) for held, _ in groups]
        best = int(np.argmax(shares)) if shares else -1
        if best >= 0 and shares[best] >= SHARED:
            groups[best][0][:] += cells[i]
            groups[best][1].append(i)
        else:
            groups.append((cells[i].copy(), [i]))
    kinds: list[str | None] = [None] * len(inliers)
    inside = [0.0] * len(inliers)
    if not groups:
        return kinds, inside

    def group_off_centre(members: list[int]) -> float:
        return off_centre(np.vstack([inliers[i] for i in members]), size)  # type: ignore[misc]

    aimed = groups[min(range(len(groups)), key=lambda g: group_off_centre(groups[g][1]))][0]
    for i in verified:
        inside[i] = _held(cells[i], aimed)
        kinds[i] = OBJECT if inside[i] >= SHARED or _held(aimed, cells[i]) >= SHARED else SCENE
    return kinds, inside


def match_kinds(size: tuple[int, int], inliers: Sequence[np.ndarray | None]) -> list[str | None]:
    """Per image, OBJECT or SCENE where it is verified (`inliers`: where in the query photo
    its inliers lie, n x 2), None where not. The verified are taken most inliers first; each
    joins the group whose inliers and its own lie, SHARED of each, in cells the other holds
    (a copy of the whole photo holds every part's cells, but no part holds most of its), else
    starts a group. The group nearest the centre holds the object: an image with SHARED of
    its inliers in that group's cells, or in whose cells SHARED of that group's inliers lie
    (a copy, a burst: the object and more), shows the object. size: the query's (height,
    width)."""
    return _parts(size, inliers)[0]


def views_of_object(size: tuple[int, int], inliers: Sequence[np.ndarray | None]) -> list[bool]:
    """Which verified images matched the object and little else (SHARED of their inliers on
    its cells): other views of it, not copies of the whole photo."""
    kinds, inside = _parts(size, inliers)
    return [kind == OBJECT and share >= SHARED for kind, share in zip(kinds, inside)]


def unexplained(query_points: np.ndarray, size: tuple[int, int], inliers: Sequence[np.ndarray | None]) -> np.ndarray:
    """Which of the query's keypoints lie in cells where no verified image has inliers: the
    part of the photo nothing found explains (where an object is when only photos of its
    surroundings verified)."""
    matched = sum((_cells(points, size) for points in inliers if points is not None), np.zeros(GRID * GRID, np.int64))
    return matched[_cell_of(query_points, size)] == 0
