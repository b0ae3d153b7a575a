"""Names -> extractor factories. A new descriptor is one module plus one entry here."""
from __future__ import annotations

from typing import Callable

from imgsearch.errors import ImgsearchError
from imgsearch.features.base import Extractor
from imgsearch.features.color import Hsv72Histogram, RgbHistogram

EXTRACTORS: dict[str, Callable[[], Extractor]] = {
    "rgb": RgbHistogram,
    "hsv72": Hsv72Histogram,
}

DEFAULT_EXTRACTOR = "rgb"


def make_extractor(name: str) -> Extractor:
    try:
        return EXTRACTORS[name]()
    except KeyError:
        raise ImgsearchError(
            f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None
