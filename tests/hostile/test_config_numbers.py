"""Huge, negative and odd numbers in every setting of a new collection: each is a 4xx that
names the field, and nothing is created. A setting that is accepted is one a restart reads
back (issue 21, item 1: `ef_construct: 4294967296` used to be stored in 32 bits as 0, and
the partition could then not read its own snapshot)."""

from __future__ import annotations

import itertools

import httpx
import pytest

from conftest import refused

HUGE = [2**32, 2**32 + 5, 2**63, 2**64 + 1, 10**30]
NEGATIVE = [-1, -(2**63)]
ODD = [1.5, "12", True, None, [], {}]

_names = itertools.count()


def create(http: httpx.Client, body: dict) -> tuple[str, httpx.Response]:
    name = f"cfg{next(_names)}"
    return name, http.put(f"/collections/{name}", json=body)


def assert_not_created(http: httpx.Client, name: str) -> None:
    r = http.get(f"/collections/{name}/exists")
    assert r.status_code == 200 and r.json()["result"]["exists"] is False, r.text


BASE = {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1}

# (where in the body, the name the error must carry, values that must be refused)
FIELDS = [
    (("hnsw_config", "m"), "m", HUGE + NEGATIVE + ODD[:3] + [0, 1, 1025, 10**9]),
    (("hnsw_config", "ef_construct"), "ef_construct", HUGE + NEGATIVE + ODD[:3] + [0, 10_001]),
    (("hnsw_config", "full_scan_threshold"), "full_scan_threshold", HUGE + NEGATIVE + ODD[:3]),
    (("shard_number",), "shard_number", HUGE + NEGATIVE + ODD[:3] + [0, 1025, 2000]),
    (("vectors", "size"), "size", HUGE + NEGATIVE + ODD[:3] + [0, 65_537]),
    (("quantization_config", "scalar", "quantile"), "quantile", HUGE + NEGATIVE + [0.2, 1.5, "x"]),
]


def with_value(path: tuple[str, ...], value) -> dict:
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if key == "quantization_config":
            node.setdefault("scalar", {"type": "int8"})
    node[path[-1]] = value
    return body


@pytest.mark.parametrize("path,field,values", FIELDS, ids=[".".join(f[0]) for f in FIELDS])
def test_out_of_range_settings_are_refused_and_create_nothing(http, path, field, values):
    for value in values:
        name, r = create(http, with_value(path, value))
        message = refused(r, None)
        assert field in message or "JSON" in message, f"{path}={value!r}: {message}"
        assert_not_created(http, name)


def test_text_index_settings_are_bounded(http):
    name, r = create(http, BASE)
    assert r.status_code == 200, r.text
    try:
        for params in [
            {"min_token_len": -1},
            {"max_token_len": 2**40},
            {"min_token_len": 10, "max_token_len": 2},
            {"k1": -1},
            {"b": 2},
            {"k1": 1e39},  # finite as JSON, infinite as the f32 it is kept in
        ]:
            body = {"field_name": "body", "field_schema": {"type": "text", **params}}
            refused(http.put(f"/collections/{name}/index?wait=true", json=body))
        info = http.get(f"/collections/{name}").json()["result"]
        assert info["payload_schema"] == {}, info["payload_schema"]
    finally:
        http.delete(f"/collections/{name}")


@pytest.mark.restarts_server
def test_the_largest_accepted_settings_survive_a_restart():
    """What is accepted is what is stored: a collection at the edges of every range serves
    the same points after a clean restart and after kill -9."""
    from ametist_server import AmetistServer

    s = AmetistServer(partitions=1)
    try:
        http = httpx.Client(base_url=s.url, timeout=60)
        body = {
            "vectors": {"size": 4, "distance": "Euclid"},
            "shard_number": 3,
            "hnsw_config": {"m": 1024, "ef_construct": 10_000, "full_scan_threshold": 4_294_967_295},
        }
        assert http.put("/collections/edge", json=body).status_code == 200
        points = [{"id": i, "vector": [i, 0, 0, 1]} for i in range(50)]
        assert http.put("/collections/edge/points?wait=true", json={"points": points}).status_code == 200
        # A snapshot of every partition, so that the restart reads images, not only the log.
        assert http.post("/collections/edge/snapshots").status_code == 200
        for kill in (False, True):
            s.restart(kill=kill)
            http = httpx.Client(base_url=s.url, timeout=60)
            r = http.post("/collections/edge/points/count", json={})
            assert r.status_code == 200 and r.json()["result"]["count"] == 50, r.text
            parts = http.get("/collections/edge/partitions").json()["result"]
            assert all(p["state"] == "running" for p in parts["partitions"]), parts
            cfg = http.get("/collections/edge").json()["result"]["config"]["hnsw_config"]
            assert (cfg["m"], cfg["ef_construct"]) == (1024, 10_000), cfg
    finally:
        s.stop()
