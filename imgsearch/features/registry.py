"""Names -> extractor factories. A new descriptor is one module plus one entry here."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.features.base import Extractor
from imgsearch.features.cnn import DEFAULT_MAX_SIDE, DEFAULT_POOLING_PARAMS, MULTI_SCALES, CnnExtractor
from imgsearch.features.color import Hsv72Histogram, RgbHistogram
from imgsearch.features.local import SiftExtractor
from imgsearch.features.phash import PerceptualHash


@dataclass(frozen=True)
class CnnOptions:
    """What a user may choose for the CNN extractors (config [cnn] or build/eval flags)."""

    max_side: int = DEFAULT_MAX_SIDE
    multiscale: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "scales": MULTI_SCALES if self.multiscale else (1.0,)}


def _colour(cls: type[Extractor]) -> Callable[[CnnOptions], Extractor]:
    return lambda options: cls()


def _cnn(pooling: str) -> Callable[[CnnOptions], Extractor]:
    return lambda options: CnnExtractor(pooling, **options.kwargs(), **DEFAULT_POOLING_PARAMS[pooling])


EXTRACTORS: dict[str, Callable[[CnnOptions], Extractor]] = {
    "rgb": _colour(RgbHistogram),
    "hsv72": _colour(Hsv72Histogram),
    **{f"cnn-{pooling}": _cnn(pooling) for pooling in DEFAULT_POOLING_PARAMS},
    "sift": lambda options: SiftExtractor(),
    "phash": lambda options: PerceptualHash(),
}


def names_of_kind(kind: str) -> tuple[str, ...]:
    """The registered extractors whose rows are of this kind (Extractor.kind), sorted."""
    return tuple(sorted(name for name, make in EXTRACTORS.items() if make(CnnOptions()).kind == kind))


def without_kind(names: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The names less those of extractors whose rows are of this kind (build --no-local-features)."""
    return tuple(name for name in names if name not in names_of_kind(kind))


def make_extractor(name: str, stored_params: str | None = None, options: CnnOptions = CnnOptions()) -> Extractor:
    """A new extractor of that name, or, given the params stored with its vectors, the
    one that made them (fitted state included)."""
    try:
        extractor = EXTRACTORS[name](options)
    except KeyError:
        raise ImgsearchError(
            f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None
    return extractor.restore(json.loads(stored_params)) if stored_params else extractor
