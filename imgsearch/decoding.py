"""The decode rule stored with an extractor's params: the longest side its input image is
decoded to (index.images.decode_to_side), under the key `decode_side`. An extractor
stored without it was built from the full decode; the next build brings it to the rule
its configuration asks for, extracting again only the images the change alters
(index.decode_rule).

The key says how pixels reached the extractor, not what it computes: comparisons of
configurations leave it out."""
from __future__ import annotations

import json

DECODE_SIDE_KEY = "decode_side"
# The longest side every default extractor is satisfied with: colour histograms over at
# most 1024 x 768 pixels (docs/benchmarks.md: their difference from the full photo's),
# local features at 640, the network at 256.
DEFAULT_DECODE_SIDE = 1024


def canonical_json(values: dict) -> str:
    """Params as the one text they are stored as: equal params compare equal as text."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def decode_side_of(params: str) -> int | None:
    """The stored rule: the side an extractor's input is decoded to, None for the full decode."""
    side = json.loads(params).get(DECODE_SIDE_KEY)
    return int(side) if side is not None else None


def without_decode_rule(params: str) -> str:
    """The params as a canonical JSON text without the decode rule: what the extractor computes."""
    values = json.loads(params)
    values.pop(DECODE_SIDE_KEY, None)
    return canonical_json(values)


def with_decode_side(params: str, side: int) -> str:
    """The params as a canonical JSON text, their decode rule `side`."""
    values = json.loads(params)
    values[DECODE_SIDE_KEY] = side
    return canonical_json(values)


def decoded_differently(old: int | None, new: int, longer_side: int) -> bool:
    """Whether an image whose longer side has this many pixels reaches an extractor as other
    pixels under the rule `new` than under `old` (None: the full decode). decode_to_side
    leaves an image no larger than its side exactly as the full decode makes it, so only
    an image larger than the smaller of the two sides changes."""
    return longer_side > min(new if old is None else old, new) and old != new
