"""The Extractor interface every descriptor family implements."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

import numpy as np


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

    def params_json(self) -> str:
        """Canonical JSON of params, so equal params compare equal as text."""
        return json.dumps(self.params, sort_keys=True, separators=(",", ":"))
