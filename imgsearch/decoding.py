"""The decode rule stored with an extractor's params: the longest side its input image is
decoded to (index.images.decode_to_side), under the key `decode_side`. An extractor
stored without it was built from the full decode, and keeps that rule (its vectors stay
comparable with each other); one registered since reads at most that many pixels a side.

The key says how pixels reached the extractor, not what it computes: comparisons of
configurations leave it out."""
from __future__ import annotations

import json

DECODE_SIDE_KEY = "decode_side"
# The longest side every default extractor is satisfied with: colour histograms over at
# most 1024 x 768 pixels (docs/benchmarks.md: their difference from the full photo's),
# local features at 640, the network at 256.
DEFAULT_DECODE_SIDE = 1024


def decode_side_of(params: str) -> int | None:
    """The stored rule: the side an extractor's input is decoded to, None for the full decode."""
    side = json.loads(params).get(DECODE_SIDE_KEY)
    return int(side) if side is not None else None


def without_decode_rule(params: str) -> str:
    """The params as a canonical JSON text without the decode rule: what the extractor computes."""
    values = json.loads(params)
    values.pop(DECODE_SIDE_KEY, None)
    return json.dumps(values, sort_keys=True, separators=(",", ":"))
