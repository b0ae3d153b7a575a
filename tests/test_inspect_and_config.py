import numpy as np
from cli_runner import imgsearch
from photos import write_collection

from imgsearch.features.color import Hsv72Histogram
from imgsearch.index.images import load_image
from imgsearch.rerank.words import branching_for


def test_show_prints_the_stored_vector_and_stats_the_counts(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    paths = write_collection(folder, ("coffee.png", "rocket.jpg"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "hsv72").code == 0

    run = imgsearch("show", "coffee.jpg", "--db", db_url)
    assert run.code == 0, run.err
    assert "b/coffee.jpg" in run.out and "dim 72" in run.out and "(64 more: --values)" in run.out
    assert len(run.out.splitlines()) < 10  # a summary a person reads
    run = imgsearch("show", "coffee.jpg", "--db", db_url, "--values")
    printed = run.out[run.out.rindex("[") + 1 : run.out.rindex("]")]
    values = np.array([float(x) for x in printed.replace("\n", " ").split(",")])
    expected = Hsv72Histogram().extract(load_image(paths[0]).pixels)
    np.testing.assert_allclose(values, expected, atol=1e-6)

    run = imgsearch("stats", "--db", db_url)
    assert run.code == 0, run.err
    assert "images      2" in run.out
    assert any(line.split()[:3] == ["hsv72", "2", "72"] for line in run.out.splitlines())


def test_config_file_environment_and_flags_in_that_order(tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "rocket.jpg", "chelsea.png", "astronaut.png", "ihc.png", "color.png"))
    config = tmp_path / "config.ini"
    config.write_text(
        f"[database]\nurl = sqlite:///{tmp_path / 'from-config.sqlite3'}\n"
        f"[collection]\nfolder = {folder}\n[build]\nextractors = rgb\n[query]\ntop_k = 1\n"
    )
    env = {"IMGSEARCH_CONFIG": str(config)}
    assert imgsearch("build", env=env).code == 0  # folder and db both from the config
    assert (tmp_path / "from-config.sqlite3").exists()
    run = imgsearch("query", "coffee.jpg", "-e", "rgb", "--json", env=env)
    assert len(run.json()["results"]) == 1
    run = imgsearch("query", "coffee.jpg", "-e", "rgb", "--json", env={**env, "IMGSEARCH_TOP_K": "2"})
    assert len(run.json()["results"]) == 2
    run = imgsearch("query", "coffee.jpg", "-e", "rgb", "--json", "-k", "3", env={**env, "IMGSEARCH_TOP_K": "2"})
    assert len(run.json()["results"]) == 3  # five other images exist: the flag wins over the environment
    assert imgsearch("query", "coffee.jpg", "-e", "hsv72", env=env).code != 0  # config built rgb only


def test_every_ready_query_of_inspect_sql_runs_on_a_built_index(mysql_url, tmp_path) -> None:
    from importlib import resources

    import cv2
    import pymysql

    from imgsearch.features.phash import PerceptualHash
    from imgsearch.hashes import hamming
    from imgsearch.store.url import parse_database_url

    paths = write_collection(tmp_path / "photos")
    half = cv2.imread(str(paths[0]))
    cv2.imwrite(str(tmp_path / "photos" / "half.jpg"), cv2.resize(half, None, fx=0.5, fy=0.5))  # a resized copy
    assert imgsearch("build", tmp_path / "photos", "--db", mysql_url, "-e", "hsv72", "-e", "sift", "-e", "phash").code == 0
    assert imgsearch("graph", "--db", mysql_url, "-e", "hsv72", "-n", "3", "--dba", "2").code == 0
    text = resources.files("imgsearch.sql").joinpath("inspect.sql").read_text("utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    statements = [s.strip() for s in code.split(";") if s.strip()]
    assert len(statements) >= 9
    url = parse_database_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password, database=url.database)
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            cur.fetchall()
        cur.execute(statements[-5])
        assert cur.fetchall() == (("hsv72", "pearson", 3, 2, 10, 0, 0),)
        cur.execute(statements[-4])
        (name, _, images, keypoints, size), = cur.fetchall()
        cur.execute("SELECT AVG(n) * (8 + 64) FROM local_features")
        assert (name, images) == ("sift", 10) and 50 < keypoints <= 400 and float(size) == float(cur.fetchone()[0])
        # the stored hashes are the extractor's, and the ready query's pairs are theirs
        cur.execute("SELECT CAST(i.path AS CHAR), h.hash FROM image_hashes h JOIN images i ON i.id = h.image_id")
        stored = dict(cur.fetchall())
        assert len(stored) == 10
        for path in [*paths, tmp_path / "photos" / "half.jpg"]:
            relative = str(path.relative_to(tmp_path / "photos"))
            assert stored[relative] == PerceptualHash().extract(load_image(path).pixels).bits
        cur.execute(statements[-3])
        pairs = {(a, b): bits for a, b, bits in cur.fetchall()}
        cur.execute(statements[-2])
        (name, words, learned_from, learned_at, with_words, postings), = cur.fetchall()
        cur.execute("SELECT COUNT(DISTINCT l.image_id) FROM local_features l")
        # a vocabulary sized to what it learned from: 10 images' descriptors, not 40,000 words
        assert (name, words, learned_at, with_words) == ("sift", branching_for(learned_from) ** 2, 10,
                                                         cur.fetchone()[0])
        assert words < learned_from
        cur.execute("SELECT SUM(n) FROM local_features")
        keypoints = cur.fetchone()[0]
        cur.execute("SELECT SUM(n), COUNT(*) FROM visual_words")
        assert cur.fetchone() == (keypoints, postings)  # every keypoint posted under its word
    conn.close()
    names = sorted(stored)
    values = np.array([stored[n] for n in names], dtype=np.int64)
    apart = hamming(values[:, None], values[None, :])
    expected = {tuple(sorted((names[i], names[j]))): int(apart[i, j])
                for i in range(len(names)) for j in range(i + 1, len(names)) if apart[i, j] <= 6}
    assert {tuple(sorted(k)): v for k, v in pairs.items()} == expected
    assert expected[tuple(sorted(("half.jpg", str(paths[0].relative_to(tmp_path / "photos")))))] <= 2


def test_sqlite_keeps_vectors_and_local_features_without_half_empty_pages(tmp_path) -> None:
    """A WITHOUT ROWID table spills a row larger than a quarter page into overflow pages
    whose last is part empty: the vectors then took 1.8 times their bytes. dbstat counts
    the pages each table holds and the bytes stored in them."""
    import sqlite3

    db = tmp_path / "index.sqlite3"
    write_collection(tmp_path / "photos")
    assert imgsearch("build", tmp_path / "photos", "--db", f"sqlite:///{db}", "-e", "rgb", "-e", "cnn-spoc",
                     "-e", "sift").code == 0
    with sqlite3.connect(db) as conn:
        pages = dict(conn.execute("SELECT name, SUM(pgsize) * 1.0 / SUM(payload) FROM dbstat "
                                  "WHERE name IN ('features', 'local_features') GROUP BY name").fetchall())
    assert pages["features"] < 1.4 and pages["local_features"] < 1.1, pages


def test_show_prints_the_local_features_as_stored(db_url, tmp_path) -> None:
    write_collection(tmp_path / "photos", ("coffee.png", "rocket.jpg"))
    assert imgsearch("build", tmp_path / "photos", "--db", db_url, "-e", "sift").code == 0
    run = imgsearch("show", "coffee.jpg", "--db", db_url, "--values")
    assert run.code == 0, run.err
    (head,) = [line for line in run.out.splitlines() if line.startswith("sift ")]
    keypoints, stored = int(head.split()[1]), int(head.split()[3])
    assert stored == keypoints * (8 + 64)  # float16 keypoints, two 4-bit levels a byte
    rows = [line.split()[8:] for line in run.out.splitlines() if line.startswith("  x ")]
    assert len(rows) == keypoints and all(len(r) == 128 and all(0 <= int(v) <= 15 for v in r) for r in rows)
