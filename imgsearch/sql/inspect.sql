-- Ready queries for a person with only a MySQL/MariaDB client (mysql / mariadb).
-- Run one at a time, e.g.:  mariadb imgsearch < sql/inspect.sql  or paste a block.
-- SQLite: the same queries work in `sqlite3 imgsearch.sqlite3` except where noted.

-- What collection this database indexes.
SELECT k, v FROM meta;

-- Images per extractor, with the vector dimension and the extractor's parameters.
SELECT e.name, e.dim, COUNT(f.image_id) AS images, e.params
FROM extractors e LEFT JOIN features f ON f.extractor_id = e.id
GROUP BY e.id, e.name, e.dim, e.params;

-- Stored vector sizes agree with the dimension (4 bytes per float32 value).
SELECT e.name, e.dim, MIN(LENGTH(f.vec)) / 4 AS min_dim, MAX(LENGTH(f.vec)) / 4 AS max_dim
FROM extractors e JOIN features f ON f.extractor_id = e.id GROUP BY e.id, e.name, e.dim;

-- The newest additions.
SELECT id, CAST(path AS CHAR) AS path, width, height, bytes, added_at
FROM images ORDER BY added_at DESC, id DESC LIMIT 20;

-- Byte-identical files (same sha256) stored under several paths.
SELECT sha256, COUNT(*) AS copies, GROUP_CONCAT(CAST(path AS CHAR) SEPARATOR ' | ') AS paths
FROM images GROUP BY sha256 HAVING COUNT(*) > 1 ORDER BY copies DESC;
-- (SQLite: GROUP_CONCAT(CAST(path AS TEXT), ' | '))

-- Images that have no vector for some extractor (a build was interrupted or an extractor added).
SELECT e.name, COUNT(*) AS images_without_vector
FROM images i CROSS JOIN extractors e
LEFT JOIN features f ON f.image_id = i.id AND f.extractor_id = e.id
WHERE f.image_id IS NULL GROUP BY e.name;

-- One image's stored vector. vec is little-endian float32, the binary layout of the VECTOR
-- type, so newer servers print the values directly:
--   MySQL 9.0+:      SELECT VECTOR_TO_STRING(f.vec) ...
--   MariaDB 11.7+:   SELECT VEC_ToText(f.vec) ...
-- On any server HEX(f.vec) shows the raw bytes; `imgsearch show NAME` prints the values.
SELECT CAST(i.path AS CHAR) AS path, e.name, e.dim, HEX(f.vec) AS vec_hex
FROM images i JOIN features f ON f.image_id = i.id JOIN extractors e ON e.id = f.extractor_id
WHERE i.name = '45.jpg';

-- The packed copy the scan reads: blocks per extractor, vectors in them, rows not yet
-- packed (written since the last pack) and stale packed entries (left out by scans).
SELECT e.name,
       (SELECT COUNT(*) FROM packed_blocks b WHERE b.extractor_id = e.id) AS blocks,
       (SELECT COALESCE(SUM(n), 0) FROM packed_blocks b WHERE b.extractor_id = e.id) AS packed_vectors,
       (SELECT COUNT(*) FROM features f WHERE f.extractor_id = e.id AND f.packed_block IS NULL) AS unpacked,
       (SELECT COUNT(*) FROM packed_stale s WHERE s.extractor_id = e.id) AS stale
FROM extractors e;

-- k-NN graphs (imgsearch graph): neighbours kept per image, lists stored, and images the
-- graph does not reflect yet (vectors without a list; removals waiting for the update).
-- A list's ids and scores are little-endian int64 / float32 blobs: `imgsearch show NAME`
-- prints them with the neighbours' paths.
SELECT e.name, g.metric, g.k, g.dba,
       (SELECT COUNT(*) FROM graph_nodes n WHERE n.graph_id = g.id) AS lists,
       (SELECT COUNT(*) FROM features f WHERE f.extractor_id = e.id AND NOT EXISTS
            (SELECT 1 FROM graph_nodes n WHERE n.graph_id = g.id AND n.image_id = f.image_id)) AS without_list,
       (SELECT COUNT(*) FROM graph_removed r WHERE r.graph_id = g.id) AS removals_pending
FROM graphs g JOIN extractors e ON e.id = g.extractor_id;

-- Local features (build -e sift): images that have them, keypoints and bytes per image.
-- keypoints: n x (x, y, size, angle) float16 LE; descriptors: n x dim 4-bit levels, two a byte
-- (indexes built before 0.2.0: float32 keypoints, dim bytes of SIFT values).
SELECT e.name, e.params, COUNT(*) AS images, AVG(l.n) AS keypoints_per_image,
       AVG(LENGTH(l.keypoints) + LENGTH(l.descriptors)) AS bytes_per_image
FROM local_features l JOIN extractors e ON e.id = l.extractor_id
GROUP BY e.id, e.name, e.params;

-- Perceptual hashes (build -e phash, in the default build): pairs of images whose 63-bit
-- hashes differ in at most 6 bits, the fewest first: resized, re-compressed or recoloured
-- copies. `imgsearch duplicates` finds these and, comparing each hash's mirrored and
-- quarter-turned variants too (bits moved, not pixels: imgsearch/hashes.py), turned copies.
-- (SQLite has no ^ nor BIT_COUNT: run it through `imgsearch duplicates`, or write the
-- exclusive or as (a | b) - (a & b) in a client that defines BIT_COUNT.)
SELECT CAST(a.path AS CHAR) AS image, CAST(b.path AS CHAR) AS copy, BIT_COUNT(ha.hash ^ hb.hash) AS bits_apart
FROM image_hashes ha
JOIN image_hashes hb ON hb.extractor_id = ha.extractor_id AND hb.image_id > ha.image_id
JOIN images a ON a.id = ha.image_id JOIN images b ON b.id = hb.image_id
WHERE BIT_COUNT(ha.hash ^ hb.hash) <= 6
ORDER BY bits_apart, image, copy;

-- Visual words (built with sift): the vocabulary, the images that have their words, and
-- the postings of the inverted file (one row per word and image holding it).
SELECT e.name, v.branching * v.branching AS words, v.trained_on AS learned_from_descriptors,
       v.trained_images AS learned_at_images,
       (SELECT COUNT(*) FROM word_images w WHERE w.extractor_id = e.id) AS images_with_words,
       (SELECT COUNT(*) FROM visual_words p WHERE p.extractor_id = e.id) AS postings
FROM visual_vocabularies v JOIN extractors e ON e.id = v.extractor_id;

-- The inverted file at work: the images sharing the most keypoints' words with 45.jpg.
-- (SQLite: MIN(a.n, b.n) for LEAST(a.n, b.n))
SELECT CAST(i.path AS CHAR) AS image, SUM(LEAST(a.n, b.n)) AS shared_keypoints
FROM visual_words a
JOIN images q ON q.id = a.image_id AND q.name = '45.jpg'
JOIN visual_words b ON b.extractor_id = a.extractor_id AND b.word = a.word AND b.image_id <> a.image_id
JOIN images i ON i.id = b.image_id
GROUP BY i.id, i.path ORDER BY shared_keypoints DESC, image LIMIT 10;
