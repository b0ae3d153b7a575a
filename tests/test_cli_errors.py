"""Every user mistake and outside failure: one clear line on stderr, non-zero exit, no traceback."""
import socket

import pytest
from cli_runner import imgsearch
from photos import write_collection


def assert_clean_failure(run, *words: str) -> None:
    assert run.code != 0
    assert "Traceback" not in run.err
    error_lines = [line for line in run.err.splitlines() if line.startswith("imgsearch: error:")]
    assert len(error_lines) == 1, run.err
    for word in words:
        assert word in error_lines[0], run.err


@pytest.fixture
def built(tmp_path):
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg"))
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "hsv72").code == 0
    return db


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_query_file(built) -> None:
    assert_clean_failure(imgsearch("query", "nowhere/missing.jpg", "--db", built, "-e", "hsv72"), "no such file")


def test_query_with_an_extractor_never_built(built) -> None:
    assert_clean_failure(imgsearch("query", "coffee.jpg", "--db", built, "-e", "rgb"), "never built", "hsv72")


def test_the_default_extractor_not_built_says_how_to_build_it(built) -> None:
    assert_clean_failure(imgsearch("query", "coffee.jpg", "--db", built), "cnn-spoc", "never built",
                         "build --extractor cnn-spoc")


def test_unknown_extractor_is_refused_by_the_parser(built) -> None:
    run = imgsearch("query", "coffee.jpg", "--db", built, "-e", "surf")
    assert run.code == 2 and "Traceback" not in run.err and "surf" in run.err


def test_query_before_any_build(tmp_path) -> None:
    assert_clean_failure(imgsearch("query", "x.jpg", "--db", f"sqlite:///{tmp_path / 'none.db'}"), "build")


def test_unreachable_database(tmp_path) -> None:
    url = f"mysql://someone:s3cretpw@127.0.0.1:{unused_port()}/imgs"
    run = imgsearch("query", "x.jpg", "--db", url)
    assert_clean_failure(run, "cannot reach")
    assert "s3cretpw" not in run.err + run.out


def test_wrong_credentials(mysql_base_url) -> None:
    url = mysql_base_url.replace("mysql://root:", "mysql://nobody_here:wr0ngpass") + "imgs"
    run = imgsearch("stats", "--db", url)
    assert_clean_failure(run, "access denied")
    assert "wr0ngpass" not in run.err + run.out


def test_unsafe_database_name_is_refused(tmp_path) -> None:
    assert_clean_failure(imgsearch("stats", "--db", "mysql://u:p@127.0.0.1:3306/x`;drop"), "database name")


def test_query_with_different_extractor_params_is_refused(built, tmp_path) -> None:
    import sqlite3

    path = built.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE extractors SET params = '{\"hue_edges\":[1]}' WHERE name = 'hsv72'")
    photo = tmp_path / "photo.jpg"  # a photo is extracted by this code: its vector would not compare
    photo.write_bytes(next((tmp_path / "photos").rglob("coffee.jpg")).read_bytes())
    assert_clean_failure(imgsearch("query", photo, "--db", built, "-e", "hsv72"), "not comparable")


def test_corrupt_query_image(built, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    assert_clean_failure(imgsearch("query", bad, "--db", built, "-e", "hsv72"), "cannot use")


def test_build_of_a_missing_folder(tmp_path) -> None:
    assert_clean_failure(imgsearch("build", tmp_path / "nope", "--db", f"sqlite:///{tmp_path / 'x.db'}"), "does not exist")


def test_serve_on_a_port_in_use_says_so_once_and_announces_nothing(built) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = imgsearch("serve", "--db", built, "--port", str(taken.getsockname()[1]), timeout=60)
    assert_clean_failure(run, "cannot serve on 127.0.0.1", "another program listens there")
    assert "serving" not in run.out + run.err and "errno" not in run.err.lower()


def test_a_build_that_fails_before_indexing_leaves_no_database_file(tmp_path) -> None:
    run = imgsearch("build", tmp_path / "no-such-folder", cwd=tmp_path)
    assert_clean_failure(run, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_a_build_leaves_only_the_database_and_hidden_lock_files_that_say_what_they_are(tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg"))
    index = tmp_path / "index"
    index.mkdir()
    assert imgsearch("build", folder, "--db", index / "idx.sqlite3", "-e", "hsv72", "-e", "sift").code == 0
    shown = sorted(p.name for p in index.iterdir() if not p.name.startswith("."))
    assert shown == ["idx.sqlite3"], shown
    locks = sorted(index.glob(".idx.sqlite3.*.lock"))
    assert locks and all("imgsearch holds this file locked" in lock.read_text() for lock in locks)


def test_no_local_features_leaves_out_sift_and_refuses_an_empty_build(tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg"))
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert_clean_failure(imgsearch("build", folder, "--db", db, "-e", "sift", "--no-local-features"),
                         "leaves no extractor")
    assert imgsearch("build", folder, "--db", db, "-e", "hsv72", "-e", "sift", "--no-local-features").code == 0
    stats = imgsearch("stats", "--db", db).out
    assert "hsv72" in stats and "sift" not in stats
