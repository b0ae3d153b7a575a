-- imgsearch schema, SQLite dialect of mysql.sql (same tables, same columns, same meaning).
-- Statements are separated by lines holding only ";;".

CREATE TABLE IF NOT EXISTS meta (
    k TEXT NOT NULL PRIMARY KEY,
    v TEXT NOT NULL
)
;;
CREATE TABLE IF NOT EXISTS images (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    path     BLOB NOT NULL UNIQUE,
    name     BLOB NOT NULL,
    bytes    INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256   TEXT NOT NULL,
    width    INTEGER NOT NULL,
    height   INTEGER NOT NULL,
    added_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
;;
CREATE INDEX IF NOT EXISTS ix_images_name ON images (name)
;;
CREATE INDEX IF NOT EXISTS ix_images_sha256 ON images (sha256)
;;
CREATE TABLE IF NOT EXISTS extractors (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    name   TEXT NOT NULL UNIQUE,
    params TEXT NOT NULL,
    dim    INTEGER NOT NULL
)
;;
-- features and local_features are rowid tables, not WITHOUT ROWID: a WITHOUT ROWID row
-- keeps at most about a quarter of a page in place and spills the rest to overflow pages
-- whose last one is part empty, so a 5,120-byte vector took two and a half 4 KiB pages
-- (22.3 KiB an image for 12.6 KB of vectors on Corel-1k); a rowid row fills its overflow
-- pages whole (15.3 KiB). Databases made before keep theirs.
CREATE TABLE IF NOT EXISTS features (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    image_id     INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    vec          BLOB NOT NULL,
    packed_block INTEGER NULL,
    PRIMARY KEY (extractor_id, image_id)
)
;;
CREATE INDEX IF NOT EXISTS ix_features_image ON features (image_id)
;;
CREATE INDEX IF NOT EXISTS ix_features_tail ON features (extractor_id, packed_block)
;;
CREATE TABLE IF NOT EXISTS packed_blocks (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    block_no     INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    ids          BLOB NOT NULL,
    vecs         BLOB NOT NULL,
    PRIMARY KEY (extractor_id, block_no)
)
;;
CREATE TABLE IF NOT EXISTS packed_stale (
    extractor_id INTEGER NOT NULL,
    image_id     INTEGER NOT NULL,
    block_no     INTEGER NOT NULL,
    PRIMARY KEY (extractor_id, image_id, block_no)
)
;;
-- Learned linear maps (imgsearch learn): y = projection (x - mean), then L2-normalised, where x is a
-- vector prepared for `metric` (see imgsearch/scan/metrics.py); scored by dot product.
-- mean and projection are little-endian float32 (projection row-major, dim_out x dim).
CREATE TABLE IF NOT EXISTS whitenings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    method       TEXT NOT NULL,
    metric       TEXT NOT NULL DEFAULT '',
    dim_out      INTEGER NOT NULL,
    mean         BLOB NOT NULL,
    projection   BLOB NOT NULL,
    UNIQUE (extractor_id, name)
)
;;
-- k-nearest-neighbour graphs (imgsearch graph); see mysql.sql for the layout.
CREATE TABLE IF NOT EXISTS graphs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    metric       TEXT NOT NULL,
    k            INTEGER NOT NULL,
    dba          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (extractor_id, metric)
)
;;
CREATE TABLE IF NOT EXISTS graph_nodes (
    graph_id   INTEGER NOT NULL REFERENCES graphs (id) ON DELETE CASCADE,
    image_id   INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    kth        REAL NOT NULL,
    neighbours BLOB NOT NULL,
    scores     BLOB NOT NULL,
    PRIMARY KEY (graph_id, image_id)
)
;;
CREATE INDEX IF NOT EXISTS ix_graph_nodes_image ON graph_nodes (image_id)
;;
CREATE TABLE IF NOT EXISTS graph_removed (
    graph_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    token    INTEGER NOT NULL,
    PRIMARY KEY (graph_id, image_id)
)
;;
CREATE TABLE IF NOT EXISTS local_features (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    image_id     INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    n            INTEGER NOT NULL,
    keypoints    BLOB NOT NULL,
    descriptors  BLOB NOT NULL,
    PRIMARY KEY (extractor_id, image_id)
)
;;
CREATE INDEX IF NOT EXISTS ix_local_features_image ON local_features (image_id)
;;
CREATE TABLE IF NOT EXISTS image_hashes (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    image_id     INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    hash         INTEGER NOT NULL,
    PRIMARY KEY (extractor_id, image_id)
) WITHOUT ROWID
;;
CREATE INDEX IF NOT EXISTS ix_image_hashes_image ON image_hashes (image_id)
;;
CREATE TABLE IF NOT EXISTS visual_vocabularies (
    extractor_id   INTEGER NOT NULL PRIMARY KEY REFERENCES extractors (id) ON DELETE CASCADE,
    branching      INTEGER NOT NULL,
    trained_on     INTEGER NOT NULL,
    trained_images INTEGER NOT NULL,
    token          INTEGER NOT NULL,
    centres        BLOB NOT NULL,
    shares         BLOB NOT NULL,
    word_base      INTEGER NOT NULL DEFAULT 0
)
;;
CREATE TABLE IF NOT EXISTS vocabulary_cells (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    cell         INTEGER NOT NULL,
    centres      BLOB NOT NULL,
    PRIMARY KEY (extractor_id, cell)
) WITHOUT ROWID
;;
CREATE TABLE IF NOT EXISTS visual_words (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    word         INTEGER NOT NULL,
    image_id     INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    n            INTEGER NOT NULL,
    tf           REAL NOT NULL,
    PRIMARY KEY (extractor_id, word, image_id)
) WITHOUT ROWID
;;
CREATE INDEX IF NOT EXISTS ix_visual_words_image ON visual_words (image_id)
;;
CREATE TABLE IF NOT EXISTS word_images (
    extractor_id INTEGER NOT NULL REFERENCES extractors (id) ON DELETE CASCADE,
    image_id     INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    PRIMARY KEY (extractor_id, image_id)
) WITHOUT ROWID
;;
CREATE INDEX IF NOT EXISTS ix_word_images_image ON word_images (image_id)
