"""The test harness and the README's promises, checked as a new user meets them."""
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import cv2
import httpx
import pytest
from mysql_server import server_base_url
from photos import PHOTOS, photo
from served import free_port

import imgsearch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("given", ["mysql://u:p@db.example:3306/", "mysql://u:p@db.example:3306",
                                   "mysql://u:p@db.example:3306/somedb", "mysql://u:p@db.example:3306/somedb/"])
def test_the_documented_test_url_keeps_user_password_host_and_port(given) -> None:
    assert server_base_url(given) == "mysql://u:p@db.example:3306/"


def test_the_suite_runs_against_an_external_server_given_by_url(mysql_base_url) -> None:
    """IMGSEARCH_TEST_MYSQL_URL as README documents it (here: the server this run started,
    with a database part that the tests must ignore)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env["IMGSEARCH_TEST_MYSQL_URL"] = mysql_base_url + "ignored_database"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_mysql_stream.py",
                           "tests/test_build_query.py::test_scan_ranking_equals_numpy_brute_force"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", done.stdout) and "skipped" not in done.stdout, done.stdout[-2000:]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Two commands", 1)[1]
    return [c.strip() for c in re.findall(r"```sh\n(.+?)\n```", section, re.S)[:2]]


def readme_first_command() -> str:
    return readme_commands()[0]


def fresh_clone_and_environment(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A clone of this repository and a new, empty virtual environment: the install
    resolves every dependency as on a new machine, newest release within our bounds, not
    whatever this machine already has; the environment to run commands in."""
    clone = tmp_path / "main"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    environment = tmp_path / "venv"
    venv.create(environment, system_site_packages=False, with_pip=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSEARCH_", "PYTHON", "VIRTUAL_ENV", "PYTEST"))}
    env.update(PATH=f"{environment / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(environment),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return clone, environment, env


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text("utf-8").strip().splitlines()
    assert script[-1] == readme_commands()[1]
    assert not any("apt-get" in line for line in script)  # the command itself installs what is missing


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to make a fresh clone")
def test_readme_test_command_verbatim_in_a_fresh_clone_and_environment(tmp_path) -> None:
    """The second command as a new user runs it, in an empty environment: install, lint,
    layers, types, then pytest, which here runs the tests of what it installs, of the
    offline API docs and of the spec's generated requests (the test tools' plugins meet
    there: schemathesis' broke under a pytest release the bounds now leave out). The whole
    suite would run this test again."""
    clone, environment, env = fresh_clone_and_environment(tmp_path)
    env["PYTEST_ADDOPTS"] = ("-p no:cacheprovider tests/test_system_parts.py tests/test_api_spec.py "
                             "tests/test_page.py::test_the_api_docs_load_and_list_the_endpoints_without_internet")
    done = subprocess.run(["bash", "-c", readme_commands()[1]], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", done.stdout) and not re.search(r"\b(skipped|failed)\b", done.stdout), \
        done.stdout[-2000:]
    assert list((environment / "lib").glob("python*/site-packages/pytest/__init__.py")), "pytest came from elsewhere"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to make a fresh clone")
def test_readme_first_command_verbatim_in_a_fresh_clone_with_a_real_install(tmp_path) -> None:
    """`pip install .` (not editable) into a fresh virtual environment, then the README's
    command from the clone's root, where `python -m imgsearch` imports the source tree:
    what only a real install breaks shows here, not in CI's editable install. The
    command's photo folder (the shared Corel set, one level up) is made beside the clone from
    the test's own photos: nothing outside the temporary directory is read."""
    clone, environment, env = fresh_clone_and_environment(tmp_path)
    collection = tmp_path / "shared" / "data" / "corel1k"
    for i, name in enumerate(PHOTOS * 2):
        folder = collection / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{40 + i}.jpg"), photo(name))
    env["IMGSEARCH_CONFIG"] = str(tmp_path / "no-config.ini")
    done = subprocess.run(["bash", "-c", readme_first_command()], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = [line for line in done.stdout.splitlines()
               if re.match(r"\s+\d+\s+\S+\.jpg\s+-?\d\.\d+(  same object: \d+ of \d+ points agree)?$", line)]
    assert len(results) == 10, done.stdout[-3000:]
    assert re.search(r"^spend \d+\.\d+ s$", done.stdout, re.M)
    installed = list((environment / "lib").glob("python*/site-packages/imgsearch/sql/mysql.sql"))
    assert installed, "the schema files did not install with the package"
    # our own distribution name (`imgsearch` on PyPI is another project), one version
    dist = list((environment / "lib").glob("python*/site-packages/imgsearch_sql-*.dist-info"))
    assert [d.name for d in dist] == [f"imgsearch_sql-{imgsearch.__version__}.dist-info"], dist
    shown = subprocess.run(["python", "-m", "imgsearch", "--version"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.stdout.strip() == f"imgsearch, version {imgsearch.__version__}", shown.stdout + shown.stderr
    # Then, as README goes on: `python -m imgsearch serve` shows the page over that index.
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "imgsearch", "serve", "--port", str(port)], cwd=clone, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.2)
        assert page.status_code == 200 and "Drop an image" in page.text
        stats = httpx.get(f"http://127.0.0.1:{port}/api/stats").json()
        assert stats["default_extractor"] == "cnn-spoc" and stats["extractors"]["cnn-spoc"]["served"] == "resident"
    finally:
        server.terminate()
        server.wait(30)
