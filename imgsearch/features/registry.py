"""Names -> extractor factories, each with what it is for a person (the command line's help).
A new descriptor is one module plus one entry here."""
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


@dataclass(frozen=True)
class Registered:
    make: Callable[[CnnOptions], Extractor]
    description: str


def _cnn(pooling: str, description: str) -> Registered:
    return Registered(lambda options: CnnExtractor(pooling, **options.kwargs(), **DEFAULT_POOLING_PARAMS[pooling]),
                      description)


EXTRACTORS: dict[str, Registered] = {
    "rgb": Registered(lambda options: RgbHistogram(), "the demo's RGB colour histogram"),
    "hsv72": Registered(lambda options: Hsv72Histogram(), "the demo's 72-bin HSV colour histogram"),
    "cnn-spoc": _cnn("spoc", "sum, Babenko 2015"),
    "cnn-mac": _cnn("mac", "max, Tolias 2016"),
    "cnn-rmac": _cnn("rmac", "regional max, Tolias 2016"),
    "cnn-gem": _cnn("gem", "generalized mean, Radenovic 2018"),
    "cnn-crow": _cnn("crow", "cross-dimensional weights, Kalantidis 2016"),
    "cnn-pwa": _cnn("pwa", "part-based weights, Xu 2018"),
    "cnn-cam": _cnn("cam", "class-weighted, Jimenez 2017"),
    "sift": Registered(lambda options: SiftExtractor(), "SIFT local features: they verify matches, not searched"),
    "phash": Registered(lambda options: PerceptualHash(), "a perceptual hash: it finds copies, not searched"),
}


def help_text() -> str:
    return ("Descriptor: " + "; ".join(f"{name} ({entry.description})" for name, entry in EXTRACTORS.items())
            + ". The cnn-* pool EfficientNet-Lite0's last feature map.")


def names_of_kind(kind: str) -> tuple[str, ...]:
    """The registered extractors whose rows are of this kind (Extractor.kind), sorted."""
    return tuple(sorted(name for name, entry in EXTRACTORS.items() if entry.make(CnnOptions()).kind == kind))


def without_kind(names: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The names less those of extractors whose rows are of this kind (build --no-local-features)."""
    return tuple(name for name in names if name not in names_of_kind(kind))


def make_extractor(name: str, stored_params: str | None = None, options: CnnOptions = CnnOptions()) -> Extractor:
    """A new extractor of that name, or, given the params stored with its vectors, the
    one that made them (fitted state included)."""
    try:
        extractor = EXTRACTORS[name].make(options)
    except KeyError:
        raise ImgsearchError(
            f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None
    return extractor.restore(json.loads(stored_params)) if stored_params else extractor
