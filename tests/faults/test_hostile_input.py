"""Random and mutated bytes, awkward formats, odd folders, hostile names and settings."""
import io
import os
import uuid

import cv2
import numpy as np
import pytest
from bad_files import jpeg_bytes, png_bomb
from cli_runner import imgsearch
from conftest import admin_connection
from hypothesis import given, settings
from hypothesis import strategies as st
from photos import photo
from PIL import Image

from imgsearch.index.images import SkippedFile, decode_bytes

SMALL_JPEG = jpeg_bytes(photo("chelsea.png")[::4, ::4])
SMALL_PNG = cv2.imencode(".png", photo("coffee.png")[::4, ::4])[1].tobytes()


def decodes_or_skips(data: bytes) -> None:
    try:
        pixels = decode_bytes(data)
    except SkippedFile:
        return
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3


@settings(max_examples=300, deadline=None)  # no timed assertions: a loaded CI machine is slow
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_skip(data: bytes) -> None:
    decodes_or_skips(data)


@settings(max_examples=300, deadline=None)  # no timed assertions: a loaded CI machine is slow
@given(base=st.sampled_from([SMALL_JPEG, SMALL_PNG]), data=st.data())
def test_mutated_images_decode_or_skip(base: bytes, data) -> None:
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 20))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    decodes_or_skips(bytes(mutated[:cut]))


def test_awkward_formats() -> None:
    frames = [Image.fromarray(np.full((40, 60, 3), c, np.uint8)) for c in (0, 128, 255)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    assert decode_bytes(gif.getvalue()).shape == (40, 60, 3)
    cmyk = io.BytesIO()
    Image.fromarray(cv2.cvtColor(photo("coffee.png"), cv2.COLOR_BGR2RGB)).convert("CMYK").save(cmyk, format="JPEG")
    assert decode_bytes(cmyk.getvalue()).shape == (400, 600, 3)
    for w, h in ((30_000, 30_000), (200_000, 1_000)):
        with pytest.raises(SkippedFile, match="too many pixels"):
            decode_bytes(png_bomb(w, h))


def test_build_over_fuzzed_files_indexes_or_skips_each(tmp_path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for i in range(60):
        data = bytearray(SMALL_JPEG if i % 2 else SMALL_PNG)
        for _ in range(int(rng.integers(0, 30))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        (folder / f"f{i}.{'jpg' if i % 2 else 'png'}").write_bytes(bytes(data[: int(rng.integers(1, len(data) + 1))]))
    run = imgsearch("build", folder, "--db", tmp_path / "f.sqlite3", "-e", "rgb")
    assert run.code == 0, run.err
    summary = run.out.strip().splitlines()[-1]
    indexed = int(summary.split("indexed ")[1].split(",")[0])
    skipped = int(summary.split("skipped ")[1].split()[0])
    assert indexed + skipped == 60 and indexed > 0


def test_symlink_loops_broken_links_and_special_files_are_skipped(tmp_path) -> None:
    folder = tmp_path / "odd"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "sub" / "real.jpg"), photo("rocket.jpg"))
    os.symlink(folder, folder / "sub" / "loop")  # a folder symlink back up: never followed
    os.symlink(folder / "missing.jpg", folder / "broken.jpg")
    os.mkfifo(folder / "pipe.jpg")
    unreadable = folder / "secret.jpg"
    cv2.imwrite(str(unreadable), photo("coffee.png"))
    unreadable.chmod(0)
    run = imgsearch("build", folder, "--db", tmp_path / "o.sqlite3", "-e", "rgb", "--verbose")
    assert run.code == 0, run.err
    assert "broken or looping symlink" in run.err and "not a regular file" in run.err
    if os.geteuid() != 0:  # root reads mode-000 files anyway
        assert "permission denied" in run.err
    assert "indexed 2," in run.out or "indexed 1," in run.out


@pytest.fixture
def password_user(mysql_base_url, mysql_url):
    """A user with a distinctive password, and one that may only SELECT."""
    database = mysql_url.rsplit("/", 1)[1]
    secret = f"Pw{uuid.uuid4().hex[:10]}x"
    conn = admin_connection(mysql_base_url)
    users = {"writer": f"w{uuid.uuid4().hex[:8]}", "reader": f"r{uuid.uuid4().hex[:8]}"}
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        for role, user in users.items():
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{secret}'")
            cur.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{secret}'")
            grant = "ALL PRIVILEGES" if role == "writer" else "SELECT"
            for host in ("%", "localhost"):
                cur.execute(f"GRANT {grant} ON `{database}`.* TO '{user}'@'{host}'")
    conn.close()
    host_port = mysql_base_url.split("@", 1)[1].rstrip("/")
    urls = {role: f"mysql://{user}:{secret}@{host_port}/{database}" for role, user in users.items()}
    yield urls, secret
    conn = admin_connection(mysql_base_url)
    with conn.cursor() as cur:
        for user in users.values():
            for host in ("%", "localhost"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
    conn.close()


def test_query_only_user_can_query_and_build_refuses_cleanly(password_user, tmp_path) -> None:
    urls, secret = password_user
    folder = tmp_path / "p"
    folder.mkdir()
    for name in ("coffee.png", "rocket.jpg", "chelsea.png"):
        cv2.imwrite(str(folder / (name.split(".")[0] + ".jpg")), photo(name))
    printed = []
    run = imgsearch("build", folder, "--db", urls["writer"], "-e", "rgb")
    printed.append(run.out + run.err)
    assert run.code == 0, run.err
    run = imgsearch("query", "coffee.jpg", "--db", urls["reader"], "-e", "rgb", "--json")
    printed.append(run.out + run.err)
    assert run.code == 0, run.err
    assert len(run.json()["results"]) == 2
    for args in (("stats",), ("show", "coffee.jpg")):
        run = imgsearch(*args, "--db", urls["reader"])
        printed.append(run.out + run.err)
        assert run.code == 0, run.err
    run = imgsearch("build", folder, "--db", urls["reader"], "-e", "rgb")
    printed.append(run.out + run.err)
    assert run.code != 0 and "Traceback" not in run.err
    assert [line for line in run.err.splitlines() if line.startswith("imgsearch: error:")]
    for bad in (urls["reader"].replace(secret, secret + "wrong"), urls["reader"].rsplit("/", 1)[0] + "/nosuchdb"):
        run = imgsearch("query", "coffee.jpg", "--db", bad)
        printed.append(run.out + run.err)
        assert run.code != 0 and "Traceback" not in run.err
    for text in printed:
        assert secret not in text, "a password was printed"


def test_hostile_names_never_reach_sql_as_code(db_url, tmp_path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    names = ["x'); DROP TABLE images; --.jpg", 'a"; DELETE FROM features; #.jpg', "new\nline.jpg",
             "back\\slash%s%%.jpg", "tab\there;.jpg"]
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / "tmp.jpg"), photo(("coffee.png", "rocket.jpg", "chelsea.png", "astronaut.png", "ihc.png")[i]))
        os.rename(folder / "tmp.jpg", folder / name)
    assert imgsearch("build", folder, "--db", db_url, "-e", "rgb").code == 0
    for name in names:
        run = imgsearch("query", name, "--db", db_url, "-e", "rgb", "--json")
        assert run.code == 0, run.err
        assert sorted(r["name"] for r in run.json()["results"]) == sorted(set(names) - {name})
    run = imgsearch("query", names[2], "--db", db_url, "-e", "rgb")
    assert all(line.count("jpg") <= 1 for line in run.out.splitlines())  # one result per line
    assert "new\\nline.jpg" in imgsearch("query", names[0], "--db", db_url, "-e", "rgb").out


def test_the_password_can_stay_off_the_command_line(password_user, tmp_path) -> None:
    urls, secret = password_user
    bare = urls["writer"].replace(f":{secret}@", "@")  # what `ps` shows: no password
    folder = tmp_path / "p"
    folder.mkdir()
    for name in ("coffee.png", "rocket.jpg", "chelsea.png"):
        cv2.imwrite(str(folder / (name.split(".")[0] + ".jpg")), photo(name))
    denied = imgsearch("build", folder, "--db", bare, "-e", "rgb")
    assert denied.code != 0 and "access denied" in denied.err
    run = imgsearch("build", folder, "--db", bare, "-e", "rgb", env={"IMGSEARCH_DB_PASSWORD": secret})
    assert run.code == 0, run.err
    password_file = tmp_path / "db-password"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    run = imgsearch("query", "coffee.jpg", "--db", bare, "-e", "rgb", "--json",
                    env={"IMGSEARCH_DB_PASSWORD_FILE": str(password_file)})
    assert run.code == 0, run.err
    assert len(run.json()["results"]) == 2
    config = tmp_path / "config.ini"
    config.write_text(f"[database]\nurl = {bare}\npassword_file = {password_file}\n")
    run = imgsearch("stats", "--config", config)
    assert run.code == 0, run.err
    missing = imgsearch("stats", "--db", bare, env={"IMGSEARCH_DB_PASSWORD_FILE": str(tmp_path / "absent")})
    assert missing.code != 0 and "cannot read the password file" in missing.err and "Traceback" not in missing.err
    for text in (denied.err, run.out, missing.err):
        assert secret not in text
