"""Every setting from every source and every method parameter is checked: a bad value is one
clear line naming where it came from, never a traceback or a silently different run."""
import re

import numpy as np
import pytest
from cli_runner import imgsearch
from hypothesis import given, settings
from hypothesis import strategies as st
from photos import write_collection
from test_cli_errors import assert_clean_failure

from imgsearch.config import SOURCES
from imgsearch.errors import ImgsearchError
from imgsearch.learn.whiten import WHITENINGS
from imgsearch.query import MIN_BOX_SIDE
from imgsearch.rerank.registry import methods
from imgsearch.serve.requests import BOX_SIDE
from imgsearch.specs import parse_spec

INT_SOURCES = [s for s in SOURCES if s.kind == "int"]
NAME_SOURCES = [s for s in SOURCES if s.kind in ("name", "names")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validation")
    folder = tmp / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png"))
    db = f"sqlite:///{tmp / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    return db, tmp


def command_reading(source) -> tuple[str, ...]:
    """A command that reads the setting."""
    if source.section in ("build", "cnn") or source.name == "folder":
        return ("build",)
    return ("query", "coffee.jpg")


@pytest.mark.parametrize("source", INT_SOURCES, ids=[s.name for s in INT_SOURCES])
@pytest.mark.parametrize("bad", ["low", "high", "text"])
def test_every_whole_number_setting_is_range_checked_from_the_environment(built, source, bad) -> None:
    db, _ = built
    value = {"low": str(source.low - 1), "high": str((source.high or 10**9) + 1), "text": "many"}[bad]
    run = imgsearch(*command_reading(source), "--db", db, env={source.env: value})
    assert_clean_failure(run, source.env)


@pytest.mark.parametrize("source", INT_SOURCES + NAME_SOURCES, ids=[s.name for s in INT_SOURCES + NAME_SOURCES])
def test_every_setting_is_checked_in_the_config_file_naming_file_and_key(built, source) -> None:
    db, tmp = built
    config = tmp / f"bad-{source.name}.ini"
    bad = str(source.low - 1) if source.kind == "int" else "no-such-thing"
    config.write_text(f"[{source.section}]\n{source.key} = {bad}\n")
    run = imgsearch(*command_reading(source), "--db", db, "--config", config)
    assert_clean_failure(run, f"[{source.section}] {source.key}", str(config))


def test_negative_pack_rows_no_longer_empties_the_index(built, tmp_path) -> None:
    """Once, IMGSEARCH_PACK_ROWS=-1 deleted the blocks it rewrote and wrote none back."""
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png"))
    db = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    assert_clean_failure(imgsearch("build", folder, "--db", db, "-e", "rgb", env={"IMGSEARCH_PACK_ROWS": "-1"}),
                         "IMGSEARCH_PACK_ROWS")
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    assert len(imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "--json").json()["results"]) == 1


def test_top_k_zero_from_the_flag_and_the_environment(built) -> None:
    db, _ = built
    assert_clean_failure(imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", env={"IMGSEARCH_TOP_K": "0"}),
                         "IMGSEARCH_TOP_K")
    run = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "-k", "0")
    assert run.code == 2 and "Traceback" not in run.err and "--top-k" in run.err


@pytest.mark.parametrize("args, words", [
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "aqe:0"), ("n of aqe", "from 1 to 999")),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "alpha-qe:5,-1"), ("alpha",)),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "diffusion:30,1.5"), ("alpha", "between 0 and 1")),
    # weights that overflow, and numbers Python's float() reads but no person writes as one
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "alpha-qe:3,1e30"), ("alpha of alpha-qe", "from 0 to below 100")),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "verify:1_0"), ("shortlist of verify", "'1_0'")),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "verify:\u0663"), ("shortlist of verify", "whole number")),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "verify:1e3"), ("shortlist of verify", "whole number")),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "dba-aqe:"), ("nothing after the colon",)),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "aqe:3,"), ("at most 1",)),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "alpha-qe:,3"), ("n of alpha-qe", "''")),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "aqe:x"), ("n of aqe",)),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "aqe:nan"), ("n of aqe",)),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "aqe:3,4"), ("at most 1",)),
    (("query", "coffee.jpg", "-e", "rgb", "--rerank", "bogus"), ("unknown method",)),
    (("learn", "m", "-e", "rgb", "--method", "pca:0.5"), ("dims of pca", "whole number")),
    (("learn", "m", "-e", "rgb", "--method", "lw:-3"), ("dims of lw", "from 0 to")),
    (("learn", "m", "-e", "rgb", "--method", "pca:600"), ("dims 600", "512 dimensions")),
    (("learn", "m", "-e", "rgb", "--method", "pca:8,0.5,2"), ("shrinkage",)),
])
def test_bad_method_parameters_are_one_clear_line(built, args, words) -> None:
    db, _ = built
    assert_clean_failure(imgsearch(*args, "--db", db), *words)


def test_eval_with_more_folds_than_the_smallest_class_has_images(tmp_path) -> None:
    dataset = tmp_path / "set"
    write_collection(dataset / "one", ("coffee.png", "chelsea.png"))
    write_collection(dataset / "two", ("rocket.jpg", "astronaut.png"))
    assert_clean_failure(imgsearch("eval", dataset, "-e", "rgb", "--whiten", "lw", "--folds", "20"),
                         "--folds 20", "smallest class")


def test_a_damaged_model_file_is_a_clear_error(tmp_path) -> None:
    from imgsearch.features.cnn import MODEL_FILE, Backbone

    damaged = tmp_path / MODEL_FILE.name
    data = bytearray(MODEL_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ImgsearchError, match="damaged or replaced.*reinstall"):
        Backbone(damaged)


def test_specs_fill_defaults_from_the_signatures_and_keep_types() -> None:
    assert parse_spec("aqe", methods()).values == {"n": 10}
    assert parse_spec("alpha-qe:5,2", methods()).values == {"n": 5, "alpha": 2.0}
    spec = parse_spec("diffusion:30,0.9", methods())
    assert spec.values["k"] == 30 and isinstance(spec.values["k"], int) and spec.values["alpha"] == 0.9
    assert parse_spec("lw:3", WHITENINGS).values == {"dims": 3, "shrinkage": 0.1}
    with pytest.raises(ImgsearchError, match="known: pca, lw, triplet$"):
        parse_spec("diffusion", WHITENINGS)
    assert np.isfinite(parse_spec("pca:0,0.25", WHITENINGS).values["power"])
    # one grammar: digits for whole numbers; digits, a point and an exponent for the others
    assert parse_spec("alpha-qe:5,25.5", methods()).values == {"n": 5, "alpha": 25.5}
    assert parse_spec("verify:9,1e-10", methods()).values == {"shortlist": 9, "false_alarms": 1e-10, "expand": 1}
    assert parse_spec("verify:9,1e-10,0", methods()).values["expand"] == 0
    for refused in ("aqe:1e1", "aqe:+3", "aqe: 3", "aqe:03", "alpha-qe:3,inf", "alpha-qe:3,1_0", "alpha-qe:5,2.5e1",
                    "alpha-qe:5,.5", "aqe:\uff13", "verify:3.0", "verify:9,1e-100"):
        with pytest.raises(ImgsearchError):
            parse_spec(refused, methods())


CHECKS = {f"{name}.{param.name}": param.check for registry in (methods(), WHITENINGS)
          for name, method in registry.items() for param in method.params}


@given(st.text(alphabet="0123456789.e-+ \u0663_", min_size=1, max_size=8))
@settings(max_examples=3000, deadline=None)
def test_each_parameters_published_pattern_takes_exactly_what_its_parser_takes(text) -> None:
    """The service's spec carries each range as a regular expression (specs.Check.pattern):
    it must accept exactly the texts the parser reads as a value in range."""
    for where, check in CHECKS.items():
        assert (check.reads(text) is not None) == bool(re.fullmatch(f"(?:{check.pattern})", text)), (where, text)


def test_the_box_pattern_the_spec_publishes_takes_exactly_the_sides_a_search_takes() -> None:
    sides = [str(n) for n in range(0, 2000)] + ["016", "999999999", "1000000000"]
    assert [side for side in sides if re.fullmatch(BOX_SIDE, side)] == \
        [side for side in sides if side.isdigit() and not side.startswith("0") and MIN_BOX_SIDE <= int(side) < 10 ** 9]
