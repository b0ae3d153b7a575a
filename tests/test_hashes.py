"""The perceptual hash: its bits, and the eight mirrored and quarter-turned variants that
are exact operations on them (a turned copy is 0 bits from one variant of the original)."""
import cv2
import numpy as np
import pytest
from photos import PHOTOS, photo

from imgsearch.features.phash import PerceptualHash
from imgsearch.hashes import BITS, ImageHash, dihedral_variants, hamming, pack_bits, unpack_bits

TURNS = {
    "rotate 90": lambda x: cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE),
    "rotate 180": lambda x: cv2.rotate(x, cv2.ROTATE_180),
    "rotate 270": lambda x: cv2.rotate(x, cv2.ROTATE_90_COUNTERCLOCKWISE),
    "mirror": lambda x: cv2.flip(x, 1),
    "upside down": lambda x: cv2.flip(x, 0),
    "transpose": lambda x: cv2.transpose(x),
    "mirror of 90": lambda x: cv2.flip(cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE), 1),
}


def bits_of(pixels: np.ndarray) -> np.ndarray:
    return np.array([PerceptualHash().extract(pixels).bits], dtype=np.uint64)


def test_bits_pack_and_unpack_and_fit_a_signed_bigint() -> None:
    signs = np.random.default_rng(0).random((50, BITS)) > 0.5
    hashes = pack_bits(signs)
    assert (unpack_bits(hashes) == signs).all()
    assert int(hashes.max()) < 2 ** 63
    assert ImageHash.from_signs(signs[0]).bits == int(hashes[0])


@pytest.mark.parametrize("turn", sorted(TURNS))
def test_a_mirrored_or_turned_photo_is_one_variant_of_the_original_hash(turn: str) -> None:
    original = photo("chelsea.png")  # 451 x 300: not square
    variants = dihedral_variants(bits_of(original))
    apart = hamming(variants[:, 0], bits_of(TURNS[turn](original))[0])
    assert apart.min() == 0 and np.sort(apart)[1] >= 16  # one variant exactly; the others far
    assert hamming(variants[0], bits_of(original))[0] == 0  # row 0: the hash itself


def test_copies_are_close_and_different_photos_far() -> None:
    original = photo("astronaut.png")
    half = cv2.resize(original, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    q30 = cv2.imdecode(cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    grey = cv2.cvtColor(cv2.cvtColor(original, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    for copy in (half, q30, grey, np.clip(original * 1.2, 0, 255).astype(np.uint8)):
        assert hamming(bits_of(original), bits_of(copy))[0] <= 4
    hashes = np.concatenate([bits_of(photo(name)) for name in PHOTOS])
    variants = dihedral_variants(hashes)
    apart = np.min([hamming(v[:, None], hashes[None, :]) for v in variants], axis=0)
    assert apart[~np.eye(len(PHOTOS), dtype=bool)].min() > 8  # no two sample photos within the default
