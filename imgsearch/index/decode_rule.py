"""An extractor stored by another decode rule than the one it is now built by (decoding):
an index made before the rule, or a rule that changed. Before the build plans, the images
whose pixels the change alters lose that extractor's rows, its calibration is dropped,
and only then the stored rule changes; the build's plan then sees those images lacking
the extractor and extracts them again. So each is extracted once, and one extractor
never holds vectors made by two rules: killed while forgetting, the rule is still the old
one and the next build forgets the rest; killed after, the missing images are what an
interrupted build leaves, and the rerun completes them."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from imgsearch.decoding import decode_side_of, decoded_differently, with_decode_side
from imgsearch.index.calibration import forget_calibration
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow


@dataclass(frozen=True)
class RuleChange:
    extractor: str
    old_side: int | None  # None: the full decode
    new_side: int
    images: int  # extracted again

    def line(self) -> str:
        before = "the full decode" if self.old_side is None else f"a decode to {self.old_side:,} px a side"
        larger = (f"the {self.images} images larger than that are" if self.images != 1
                  else "the 1 image larger than that is")
        return (f"{self.extractor}: stored from {before}, now decoded to at most {self.new_side:,} px a side: "
                f"{larger} extracted again")


def bring_to_decode_rule(store: FeatureStore, row: ExtractorRow, side: int) -> tuple[ExtractorRow, RuleChange | None]:
    """The extractor's row under the rule `side`, and what changed to get there (None when
    it was stored by that rule). Under a lock: sharded builds change it once."""
    def waiting() -> None:
        print("imgsearch: waiting for another build to bring this index to the decode rule", file=sys.stderr,
              flush=True)

    with store.named_lock("decode-rule", waiting):
        current = store.find_extractor(row.name)
        assert current is not None, "the build registered it"
        old = decode_side_of(current.params)
        if old == side:
            return current, None
        have = store.image_ids_with_features(current)
        changed = sorted(image.id for image in store.stored_images().values()
                         if image.id in have and decoded_differently(old, side, max(image.width, image.height)))
        store.forget_features(current, changed)
        if changed:
            forget_calibration(store, current.name)
        updated = store.set_extractor_params(current, with_decode_side(current.params, side))
    return updated, RuleChange(current.name, old, side, len(changed))
