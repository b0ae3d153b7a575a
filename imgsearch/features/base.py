"""The Extractor interface every descriptor family implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import numpy as np

from imgsearch.decoding import DEFAULT_DECODE_SIDE, canonical_json, with_decode_side


class Extractor(ABC):
    """Turns one decoded BGR image into a fixed-length float32 vector.

    `params` fully determines the output: it is stored with the vectors, and a query whose
    params differ from the stored ones is refused (its vectors would not be comparable).
    """

    name: str

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]: ...

    @abstractmethod
    def extract(self, bgr: np.ndarray) -> np.ndarray: ...

    # What extract returns and where it is kept: "vector" (a float32 vector, scanned),
    # "local" (LocalFeatures: they verify matches, --rerank verify) or "hash" (an ImageHash:
    # finds copies, `imgsearch duplicates`). Only vectors are searched.
    kind: str = "vector"

    def for_query(self) -> Extractor:
        """The extractor a query photo is described with: this one, except where a query
        needs more than a stored image (local features: more keypoints)."""
        return self

    # Extractors with state learned from the collection (PWA's part detectors) fit once,
    # store that state in their params, and are restored from the stored params later.
    needs_fit: bool = False

    def fit(self, images: Iterable[np.ndarray]) -> Extractor:
        return self

    def restore(self, params: dict[str, Any]) -> Extractor:
        return self

    def configuration(self) -> dict[str, Any]:
        """params without the fitted state: what a user chose, comparable before fitting."""
        return self.params

    def params_json(self) -> str:
        """Canonical JSON of params, so equal params compare equal as text."""
        return canonical_json(self.params)

    # The longest side of the image this extractor needs (0: any size will do).
    needed_side: int = 0

    @property
    def decode_side(self) -> int:
        """The decode rule this extractor is built by: its input decoded to at most this many
        pixels a side (decoding)."""
        return max(DEFAULT_DECODE_SIDE, self.needed_side)

    def registered_params_json(self) -> str:
        """params_json with the decode rule a new stored extractor is built by (decoding)."""
        return with_decode_side(self.params_json(), self.decode_side)
