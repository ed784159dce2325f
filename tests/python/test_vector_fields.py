"""One vector model (issue 15): the unnamed vector is the dense field `""`, and a point
may carry any subset of its collection's fields. Checked against qdrant-client's local
mode (`QdrantClient(":memory:")`) on seeded random data, through restarts and kill -9;
and data written by the builds before this model (`fixtures/format2`, made by
`fixtures/make_format2_data.py`) opens and answers as that build did."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from conftest import AmetistServer

# Every test runs over REST and over gRPC (prefer_grpc).
PROTOCOLS = ("rest", "grpc")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format2"
SEED = int(os.environ.get("AMETIST_TEST_SEED", "15"))
TOL = 1e-4


def fields_of(vector) -> dict:
    """A record's vectors as a map: local mode answers a lone unnamed vector as a list."""
    if vector is None:
        return {}
    if isinstance(vector, list):
        return {"": vector}
    return {n: (v.model_dump() if hasattr(v, "model_dump") else v) for n, v in vector.items()}


def close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= TOL * max(1.0, abs(a))
    return a == b


def records(client, name: str, with_vectors=True) -> dict:
    points, _ = client.scroll(name, limit=1000, with_payload=True, with_vectors=with_vectors)
    return {p.id: (p.payload, fields_of(p.vector)) for p in points}


def create(client, name: str) -> None:
    client.create_collection(
        name,
        vectors_config={
            "": models.VectorParams(size=4, distance=models.Distance.DOT),
            "text": models.VectorParams(size=3, distance=models.Distance.EUCLID),
        },
        sparse_vectors_config={"words": models.SparseVectorParams()},
    )


def subset_points(rng: random.Random, n: int) -> list:
    """Point i carries the fields of the bits of i % 8: 1 the unnamed vector, 2 `text`, 4
    `words`; 0 carries none."""
    points = []
    for i in range(n):
        bits, vector = i % 8, {}
        if bits & 1:
            vector[""] = [rng.uniform(-1, 1) for _ in range(4)]
        if bits & 2:
            vector["text"] = [rng.uniform(-1, 1) for _ in range(3)]
        if bits & 4:
            idx = sorted(rng.sample(range(20), 3))
            vector["words"] = models.SparseVector(indices=idx, values=[rng.uniform(0.1, 1) for _ in idx])
        points.append(models.PointStruct(id=i, vector=vector, payload={"i": i, "bits": bits}))
    return points


def same_answers(ours, local, name: str, rng: random.Random) -> None:
    assert records(ours, name) == records(local, name) or _close_records(ours, local, name)
    for using, dim in [(None, 4), ("text", 3)]:
        for _ in range(3):
            q = [rng.uniform(-1, 1) for _ in range(dim)]
            a = ours.query_points(name, query=q, using=using, limit=10, with_payload=True)
            b = local.query_points(name, query=q, using=using, limit=10, with_payload=True)
            assert [p.id for p in a.points] == [p.id for p in b.points], using
            assert close([p.score for p in a.points], [p.score for p in b.points])
    q = models.SparseVector(indices=[1, 5, 9, 13], values=[1.0, 0.5, 0.7, 0.2])
    a = ours.query_points(name, query=q, using="words", limit=10)
    b = local.query_points(name, query=q, using="words", limit=10)
    assert [p.id for p in a.points] == [p.id for p in b.points]
    for field in ["", "text", "words"]:
        flt = models.Filter(must=[models.HasVectorCondition(has_vector=field)])
        assert ours.count(name, count_filter=flt).count == local.count(name, count_filter=flt).count, field
        got = ours.scroll(name, scroll_filter=flt, limit=1000)[0]
        want = local.scroll(name, scroll_filter=flt, limit=1000)[0]
        assert sorted(p.id for p in got) == sorted(p.id for p in want), field
    # A search filtered by another field's presence.
    flt = models.Filter(must=[models.HasVectorCondition(has_vector="words")])
    a = ours.query_points(name, query=[1.0, 0.0, 0.5], using="text", query_filter=flt, limit=5)
    b = local.query_points(name, query=[1.0, 0.0, 0.5], using="text", query_filter=flt, limit=5)
    assert [p.id for p in a.points] == [p.id for p in b.points]
    # `with_vector` as a list of names.
    a = ours.retrieve(name, ids=list(range(16)), with_vectors=["text", "words"])
    b = local.retrieve(name, ids=list(range(16)), with_vectors=["text", "words"])
    assert close({p.id: fields_of(p.vector) for p in a}, {p.id: fields_of(p.vector) for p in b})


def _close_records(ours, local, name) -> bool:
    a, b = records(ours, name), records(local, name)
    assert a.keys() == b.keys()
    for i in a:
        assert a[i][0] == b[i][0], i
        assert close(a[i][1], b[i][1]), (i, a[i][1], b[i][1])
    return True


def test_every_subset_of_fields_answers_as_local_mode_through_restarts():
    print(f"seed {SEED} (replay with AMETIST_TEST_SEED={SEED})")
    rng = random.Random(SEED)
    server = AmetistServer(partitions=3)
    local = QdrantClient(":memory:")
    ours = server.client()
    try:
        for c in (ours, local):
            create(c, "mixed")
        points = subset_points(rng, 64)
        for c in (ours, local):
            c.upsert("mixed", points=points, wait=True)
        same_answers(ours, local, "mixed", rng)

        # Removing one field keeps the others; the unnamed vector can be removed too.
        for c in (ours, local):
            c.delete_vectors("mixed", points=[3, 7, 11], vectors=[""], wait=True)
            c.delete_vectors("mixed", points=models.Filter(must=[models.FieldCondition(key="bits", match=models.MatchValue(value=6))]), vectors=["text"], wait=True)
            # Updating one field adds it or replaces it and leaves the rest alone.
            c.update_vectors(
                "mixed",
                points=[
                    models.PointVectors(id=0, vector={"text": [0.5, 0.5, 0.5]}),
                    models.PointVectors(id=5, vector={"": [0.1, 0.2, 0.3, 0.4]}),
                    models.PointVectors(id=9, vector={"words": models.SparseVector(indices=[1], values=[3.0])}),
                ],
                wait=True,
            )
        same_answers(ours, local, "mixed", rng)

        server.restart(kill=True)
        same_answers(ours, local, "mixed", rng)
        server.restart()  # a clean stop writes today's images; the next start reads them
        same_answers(ours, local, "mixed", rng)
    finally:
        ours.close()
        local.close()
        server.stop()


def test_a_point_may_omit_the_unnamed_vector_of_a_plain_collection(client, collection_name):
    client.create_collection(collection_name, vectors_config=models.VectorParams(size=2, distance="Dot"))
    client.upsert(
        collection_name,
        points=[models.PointStruct(id=1, vector=[1.0, 0.0]), models.PointStruct(id=2, vector={}, payload={"a": 1})],
        wait=True,
    )
    got = {p.id: p.vector for p in client.retrieve(collection_name, ids=[1, 2], with_vectors=True)}
    assert got == {1: [1.0, 0.0], 2: {}}
    hits = client.query_points(collection_name, query=[1.0, 1.0], limit=5).points
    assert [h.id for h in hits] == [1], "a search on a field sees only the points that have it"
    assert client.count(collection_name).count == 2


def test_data_written_before_the_field_model_opens_and_answers_the_same(tmp_path):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    data = tmp_path / "data"
    shutil.copytree(FIXTURE / "data", data)
    server = AmetistServer(partitions=2, data_dir=data)
    client = server.client()
    try:

        def check(extra: dict) -> None:
            for name in ("plain", "mixed"):
                points, _ = client.scroll(name, limit=1000, with_payload=True, with_vectors=True)
                got = {p.id: (p.payload, fields_of(p.vector)) for p in points}
                want = {p["id"]: (p["payload"], fields_of(p["vector"])) for p in expected[name]}
                want.update(extra.get(name, {}))
                assert got.keys() == want.keys(), name
                for i in got:
                    assert got[i][0] == want[i][0], (name, i)
                    assert close(got[i][1], want[i][1]), (name, i, got[i][1], want[i][1])
            q = expected["mixed_query"]
            hits = client.query_points("mixed", query=q["query"], limit=5).points
            assert [h.id for h in hits] == q["ids"]

        check({})
        # New writes beside the old ones, then both kinds of restart.
        client.upsert("mixed", points=[models.PointStruct(id=99, vector={"text": [0.0, 1.0, 0.0]})], wait=True)
        extra = {"mixed": {99: ({}, {"text": [0.0, 1.0, 0.0]})}}
        check(extra)
        server.restart()
        check(extra)
        server.restart(kill=True)
        check(extra)
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"vectors": {"size": 4, "distance": "Dot", "datatype": "float16"}}, "vectors.datatype"),
        ({"vectors": {"size": 4, "distance": "Dot", "multivector_config": {"comparator": "min_sim"}}}, "min_sim"),
        ({"vectors": {"t": {"size": 4, "distance": "Dot", "datatype": "uint8"}}}, "vectors.t.datatype"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "quantization_config": {"binary": {"query_encoding": "scalar8bits"}}}, "quantization_config.binary.query_encoding"),
        ({"vectors": {"t": {"size": 4, "distance": "Dot", "quantization_config": {"product": {"compression": "x4"}}}}}, "vectors.t.quantization_config.product"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "quantization_config": {"product": {"compression": "x16"}}}, "quantization_config.product"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "replication_factor": 2}, "replication_factor"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "init_from": {"collection": "x"}}, "init_from"),
        (
            {"vectors": {"size": 4, "distance": "Dot"}, "strict_mode_config": {"max_resident_memory_percent": 50}},
            "strict_mode_config.max_resident_memory_percent",
        ),
        ({"vectors": {"size": 4, "distance": "Dot"}, "strict_mode_config": {"max_query_limt": 5}}, "max_query_limt"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"m": 8, "copy_vectors": True}}, "hnsw_config.copy_vectors"),
    ],
)
def test_settings_not_implemented_are_refused_naming_them(server, collection_name, body, field):
    import httpx

    r = httpx.put(f"{server.url}/collections/{collection_name}", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert field in r.json()["status"]["error"], r.text
    assert httpx.get(f"{server.url}/collections/{collection_name}/exists").json()["result"]["exists"] is False


def test_settings_that_only_tune_qdrant_are_accepted(server, collection_name):
    import httpx

    body = {
        "vectors": {"size": 4, "distance": "Dot", "on_disk": True, "datatype": "float32"},
        "on_disk_payload": True,
        "optimizers_config": {"indexing_threshold": 0},
        "wal_config": {"wal_capacity_mb": 32},
        "hnsw_config": {"max_indexing_threads": 2, "on_disk": False},
        "replication_factor": 1,
        "sharding_method": "auto",
    }
    r = httpx.put(f"{server.url}/collections/{collection_name}", json=body, timeout=30)
    assert r.status_code == 200, r.text
