"""Every bad argument of the Python library is an ImgsearchError saying what is allowed,
by the rule the command line and HTTP apply (k a whole number in range, never silently
clipped); a database URL that names none, a pipe or a device given as a photo, and an
index in a folder nobody may write are each answered as such."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from cli_runner import imgsearch as cli
from photos import write_collection

import imgsearch
from imgsearch import ImgsearchError


@pytest.fixture(scope="module")
def index_url(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("arguments")
    write_collection(folder / "photos")
    url = f"sqlite:///{folder / 'index.sqlite3'}"
    with imgsearch.open(url) as index:
        index.build(folder / "photos", extractors=("rgb",))
    return url


@pytest.mark.parametrize("arguments, said", [
    ({"k": -1}, "k must be from 1 to 1000000, not -1"),
    ({"k": -5}, "k must be from 1 to 1000000, not -5"),
    ({"k": 0}, "k must be from 1 to 1000000, not 0"),
    ({"k": "5"}, "k must be a whole number from 1 to 1000000, not '5'"),
    ({"k": 2.5}, "k must be a whole number"),
    ({"k": None}, "k must be a whole number"),
    ({"k": True}, "k must be a whole number"),
    ({"under": 3}, "under must be non-empty text"),
    ({"rerank": ""}, "rerank must be non-empty text"),
    ({"include_self": "yes"}, "include_self must be True or False"),
    ({"metric": "euclid"}, "unknown metric 'euclid'"),
    ({"rerank": "alpha-qe:3,1e30"}, "alpha of alpha-qe must be a number from 0 to below 100"),
])
def test_a_bad_search_argument_is_an_imgsearch_error_saying_what_is_allowed(index_url, arguments, said) -> None:
    with imgsearch.open(index_url) as index:
        with pytest.raises(ImgsearchError, match=said.replace("(", r"\(").replace(")", r"\)")):
            index.search(name="a/chelsea.jpg", extractor="rgb", **arguments)


def test_k_is_what_it_says(index_url) -> None:
    with imgsearch.open(index_url) as index:
        assert len(index.search(name="a/chelsea.jpg", extractor="rgb", k=3)) == 3
        assert len(index.search(name="a/chelsea.jpg", extractor="rgb", k=np.int64(2))) == 2


@pytest.mark.parametrize("photo, said", [
    (np.zeros((0, 0, 3), np.uint8), "an RGB array of 0 x 0 pixels holds no photo"),
    (np.zeros((5, 5), np.uint8), r"not an array \(5, 5\) of uint8"),
    (np.zeros((5, 5, 3), np.float32), "of float32"),
    (b"", "empty file"),
    (b"not an image", "cannot decode"),
    (42, "not 42"),
    ("/dev/zero", "/dev/zero is not a regular file"),
])
def test_a_bad_photo_is_an_imgsearch_error(index_url, photo, said) -> None:
    with imgsearch.open(index_url) as index:
        with pytest.raises(ImgsearchError, match=said):
            index.search(photo, extractor="rgb")


def test_bad_build_compare_and_open_arguments(index_url, tmp_path) -> None:
    with imgsearch.open(index_url) as index:
        for arguments, said in (({"workers": 0}, "workers must be from 1"), ({"workers": "2"}, "workers must be a whole"),
                                ({"extractors": "rgb"}, "extractors must be a tuple of names"),
                                ({"extractors": ("bogus",)}, "extractors must be a tuple of names")):
            with pytest.raises(ImgsearchError, match=said):
                index.build(**arguments)
        with pytest.raises(ImgsearchError, match="b must be a file or an indexed image's name"):
            index.compare("a/chelsea.jpg", None)
    for url in ("", "  ", 5):
        with pytest.raises(ImgsearchError, match="a database URL is"):
            imgsearch.open(url)
    assert not (tmp_path / "imgsearch.sqlite3").exists()


def test_a_pipe_given_as_the_query_photo_is_said_to_be_one(index_url, tmp_path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    run = cli("query", fifo, "--db", index_url, "-e", "rgb", timeout=60)  # never read: a pipe would wait
    assert run.code == 1 and "is not a regular file (a pipe, a device or a socket)" in run.err, run.err
    run = cli("compare", fifo, "a/chelsea.jpg", "--db", index_url, timeout=60)
    assert run.code == 1 and "is not a regular file" in run.err, run.err


def test_an_index_in_a_folder_nobody_may_write_is_searched(tmp_path) -> None:
    """Read-only: the folder and the file (root writes anyway: the query runs without the
    capabilities that let it, as tests/faults/test_unseen_files.py does)."""
    folder = tmp_path / "index"
    folder.mkdir()
    write_collection(tmp_path / "photos")
    url = f"sqlite:///{folder / 'index.sqlite3'}"
    assert cli("build", tmp_path / "photos", "--db", url).code == 0  # the default build: words, graph
    (folder / "index.sqlite3").chmod(0o444)
    folder.chmod(0o555)
    without_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    try:
        for image in ("a/chelsea.jpg", str(tmp_path / "photos" / "b" / "coffee.jpg")):
            run = subprocess.run([*without_override, sys.executable, "-m", "imgsearch", "query", image, "--db", url,
                                  "--json"], capture_output=True, text=True, timeout=300)
            assert run.returncode == 0, run.stderr
        build = subprocess.run([*without_override, sys.executable, "-m", "imgsearch", "build", "--db", url],
                               capture_output=True, text=True, timeout=300)
        assert build.returncode == 1 and "readonly database" in build.stderr, build.stderr
    finally:
        folder.chmod(0o755)
