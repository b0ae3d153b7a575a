"""State nothing reads is not kept: word_images holds only which images have their words
(their postings are in visual_words), a learned map no count of what it learned from. An
index made before (those columns filled) is upgraded by the next build on both databases:
the columns go, every row and answer stays."""
from __future__ import annotations

import cv2
from cli_runner import imgsearch
from photos import PHOTOS, photo, write_collection

from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

OLD_COLUMNS = {"word_images": {"norm": ("DOUBLE", "0"), "words": ("BLOB", "''")},
               "whitenings": {"trained_on": ("INTEGER", "0")}}


def columns(store, table: str) -> set[str]:
    if store.dialect == "sqlite":
        return {str(r[1]) for r in store.execute(f"PRAGMA table_info({table})")}
    return {str(r[0]) for r in store.execute(f"SHOW COLUMNS FROM {table}")}


def test_a_build_drops_the_columns_nothing_reads_and_keeps_every_row(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, tuple(name for name in PHOTOS if name != "hubble_deep_field.jpg"))
    assert imgsearch("build", folder, "--db", db_url).code == 0
    assert imgsearch("learn", "mine", "--db", db_url, "-e", "rgb", "--method", "pca:8").code == 0
    url = parse_database_url(db_url)
    with open_store(url) as store:  # the layout of the last release: the columns back, filled
        for table, added in OLD_COLUMNS.items():
            assert not set(added) & columns(store, table)
            for column, (kind, value) in added.items():
                store.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind} NOT NULL DEFAULT {value}")
        words_before = store.execute("SELECT COUNT(*) FROM word_images")[0][0]
    query = tmp_path / "phone.jpg"
    cv2.imwrite(str(query), cv2.resize(photo("astronaut.png"), (400, 400)))
    before = imgsearch("query", query, "--db", db_url, "--json").json()["results"]
    run = imgsearch("build", folder, "--db", db_url)
    assert run.code == 0, run.err
    with open_store(url) as store:
        for table, added in OLD_COLUMNS.items():
            assert not set(added) & columns(store, table), table
        assert store.execute("SELECT COUNT(*) FROM word_images")[0][0] == words_before
    after = imgsearch("query", query, "--db", db_url, "--json").json()["results"]
    assert [(r["path"], r["inliers"]) for r in after] == [(r["path"], r["inliers"]) for r in before]
    assert after[0]["path"] == "b/astronaut.jpg" and after[0]["corners"] is not None
    assert imgsearch("query", "a/chelsea.jpg", "--db", db_url, "-e", "rgb", "--whiten", "mine").code == 0


def test_sqlite_that_cannot_drop_the_column_makes_the_table_again(tmp_path) -> None:
    """SQLite before 3.35 drops no column, nor does any SQLite drop one an index covers: the
    table is made again with its rows (an index on the old column here forces that way)."""
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "sift").code == 0
    with open_store(parse_database_url(db)) as store:
        store.execute("ALTER TABLE word_images ADD COLUMN norm REAL NOT NULL DEFAULT 0")
        store.execute("CREATE INDEX ix_old_norm ON word_images (norm)")
        rows = sorted(store.execute("SELECT extractor_id, image_id FROM word_images"))
    assert imgsearch("build", folder, "--db", db, "-e", "sift").code == 0
    with open_store(parse_database_url(db)) as store:
        assert columns(store, "word_images") == {"extractor_id", "image_id"}
        assert sorted(store.execute("SELECT extractor_id, image_id FROM word_images")) == rows
        indexes = {r[1] for r in store.execute("PRAGMA index_list(word_images)")}
        assert "ix_word_images_image" in indexes and "ix_old_norm" not in indexes
        assert "word_images_before_upgrade" not in store.existing_tables()
