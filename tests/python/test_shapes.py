"""Every answer checked against qdrant-client's own response models (generated from
Qdrant's OpenAPI): it must parse, and no field we send may be dropped by the parse
(a field the client does not know is data the user silently never sees).

The check: parse the raw JSON with the model, dump it back with `exclude_unset`, and
compare with what was sent."""

from __future__ import annotations

from typing import Any, List

import httpx
import pytest
from pydantic import TypeAdapter
from qdrant_client.http import models as m

# Fields Ametist adds on purpose, beyond Qdrant's models.
AMETIST_EXTRAS = {"ametist_version", "name"}


def round_trip(model: Any, data: Any, extras: set[str] = frozenset()):
    ta = TypeAdapter(model)
    parsed = ta.validate_python(data)
    dumped = ta.dump_python(parsed, mode="json", exclude_unset=True, by_alias=True)
    if isinstance(data, dict) and extras:
        data = {k: v for k, v in data.items() if k not in extras}
    assert dumped == data
    return parsed


class Api:
    def __init__(self, url):
        self.http = httpx.Client(base_url=url, timeout=30)

    def call(self, method, path, body=None, status=200):
        r = self.http.request(method, path, json=body)
        assert r.status_code == status, r.text
        data = r.json()
        if status == 200 and path != "/":
            assert set(data) <= {"result", "status", "time", "usage", "partial"}, data.keys()
            assert data["status"] == "ok"
            assert isinstance(data["time"], float)
            return data["result"]
        return data


@pytest.fixture
def api(server):
    a = Api(server.url)
    yield a
    a.http.close()


@pytest.fixture
def coll(api, collection_name):
    api.call("PUT", f"/collections/{collection_name}", {"vectors": {"size": 3, "distance": "Cosine"}, "shard_number": 2})
    return collection_name


def test_root(api):
    round_trip(m.VersionInfo, api.call("GET", "/"), AMETIST_EXTRAS)


def test_collection_routes(api, coll):
    assert api.call("PUT", f"/collections/{coll}_x", {"vectors": {"size": 3, "distance": "Dot"}}) is True
    assert api.call("DELETE", f"/collections/{coll}_x") is True
    round_trip(m.CollectionsResponse, api.call("GET", "/collections"))
    round_trip(m.CollectionExistence, api.call("GET", f"/collections/{coll}/exists"))
    info = round_trip(m.CollectionInfo, api.call("GET", f"/collections/{coll}"))
    assert info.config.params.vectors.size == 3


def test_point_routes(api, coll):
    points = [
        {"id": 1, "vector": [1.0, 0.0, 0.0], "payload": {"a": 1}},
        {"id": "8c4f0a52-3d5e-4f2b-9d1a-2b7e6f1c0a11", "vector": [0.0, 1.0, 0.0], "payload": {"b": [1, 2]}},
        {"id": 3, "vector": [0.6, 0.8, 0.0]},
    ]
    round_trip(m.UpdateResult, api.call("PUT", f"/collections/{coll}/points?wait=true", {"points": points}))
    round_trip(
        m.UpdateResult,
        api.call("PUT", f"/collections/{coll}/points?wait=false", {"batch": {"ids": [4], "vectors": [[0.0, 0.0, 1.0]]}}),
    )
    q = {"query": [1.0, 0.1, 0.0], "limit": 3}
    for extra in ({}, {"with_payload": True}, {"with_vector": True}, {"with_payload": ["a"]}):
        round_trip(m.QueryResponse, api.call("POST", f"/collections/{coll}/points/query", {**q, **extra}))
    round_trip(
        List[m.QueryResponse],
        api.call("POST", f"/collections/{coll}/points/query/batch", {"searches": [q, {**q, "with_payload": True}]}),
    )
    s = {"vector": [1.0, 0.1, 0.0], "limit": 3, "with_payload": True, "with_vector": True}
    round_trip(List[m.ScoredPoint], api.call("POST", f"/collections/{coll}/points/search", s))
    round_trip(List[List[m.ScoredPoint]], api.call("POST", f"/collections/{coll}/points/search/batch", {"searches": [s]}))
    for body in ({"ids": [1, 3, 99]}, {"ids": [1], "with_vector": True, "with_payload": False}):
        round_trip(List[m.Record], api.call("POST", f"/collections/{coll}/points", body))
    round_trip(m.Record, api.call("GET", f"/collections/{coll}/points/1"))
    round_trip(m.CountResult, api.call("POST", f"/collections/{coll}/points/count", {"exact": True}))
    round_trip(
        m.UpdateResult,
        api.call("PUT", f"/collections/{coll}/points/vectors?wait=true", {"points": [{"id": 3, "vector": [0.0, 0.6, 0.8]}]}),
    )
    round_trip(m.UpdateResult, api.call("POST", f"/collections/{coll}/points/delete?wait=true", {"points": [1]}))
    round_trip(m.CollectionsAliasesResponse, api.call("GET", "/aliases"))
    round_trip(m.CollectionsAliasesResponse, api.call("GET", f"/collections/{coll}/aliases"))


def test_error_shape(api, coll):
    for method, path, body, status in (
        ("GET", "/collections/nope", None, 404),
        ("POST", f"/collections/{coll}/points/query", {"query": [1.0]}, 400),
        ("POST", f"/collections/{coll}/points/query", {"query": [1.0, 0, 0], "bogus": 1}, 400),
        ("GET", f"/collections/{coll}/points/12345", None, 404),
        ("GET", "/no/such/route", None, 404),
    ):
        data = api.call(method, path, body, status=status)
        parsed = round_trip(m.ErrorResponse, data)
        assert parsed.status.error
