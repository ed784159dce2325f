"""Requests that try to make the server do or hold too much, and the envelope every
refusal comes in (issue 21, items 2, 6, 8, 9 and 10)."""

from __future__ import annotations

import concurrent.futures
import json
import random
import socket
import time

import httpx
import pytest

from conftest import refused


@pytest.fixture(scope="module")
def wide(http):
    """A collection of 2,000 points of 128 dimensions with small payloads."""
    rng = random.Random(7)
    r = http.put("/collections/wide", json={"vectors": {"size": 128, "distance": "Dot"}, "shard_number": 2})
    assert r.status_code == 200, r.text
    for start in range(0, 2000, 500):
        points = [
            {"id": i, "vector": [rng.uniform(-1, 1) for _ in range(128)], "payload": {"i": i}}
            for i in range(start, start + 500)
        ]
        assert http.put("/collections/wide/points?wait=true", json={"points": points}).status_code == 200
    yield "wide"
    http.delete("/collections/wide")


def test_a_small_batch_cannot_ask_for_millions_of_hits(http, wide):
    body = {"searches": [{"query": [1.0] * 128, "limit": 10_000} for _ in range(500)]}
    assert len(json.dumps(body)) < 600_000
    refused(http.post(f"/collections/{wide}/points/query/batch", json=body), 400, "limits.max_batch_results")
    body = {"searches": [{"vector": [1.0] * 128, "limit": 10_000} for _ in range(500)]}
    refused(http.post(f"/collections/{wide}/points/search/batch", json=body), 400, "limits.max_batch_results")
    # Prefetches count too.
    prefetch = [{"query": [1.0] * 128, "limit": 10_000} for _ in range(20)]
    body = {"prefetch": prefetch, "query": {"fusion": "rrf"}, "limit": 10}
    refused(http.post(f"/collections/{wide}/points/query", json=body), 400, "limits.max_batch_results")
    # Within the bounds it answers.
    body = {"searches": [{"query": [1.0] * 128, "limit": 100} for _ in range(50)]}
    r = http.post(f"/collections/{wide}/points/query/batch", json=body)
    assert r.status_code == 200 and len(r.json()["result"]) == 50


def test_answers_are_bounded_before_and_after_they_are_built(server):
    """With a small `limits.max_response_bytes`: a query whose vectors alone exceed it is
    refused before it runs; a scroll whose payloads exceed it is refused after."""
    from ametist_server import AmetistServer

    s = AmetistServer("limits.max_response_bytes=200000", partitions=1)
    try:
        h = httpx.Client(base_url=s.url, timeout=60)
        assert h.put("/collections/c", json={"vectors": {"size": 64, "distance": "Dot"}}).status_code == 200
        points = [{"id": i, "vector": [1.0] * 64, "payload": {"text": "x" * 1000}} for i in range(400)]
        assert h.put("/collections/c/points?wait=true", json={"points": points}).status_code == 200
        body = {"query": [1.0] * 64, "limit": 400, "with_vector": True}
        refused(h.post("/collections/c/points/query", json=body), 400, "limits.max_response_bytes")
        refused(h.post("/collections/c/points", json={"ids": list(range(400)), "with_vector": True}), 400)
        body = {"limit": 400, "with_payload": True}
        refused(h.post("/collections/c/points/scroll", json=body), 400, "limits.max_response_bytes")
        r = h.post("/collections/c/points/scroll", json={"limit": 50, "with_payload": True})
        assert r.status_code == 200 and len(r.json()["result"]["points"]) == 50
    finally:
        s.stop()


def test_writes_beyond_the_bytes_in_flight_are_429_at_once_and_change_nothing():
    """A write that does not fit beside the writes being handled is refused at once, says
    nothing of it was applied, and indeed nothing of it is; the write holding the budget
    completes. A stalled partition keeps the first write in flight."""
    from ametist_server import AmetistServer

    s = AmetistServer(
        "server.enable_fault_injection=true",
        "server.max_request_bytes=65536",
        "limits.collection_write_bytes_in_flight=100000",
        "limits.write_bytes_in_flight=200000",
        partitions=1,
    )
    try:
        h = httpx.Client(base_url=s.url, timeout=60)
        assert h.put("/collections/c", json={"vectors": {"size": 16, "distance": "Dot"}}).status_code == 200

        def batch(first: int) -> dict:
            return {"points": [{"id": first + i, "vector": [0.5] * 16, "payload": {"pad": "y" * 400}} for i in range(100)]}

        assert 50_000 < len(json.dumps(batch(0))) < 65_536
        stall = h.post("/collections/c/partitions/0/fault", json={"stall_ms": 3000})
        assert stall.status_code == 200, stall.text
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(lambda: httpx.put(f"{s.url}/collections/c/points?wait=true", json=batch(0), timeout=60))
            time.sleep(0.5)
            t = time.monotonic()
            r = h.put("/collections/c/points?wait=true", json=batch(1000))
            assert time.monotonic() - t < 2, "the refusal must not wait for the stalled write"
            message = refused(r, 429, "limits.collection_write_bytes_in_flight", "nothing of it was applied")
            assert r.headers.get("retry-after"), r.headers
            assert "bytes" in message
            assert held.result().status_code == 200
        count = h.post("/collections/c/points/count", json={}).json()["result"]["count"]
        assert count == 100, "the refused write changed nothing, the admitted one is complete"
        # With the budget free again, the same write goes through.
        assert h.put("/collections/c/points?wait=true", json=batch(1000)).status_code == 200
    finally:
        s.stop()


@pytest.mark.parametrize("metric", ["Dot", "Euclid", "Manhattan"])
def test_vectors_that_would_overflow_a_score_are_refused(http, metric):
    name = f"overflow_{metric.lower()}"
    assert http.put(f"/collections/{name}", json={"vectors": {"size": 3, "distance": metric}}).status_code == 200
    try:
        for v in ([1e38, 1e38, 1e38], [3.4e38, 0, 0], [-2e19, 0, 0]):
            refused(http.put(f"/collections/{name}/points?wait=true", json={"points": [{"id": 1, "vector": v}]}), 400, "too large")
            refused(http.post(f"/collections/{name}/points/query", json={"query": v}), 400, "too large")
        # The largest accepted values give finite scores.
        big = 1e18
        points = [{"id": 1, "vector": [big, big, big]}, {"id": 2, "vector": [-big, -big, -big]}]
        assert http.put(f"/collections/{name}/points?wait=true", json={"points": points}).status_code == 200
        r = http.post(f"/collections/{name}/points/query", json={"query": [big, -big, big], "limit": 2})
        assert r.status_code == 200, r.text
        assert all(isinstance(p["score"], float) for p in r.json()["result"]["points"]), r.text
    finally:
        http.delete(f"/collections/{name}")


def test_cosine_normalises_any_finite_vector(http):
    assert http.put("/collections/cos", json={"vectors": {"size": 3, "distance": "Cosine"}}).status_code == 200
    try:
        points = [{"id": 1, "vector": [3e38, 3e38, 0]}, {"id": 2, "vector": [1e-30, 0, 0]}]
        assert http.put("/collections/cos/points?wait=true", json={"points": points}).status_code == 200
        r = http.post("/collections/cos/points/query", json={"query": [3e38, 0, 0], "limit": 2})
        scores = [p["score"] for p in r.json()["result"]["points"]]
        assert all(isinstance(x, float) for x in scores) and abs(scores[0] - 1.0) < 1e-6, scores
    finally:
        http.delete("/collections/cos")


def test_sparse_values_that_would_overflow_are_refused(http):
    body = {"sparse_vectors": {"words": {}}}
    assert http.put("/collections/sp", json=body).status_code == 200
    try:
        point = {"id": 1, "vector": {"words": {"indices": [1, 2], "values": [1e30, 1.0]}}}
        refused(http.put("/collections/sp/points?wait=true", json={"points": [point]}), 400, "too large")
    finally:
        http.delete("/collections/sp")


def test_errors_before_a_handler_are_in_the_json_envelope(server, http):
    # A body larger than server.max_request_bytes (32 MiB by default) is refused from its
    # declared length, before the server reads it. A raw socket reads that answer before
    # sending the body: an HTTP client that writes 33 MiB first may see the connection
    # closed under it and never read the 413.
    status, body = head_only_answer(server.port, "PUT", "/collections/reference/points", 33 << 20)
    assert status == 413, body
    assert "server.max_request_bytes" in json.loads(body)["status"]["error"], body
    refused(http.patch("/healthz"), 405)
    refused(http.get("/no/such/route"), 404)


def head_only_answer(port: int, method: str, path: str, length: int) -> tuple[int, str]:
    """Sends only a request's head declaring `length` body bytes; returns the status and
    body of the answer the server gives without waiting for the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        s.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer: {data!r}"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        declared = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
        while len(rest) < declared:
            chunk = s.recv(65536)
            assert chunk, "closed in the middle of the answer"
            rest += chunk
        return int(lines[0].split()[1]), rest.decode()


def test_bodies_must_be_plain_json(http):
    body = json.dumps({"points": [{"id": 1, "vector": [0.0] * 8}]}).encode()
    for headers, needle in [
        ({"content-type": "text/plain"}, "text/plain"),
        ({}, "no content-type"),
        ({"content-type": "application/x-www-form-urlencoded"}, "urlencoded"),
        ({"content-type": "application/json", "content-encoding": "gzip"}, "gzip"),
    ]:
        r = http.put("/collections/reference/points?wait=true", content=body, headers=headers)
        refused(r, 415, needle)
    # A JSON content type with parameters is JSON.
    r = http.post(
        "/collections/reference/points/count", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 200, r.text


def test_payload_on_a_missing_point_is_404_and_changes_nothing(http):
    for route, body in [
        ("/points/payload", {"payload": {"x": 1}, "points": [1, 999_999]}),
        ("/points/payload/delete", {"keys": ["group"], "points": [2, 999_999]}),
        ("/points/payload/clear", {"points": [3, 999_999]}),
    ]:
        r = http.post(f"/collections/reference{route}?wait=true", json=body)
        refused(r, 404, "999999")
    # The reference digest (checked after this test) proves points 1-3 kept their payloads.


@pytest.mark.restarts_server
def test_metrics_follow_the_api_key_unless_public():
    from ametist_server import AmetistServer

    for public in (False, True):
        s = AmetistServer("service.api_key=sekrit", f"service.metrics_public={str(public).lower()}", partitions=1)
        try:
            r = httpx.get(f"{s.url}/metrics")
            if public:
                assert r.status_code == 200 and "ametist_http_requests_total" in r.text
            else:
                refused(r, 401)
                refused(httpx.get(f"{s.url}/metrics", headers={"api-key": "wrong"}), 403)
                refused(httpx.get(f"{s.url}/metrics", headers={"api-key": "sekri"}), 403)
                assert httpx.get(f"{s.url}/metrics", headers={"api-key": "sekrit"}).status_code == 200
            assert httpx.get(f"{s.url}/healthz").status_code == 200
            refused(httpx.get(f"{s.url}/collections"), 401)
        finally:
            s.stop()


def test_snapshot_files_of_a_deleted_collection_go_with_it(http):
    assert http.put("/collections/gone", json={"vectors": {"size": 2, "distance": "Dot"}}).status_code == 200
    assert http.post("/collections/gone/snapshots").status_code == 200
    assert len(http.get("/collections/gone/snapshots").json()["result"]) == 1
    assert http.delete("/collections/gone").status_code == 200
    assert http.put("/collections/gone", json={"vectors": {"size": 2, "distance": "Dot"}}).status_code == 200
    try:
        assert http.get("/collections/gone/snapshots").json()["result"] == []
    finally:
        http.delete("/collections/gone")


def test_recover_reads_only_the_snapshot_directories(server, http, tmp_path):
    """`file://` locations outside the snapshots directory are refused with one message,
    whether or not the file exists; nothing outside is read."""
    existing = tmp_path / "secret.txt"
    existing.write_text("not for you")
    missing = tmp_path / "missing.snapshot"
    answers = set()
    for location in [
        f"file://{existing}",
        f"file://{missing}",
        "file:///etc/passwd",
        "file:///proc/self/environ",
        f"file://{server.data_dir}/snapshots/../collections/reference/collection.json",
        str(existing),
        "../collections/reference/collection.json",
    ]:
        r = http.put("/collections/reference/snapshots/recover", json={"location": location})
        message = refused(r, 400)
        answers.add(message.replace(location, "<location>"))
    assert len(answers) == 1, answers
    # A file inside the snapshots directory that is not a snapshot: refused from its first bytes.
    d = server.data_dir / "snapshots" / "reference"
    d.mkdir(parents=True, exist_ok=True)
    junk = d / "junk.snapshot"
    junk.write_bytes(b"\0" * 4096)
    try:
        r = http.put("/collections/reference/snapshots/recover", json={"location": f"file://{junk}"})
        refused(r, 400, "not an Ametist collection snapshot")
    finally:
        junk.unlink()


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"query": [1.0] * 8, "params": {"hnsw_ef": 10**12}}, "hnsw_ef"),
        ({"query": [1.0] * 8, "params": {"hnsw_ef": 0}}, "hnsw_ef"),
        ({"query": [1.0] * 8, "limit": 2**63}, "limit"),
        ({"query": [1.0] * 8, "limit": -1}, "limit"),
        ({"query": [1.0] * 8, "offset": 2**64 - 1}, "offset"),
        ({"query": [1.0] * 8, "params": {"quantization": {"oversampling": 1e300}}}, "oversampling"),
        ({"query": [1.0] * 8, "params": {"quantization": {"oversampling": 0.5}}}, "oversampling"),
        ({"query": [1.0] * 8, "score_threshold": "high"}, "score_threshold"),
    ],
)
def test_huge_and_negative_query_numbers_are_refused(http, body, needle):
    message = refused(http.post("/collections/reference/points/query", json=body), 400)
    assert needle in message or "JSON" in message, message


def test_deep_json_is_refused_not_a_crash(http):
    for depth in (200, 5000):
        deep = '{"must": [' * depth + "{}" + "]}" * depth
        text = '{"query": [0, 0, 0, 0, 0, 0, 0, 0], "filter": ' + deep + "}"
        r = http.post("/collections/reference/points/query", content=text, headers={"content-type": "application/json"})
        refused(r, 400)
    text = '{"query": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = http.post("/collections/reference/points/query", content=text, headers={"content-type": "application/json"})
    refused(r, 400)
    payload = '{"a": ' * 10_000 + "1" + "}" * 10_000
    text = '{"points": [{"id": 1, "vector": [0, 0, 0, 0, 0, 0, 0, 1], "payload": ' + payload + "}]}"
    r = http.put("/collections/reference/points?wait=true", content=text, headers={"content-type": "application/json"})
    refused(r, 400)
