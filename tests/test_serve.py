"""`imgsearch serve` against a real uvicorn on loopback, on SQLite and MariaDB: answers equal
`query`, it follows builds made elsewhere, files only by id, and every bad request is a
JSON error with the right status while the server keeps serving."""
import os
import re
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo, variant, write_collection
from served import serving

from imgsearch.config import Settings
from imgsearch.serve.config import ServeConfig
from imgsearch.serve.service import Service
from imgsearch.store import open_store
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url

EXTRACTORS = ("-e", "rgb", "-e", "hsv72")


@pytest.fixture
def collection(tmp_path, db_url):
    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db_url, *EXTRACTORS).code == 0
    return folder, db_url


def jpeg(name: str, edit=None) -> bytes:
    pixels = photo(name) if edit is None else edit(photo(name))
    return cv2.imencode(".jpg", pixels)[1].tobytes()


def same_answer(api: dict, cli: dict) -> None:
    assert [r["path"] for r in api["results"]] == [r["path"] for r in cli["results"]]
    assert [r["id"] for r in api["results"]] == [r["id"] for r in cli["results"]]
    np.testing.assert_allclose([r["score"] for r in api["results"]], [r["score"] for r in cli["results"]], atol=1e-5)
    assert api["state"] == cli["state"]


def test_search_by_name_and_upload_answer_as_query_does(collection, tmp_path) -> None:
    folder, db = collection
    with serving(db, tmp_path, "-m", "pearson", "-m", "bhattacharyya") as served, served.client() as http:
        for extractor, metric in (("rgb", "pearson"), ("hsv72", "bhattacharyya"), ("hsv72", "cosine")):
            answer = http.post("/api/search", json={"name": "coffee.jpg", "extractor": extractor, "metric": metric,
                                                    "k": 5}).json()
            cli = imgsearch("query", "coffee.jpg", "--db", db, "-e", extractor, "-m", metric, "-k", "5", "--json").json()
            same_answer(answer, cli)
            assert answer["served"] == ("streamed" if metric == "cosine" else "resident")
            assert answer["total"] == 8 and answer["offset"] == 0 and answer["rows_scanned"] == 9
        upload = http.post("/api/search", files={"image": ("q.jpg", jpeg("chelsea.png", variant))},
                           data={"extractor": "rgb", "k": "3"})
        assert upload.status_code == 200, upload.text
        assert upload.json()["results"][0]["path"].endswith("chelsea.jpg")
        page_two = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 3, "offset": 3}).json()
        whole = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 6}).json()
        assert [r["path"] for r in page_two["results"]] == [r["path"] for r in whole["results"][3:]]
        assert [r["rank"] for r in page_two["results"]] == [4, 5, 6]
        reranked = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "rerank": "aqe:2"}).json()
        cli = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "--rerank", "aqe:2", "--json").json()
        assert [r["path"] for r in reranked["results"]] == [r["path"] for r in cli["results"]]


def test_a_build_in_another_process_is_taken_in_before_the_next_answer(collection, tmp_path) -> None:
    folder, db = collection
    with serving(db, tmp_path) as served, served.client() as http:
        before = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 20}).json()
        assert len(before["results"]) == 8
        write_collection(folder / "more")
        cv2.imwrite(str(folder / "more" / "coffee-copy.jpg"), variant(photo("coffee.png")))
        assert imgsearch("build", folder, "--db", db, *EXTRACTORS).code == 0
        after = http.post("/api/search", json={"name": "a/chelsea.jpg", "extractor": "rgb", "k": 20}).json()
        cli = imgsearch("query", "a/chelsea.jpg", "--db", db, "-e", "rgb", "-k", "20", "--json").json()
        same_answer(after, cli)
        assert after["state"] > before["state"] and len(after["results"]) == 18
        stats = http.get("/api/stats").json()["extractors"]["rgb"]
        assert stats["served"] == "resident" and stats["resident_rows"] == 19 and stats["syncs"] == 2


def test_answers_during_a_build_and_packs_are_whole_batch_states(db_url) -> None:
    """The service in this process, a writer thread committing batches and packing: every
    answer is the exact ranking of some whole-batch prefix, at that prefix's state."""
    rng = np.random.default_rng(8)
    url = parse_database_url(db_url)
    dim, batches = 16, [rng.random((5, 16), dtype=np.float32) for _ in range(12)]
    q = rng.random(dim, dtype=np.float32)
    with open_store(url, create=True) as store:
        row = store.register_extractor("rgb", "{}", dim)  # served under a registered name
        store.write_batch([(ImageRecord(b"seed.jpg", b"seed.jpg", 1, 1, "0" * 64, 1, 1), {row.id: rng.random(dim)})])
        seed = store.vectors(row, [1])[1]
        start = store.changes(row)
    def prepared(x):
        centred = x - x.mean(axis=1, keepdims=True)
        return centred / np.linalg.norm(centred, axis=1, keepdims=True)

    def ranking(b: int) -> list[str]:
        vectors = np.vstack([seed[None, :], *batches[:b]])
        names = ["seed.jpg"] + [f"{i}-{j}.jpg" for i in range(b) for j in range(5)]
        return [names[i] for i in np.argsort(-(prepared(vectors) @ prepared(q[None, :])[0]), kind="stable")[:7]]

    state = start
    expected = {state: ranking(0)}
    for b in range(len(batches)):
        state += 1  # the batch
        expected[state] = ranking(b + 1)
        if b % 4 == 3:
            state += 1  # a pack step: the same vectors in another layout
            expected[state] = ranking(b + 1)
    service = Service(ServeConfig(url, ("rgb",), ("pearson",), Settings(extractor="rgb", metric="pearson")))
    done, failures = threading.Event(), []

    def writer() -> None:
        try:
            with open_store(url) as store:
                for b, batch in enumerate(batches):
                    store.write_batch([(ImageRecord(f"{b}-{j}.jpg".encode(), f"{b}-{j}.jpg".encode(), 1, 1, "0" * 64,
                                                    1, 1), {row.id: v}) for j, v in enumerate(batch)])
                    if b % 4 == 3:
                        store.pack(row, pack_rows=4)
                    time.sleep(0.05)  # a build extracts between its batches
        except BaseException as e:
            failures.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    try:
        thread.start()
        seen = set()
        while not done.is_set() or not seen:
            answer = service.search({"extractor": "rgb", "metric": "pearson", "k": 7}, vector=q)
            assert [r["name"] for r in answer["results"]] == expected[answer["state"]], answer["state"]
            seen.add(answer["state"])
        thread.join()
        final = service.search({"extractor": "rgb", "metric": "pearson", "k": 7}, vector=q)
        assert final["state"] == state and [r["name"] for r in final["results"]] == expected[state]
        assert len(seen) > 1, "no answer was given while the writer ran"
    finally:
        service.close()
    assert not failures, failures


def test_files_by_id_only_and_never_a_replaced_one(collection, tmp_path) -> None:
    folder, db = collection
    with serving(db, tmp_path) as served, served.client() as http:
        found = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 1}).json()["results"][0]
        meta = http.get(f"/api/images/{found['id']}").json()
        assert meta["path"] == found["path"] and meta["width"] > 0
        original = http.get(f"/api/images/{found['id']}/file")
        assert original.status_code == 200 and original.content == (folder / found["path"]).read_bytes()
        thumb = http.get(f"/api/images/{found['id']}/thumbnail")
        assert thumb.headers["content-type"] == "image/jpeg"
        pixels = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
        assert max(pixels.shape[:2]) <= 256
        assert http.get("/api/images/999999").status_code == 404
        assert http.get("/api/images/abc/file").status_code == 422
        for attempt in ("/api/images/..%2F..%2Fetc%2Fpasswd/file", "/api/images/1/../../../etc/passwd",
                        "/static/..%2F..%2Fstore%2Fbase.py", "/static/%2Fetc%2Fpasswd", "/api/images/1%00/file"):
            response = http.get(attempt)
            assert response.status_code in (404, 422) and "root:" not in response.text, attempt
        target = folder / found["path"]
        moved = tmp_path / "elsewhere.jpg"
        os.replace(target, moved)
        os.symlink(moved, target)  # the indexed file replaced by a link since indexing
        refused = http.get(f"/api/images/{found['id']}/file")
        assert refused.status_code == 404 and "link" in refused.json()["error"]


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def named_flag(message: str) -> bool:
    """Whether an error text names a command-line flag (--rerank, -e): an API client has none."""
    return re.search(r"(^|[\s(`'\"])--?[a-z]", message) is not None


def test_hostile_requests_get_json_errors_and_the_server_keeps_serving(collection, tmp_path) -> None:
    folder, db = collection
    with serving(db, tmp_path, "--upload-limit", "200K") as served, served.client() as http:
        def status(response, code: int) -> None:
            assert response.status_code == code, (response.status_code, response.text)
            assert "error" in response.json() and "Traceback" not in response.text
            assert not named_flag(response.json()["error"]), response.text

        status(http.post("/api/search", content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=x"}), 400)
        status(http.post("/api/search", content=b"{not json", headers={"content-type": "application/json"}), 400)
        status(http.post("/api/search", content=b"plain", headers={"content-type": "text/plain"}), 400)
        status(http.post("/api/search", files={"image": ("x.jpg", b"not an image at all")}, data={"extractor": "rgb"}), 415)
        status(http.post("/api/search", files={"image": ("bomb.png", png_header(60_000, 60_000))},
                         data={"extractor": "rgb"}), 415)
        status(http.post("/api/search", files={"image": ("big.jpg", os.urandom(300_000))}), 413)

        def slow_body():  # a well-formed start, then more file bytes than the limit, a little at a time
            yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
            for _ in range(40):
                time.sleep(0.01)
                yield bytes(10_000)

        status(http.post("/api/search", content=slow_body(),
                         headers={"content-type": "multipart/form-data; boundary=x"}), 413)
        for params in ({"k": 0}, {"k": "many"}, {"k": 5000}, {"offset": -1}, {"metric": "bogus"}, {"extractor": "sift"},
                       {"rerank": "aqe:0"}, {"rerank": "diffusion"}, {"whiten": "none-such"}):
            response = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", **params})
            assert response.status_code in (404, 409, 422), (params, response.text)
            assert not named_flag(response.json()["error"]), response.text
        for name in ("nope.jpg", "../../etc/passwd", "/etc/passwd", "\u202e\u0000\n.jpg", "名前.jpg"):
            status(http.post("/api/search", json={"name": name, "extractor": "rgb"}), 404)
        status(http.post("/api/search", json={"extractor": "rgb"}), 400)
        status(http.post("/api/search", json=["a", "list"]), 400)
        assert http.get("/api/health").status_code == 200
        ok = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 2})
        assert ok.status_code == 200 and len(ok.json()["results"]) == 2
    assert "Traceback" not in served.output()


def test_a_token_is_required_when_given_and_a_public_address_needs_one(collection, tmp_path) -> None:
    _, db = collection
    run = imgsearch("serve", "--db", db, "--host", "0.0.0.0", "--port", "1")
    assert run.code != 0 and "needs --token" in run.err and "Traceback" not in run.err
    with serving(db, tmp_path, "--token", "t0ken-42") as served:
        with served.client() as http:
            assert http.get("/api/stats").status_code == 401
            assert http.get("/api/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert http.get("/").status_code == 200  # the page itself; its API calls carry the token
        with served.client(headers={"Authorization": "Bearer t0ken-42"}) as http:
            assert http.get("/api/stats").status_code == 200
        with served.client(cookies={"imgsearch_token": "t0ken-42"}) as http:
            assert http.get("/api/stats").status_code == 200


def test_no_cors_and_openapi_docs(collection, tmp_path) -> None:
    _, db = collection
    with serving(db, tmp_path) as served, served.client() as http:
        response = http.get("/api/stats", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers
        assert "/api/search" in http.get("/openapi.json").json()["paths"]
        assert http.get("/docs").status_code == 200


def test_database_gone_is_503_and_the_password_never_shows(own_server, tmp_path) -> None:
    import pymysql

    name = "serve_pw"
    admin = pymysql.connect(host="127.0.0.1", port=own_server.port, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {name}")
        cur.execute("CREATE USER IF NOT EXISTS 'svc'@'%' IDENTIFIED BY 'pw-Sekr1t-77'")
        cur.execute(f"GRANT ALL ON {name}.* TO 'svc'@'%'")
    admin.close()
    db = f"mysql://svc:pw-Sekr1t-77@127.0.0.1:{own_server.port}/{name}"
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg"))
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    with serving(db, tmp_path) as served, served.client() as http:
        texts = [http.get("/api/stats").text, http.get("/api/health").text,
                 http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb"}).text]
        own_server.stop(kill=True)
        try:
            gone = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb"})
            assert gone.status_code == 503, gone.text
            texts += [gone.text, http.get("/api/health").text, http.get("/api/stats").text]
            assert http.get("/api/health").status_code == 503
        finally:
            own_server.start()
    for text in [*texts, served.output()]:
        assert "pw-Sekr1t-77" not in text


def test_an_extractor_over_the_memory_budget_is_served_by_the_streaming_scan(collection, tmp_path) -> None:
    _, db = collection
    with serving(db, tmp_path, "--max-memory", "20K") as served, served.client() as http:
        extractors = http.get("/api/stats").json()["extractors"]
        assert extractors["hsv72"]["served"] == "resident"  # 9 x 72 floats fit
        assert extractors["rgb"]["served"] == "streamed" and extractors["rgb"]["resident_bytes"] == 0
        answer = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 4}).json()
        cli = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "-k", "4", "--json").json()
        assert answer["served"] == "streamed"
        same_answer(answer, cli)


def test_python_clients_see_the_413_of_an_upload_over_the_limit(tmp_path) -> None:
    """urllib writes the whole body before it reads the answer: a server that answered and
    closed at once reset its connection ("connection reset by peer") instead."""
    import json
    import urllib.error
    import urllib.request

    import requests

    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "rgb").code == 0
    boundary = "imgsearchboundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + os.urandom(25 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    with serving(db, tmp_path) as served:  # the default limit, 20 MiB
        for chunked in (False, True):
            data = iter([body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20)]) if chunked else body
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            if chunked:
                headers["Transfer-Encoding"] = "chunked"
            request = urllib.request.Request(served.base + "/api/search", data=data, headers=headers, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=60)
            assert refused.value.code == 413, chunked
            assert "over the limit" in json.loads(refused.value.read())["error"]
        answer = requests.post(served.base + "/api/search", data=body, timeout=60,
                               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert answer.status_code == 413 and "over the limit" in answer.json()["error"]


def test_fields_are_checked_by_one_rule_and_folders_are_the_collections(collection, tmp_path) -> None:
    folder, db = collection
    root = str(folder.resolve())
    with serving(db, tmp_path) as served, served.client() as http:
        unknown = http.post("/api/search", json={"name": "coffee.jpg", "kk": 3, "zz": 1})
        assert unknown.status_code == 422 and "'kk', 'zz'" in unknown.json()["error"]
        form = http.post("/api/search", files={"image": ("q.jpg", jpeg("coffee.png"))}, data={"extractor": "rgb",
                                                                                              "kk": "3"})
        assert form.status_code == 422 and "'kk'" in form.json()["error"]
        assert http.post("/api/compare", json={"a": "coffee.jpg", "b": "a/chelsea.jpg", "c": 1}).status_code == 422
        # JSON values keep their JSON types; form fields are text to parse
        for body, status in (({"k": 1.0}, 200), ({"k": 3}, 200), ({"k": "3"}, 422), ({"include_self": "yes"}, 422),
                             ({"include_self": 1}, 422), ({"include_self": True}, 200), ({"k": 2.5}, 422)):
            answer = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", **body})
            assert answer.status_code == status, (body, answer.text)
        for fields, status in (({"k": "3"}, 200), ({"include_self": "true"}, 200), ({"include_self": "1"}, 200),
                               ({"k": ""}, 200), ({"include_self": ""}, 200), ({"k": "3.0"}, 422), ({"k": "03"}, 422),
                               ({"include_self": "TRUE"}, 422), ({"box": " 1,2,3,4"}, 422)):
            answer = http.post("/api/search", files={"image": ("q.jpg", jpeg("coffee.png"))},
                               data={"extractor": "rgb", **fields})
            assert answer.status_code == status, (fields, answer.text)
        whole = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 20}).json()
        rooted = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 20, "under": "."})
        assert rooted.status_code == 200 and rooted.json()["results"] == whole["results"]
        assert http.get("/api/duplicates", params={"reference": ".", "extractor": "rgb"}).json()["groups"] == \
            http.get("/api/duplicates", params={"extractor": "rgb"}).json()["groups"]
        for params in ({"reference": "nosuch"}, {"reference": "a/../../x"}):
            missing = http.get("/api/duplicates", params={**params, "extractor": "rgb"})
            assert missing.status_code in (404, 422) and root not in missing.text, missing.text
        assert http.get("/api/duplicates", params={"reference": "nosuch", "extractor": "rgb"}).status_code == 404
        nowhere = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "under": "nosuch"})
        assert nowhere.status_code == 404 and root not in nowhere.text
