"""Every body a client can send to the search API gets a JSON 4xx or a right answer: the
inputs that once gave HTTP 500, and a fuzzer of JSON bodies (types, huge and non-finite
numbers, lone surrogates, deep nesting) and of form fields."""
from __future__ import annotations

import json

import pytest
from cli_runner import imgsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from photos import write_collection
from served import serving

FIELDS = ("name", "extractor", "metric", "k", "offset", "rerank", "whiten", "include_self", "regions")
ALLOWED = {200, 400, 404, 413, 415, 422}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("served-inputs")
    db = f"sqlite:///{workdir / 'index.sqlite3'}"
    write_collection(workdir / "photos", ("coffee.png", "chelsea.png", "rocket.jpg"))
    assert imgsearch("build", workdir / "photos", "--db", db, "-e", "rgb").code == 0
    with serving(db, workdir) as server, server.client() as http:
        yield server, http
    assert "Traceback" not in server.output() and "unexpected error" not in server.output(), server.output()


def check(response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text)
    answer = response.json()
    assert ("results" in answer) if response.status_code == 200 else ("error" in answer), answer


def post_raw(http, body: bytes):
    return http.post("/api/search", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("body", [
    b'{"name": "coffee.jpg", "k": Infinity}', b'{"name": "coffee.jpg", "k": 1e400}',
    b'{"name": "coffee.jpg", "offset": -Infinity}', b'{"name": "coffee.jpg", "k": NaN}',
    b'{"name": "\\ud800"}', b'{"name": "\\udcff.jpg"}', b'{"name": "coffee.jpg", "extractor": "\\ud800"}',
    b'{"name": "coffee.jpg", "k": 1.5}', b'{"name": "coffee.jpg", "k": true}', b'{"name": "coffee.jpg", "k": " 5"}',
    '{"name": "coffee.jpg", "k": "٥"}'.encode(), b'{"name": "coffee.jpg", "k": "1_0"}',
    b'{"name": "coffee.jpg", "k": 123456789012345678901234567890}', b'{"name": "coffee.jpg", "k": "5"}',
    b'{"name": "coffee.jpg", "include_self": "maybe"}', b'{"name": "coffee.jpg", "include_self": 2}',
    b'{"name": "coffee.jpg", "include_self": "true"}', b'{"name": "coffee.jpg", "kk": 3}',
    b"[" * 100_000 + b"]" * 100_000, b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"name": "coffee.jpg", "k": ' + b"9" * 5000 + b"}",
])
def test_inputs_that_once_gave_500_are_json_4xx(served, body) -> None:
    response = post_raw(served[1], body)
    check(response)
    assert response.status_code != 200, response.text


def test_whole_numbers_are_strict_and_good_ones_still_work(served) -> None:
    """JSON values keep their JSON types (3 and 3.0 are one integer, true a boolean); form
    fields are text to parse."""
    http = served[1]
    for k in (3, 3.0):
        answer = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": k, "include_self": True})
        assert answer.status_code == 200 and len(answer.json()["results"]) == 3, answer.text
    form = http.post("/api/search", data={"name": "coffee.jpg", "k": "2"}, files={"unused": ("x", b"")})
    check(form)
    for path in ("/api/images/99999999999999999999999", "/api/images/-1", "/api/images/0",
                 "/api/images/1e3", "/api/duplicates?threshold=nan", "/api/duplicates?threshold=inf",
                 "/api/duplicates?threshold=7"):
        response = http.get(path)
        assert response.status_code in (404, 422) and "error" in response.json(), (path, response.text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text() | st.sampled_from(["coffee.jpg", "rgb", "aqe:2"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
search_bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=6)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=search_bodies, surrogate=st.booleans())
def test_fuzzed_json_bodies_get_json_4xx_or_an_answer(served, body, surrogate) -> None:
    text = json.dumps(body, allow_nan=True)  # Infinity and NaN as Python writes them
    if surrogate:
        text = text.replace('"', '"\\udc80', 1)  # a lone surrogate in the first string
    check(post_raw(served[1], text.encode()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=12), max_size=6),
       image=st.binary(max_size=64))
def test_fuzzed_form_fields_get_json_4xx_or_an_answer(served, fields, image) -> None:
    check(served[1].post("/api/search", data=fields, files={"image": ("q.jpg", image)}))
