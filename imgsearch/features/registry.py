"""Names -> extractor factories. A new descriptor is one module plus one entry here."""
from __future__ import annotations

import json
from typing import Callable

from imgsearch.errors import ImgsearchError
from imgsearch.features.base import Extractor
from imgsearch.features.cnn import DEFAULT_POOLING_PARAMS, CnnExtractor
from imgsearch.features.color import Hsv72Histogram, RgbHistogram


def _cnn(pooling: str) -> Callable[[], Extractor]:
    return lambda: CnnExtractor(pooling, **DEFAULT_POOLING_PARAMS[pooling])


EXTRACTORS: dict[str, Callable[[], Extractor]] = {
    "rgb": RgbHistogram,
    "hsv72": Hsv72Histogram,
    **{f"cnn-{pooling}": _cnn(pooling) for pooling in DEFAULT_POOLING_PARAMS},
}


def make_extractor(name: str, stored_params: str | None = None) -> Extractor:
    """A new extractor of that name, or, given the params stored with its vectors, the
    one that made them (with its fitted state)."""
    try:
        extractor = EXTRACTORS[name]()
    except KeyError:
        raise ImgsearchError(
            f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None
    return extractor.restore(json.loads(stored_params)) if stored_params and extractor.needs_fit else extractor
