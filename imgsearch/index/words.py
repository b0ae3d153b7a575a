"""Visual words upkeep after a build: learn the vocabulary tree of a local extractor from
a sample of the collection's descriptors (again when the collection has grown RELEARN_GROWTH
times since), then give every image with local features but no words its words: the
inverted file the first stage of verification reads (rerank.words, store.words_tables)."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from tqdm import tqdm

from imgsearch.rerank.words import SEED, Vocabulary, learn_vocabulary, sample_size
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow
from imgsearch.store.words_tables import (
    VocabularyRow,
    drop_postings,
    images_without_words,
    spare_word_base,
    switch_vocabulary,
    vocabulary_centres,
    vocabulary_row,
    write_words,
)

# A vocabulary learned on n images is learned again at 2 n: a posting list stays within
# twice what the vocabulary was sized for (rerank.words.sample_size), and every posting is
# rewritten then, so a growing collection writes about twice its final postings in all.
RELEARN_GROWTH = 2
CHUNK = 500  # images whose features are read and whose words are written per transaction


@contextmanager
def words_lock(store: FeatureStore) -> Iterator[None]:
    """One words update of a database at a time (sharded builds finish together)."""
    def waiting() -> None:
        print("imgsearch: waiting for another visual-words update of this index to finish", file=sys.stderr,
              flush=True)

    with store.named_lock("words", waiting):
        yield


def update_words(store: FeatureStore, extractor: ExtractorRow, progress: bool = True) -> list[str]:
    """Bring the extractor's visual words up to date; one line saying what was done."""
    with words_lock(store):
        images = sorted(store.image_ids_with_features(extractor))
        if not images:
            return []
        found = vocabulary_row(store, extractor)
        # what a relearning cut short wrote, or the old postings a switch left undeleted
        drop_postings(store, extractor, spare_word_base(found))
        line, given = "", 0
        if found is None or len(images) >= RELEARN_GROWTH * found.trained_images:
            vocabulary, base, used, given = relearned(store, extractor, found, images, progress)
            line = f"visual words: learned {vocabulary.size} words from {used} descriptors of {len(images)} images; "
        else:
            vocabulary, base = Vocabulary.from_bytes(*vocabulary_centres(store, extractor), extractor.dim), found.word_base
        given += len(give_words(store, extractor, vocabulary, base, images_without_words(store, extractor), {}, True,
                                progress))
        return [f"{line or 'visual words: '}{given} images given their words"] if line or given else []


def relearned(store: FeatureStore, extractor: ExtractorRow, current: VocabularyRow | None, images: list[int],
              progress: bool) -> tuple[Vocabulary, int, int, int]:
    """Learn the vocabulary again and write every image's words under it beside the current
    ones (in the spare range of word numbers, which update_words has cleared), then make it
    current in one transaction and delete the old postings: a search meanwhile reads the old
    inverted file whole, then the new one whole. The vocabulary, its word base, the
    descriptors it was learned from and the images given their words."""
    base = spare_word_base(current)
    vocabulary, used, known = learned_from(store, extractor, images, sample_size(len(images)))
    written = give_words(store, extractor, vocabulary, base, images, known, False, progress)
    switch_vocabulary(store, extractor, vocabulary.branching, used, len(images), vocabulary.to_bytes(), base, written)
    if current is not None:
        drop_postings(store, extractor, current.word_base)
    return vocabulary, base, used, len(written)


def give_words(store: FeatureStore, extractor: ExtractorRow, vocabulary: Vocabulary, word_base: int,
               images: list[int], known: dict[int, np.ndarray], marked: bool, progress: bool) -> dict[int, str]:
    """Write the images' words (`known` where already assigned) numbered from word_base, CHUNK
    images a transaction; `marked`: each image is then one that has its words. The images
    written (those with local features, still there), each with the content (sha256) its
    words are of: read before its features, so a file changed meanwhile shows another."""
    written: dict[int, str] = {}
    with tqdm(total=len(images), unit="img", desc=f"words {extractor.name}", disable=not progress or None) as bar:
        for start in range(0, len(images), CHUNK):
            chunk = images[start : start + CHUNK]
            contents = {i: record.sha256 for i, record in store.images_by_ids(chunk).items()}
            local = store.local_features(extractor, [i for i in chunk if i not in known])
            ids = list(local)
            words = dict(zip(ids, vocabulary.words_of_images([local[i].descriptors for i in ids])))
            done = write_words(store, extractor, {i: known[i] if i in known else words[i] for i in chunk
                                                  if (i in known or i in words) and i in contents}, word_base, marked)
            written.update((i, contents[i]) for i in done)
            bar.update(len(chunk))
    return written


def learned_from(store: FeatureStore, extractor: ExtractorRow, images: list[int],
                 sample: int) -> tuple[Vocabulary, int, dict[int, np.ndarray]]:
    """The tree from up to `sample` descriptors of images drawn at random (a fixed seed), each
    word's share of those images, and their words (written as they are, not assigned twice).
    The draw follows the images' content and paths, not their ids: ids follow the order in
    which a build's workers finished, so two builds of one folder learn the same words."""
    stored = store.images_by_ids(images)
    by_content = sorted(images, key=lambda i: (stored[i].sha256, stored[i].path))
    order = np.random.default_rng(SEED).permutation(by_content).tolist()
    drawn: dict[int, np.ndarray] = {}
    total = 0
    for start in range(0, len(order), CHUNK):
        chunk = order[start : start + CHUNK]
        found = store.local_features(extractor, chunk)
        for image in (i for i in chunk if i in found):
            drawn[image] = found[image].descriptors
            total += len(found[image].descriptors)
        if total >= sample:
            break
    chosen = list(drawn.values())
    descriptors = np.vstack(chosen)[:sample] if chosen else np.empty((0, extractor.dim), np.uint8)
    vocabulary = learn_vocabulary(descriptors)
    words = dict(zip(drawn, vocabulary.words_of_images(chosen)))
    return vocabulary.with_shares(list(words.values())), len(descriptors), words
