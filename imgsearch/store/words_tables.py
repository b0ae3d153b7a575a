"""The visual-word tables (visual_vocabularies, visual_words, word_images) behind
FeatureStore: the vocabulary tree's centres, the inverted file, and tf-idf scoring of a
query's words in SQL, so that a first stage reads only the postings of the query's words."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgsearch.store.records import ExtractorRow, id_chunks
from imgsearch.store.session import SqlSession

POSTING_ROWS = 20_000  # postings per INSERT batch
# Postings a query reads, about: a cost that stays flat as the collection grows (the rarest
# of its words first). 30,000 is a quarter to a half of what a 1,000-keypoint photo's words
# hold among 9,039 images (bench/instance.py).
POSTINGS_BUDGET = 30_000


def save_vocabulary(session: SqlSession, extractor: ExtractorRow, branching: int, trained_on: int,
                    trained_images: int, centres: tuple[bytes, list[bytes], bytes]) -> None:
    """Store a (new) vocabulary; the words of every image under an older one are dropped
    with it, in the same transaction (they are not comparable)."""
    def work() -> None:
        session.execute("DELETE FROM visual_words WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM word_images WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM visual_vocabularies WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM vocabulary_cells WHERE extractor_id = ?", (extractor.id,))
        top, cells, shares = centres
        session.execute("INSERT INTO visual_vocabularies (extractor_id, branching, trained_on, trained_images, token, "
                        "centres, shares) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (extractor.id, branching, trained_on, trained_images, session.fresh_token(), top, shares))
        for cell, words in enumerate(cells):
            session.execute("INSERT INTO vocabulary_cells (extractor_id, cell, centres) VALUES (?, ?, ?)",
                            (extractor.id, cell, words))
    session.write(work)


@dataclass(frozen=True)
class VocabularyRow:
    branching: int
    trained_images: int
    token: int  # new with each vocabulary: (token) names its centres


def vocabulary_row(session: SqlSession, extractor: ExtractorRow) -> VocabularyRow | None:
    rows = session.execute("SELECT branching, trained_images, token FROM visual_vocabularies WHERE extractor_id = ?",
                           (extractor.id,))
    return VocabularyRow(*(int(v) for v in rows[0])) if rows else None


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


def write_words(session: SqlSession, extractor: ExtractorRow, words: dict[int, np.ndarray]) -> None:
    """Each image's words (one per keypoint) as postings, and its row in word_images (it
    has its words), in one transaction. An image deleted meanwhile is skipped (its postings
    would have no image)."""
    def work() -> None:
        present: set[int] = set()
        for chunk, marks in id_chunks(sorted(words)):
            present.update(int(r[0]) for r in session.execute(f"SELECT id FROM images WHERE id IN ({marks})", chunk))
        postings = []
        for image_id in sorted(present):
            found, counts = np.unique(words[image_id], return_counts=True)
            norm = float(np.sqrt((counts.astype(np.float64) ** 2).sum()))
            postings += [(extractor.id, int(w), image_id, int(n), n / norm) for w, n in zip(found, counts)]
        for start in range(0, len(postings), POSTING_ROWS):
            session.executemany("REPLACE INTO visual_words (extractor_id, word, image_id, n, tf) VALUES (?, ?, ?, ?, ?)",
                                postings[start : start + POSTING_ROWS])
        session.executemany("REPLACE INTO word_images (extractor_id, image_id) VALUES (?, ?)",
                            [(extractor.id, image_id) for image_id in sorted(present)])
    session.write(work)


def query_word_weights(words: np.ndarray, shares: np.ndarray, images: int,
                       budget: int = POSTINGS_BUDGET) -> list[tuple[int, float]]:
    """(word, weight) of the query words scored_by_words looks up: its rarest words up to
    about `budget` postings (share x images each), each weighing count_query x idf^2."""
    found, counts = np.unique(words, return_counts=True)
    rarest = np.lexsort((found, shares[found]))
    expected = np.cumsum(shares[found][rarest].astype(np.float64) * max(images, 1))
    used = rarest[: max(1, int(np.searchsorted(expected, budget, side="right")))]
    return [(int(found[i]), float(counts[i] * np.log(float(shares[found[i]])) ** 2)) for i in used]


def scored_by_words(session: SqlSession, extractor: ExtractorRow, words: np.ndarray, shares: np.ndarray,
                    images: int, n: int, excluded: list[int], budget: int = POSTINGS_BUDGET) -> list[tuple[int, float]]:
    """The n images whose words best match the query's (one word per query keypoint), by
    tf-idf (Sivic & Zisserman 2003): score = sum over shared words of count_query * tf *
    idf^2, tf = the image's count over the L2 norm of its counts, idf = -log(share), the
    word's share of images (the vocabulary's). Only the query's rarest words are looked up,
    up to about `budget` postings (share x images each): the frequent words weigh least
    (idf^2) and cost most. The sum runs in SQL over a temporary table of the query's word
    weights: only the n best rows come back."""
    if not len(words) or n <= 0:
        return []
    weights = query_word_weights(words, shares, images, budget)
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
