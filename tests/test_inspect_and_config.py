import numpy as np
from cli_runner import imgsearch
from photos import write_collection

from imgsearch.features.color import Hsv72Histogram
from imgsearch.index.images import load_image


def test_show_prints_the_stored_vector_and_stats_the_counts(db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    paths = write_collection(folder, ("coffee.png", "rocket.jpg"))
    assert imgsearch("build", folder, "--db", db_url, "-e", "hsv72").code == 0

    run = imgsearch("show", "coffee.jpg", "--db", db_url)
    assert run.code == 0, run.err
    assert "b/coffee.jpg" in run.out and "dim 72" in run.out
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

    import pymysql

    from imgsearch.store.url import parse_database_url

    write_collection(tmp_path / "photos")
    assert imgsearch("build", tmp_path / "photos", "--db", mysql_url, "-e", "hsv72", "-e", "sift").code == 0
    assert imgsearch("graph", "--db", mysql_url, "-e", "hsv72", "-n", "3", "--dba", "2").code == 0
    text = resources.files("imgsearch.sql").joinpath("inspect.sql").read_text("utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    statements = [s.strip() for s in code.split(";") if s.strip()]
    assert len(statements) >= 8
    url = parse_database_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password, database=url.database)
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            cur.fetchall()
        cur.execute(statements[-2])
        assert cur.fetchall() == (("hsv72", "pearson", 3, 2, 9, 0, 0),)
        cur.execute(statements[-1])
        (name, _, images, keypoints, size), = cur.fetchall()
        cur.execute("SELECT AVG(n) * (16 + 128) FROM local_features")
        assert (name, images) == ("sift", 9) and 50 < keypoints <= 400 and float(size) == float(cur.fetchone()[0])
    conn.close()
