-- imgsearch schema for MySQL 5.7+/8/9 and MariaDB 10.3+. Created on first use; idempotent.
-- Statements are separated by lines holding only ";;" so the loader needs no SQL parser.

CREATE TABLE IF NOT EXISTS meta (
    k VARCHAR(64) NOT NULL PRIMARY KEY,
    v TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
;;
-- path and name are the file system's bytes (os.fsencode): names that are not valid UTF-8
-- survive exactly. The UNIQUE key on path makes a re-indexed file an update, not a duplicate.
CREATE TABLE IF NOT EXISTS images (
    id       INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    path     VARBINARY(3000) NOT NULL,
    name     VARBINARY(1024) NOT NULL,
    bytes    BIGINT UNSIGNED NOT NULL,
    mtime_ns BIGINT NOT NULL,
    sha256   CHAR(64) CHARACTER SET ascii NOT NULL,
    width    INT UNSIGNED NOT NULL,
    height   INT UNSIGNED NOT NULL,
    added_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY uq_images_path (path),
    KEY ix_images_name (name),
    KEY ix_images_sha256 (sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC
;;
CREATE TABLE IF NOT EXISTS extractors (
    id     SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name   VARCHAR(64) CHARACTER SET ascii NOT NULL,
    params TEXT NOT NULL,
    dim    INT UNSIGNED NOT NULL,
    UNIQUE KEY uq_extractors_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
;;
-- vec: little-endian float32, the binary layout of MySQL 9 VECTOR and MariaDB 11.7 VECTOR.
-- The primary key clusters one extractor's rows together: a scan is one range read.
-- packed_block: the packed_blocks row that holds this vector, NULL while it is not packed
-- (written since the last pack): those rows are the scan's tail.
CREATE TABLE IF NOT EXISTS features (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    image_id     INT UNSIGNED NOT NULL,
    vec          MEDIUMBLOB NOT NULL,
    packed_block INT UNSIGNED NULL,
    PRIMARY KEY (extractor_id, image_id),
    KEY ix_features_image (image_id),
    KEY ix_features_tail (extractor_id, packed_block),
    CONSTRAINT fk_features_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE,
    CONSTRAINT fk_features_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
;;
-- Derived from features, for speed: up to B vectors of one extractor per row. ids is the
-- image ids as little-endian int64, vecs the vectors concatenated (float32 LE), n of each.
-- Streaming 1,024 vectors per row spares the driver 1,023 row parses.
CREATE TABLE IF NOT EXISTS packed_blocks (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    block_no     INT UNSIGNED NOT NULL,
    n            INT UNSIGNED NOT NULL,
    ids          LONGBLOB NOT NULL,
    vecs         LONGBLOB NOT NULL,
    PRIMARY KEY (extractor_id, block_no),
    CONSTRAINT fk_packed_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
-- Packed vectors that are no longer current (their image was deleted or re-extracted
-- since packing): the scan leaves them out, the next pack rewrites their blocks.
CREATE TABLE IF NOT EXISTS packed_stale (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    image_id     INT UNSIGNED NOT NULL,
    block_no     INT UNSIGNED NOT NULL,
    PRIMARY KEY (extractor_id, image_id, block_no)
) ENGINE=InnoDB
;;
-- Learned linear maps (imgsearch learn): y = projection (x - mean), then L2-normalised, where x is a
-- vector prepared for `metric` (see imgsearch/scan/metrics.py); scored by dot product.
-- mean and projection are little-endian float32 (projection row-major, dim_out x dim).
CREATE TABLE IF NOT EXISTS whitenings (
    id           SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    extractor_id SMALLINT UNSIGNED NOT NULL,
    name         VARCHAR(64) CHARACTER SET ascii NOT NULL,
    method       TEXT NOT NULL,
    metric       VARCHAR(32) CHARACTER SET ascii NOT NULL DEFAULT '',
    dim_out      INTEGER NOT NULL,
    mean         LONGBLOB NOT NULL,
    projection   LONGBLOB NOT NULL,
    UNIQUE (extractor_id, name),
    CONSTRAINT fk_whitening_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
-- k-nearest-neighbour graphs of a collection (imgsearch graph), for diffusion and
-- k-reciprocal re-ranking at query time. One graph per extractor and metric. dba > 0:
-- the graph also keeps database-side augmented vectors (each image's vector averaged
-- with its dba nearest, in the metric's space) as the features of the extractor named
-- "<extractor>.<metric>.dba<dba>", for `query --rerank dba-aqe`.
CREATE TABLE IF NOT EXISTS graphs (
    id           SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    extractor_id SMALLINT UNSIGNED NOT NULL,
    metric       VARCHAR(32) CHARACTER SET ascii NOT NULL,
    k            INT UNSIGNED NOT NULL,
    dba          INT UNSIGNED NOT NULL DEFAULT 0,
    UNIQUE KEY uq_graphs (extractor_id, metric),
    CONSTRAINT fk_graph_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
-- One row per image: its n nearest other images, best first (neighbours: image ids as
-- little-endian int64; scores: float32 LE), exactly the top n of the collection, n up to
-- k plus some slack. kth is the score a new image must beat to enter the list: the n-th
-- score, or -1e30 while the list holds every other image.
CREATE TABLE IF NOT EXISTS graph_nodes (
    graph_id   SMALLINT UNSIGNED NOT NULL,
    image_id   INT UNSIGNED NOT NULL,
    n          INT UNSIGNED NOT NULL,
    kth        DOUBLE NOT NULL,
    neighbours BLOB NOT NULL,
    scores     BLOB NOT NULL,
    PRIMARY KEY (graph_id, image_id),
    KEY ix_graph_nodes_image (image_id),
    CONSTRAINT fk_node_graph FOREIGN KEY (graph_id) REFERENCES graphs (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
-- Images deleted or re-extracted since the graph was updated: the next update takes them
-- out of the lists that hold them. token is new at every mark, so an update clears only
-- the marks it has handled, never one a concurrent build made in the meantime.
CREATE TABLE IF NOT EXISTS graph_removed (
    graph_id SMALLINT UNSIGNED NOT NULL,
    image_id INT UNSIGNED NOT NULL,
    token    BIGINT NOT NULL,
    PRIMARY KEY (graph_id, image_id)
) ENGINE=InnoDB
;;
-- Local features of a local extractor (sift): per image n keypoints (x, y in the
-- original's pixels, size, angle: float16 LE, 8 bytes each) and their descriptors (the
-- square root of each SIFT value in 4 bits, two to a byte: dim / 2 bytes each; see
-- imgsearch/keypoints.py), written in the same transaction as the image's vectors.
-- Indexes built before 0.2.0 hold float32 keypoints and dim bytes of SIFT values. They
-- verify a candidate geometrically (--rerank verify); they are never scanned.
CREATE TABLE IF NOT EXISTS local_features (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    image_id     INT UNSIGNED NOT NULL,
    n            INT UNSIGNED NOT NULL,
    keypoints    MEDIUMBLOB NOT NULL,
    descriptors  MEDIUMBLOB NOT NULL,
    PRIMARY KEY (extractor_id, image_id),
    KEY ix_local_features_image (image_id),
    CONSTRAINT fk_local_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE,
    CONSTRAINT fk_local_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
-- Perceptual hashes of a hash extractor (phash): 63 bits per image (imgsearch/hashes.py),
-- written in the same transaction as the image's vectors. Two images whose hashes differ
-- in few bits are copies: BIT_COUNT(a.hash ^ b.hash) is that number (inspect.sql).
CREATE TABLE IF NOT EXISTS image_hashes (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    image_id     INT UNSIGNED NOT NULL,
    hash         BIGINT NOT NULL,
    PRIMARY KEY (extractor_id, image_id),
    KEY ix_image_hashes_image (image_id),
    CONSTRAINT fk_hash_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE,
    CONSTRAINT fk_hash_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
-- Visual words of a local extractor (imgsearch/rerank/words.py): its vocabulary tree
-- (branching top centres, and in vocabulary_cells the branching words of each top cell:
-- word = cell x branching + its place there; float32 LE, dim values each;
-- learned by k-means on trained_on descriptors of trained_images images; token: new with each
-- vocabulary, so a reader may keep one it has read; shares: per word, float32, the share
-- of the sample's images holding it, its idf = -log(share)), the inverted
-- file (word -> the images holding it, n keypoints each, tf = n over the L2 norm of the
-- image's counts) and, per image with words, that norm and the word of each keypoint
-- (uint32 LE, in local_features' order). A query photo's words score images by tf-idf
-- from the postings of its words (inspect.sql): the first stage that verification's
-- shortlist merges; shared words are its correspondences.
CREATE TABLE IF NOT EXISTS visual_vocabularies (
    extractor_id   SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
    branching      INT UNSIGNED NOT NULL,
    trained_on     INT UNSIGNED NOT NULL,
    trained_images INT UNSIGNED NOT NULL,
    token          BIGINT NOT NULL,
    centres        MEDIUMBLOB NOT NULL,
    shares         MEDIUMBLOB NOT NULL,
    word_base      INT UNSIGNED NOT NULL DEFAULT 0,
    CONSTRAINT fk_vocabulary_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
CREATE TABLE IF NOT EXISTS vocabulary_cells (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    cell         INT UNSIGNED NOT NULL,
    centres      MEDIUMBLOB NOT NULL,
    PRIMARY KEY (extractor_id, cell),
    CONSTRAINT fk_cells_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
CREATE TABLE IF NOT EXISTS visual_words (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    word         INT UNSIGNED NOT NULL,
    image_id     INT UNSIGNED NOT NULL,
    n            SMALLINT UNSIGNED NOT NULL,
    tf           FLOAT NOT NULL,
    PRIMARY KEY (extractor_id, word, image_id),
    KEY ix_visual_words_image (image_id),
    CONSTRAINT fk_word_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE,
    CONSTRAINT fk_word_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
;;
CREATE TABLE IF NOT EXISTS word_images (
    extractor_id SMALLINT UNSIGNED NOT NULL,
    image_id     INT UNSIGNED NOT NULL,
    PRIMARY KEY (extractor_id, image_id),
    KEY ix_word_images_image (image_id),
    CONSTRAINT fk_word_images_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE,
    CONSTRAINT fk_word_images_extractor FOREIGN KEY (extractor_id) REFERENCES extractors (id) ON DELETE CASCADE
) ENGINE=InnoDB
