"""Visual words: the vocabulary tree, the inverted file a build keeps in SQL, and the first
stage that brings into verification what the global stage ranks too low."""
from __future__ import annotations

import cv2
import numpy as np
from cli_runner import imgsearch
from photos import PHOTOS, photo, variant, write_collection
from test_verify import printed

from imgsearch.features.registry import make_extractor
from imgsearch.rerank.query import ONE_VECTOR
from imgsearch.rerank.verify import root_sift
from imgsearch.rerank.words import (
    BRANCHING,
    DESCRIPTORS_PER_WORD,
    MAX_SAMPLE,
    MIN_BRANCHING,
    SAMPLE,
    SAMPLE_PER_IMAGE,
    Vocabulary,
    branching_for,
    learn_vocabulary,
    sample_size,
)
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url
from imgsearch.store.words_tables import (
    WORD_RANGE,
    drop_postings,
    spare_word_base,
    switch_vocabulary,
    vocabulary_centres,
    vocabulary_row,
)

SMALL_CORNERS = np.float32([[1000, 120], [1480, 170], [1450, 560], [980, 520]])  # 11 % of the photo, tilted


def write_collection_below_the_print(folder) -> None:
    """The sample photos but the background the print is shown on, and four more of the
    motorcycle: the global stage ranks them nearest the phone photo, so the print ranks
    below the global list a query of one vector verifies (verify:1 takes 3 there)."""
    write_collection(folder, tuple(name for name in PHOTOS if name != "astronaut.png"))
    motorcycle = photo("motorcycle_left.png")
    height, width = motorcycle.shape[:2]
    for n, decoy in enumerate((variant(motorcycle), motorcycle[height // 8 :, : width - width // 8],
                               motorcycle[: height - height // 8, width // 8 :], (motorcycle * 0.7).astype(np.uint8))):
        cv2.imwrite(str(folder / f"motorcycle-{n}.jpg"), decoy)


def descriptors() -> np.ndarray:
    sift = make_extractor("sift")
    return np.vstack([sift.extract(photo(name)).descriptors for name in PHOTOS])


def test_a_word_is_the_nearest_leaf_of_the_nearest_cell_and_learning_is_repeatable() -> None:
    sample = descriptors()
    vocabulary = learn_vocabulary(sample)
    again = learn_vocabulary(sample)
    branching = vocabulary.branching
    assert vocabulary.to_bytes() == again.to_bytes()  # a fixed seed
    restored = Vocabulary.from_bytes(*vocabulary.to_bytes(), 128)
    words = restored.words(sample[:300])
    np.testing.assert_array_equal(words, vocabulary.words(sample[:300]))
    x = root_sift(sample[:300])
    cells = np.argmax(x @ vocabulary.top.T, axis=1)
    leaves = np.array([np.argmax(vocabulary.leaves[c] @ v) for c, v in zip(cells, x)])
    np.testing.assert_array_equal(words, cells * branching + leaves)
    assert len(np.unique(vocabulary.words(sample))) > branching * branching / 2  # the words are used, not a few
    assert restored.words(np.empty((0, 128), np.uint8)).shape == (0,)


def test_the_vocabulary_is_sized_to_the_descriptors_it_learns_from() -> None:
    """About DESCRIPTORS_PER_WORD descriptors a word: a small collection learns a small
    vocabulary (not one word per descriptor), a large one the full tree."""
    sample = descriptors()
    words = learn_vocabulary(sample).size
    assert len(sample) / (2 * DESCRIPTORS_PER_WORD) <= words <= 2 * len(sample) / DESCRIPTORS_PER_WORD
    assert branching_for(34_000) == 53 and branching_for(10) == MIN_BRANCHING


def test_the_vocabulary_grows_with_the_collection_so_that_a_posting_list_stays_about_as_long() -> None:
    """Learned from SAMPLE descriptors up to SAMPLE / SAMPLE_PER_IMAGE images, then from
    SAMPLE_PER_IMAGE an image: at 40,000 images four times the words of 10,000; capped where
    the tree is full."""
    assert sample_size(1_000) == sample_size(SAMPLE // SAMPLE_PER_IMAGE) == SAMPLE
    small, large = branching_for(sample_size(10_000)) ** 2, branching_for(sample_size(40_000)) ** 2
    assert 3.6 <= large / small <= 4.4
    assert sample_size(10**8) == MAX_SAMPLE and branching_for(MAX_SAMPLE) <= BRANCHING


def test_the_inverted_file_holds_every_keypoint_and_follows_the_collection(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    paths = write_collection(folder, PHOTOS[:6])
    assert imgsearch("build", folder, "--db", db_url, "-e", "sift").code == 0
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        first = vocabulary_row(store, row)
        per_image = dict(store.execute("SELECT image_id, n FROM local_features WHERE extractor_id = ?", (row.id,)))
        posted = dict(store.execute("SELECT image_id, SUM(n) FROM visual_words WHERE extractor_id = ? "
                                    "GROUP BY image_id", (row.id,)))
        assert {i: int(n) for i, n in posted.items()} == {i: int(n) for i, n in per_image.items() if n}
        assert store.execute("SELECT COUNT(*) FROM word_images")[0][0] == 6
    # one more image: words with the same vocabulary; a changed image: its words again
    cv2.imwrite(str(folder / "b" / "extra.jpg"), photo(PHOTOS[6]))
    cv2.imwrite(str(paths[0]), photo(PHOTOS[7]))
    run = imgsearch("build", folder, "--db", db_url, "-e", "sift")
    assert run.code == 0 and "2 images given their words" in run.err + run.out
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        assert vocabulary_row(store, row) == first
        words = make_extractor("sift").extract(photo(PHOTOS[7]))
        (image_id,) = [i.id for i in store.stored_images().values() if i.path.endswith(paths[0].name.encode())]
        (n,) = store.execute("SELECT SUM(n) FROM visual_words WHERE image_id = ?", (image_id,))[0]
        assert int(n) == len(words)
    # doubled (7 to 28): the vocabulary is learned again, every image's words with it
    for k in range(21):
        cv2.imwrite(str(folder / f"copy{k}.jpg"), cv2.resize(photo(PHOTOS[k % 9]), None, fx=0.9 - k / 100,
                                                             fy=0.9 - k / 100))
    assert imgsearch("build", folder, "--db", db_url, "-e", "sift").code == 0
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        relearned = vocabulary_row(store, row)
        assert relearned.token != first.token and relearned.trained_images == 28
        assert store.execute("SELECT COUNT(*) FROM word_images")[0][0] == 28


def test_the_word_stage_finds_a_small_tilted_print_the_global_shortlist_misses(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection_below_the_print(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "sift").code == 0
    query = tmp_path / "phone.jpg"
    cv2.imwrite(str(query), printed(photo("coffee.png"), photo("astronaut.png"), SMALL_CORNERS))
    plain = imgsearch("query", query, "--db", db_url, "--rerank", "none", "--regions", "none", "--json", "-k", "8")
    ranked = [r["name"] for r in plain.json()["results"]]
    # below the global list verify:1 checks for a query of one vector
    assert ranked.index("coffee.jpg") >= ONE_VECTOR.shortlist_times
    verified = imgsearch("query", query, "--db", db_url, "--rerank", "verify:1", "--regions", "none", "--json", "-k", "1")
    first = verified.json()["results"][0]
    assert first["name"] == "coffee.jpg" and first["inliers"] >= 15  # only the words brought it in
    assert first["found_by"] == ["words"]  # and the answer says so


def test_a_query_of_one_vector_verifies_three_times_the_global_shortlist(db_url, tmp_path) -> None:
    """No regions' list finds the print for a query of one vector: verify widens the global
    list it checks instead (alone, and after DBA-AQE, which hands it that many)."""
    folder = tmp_path / "photos"
    write_collection(folder, tuple(name for name in PHOTOS if name != "astronaut.png"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "sift").code == 0
    query = tmp_path / "phone.jpg"
    cv2.imwrite(str(query), printed(photo("coffee.png"), photo("astronaut.png"), SMALL_CORNERS))
    for before in ("none", "dba-aqe:3"):
        plain = imgsearch("query", query, "--db", db_url, "--rerank", before, "--regions", "none", "--json", "-k", "8")
        assert 1 <= [r["name"] for r in plain.json()["results"]].index("coffee.jpg") < ONE_VECTOR.shortlist_times
    for rerank in ("verify:1", "dba-aqe:3+verify:1"):
        run = imgsearch("query", query, "--db", db_url, "--rerank", rerank, "--regions", "none", "--json", "-k", "1")
        first = run.json()["results"][0]
        assert first["name"] == "coffee.jpg" and "photo" in first["found_by"], rerank  # beyond verify's 1


def test_an_index_from_before_visual_words_verifies_and_the_next_build_gives_it_words(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, tuple(name for name in PHOTOS if name != "astronaut.png"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "sift").code == 0
    with open_store(parse_database_url(db_url)) as store:  # as an index of the previous release left it
        for table in ("visual_words", "word_images", "vocabulary_cells", "visual_vocabularies"):
            store.execute(f"DROP TABLE {table}")
        store.conn.commit()
    query = tmp_path / "phone.jpg"
    cv2.imwrite(str(query), printed(photo("coffee.png"), photo("astronaut.png")))
    run = imgsearch("query", query, "--db", db_url, "--json", "-k", "1")
    assert run.code == 0, run.err
    first = run.json()["results"][0]
    assert first["name"] == "coffee.jpg" and first["inliers"] >= 15  # verified, every descriptor compared
    run = imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "sift")
    assert run.code == 0 and "given their words" in run.out + run.err
    assert imgsearch("query", query, "--db", db_url, "--json", "-k", "1").json()["results"][0]["name"] == "coffee.jpg"


def test_two_builds_of_one_folder_learn_the_same_words_whatever_order_their_ids_took(tmp_path) -> None:
    folder = tmp_path / "photos"
    paths = write_collection(folder)
    at_once = f"sqlite:///{tmp_path / 'at_once.sqlite3'}"
    assert imgsearch("build", folder, "--db", at_once, "-e", "sift", "--workers", "1").code == 0
    # the same folder indexed in two steps: the last photos of the walk take the first ids
    later = tmp_path / "later"
    later.mkdir()
    for path in paths[:-2]:
        path.rename(later / path.name)
    in_steps = f"sqlite:///{tmp_path / 'in_steps.sqlite3'}"
    assert imgsearch("build", folder, "--db", in_steps, "-e", "sift", "--workers", "1").code == 0
    for path in paths[:-2]:
        (later / path.name).rename(path)
    assert imgsearch("build", folder, "--db", in_steps, "-e", "sift", "--workers", "1").code == 0  # 4.5x: learned again
    vocabularies = []
    for url in (at_once, in_steps):
        with open_store(parse_database_url(url)) as store:
            row = store.find_extractor("sift")
            ids = {bytes(p): int(i) for p, i in store.execute("SELECT path, id FROM images")}
            vocabularies.append((vocabulary_row(store, row).trained_images, vocabulary_centres(store, row), ids))
    (n_once, centres_once, ids_once), (n_steps, centres_steps, ids_steps) = vocabularies
    assert n_once == n_steps == len(paths)
    assert sorted(ids_once, key=ids_once.get) != sorted(ids_steps, key=ids_steps.get)  # other ids, other order
    assert centres_once == centres_steps


def _postings_per_image(store, row) -> dict[int, int]:
    return {int(i): int(n) for i, n in store.execute(
        "SELECT image_id, SUM(n) FROM visual_words WHERE extractor_id = ? GROUP BY image_id", (row.id,))}


def _keypoints_per_image(store, row) -> dict[int, int]:
    return {int(i): int(n) for i, n in store.execute(
        "SELECT image_id, n FROM local_features WHERE extractor_id = ? AND n > 0", (row.id,))}


def test_a_vocabulary_learned_again_is_written_beside_the_current_one_and_switched_to_whole(db_url, tmp_path) -> None:
    """A search beside the relearning reads the old inverted file whole, never half of it."""
    from imgsearch.index.words import give_words, learned_from
    from imgsearch.rerank.first_stage import query_words, word_candidates

    folder = tmp_path / "photos"
    write_collection(folder, PHOTOS[:6])
    assert imgsearch("build", folder, "--db", db_url, "-e", "sift").code == 0
    query = make_extractor("sift").for_query().extract(printed(photo(PHOTOS[2]), photo(PHOTOS[7])))
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        current = vocabulary_row(store, row)
        before = query_words(store, row, query).candidates(store, row, [])
        assert before and current.word_base == 0
        images = sorted(store.image_ids_with_features(row))
        # the new vocabulary's words, all written, not yet current
        base = spare_word_base(current)
        vocabulary, used, known = learned_from(store, row, images, 1_000)
        written = give_words(store, row, vocabulary, base, images, known, False, False)
        assert vocabulary_row(store, row) == current
        assert query_words(store, row, query).candidates(store, row, []) == before
        assert store.execute("SELECT COUNT(*) FROM word_images")[0][0] == 6
        # switched to in one transaction, then the old postings dropped
        read_before = query_words(store, row, query)
        switch_vocabulary(store, row, vocabulary.branching, used, len(images), vocabulary.to_bytes(), base, written)
        drop_postings(store, row, current.word_base)
        switched = vocabulary_row(store, row)
        assert switched.token != current.token and switched.word_base == base == WORD_RANGE
        # a words stage that read the vocabulary before the switch and its postings after it
        # does not answer from them (they were being deleted): it takes the words again
        assert read_before.candidates(store, row, []) is None
        assert word_candidates(store, row, query, [])[0][0] == before[0][0]  # the same image found first
        words = query_words(store, row, query)
        assert words.vocabulary.to_bytes() == vocabulary.to_bytes()
        assert words.candidates(store, row, [])[0][0] == before[0][0]
        assert store.execute("SELECT MIN(word) FROM visual_words")[0][0] >= WORD_RANGE
        assert _postings_per_image(store, row) == _keypoints_per_image(store, row)
        assert store.execute("SELECT COUNT(*) FROM word_images")[0][0] == 6


def _cut_short_relearning(db_url: str, tmp_path) -> tuple:
    """Six photos built, then a relearning killed after writing three images' words in the
    spare range: the folder and the vocabulary row that stayed current."""
    from imgsearch.index.words import give_words, learned_from

    folder = tmp_path / "photos"
    write_collection(folder, PHOTOS[:6])
    assert imgsearch("build", folder, "--db", db_url, "-e", "sift").code == 0
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        current = vocabulary_row(store, row)
        images = sorted(store.image_ids_with_features(row))
        vocabulary, _, known = learned_from(store, row, images, 1_000)
        give_words(store, row, vocabulary, spare_word_base(current), images[:3], known, False, False)
        assert store.execute("SELECT COUNT(*) FROM visual_words WHERE word >= ?", (WORD_RANGE,))[0][0] > 0
    return folder, current


def test_a_relearning_cut_short_leaves_the_current_words_and_the_next_one_clears_what_it_wrote(db_url, tmp_path) -> None:
    folder, _ = _cut_short_relearning(db_url, tmp_path)
    for k in range(7):  # doubled: the next build learns again
        cv2.imwrite(str(folder / f"copy{k}.jpg"), cv2.resize(photo(PHOTOS[k]), None, fx=0.8, fy=0.8))
    run = imgsearch("build", folder, "--db", db_url, "-e", "sift")
    assert run.code == 0 and "13 images given their words" in run.out + run.err, run.out + run.err
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        assert vocabulary_row(store, row).word_base == WORD_RANGE
        assert store.execute("SELECT MIN(word) FROM visual_words")[0][0] >= WORD_RANGE  # the cut one cleared first
        assert _postings_per_image(store, row) == _keypoints_per_image(store, row)
        assert store.execute("SELECT COUNT(*) FROM word_images")[0][0] == 13


def test_an_index_from_before_the_word_ranges_is_upgraded_by_build_and_keeps_its_words(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection_below_the_print(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "sift").code == 0
    with open_store(parse_database_url(db_url)) as store:  # as the previous release left it
        store.execute("ALTER TABLE visual_vocabularies DROP COLUMN word_base")
        store.conn.commit()
        postings = store.execute("SELECT COUNT(*) FROM visual_words")[0][0]
    query = tmp_path / "phone.jpg"
    cv2.imwrite(str(query), printed(photo("coffee.png"), photo("astronaut.png"), SMALL_CORNERS))
    run = imgsearch("query", query, "--db", db_url, "--json", "-k", "1")
    assert run.code != 0 and "older imgsearch" in run.err
    run = imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc", "-e", "sift")
    assert run.code == 0 and "given their words" not in run.out + run.err  # nothing to do but the column
    with open_store(parse_database_url(db_url)) as store:
        assert vocabulary_row(store, store.find_extractor("sift")).word_base == 0
        assert store.execute("SELECT COUNT(*) FROM visual_words")[0][0] == postings
    run = imgsearch("query", query, "--db", db_url, "--rerank", "verify:1", "--regions", "none", "--json", "-k", "1")
    assert run.json()["results"][0]["found_by"] == ["words"]


def test_a_build_that_learns_nothing_clears_what_a_relearning_cut_short_left(db_url, tmp_path) -> None:
    folder, current = _cut_short_relearning(db_url, tmp_path)
    cv2.imwrite(str(folder / "extra.jpg"), photo(PHOTOS[6]))  # one more: not doubled, nothing learned
    run = imgsearch("build", folder, "--db", db_url, "-e", "sift")
    assert run.code == 0 and "1 images given their words" in run.out + run.err, run.out + run.err
    with open_store(parse_database_url(db_url)) as store:
        row = store.find_extractor("sift")
        assert vocabulary_row(store, row).token == current.token
        assert store.execute("SELECT MAX(word) FROM visual_words")[0][0] < WORD_RANGE
        assert _postings_per_image(store, row) == _keypoints_per_image(store, row)
