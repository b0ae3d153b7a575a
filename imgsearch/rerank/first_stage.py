"""The visual-word first stage of verification: the images whose words best match the
query photo's, by tf-idf in SQL (store.words_tables), to be verified beside the global
stage's shortlist. It finds what the global descriptor ranks too low: an object that is
a small part of the photo, tilted, half hidden."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from imgsearch.keypoints import LocalFeatures
from imgsearch.rerank.words import Vocabulary
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow
from imgsearch.store.words_tables import VocabularyRow, scored_by_words, vocabulary_centres, vocabulary_row

# images the word stage adds to the global shortlist (at most): on real phone photos the
# right image was within the words' first 50 or the global first 100 every time (issue 29)
WORD_CANDIDATES = 50
CACHED = 4  # vocabularies a process keeps (a service reads one once, not at every query)
SWITCHES_FOLLOWED = 3  # vocabularies a words stage tries when each was replaced while it read

_cache: OrderedDict[int, Vocabulary] = OrderedDict()


def stored_vocabulary(store: FeatureStore, extractor: ExtractorRow) -> tuple[Vocabulary, VocabularyRow] | None:
    """The extractor's vocabulary tree and its row (the images it was learned at, where its
    words are numbered), None when the index has none; the tree kept by its token."""
    if "visual_vocabularies" not in store.existing_tables():
        return None  # an index of an imgsearch before visual words: its next build adds them
    row = vocabulary_row(store, extractor)
    if row is None:
        return None
    if row.token not in _cache:
        _cache[row.token] = Vocabulary.from_bytes(*vocabulary_centres(store, extractor), extractor.dim)
        while len(_cache) > CACHED:
            _cache.popitem(last=False)
    _cache.move_to_end(row.token)
    return _cache[row.token], row


@dataclass(frozen=True)
class QueryWords:
    """The query photo's words under the index's vocabulary."""

    words: np.ndarray  # one per query keypoint
    vocabulary: Vocabulary
    row: VocabularyRow  # the vocabulary's row: the collection's size it was learned at, its word numbers

    def candidates(self, store: FeatureStore, extractor: ExtractorRow, excluded: list[int],
                   n: int = WORD_CANDIDATES) -> list[tuple[int, float]] | None:
        """(image id, tf-idf score) of the n best images by these words; None when another
        vocabulary became current meanwhile (a build's relearning switched: the postings
        read may have been this one's, being deleted)."""
        found = scored_by_words(store, extractor, self.row, self.words, self.vocabulary.shares, n, excluded)
        now = vocabulary_row(store, extractor)
        return found if now is not None and now.token == self.row.token else None


def query_words(store: FeatureStore, extractor: ExtractorRow, query: LocalFeatures) -> QueryWords | None:
    """The query's words; None when the index has no vocabulary."""
    found = stored_vocabulary(store, extractor)
    if found is None:
        return None
    vocabulary, row = found
    return QueryWords(vocabulary.words(query.descriptors), vocabulary, row)


def word_candidates(store: FeatureStore, extractor: ExtractorRow, query: LocalFeatures, excluded: list[int],
                    n: int = WORD_CANDIDATES) -> list[tuple[int, float]]:
    """The words stage: (image id, score) of the n best images by the query's words under
    the vocabulary that is current when the postings have been read (its words taken again
    when a relearning switched meanwhile); [] when the index has no vocabulary, or when it
    kept switching (the stage only adds candidates)."""
    for _ in range(SWITCHES_FOLLOWED):
        words = query_words(store, extractor, query)
        if words is None:
            return []
        found = words.candidates(store, extractor, excluded, n)
        if found is not None:
            return found
    return []
