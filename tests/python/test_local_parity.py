"""The same calls against qdrant-client's own local mode (`QdrantClient(":memory:")`) and
against ametist: same ids, scores within 1e-4 for exact search, same payloads, same
retrieved points. The data has no ties (random float vectors), so the order is unique."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

N = 400
DIM = 12
TOL = 1e-4


def dataset(seed: int):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    ids: list = []
    for i in range(N):
        # A mix of integer ids and UUIDs.
        ids.append(i * 7 + 1 if i % 3 else str(uuid.UUID(int=int(rng.integers(1, 2**63)) << 64 | i)))
    payloads = [
        {
            "i": i,
            "group": ["red", "green", "blue"][i % 3],
            "price": round(float(rng.uniform(0, 100)), 3),
            "tags": [f"t{j}" for j in range(i % 4)],
            "meta": {"even": i % 2 == 0, "name": f"point {i}", "none": None},
        }
        for i in range(N)
    ]
    queries = rng.standard_normal((8, DIM)).astype(np.float32)
    return ids, vectors, payloads, queries


@pytest.fixture
def local():
    c = QdrantClient(":memory:")
    yield c
    c.close()


def load(client, name, distance, ids, vectors, payloads):
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance))
    half = N // 2
    # Half as point structs, half as a column batch.
    client.upsert(
        name,
        points=[
            models.PointStruct(id=ids[i], vector=vectors[i].tolist(), payload=payloads[i]) for i in range(half)
        ],
        wait=True,
    )
    client.upsert(
        name,
        points=models.Batch(ids=ids[half:], vectors=vectors[half:].tolist(), payloads=payloads[half:]),
        wait=True,
    )
    # Overwrite some (with new vectors: the reversed old ones, so no two points tie), delete some.
    client.upsert(
        name,
        points=[models.PointStruct(id=ids[i], vector=vectors[i][::-1].tolist(), payload={"rewritten": i}) for i in (5, 6)],
        wait=True,
    )
    client.delete(name, points_selector=[ids[10], ids[11], ids[12]], wait=True)


def assert_same_hits(ours, theirs, *, with_payload=True, with_vectors=False):
    assert [p.id for p in ours] == [p.id for p in theirs]
    for a, b in zip(ours, theirs):
        assert a.score == pytest.approx(b.score, abs=TOL), (a.id, a.score, b.score)
        if with_payload:
            assert a.payload == b.payload
        if with_vectors:
            assert a.vector == pytest.approx(b.vector, abs=TOL)


@pytest.mark.parametrize(
    "distance",
    [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID, models.Distance.MANHATTAN],
)
def test_exact_search_matches_local_mode(client, local, collection_name, distance):
    ids, vectors, payloads, queries = dataset(seed=11)
    load(client, collection_name, distance, ids, vectors, payloads)
    load(local, collection_name, distance, ids, vectors, payloads)

    assert client.get_collection(collection_name).points_count == local.count(collection_name).count

    exact = models.SearchParams(exact=True)
    for q in queries:
        for kwargs in (
            dict(limit=10),
            dict(limit=5, offset=7),
            dict(limit=3, with_payload=False, with_vectors=True),
            dict(limit=4, with_payload=["group", "meta"]),
        ):
            ours = client.query_points(collection_name, query=q, search_params=exact, **kwargs).points
            theirs = local.query_points(collection_name, query=q, search_params=exact, **kwargs).points
            assert_same_hits(
                ours,
                theirs,
                with_payload=kwargs.get("with_payload", True) is not False,
                with_vectors=kwargs.get("with_vectors", False),
            )

        # A score threshold halfway down the top 20.
        top = local.query_points(collection_name, query=q, search_params=exact, limit=20).points
        threshold = (top[9].score + top[10].score) / 2
        ours = client.query_points(collection_name, query=q, search_params=exact, limit=20, score_threshold=threshold)
        theirs = local.query_points(collection_name, query=q, search_params=exact, limit=20, score_threshold=threshold)
        assert len(theirs.points) == 10
        assert_same_hits(ours.points, theirs.points)

    # By point id: that point's vector, the point itself left out.
    for pid in (ids[0], ids[1], ids[5]):
        for kwargs in (dict(limit=5), dict(limit=3, offset=2)):
            ours = client.query_points(collection_name, query=pid, search_params=exact, **kwargs).points
            theirs = local.query_points(collection_name, query=pid, search_params=exact, **kwargs).points
            assert_same_hits(ours, theirs)

    batch = [models.QueryRequest(query=q.tolist(), limit=5, params=exact, with_payload=True) for q in queries[:4]]
    for ours, theirs in zip(client.query_batch_points(collection_name, batch), local.query_batch_points(collection_name, batch)):
        assert_same_hits(ours.points, theirs.points)


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID])
def test_retrieve_matches_local_mode(client, local, collection_name, distance):
    ids, vectors, payloads, _ = dataset(seed=12)
    load(client, collection_name, distance, ids, vectors, payloads)
    load(local, collection_name, distance, ids, vectors, payloads)

    wanted = [ids[i] for i in (0, 1, 2, 5, 6, 10, 11, 50, 199, 200, 399)] + [987654321]
    for kwargs in (dict(), dict(with_vectors=True), dict(with_payload=False), dict(with_payload=["i", "tags"])):
        ours = sorted(client.retrieve(collection_name, ids=wanted, **kwargs), key=lambda r: str(r.id))
        theirs = sorted(local.retrieve(collection_name, ids=wanted, **kwargs), key=lambda r: str(r.id))
        assert [r.id for r in ours] == [r.id for r in theirs]
        for a, b in zip(ours, theirs):
            assert a.payload == b.payload
            if kwargs.get("with_vectors"):
                assert a.vector == pytest.approx(b.vector, abs=1e-5)
            else:
                assert a.vector is None and b.vector is None
