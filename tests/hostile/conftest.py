"""Fixtures of the hostile suite: a real server, a reference collection whose digest every
test checks afterwards, and the checks every refusal must pass.

Each test sends something a hostile (but fair) client could send. Whatever it sends, after
it the server must still be up, `/healthz` must answer, and the reference collection must
hold exactly what it held before (same points, payloads and vectors): a bad request
changes nothing it does not own.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from ametist_server import AmetistServer  # noqa: E402

REFERENCE = "reference"
SEED = 20261204


@pytest.fixture(scope="session")
def server():
    s = AmetistServer(partitions=2)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def digest(http: httpx.Client, name: str = REFERENCE) -> str:
    """A hash of every point of a collection: ids, payloads and vectors, in id order."""
    points, offset = [], None
    while True:
        body = {"limit": 256, "with_payload": True, "with_vector": True}
        if offset is not None:
            body["offset"] = offset
        r = http.post(f"/collections/{name}/points/scroll", json=body)
        assert r.status_code == 200, r.text
        page = r.json()["result"]
        points += page["points"]
        offset = page["next_page_offset"]
        if offset is None:
            break
    return hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()


def make_reference(http: httpx.Client, name: str = REFERENCE, n: int = 300, dim: int = 8) -> None:
    rng = random.Random(SEED)
    r = http.put(f"/collections/{name}", json={"vectors": {"size": dim, "distance": "Cosine"}, "shard_number": 2})
    assert r.status_code == 200, r.text
    points = [
        {
            "id": i,
            "vector": [rng.uniform(-1, 1) for _ in range(dim)],
            "payload": {"group": rng.choice(["a", "b", "c"]), "n": i},
        }
        for i in range(n)
    ]
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="session")
def reference(server, http):
    make_reference(http)
    return digest(http)


@pytest.fixture(autouse=True)
def unchanged(request, server, http, reference):
    """After every test: the server is up, healthy, and the reference is intact."""
    yield
    if request.node.get_closest_marker("restarts_server"):
        return
    assert server.proc.poll() is None, f"the server exited:\n{server.log()}"
    assert http.get("/healthz").status_code == 200
    assert digest(http) == reference, "the reference collection changed"


def pytest_configure(config):
    config.addinivalue_line("markers", "restarts_server: the test runs a server of its own")


def refused(r: httpx.Response, status: int | None = None, *mentions: str) -> str:
    """Checks a refusal: a 4xx (or exactly `status`) in Qdrant's JSON envelope whose message
    names each of `mentions`; returns the message."""
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    if status is not None:
        assert r.status_code == status, f"{r.status_code}: {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    message = body["status"]["error"]
    assert isinstance(message, str) and message
    for m in mentions:
        assert m in message, f"`{m}` not in: {message}"
    return message
