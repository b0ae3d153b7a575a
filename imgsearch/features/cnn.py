"""CNN descriptors: EfficientNet-Lite0 (ImageNet) run from the ONNX file shipped in the
package, its last feature map pooled by one of features/pooling.py's functions.

onnxruntime runs the network when installed (about 2x faster here); otherwise OpenCV's
dnn module does, with outputs equal to 1e-4. Nothing is downloaded, ever.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from imgsearch.decoding import DECODE_SIDE_KEY
from imgsearch.errors import ImgsearchError
from imgsearch.features.base import Extractor
from imgsearch.features.pooling import POOLINGS
from imgsearch.linalg import l2n

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
MODEL_FILE = MODEL_DIR / "efficientnet_lite0.onnx"
CLASSIFIER_FILE = MODEL_DIR / "efficientnet_lite0_classifier.npz"
# Recorded by tools/export_efficientnet.py; checked when the model is loaded.
MODEL_SHA256 = "5991d776e2884d3a7057391c06753670a03da08d4ba895265e4bf76fe18ff2bd"
CHANNELS = 1280
# What the weights expect: RGB, (x - 127) / 128.
MEAN, SCALE = 127.0, 1 / 128
DEFAULT_MAX_SIDE = 256
MULTI_SCALES = (1.0, 2**-0.5, 2**0.5)


class Backbone:
    """The network: NCHW float32 batch in, (feature map N x 1280 x h x w, logits N x 1000) out."""

    def __init__(self, path: Path = MODEL_FILE, threads: int | None = None, runtime: str = "auto") -> None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise ImgsearchError(f"the model file {path} is damaged or replaced (sha256 {digest[:12]}..., expected "
                                 f"{MODEL_SHA256[:12]}...): reinstall imgsearch")
        try:
            if runtime == "opencv":
                raise ImportError
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._net = None
            self.runtime = "onnxruntime"
        except ImportError:
            self._session = None
            self._net = cv2.dnn.readNetFromONNX(str(path))
            self.runtime = "opencv-dnn"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._session is not None:
            features, logits = self._session.run(["features", "logits"], {"images": batch})
            return features, logits
        self._net.setInput(batch)
        features, logits = self._net.forward(["features", "logits"])
        return features, logits


def backbone() -> Backbone:
    # A build's workers each run one image at a time on one core (see index/extraction.py);
    # a query has the machine to itself.
    return _backbone(1 if os.environ.get("IMGSEARCH_WORKER") else None)


@functools.cache
def _backbone(threads: int | None) -> Backbone:
    return Backbone(threads=threads)


@functools.cache
def classifier_weights() -> np.ndarray:
    with np.load(CLASSIFIER_FILE) as data:
        return data["weight"]


def _multiple_of_32(x: float) -> int:
    return max(32, int(round(x / 32)) * 32)


def preprocess(bgr: np.ndarray, max_side: int) -> np.ndarray:
    """Resize keeping the aspect ratio (longer side max_side, both sides multiples of 32)
    and normalise as the weights expect; returns a 1 x 3 x h x w blob."""
    h, w = bgr.shape[:2]
    ratio = max_side / max(h, w)
    size = (_multiple_of_32(w * ratio), _multiple_of_32(h * ratio))
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(bgr, size, interpolation=interpolation)
    return cv2.dnn.blobFromImage(resized, scalefactor=SCALE, mean=(MEAN, MEAN, MEAN), swapRB=True)


class _LastForward:
    """Several CNN extractors of one build share the image's forward passes."""

    pixels: np.ndarray | None = None
    outputs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def get(cls, bgr: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        if cls.pixels is not bgr:
            cls.pixels, cls.outputs = bgr, {}
        if side not in cls.outputs:
            features, logits = backbone().run(preprocess(bgr, side))
            cls.outputs[side] = (features[0], logits[0])
        return cls.outputs[side]


class CnnExtractor(Extractor):
    """A pooled EfficientNet-Lite0 feature map; multi-scale descriptors are averaged over
    the scales (as cnnimageretrieval-pytorch does) and L2-normalised."""

    def __init__(
        self,
        pooling: str,
        max_side: int = DEFAULT_MAX_SIDE,
        scales: Iterable[float] = (1.0,),
        **pooling_params: Any,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}")
        self.pooling = pooling
        self.name = f"cnn-{pooling}"
        self.max_side = _multiple_of_32(max_side)
        self.scales = tuple(float(s) for s in scales)
        self.needed_side = int(np.ceil(self.max_side * max(self.scales)))
        self.pooling_params = pooling_params

    @property
    def needs_fit(self) -> bool:
        return self.pooling == "pwa" and "parts" not in self.pooling_params

    @property
    def dim(self) -> int:
        if self.pooling == "pwa":
            return CHANNELS * len(self.pooling_params.get("parts", [0] * self.pooling_params.get("n_parts", 8)))
        return CHANNELS

    @property
    def params(self) -> dict[str, Any]:
        return {
            "model": MODEL_FILE.name, "model_sha256": MODEL_SHA256, "max_side": self.max_side,
            "scales": list(self.scales), "pooling": self.pooling, **self.pooling_params,
        }

    def restore(self, params: dict[str, Any]) -> CnnExtractor:
        if params.get("model_sha256") != MODEL_SHA256 or params.get("pooling") != self.pooling:
            return self  # not ours to restore; the params check then refuses the mismatch
        state = {k: v for k, v in params.items() if k not in ("model", "model_sha256", "pooling", DECODE_SIDE_KEY)}
        return CnnExtractor(self.pooling, **state)

    def configuration(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k != "parts"}

    def feature_map(self, bgr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        return _LastForward.get(bgr, _multiple_of_32(self.max_side * scale))

    def fit(self, images: Iterable[np.ndarray]) -> CnnExtractor:
        """PWA's part detectors: the channels whose sum-pooled response varies most over
        the collection (Xu et al., 2018)."""
        if not self.needs_fit:
            return self
        n_parts = int(self.pooling_params.get("n_parts", 8))
        responses = np.stack([self.feature_map(bgr, 1.0)[0].sum(axis=(1, 2)) for bgr in images])
        parts = np.argsort(-responses.var(axis=0), kind="stable")[:n_parts]
        return CnnExtractor("pwa", self.max_side, self.scales, **self.pooling_params, parts=sorted(int(p) for p in parts))

    def pool(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The pooled descriptor of a feature map (or of a region of it)."""
        if self.pooling == "pwa":
            if self.needs_fit:
                raise RuntimeError("cnn-pwa must be fitted on the collection first")
            return POOLINGS["pwa"](features, self.pooling_params["parts"])
        if self.pooling == "cam":
            top = np.argsort(-logits)[: int(self.pooling_params.get("top_classes", 5))]
            return POOLINGS["cam"](features, classifier_weights()[top])
        return POOLINGS[self.pooling](features, **self.pooling_params)

    def extract(self, bgr: np.ndarray) -> np.ndarray:
        vectors = [self.pool(*self.feature_map(bgr, s)) for s in self.scales]
        return l2n(np.mean(vectors, axis=0))

    def extract_many(self, images: list[np.ndarray]) -> np.ndarray:
        """extract() of each image (a query photo's crops), the network run once per input
        shape and scale on the batch of those images: one call keeps both cores busy where
        one image a call leaves most of a small input's work to thread start-up."""
        pooled = np.zeros((len(self.scales), len(images), self.dim), np.float32)
        for s, scale in enumerate(self.scales):
            blobs = [preprocess(bgr, _multiple_of_32(self.max_side * scale)) for bgr in images]
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, blob in enumerate(blobs):
                by_shape.setdefault(blob.shape, []).append(i)
            for members in by_shape.values():
                features, logits = backbone().run(np.concatenate([blobs[i] for i in members]))
                for row, i in enumerate(members):
                    pooled[s, i] = self.pool(features[row], logits[row])
        return l2n(pooled.mean(axis=0))


DEFAULT_POOLING_PARAMS: dict[str, dict[str, Any]] = {
    "spoc": {}, "mac": {}, "rmac": {"levels": 3}, "gem": {"p": 3.0}, "crow": {},
    "pwa": {"n_parts": 8}, "cam": {"top_classes": 5},
}
