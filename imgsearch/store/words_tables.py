"""The visual-word tables (visual_vocabularies, visual_words, word_images) behind
FeatureStore: the vocabulary tree's centres, the inverted file, and tf-idf scoring of a
query's words in SQL, so that a first stage reads only the postings of the query's words."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from imgsearch.store.records import ExtractorRow, id_chunks
from imgsearch.store.session import SqlSession

POSTING_ROWS = 20_000  # postings per INSERT batch
# Postings a query reads, about: a cost that stays flat as the collection grows (the rarest
# of its words first). 30,000 is a quarter to a half of what a 1,000-keypoint photo's words
# hold among 9,039 images (bench/instance.py).
POSTINGS_BUDGET = 30_000


# Two ranges of word numbers take turns. A vocabulary learned again writes its postings in
# the range the current one does not use, and becomes current only once they are all
# written (switch_vocabulary, one transaction): a search running beside the relearning reads
# the old inverted file whole until then, and the new one whole after. 2**22 is above the
# largest tree (rerank.words.BRANCHING**2 = 360,000 words) and keeps a word's number within
# SQLite's 3-byte integers.
WORD_RANGE = 2**22
WORDS_DROPPED_PER_STEP = 1_024  # one transaction deletes the postings of this many words


@dataclass(frozen=True)
class VocabularyRow:
    branching: int
    trained_images: int
    token: int  # new with each vocabulary: (token) names its centres
    word_base: int  # its words are numbered from here in visual_words (0 or WORD_RANGE)


def vocabulary_row(session: SqlSession, extractor: ExtractorRow) -> VocabularyRow | None:
    rows = session.execute("SELECT branching, trained_images, token, word_base FROM visual_vocabularies "
                           "WHERE extractor_id = ?", (extractor.id,))
    return VocabularyRow(*(int(v) for v in rows[0])) if rows else None


def spare_word_base(current: VocabularyRow | None) -> int:
    """Where the postings of a vocabulary learned next go: the range the current one leaves."""
    return WORD_RANGE if current is not None and current.word_base == 0 else 0


def drop_postings(session: SqlSession, extractor: ExtractorRow, word_base: int) -> None:
    """Delete every posting numbered in the range from word_base (a replaced vocabulary's, or
    what an interrupted relearning left there), a bounded number of words a transaction."""
    end = word_base + WORD_RANGE
    while True:
        left = session.execute("SELECT MIN(word) FROM visual_words WHERE extractor_id = ? AND word >= ? AND word < ?",
                               (extractor.id, word_base, end))[0][0]
        if left is None:
            return
        session.write(functools.partial(
            session.execute, "DELETE FROM visual_words WHERE extractor_id = ? AND word >= ? AND word < ?",
            (extractor.id, int(left), min(int(left) + WORDS_DROPPED_PER_STEP, end))))


def switch_vocabulary(session: SqlSession, extractor: ExtractorRow, branching: int, trained_on: int,
                      trained_images: int, centres: tuple[bytes, list[bytes], bytes], word_base: int,
                      images: dict[int, str]) -> None:
    """Make a vocabulary current, in one transaction: its centres replace the old ones, and
    the images whose words were written under word_base (id -> the sha256 of the content
    they are of) are the ones that have their words, where that is still their content
    (a file changed meanwhile is given its words again). The old vocabulary's postings are
    left for drop_postings."""
    def work() -> None:
        session.execute("DELETE FROM word_images WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM visual_vocabularies WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM vocabulary_cells WHERE extractor_id = ?", (extractor.id,))
        top, cells, shares = centres
        session.execute("INSERT INTO visual_vocabularies (extractor_id, branching, trained_on, trained_images, token, "
                        "centres, shares, word_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (extractor.id, branching, trained_on, trained_images, session.fresh_token(), top, shares,
                         word_base))
        for cell, words in enumerate(cells):
            session.execute("INSERT INTO vocabulary_cells (extractor_id, cell, centres) VALUES (?, ?, ?)",
                            (extractor.id, cell, words))
        for chunk, marks in id_chunks(sorted(images)):
            same = [int(i) for i, sha256 in session.execute(f"SELECT id, sha256 FROM images WHERE id IN ({marks})",
                                                             chunk) if sha256 == images[int(i)]]
            session.executemany("INSERT INTO word_images (extractor_id, image_id) VALUES (?, ?)",
                                [(extractor.id, image_id) for image_id in same])
    session.write(work)


def vocabulary_centres(session: SqlSession, extractor: ExtractorRow) -> tuple[bytes, list[bytes], bytes]:
    """The top centres, in cell order each cell's words, and the words' shares."""
    top, shares = session.execute("SELECT centres, shares FROM visual_vocabularies WHERE extractor_id = ?",
                                  (extractor.id,))[0]
    cells = session.execute("SELECT centres FROM vocabulary_cells WHERE extractor_id = ? ORDER BY cell",
                            (extractor.id,))
    return bytes(top), [bytes(c[0]) for c in cells], bytes(shares)


def images_without_words(session: SqlSession, extractor: ExtractorRow) -> list[int]:
    rows = session.execute(
        "SELECT l.image_id FROM local_features l LEFT JOIN word_images w "
        "ON w.extractor_id = l.extractor_id AND w.image_id = l.image_id "
        "WHERE l.extractor_id = ? AND w.image_id IS NULL ORDER BY l.image_id", (extractor.id,))
    return [int(r[0]) for r in rows]


def write_words(session: SqlSession, extractor: ExtractorRow, words: dict[int, np.ndarray], word_base: int,
                marked: bool = True) -> list[int]:
    """Each image's words (one per keypoint) as postings numbered from word_base, and, when
    `marked`, its row in word_images (it has its words), in one transaction; the images
    written. An image deleted meanwhile is skipped (its postings would have no image)."""
    def work() -> list[int]:
        present: set[int] = set()
        for chunk, marks in id_chunks(sorted(words)):
            present.update(int(r[0]) for r in session.execute(f"SELECT id FROM images WHERE id IN ({marks})", chunk))
        postings = []
        for image_id in sorted(present):
            found, counts = np.unique(words[image_id], return_counts=True)
            norm = float(np.sqrt((counts.astype(np.float64) ** 2).sum()))
            postings += [(extractor.id, word_base + int(w), image_id, int(n), n / norm) for w, n in zip(found, counts)]
        for start in range(0, len(postings), POSTING_ROWS):
            session.executemany("REPLACE INTO visual_words (extractor_id, word, image_id, n, tf) VALUES (?, ?, ?, ?, ?)",
                                postings[start : start + POSTING_ROWS])
        if marked:
            session.executemany("REPLACE INTO word_images (extractor_id, image_id) VALUES (?, ?)",
                                [(extractor.id, image_id) for image_id in sorted(present)])
        return sorted(present)
    return session.write(work)


def query_word_weights(words: np.ndarray, shares: np.ndarray, images: int,
                       budget: int = POSTINGS_BUDGET) -> list[tuple[int, float]]:
    """(word, weight) of the query words scored_by_words looks up: its rarest words up to
    about `budget` postings (share x images each), each weighing count_query x idf^2."""
    found, counts = np.unique(words, return_counts=True)
    rarest = np.lexsort((found, shares[found]))
    expected = np.cumsum(shares[found][rarest].astype(np.float64) * max(images, 1))
    used = rarest[: max(1, int(np.searchsorted(expected, budget, side="right")))]
    return [(int(found[i]), float(counts[i] * np.log(float(shares[found[i]])) ** 2)) for i in used]


def scored_by_words(session: SqlSession, extractor: ExtractorRow, vocabulary: VocabularyRow, words: np.ndarray,
                    shares: np.ndarray, n: int, excluded: list[int],
                    budget: int = POSTINGS_BUDGET) -> list[tuple[int, float]]:
    """The n images whose words best match the query's (one word per query keypoint), by
    tf-idf (Sivic & Zisserman 2003): score = sum over shared words of count_query * tf *
    idf^2, tf = the image's count over the L2 norm of its counts, idf = -log(share), the
    word's share of images (the vocabulary's). Only the query's rarest words are looked up,
    up to about `budget` postings (share x images each): the frequent words weigh least
    (idf^2) and cost most. The sum runs in SQL over a temporary table of the query's word
    weights: only the n best rows come back."""
    if not len(words) or n <= 0:
        return []
    weights = [(vocabulary.word_base + word, weight)
               for word, weight in query_word_weights(words, shares, vocabulary.trained_images, budget)]
    session.execute("CREATE TEMPORARY TABLE IF NOT EXISTS query_words (word BIGINT PRIMARY KEY, weight DOUBLE)")
    session.execute("DELETE FROM query_words")
    session.executemany("INSERT INTO query_words (word, weight) VALUES (?, ?)", weights)
    # CROSS JOIN: SQLite keeps this order (each query word's postings by the primary key);
    # for MySQL it is an inner join like any other
    rows = session.execute(
        "SELECT v.image_id, SUM(v.tf * q.weight) AS score FROM query_words q CROSS JOIN visual_words v "
        "WHERE v.extractor_id = ? AND v.word = q.word GROUP BY v.image_id ORDER BY score DESC, v.image_id LIMIT ?",
        (extractor.id, n + len(excluded)))
    session.execute("DELETE FROM query_words")
    drop = set(excluded)
    return [(int(i), float(score)) for i, score in rows if int(i) not in drop][:n]
