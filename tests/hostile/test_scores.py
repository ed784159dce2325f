"""Every score an answer carries is a number: JSON has no infinity, so an infinite score
reaches clients as `"score": null` and qdrant-client raises on it (issue 21, item 8).
Inputs whose scores would not be finite are refused with a 400 naming the problem, and
what was refused changes nothing.

Found by the schemathesis fuzzing (`test_fuzz.py`): finite vector values such as 1e38
overflowed dot, euclid and manhattan products, and RRF fusion with `k: 0` divided by zero
at the top hit."""

from __future__ import annotations

import itertools

import httpx
import pytest

from conftest import refused

_names = itertools.count()


def collection(http: httpx.Client, distance: str = "Dot") -> str:
    name = f"scores{next(_names)}"
    r = http.put(
        f"/collections/{name}",
        json={
            "vectors": {"size": 2, "distance": distance},
            "sparse_vectors": {"words": {}},
            "shard_number": 1,
        },
    )
    assert r.status_code == 200, r.text
    points = [
        {"id": i, "vector": {"": [1.0 + i, 2.0 - i], "words": {"indices": [i, 7], "values": [1.0, 0.5]}}}
        for i in range(5)
    ]
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
    assert r.status_code == 200, r.text
    return name


def scores(r: httpx.Response) -> list:
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    hits = result["points"] if isinstance(result, dict) else result
    return [h["score"] for h in hits]


@pytest.mark.parametrize("distance", ["Dot", "Euclid", "Manhattan", "Cosine"])
def test_vectors_whose_scores_would_overflow_are_refused(http, distance):
    name = collection(http, distance)
    huge = [1e38, 1e38]
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": [{"id": 99, "vector": huge}]})
    if distance == "Cosine":
        # Cosine stores unit vectors: any finite vector normalises (in f64) and scores finitely.
        assert r.status_code == 200, r.text
        for s in scores(http.post(f"/collections/{name}/points/query", json={"query": huge, "limit": 6})):
            assert isinstance(s, float), s
        return
    refused(r, 400, "too large")
    assert http.post(f"/collections/{name}/points/count", json={}).json()["result"]["count"] == 5
    refused(http.post(f"/collections/{name}/points/search", json={"vector": huge, "limit": 3}), 400, "too large")
    refused(http.post(f"/collections/{name}/points/query", json={"query": huge, "limit": 3}), 400, "too large")
    # The largest values that are not refused score as numbers.
    big = [3e17, 3e17]
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": [{"id": 98, "vector": big}]})
    assert r.status_code == 200, r.text
    for s in scores(http.post(f"/collections/{name}/points/query", json={"query": big, "limit": 6})):
        assert isinstance(s, float), s


def test_sparse_vectors_whose_scores_would_overflow_are_refused(http):
    name = collection(http)
    huge = {"indices": [1, 2], "values": [1e38, 1e38]}
    r = http.put(f"/collections/{name}/points?wait=true", json={"points": [{"id": 99, "vector": {"": [1.0, 2.0], "words": huge}}]})
    refused(r, 400, "too large")
    r = http.post(f"/collections/{name}/points/query", json={"query": huge, "using": "words", "limit": 3})
    refused(r, 400, "too large")


def test_fusion_settings_whose_scores_would_not_be_numbers_are_refused(http):
    name = collection(http)
    prefetch = [{"query": [1.0, 0.0], "limit": 5}, {"query": {"indices": [7], "values": [1.0]}, "using": "words"}]

    def fuse(rrf: dict) -> httpx.Response:
        return http.post(f"/collections/{name}/points/query", json={"prefetch": prefetch, "query": {"rrf": rrf}})

    refused(fuse({"k": 0}), 400, "k must be at least 1")
    refused(fuse({"k": 0.5, "weights": [3.0, 1.0]}), 400, "k must be at least 1")
    refused(fuse({"k": 1, "weights": [3e38, 3e38]}), 400, "too large")
    for s in scores(fuse({"k": 1, "weights": [2.0, 1.0]})):
        assert isinstance(s, float) and s > 0, s
