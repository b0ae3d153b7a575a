"""The visual-word tables (visual_vocabularies, visual_words, word_images) behind
FeatureStore: the vocabulary tree's centres, the inverted file, and tf-idf scoring of a
query's words in SQL, so that a first stage reads only the postings of the query's words."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgsearch.store.records import ExtractorRow, id_chunks
from imgsearch.store.session import SqlSession

POSTING_ROWS = 20_000  # postings per INSERT batch


def save_vocabulary(session: SqlSession, extractor: ExtractorRow, branching: int, trained_on: int,
                    trained_images: int, centres: bytes) -> None:
    """Store a (new) vocabulary; the words of every image under an older one are dropped
    with it, in the same transaction (they are not comparable)."""
    def work() -> None:
        session.execute("DELETE FROM visual_words WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM word_images WHERE extractor_id = ?", (extractor.id,))
        session.execute("DELETE FROM visual_vocabularies WHERE extractor_id = ?", (extractor.id,))
        session.execute("INSERT INTO visual_vocabularies (extractor_id, branching, trained_on, trained_images, token, "
                        "centres) VALUES (?, ?, ?, ?, ?, ?)",
                        (extractor.id, branching, trained_on, trained_images, session.fresh_token(), centres))
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


def vocabulary_centres(session: SqlSession, extractor: ExtractorRow) -> bytes:
    return bytes(session.execute("SELECT centres FROM visual_vocabularies WHERE extractor_id = ?",
                                 (extractor.id,))[0][0])


def images_without_words(session: SqlSession, extractor: ExtractorRow) -> list[int]:
    rows = session.execute(
        "SELECT l.image_id FROM local_features l LEFT JOIN word_images w "
        "ON w.extractor_id = l.extractor_id AND w.image_id = l.image_id "
        "WHERE l.extractor_id = ? AND w.image_id IS NULL ORDER BY l.image_id", (extractor.id,))
    return [int(r[0]) for r in rows]


def write_words(session: SqlSession, extractor: ExtractorRow, words: dict[int, np.ndarray]) -> None:
    """Each image's words (one per keypoint) as postings and a norm, in one transaction.
    An image deleted meanwhile is skipped (its postings would have no image)."""
    def work() -> None:
        present: set[int] = set()
        for chunk, marks in id_chunks(sorted(words)):
            present.update(int(r[0]) for r in session.execute(f"SELECT id FROM images WHERE id IN ({marks})", chunk))
        postings, norms = [], []
        for image_id in sorted(present):
            found, counts = np.unique(words[image_id], return_counts=True)
            postings += [(extractor.id, int(w), image_id, int(n)) for w, n in zip(found, counts)]
            norms.append((extractor.id, image_id, float(np.sqrt((counts.astype(np.float64) ** 2).sum()))))
        for start in range(0, len(postings), POSTING_ROWS):
            session.executemany("REPLACE INTO visual_words (extractor_id, word, image_id, n) VALUES (?, ?, ?, ?)",
                                postings[start : start + POSTING_ROWS])
        session.executemany("REPLACE INTO word_images (extractor_id, image_id, norm) VALUES (?, ?, ?)", norms)
    session.write(work)


def scored_by_words(session: SqlSession, extractor: ExtractorRow, words: np.ndarray, n: int,
                    excluded: list[int]) -> list[tuple[int, float]]:
    """The n images whose words best match the query's (one word per query keypoint), by
    tf-idf cosine (Sivic & Zisserman 2003): score = sum over shared words of
    count_query * count_image * idf^2 / norm_image, idf = log(images / images with the word)."""
    if not len(words) or n <= 0:
        return []
    found, counts = np.unique(words, return_counts=True)
    (images,) = session.execute("SELECT COUNT(*) FROM word_images WHERE extractor_id = ?", (extractor.id,))[0]
    if not images:
        return []
    frequency: dict[int, int] = {}
    for chunk, marks in id_chunks(found.tolist()):
        frequency.update((int(w), int(c)) for w, c in session.execute(
            f"SELECT word, COUNT(*) FROM visual_words WHERE extractor_id = ? AND word IN ({marks}) GROUP BY word",
            (extractor.id, *chunk)))
    weights = [(int(w), float(c) * np.log(images / frequency[int(w)]) ** 2)
               for w, c in zip(found, counts) if frequency.get(int(w))]
    if not weights:
        return []
    session.execute("CREATE TEMPORARY TABLE IF NOT EXISTS query_words (word BIGINT PRIMARY KEY, weight DOUBLE)")
    session.execute("DELETE FROM query_words")
    session.executemany("INSERT INTO query_words (word, weight) VALUES (?, ?)", weights)
    rows = session.execute(
        "SELECT s.image_id, s.total / m.norm AS score FROM "
        "(SELECT v.image_id, SUM(v.n * q.weight) AS total FROM query_words q "
        " JOIN visual_words v ON v.extractor_id = ? AND v.word = q.word GROUP BY v.image_id) s "
        "JOIN word_images m ON m.extractor_id = ? AND m.image_id = s.image_id "
        "ORDER BY score DESC, s.image_id LIMIT ?", (extractor.id, extractor.id, n + len(excluded)))
    session.execute("DELETE FROM query_words")
    drop = set(excluded)
    return [(int(i), float(s)) for i, s in rows if int(i) not in drop][:n]
