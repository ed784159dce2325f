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


# ----- named dense vectors, sparse vectors, hybrid fusion -------------------------------

SPARSE_DIMS = 40


def named_dataset(seed: int):
    """Points with a random subset of `text` (8-d), `image` (5-d) and `words` (sparse)."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(200):
        vector: dict = {}
        if rng.random() < 0.85:
            vector["text"] = rng.standard_normal(8).astype(np.float32).tolist()
        if rng.random() < 0.7:
            vector["image"] = rng.standard_normal(5).astype(np.float32).tolist()
        if rng.random() < 0.8:
            dims = sorted(set(int(d) for d in rng.integers(0, SPARSE_DIMS, size=int(rng.integers(1, 6)))))
            values = [float(round(v, 4)) for v in rng.uniform(0.1, 2.0, size=len(dims))]
            vector["words"] = models.SparseVector(indices=dims, values=values)
        points.append(models.PointStruct(id=i + 1, vector=vector, payload={"i": i, "group": i % 3}))
    return rng, points


def load_named(client, name, points, modifier):
    client.create_collection(
        name,
        vectors_config={
            "text": models.VectorParams(size=8, distance=models.Distance.COSINE),
            "image": models.VectorParams(size=5, distance=models.Distance.EUCLID),
        },
        sparse_vectors_config={"words": models.SparseVectorParams(modifier=modifier)},
    )
    client.upsert(name, points=points[:120], wait=True)
    client.upsert(name, points=points[120:], wait=True)
    # Change some vectors by name, drop some names, delete some points.
    client.update_vectors(
        name,
        points=[models.PointVectors(id=3, vector={"image": [0.5, -0.5, 1.0, 0.0, 2.0]})],
        wait=True,
    )
    client.delete_vectors(name, vectors=["text", "words"], points=[4, 5], wait=True)
    last = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=190))])
    client.delete_vectors(name, vectors=["image"], points=models.FilterSelector(filter=last), wait=True)
    client.delete(name, points_selector=[7, 8, 9], wait=True)


def sparse_query(rng):
    dims = sorted(set(int(d) for d in rng.integers(0, SPARSE_DIMS, size=4)))
    return models.SparseVector(indices=dims, values=[1.0] * len(dims))


def assert_same_vectors(ours, theirs):
    assert set(ours) == set(theirs)
    for name, v in ours.items():
        w = theirs[name]
        if isinstance(v, models.SparseVector):
            assert dict(zip(v.indices, v.values)) == pytest.approx(dict(zip(w.indices, w.values)))
        else:
            assert v == pytest.approx(w, abs=TOL)


@pytest.mark.parametrize("modifier", [None, models.Modifier.IDF])
def test_named_and_sparse_vectors_match_local_mode(client, local, collection_name, modifier):
    rng, points = named_dataset(seed=21)
    load_named(client, collection_name, points, modifier)
    load_named(local, collection_name, points, modifier)

    info = client.get_collection(collection_name).config.params
    assert set(info.vectors) == {"text", "image"} and info.vectors["image"].size == 5
    assert set(info.sparse_vectors) == {"words"}
    assert info.sparse_vectors["words"].modifier == modifier

    exact = models.SearchParams(exact=True)
    group = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=1))])
    for _ in range(5):
        for using, dim in (("text", 8), ("image", 5)):
            q = rng.standard_normal(dim).astype(np.float32).tolist()
            for kwargs in (dict(limit=10), dict(limit=5, query_filter=group), dict(limit=3, with_vectors=True)):
                ours = client.query_points(collection_name, query=q, using=using, search_params=exact, **kwargs).points
                theirs = local.query_points(collection_name, query=q, using=using, search_params=exact, **kwargs).points
                assert_same_hits(ours, theirs)
                if kwargs.get("with_vectors"):
                    for a, b in zip(ours, theirs):
                        assert_same_vectors(a.vector, b.vector)
        q = sparse_query(rng)
        for kwargs in (dict(limit=10), dict(limit=5, query_filter=group)):
            ours = client.query_points(collection_name, query=q, using="words", **kwargs).points
            theirs = local.query_points(collection_name, query=q, using="words", **kwargs).points
            assert_same_hits(ours, theirs)

    # Points by id: the named vectors (missing names left out), selected by name too.
    ids = [1, 2, 3, 4, 5, 6, 7, 50]
    for kwargs in (dict(with_vectors=True), dict(with_vectors=["image"])):
        ours = sorted(client.retrieve(collection_name, ids=ids, **kwargs), key=lambda r: r.id)
        theirs = sorted(local.retrieve(collection_name, ids=ids, **kwargs), key=lambda r: r.id)
        assert [r.id for r in ours] == [r.id for r in theirs]
        for a, b in zip(ours, theirs):
            assert_same_vectors(a.vector, b.vector)
    page, _ = client.scroll(collection_name, limit=5, with_vectors=True)
    want, _ = local.scroll(collection_name, limit=5, with_vectors=True)
    assert [p.id for p in page] == [p.id for p in want]
    for a, b in zip(page, want):
        assert_same_vectors(a.vector, b.vector)

    # By a point's own named vector.
    ours = client.query_points(collection_name, query=2, using="text", search_params=exact, limit=5).points
    theirs = local.query_points(collection_name, query=2, using="text", search_params=exact, limit=5).points
    assert_same_hits(ours, theirs)

    # Hybrid: dense and sparse prefetches fused by RRF, DBSF and weighted RRF.
    dense_q = rng.standard_normal(8).astype(np.float32).tolist()
    prefetch = [
        models.Prefetch(query=dense_q, using="text", limit=20, params=exact),
        models.Prefetch(query=sparse_query(rng), using="words", limit=20),
    ]
    for query in (
        models.FusionQuery(fusion=models.Fusion.RRF),
        models.FusionQuery(fusion=models.Fusion.DBSF),
        models.RrfQuery(rrf=models.Rrf(k=5, weights=[3.0, 1.0])),
        models.RrfQuery(rrf=models.Rrf(weights=[0.5, 2.0])),
    ):
        for kwargs in (dict(limit=8), dict(limit=5, query_filter=group)):
            ours = client.query_points(collection_name, prefetch=prefetch, query=query, **kwargs).points
            # Fused scores tie (rank r in one list = rank r in another): the order of tied
            # points is not specified (Ametist orders them by id), so compare the scores
            # rank by rank, and each point's score with local mode's for that point.
            kwargs["limit"] += 20
            theirs = local.query_points(collection_name, prefetch=prefetch, query=query, **kwargs).points
            assert [p.score for p in ours] == pytest.approx([p.score for p in theirs[: len(ours)]], abs=TOL)
            by_id = {p.id: p for p in theirs}
            for p in ours:
                assert p.id in by_id and p.score == pytest.approx(by_id[p.id].score, abs=TOL), (query, p)
                assert p.payload == by_id[p.id].payload


def test_named_vector_errors_change_nothing(client, collection_name):
    from qdrant_client.http.exceptions import UnexpectedResponse

    _, points = named_dataset(seed=22)
    load_named(client, collection_name, points, None)
    before = client.count(collection_name).count
    bad = [
        lambda: client.upsert(collection_name, points=[models.PointStruct(id=1000, vector={"audio": [1.0]})]),
        lambda: client.upsert(collection_name, points=[models.PointStruct(id=1000, vector={"image": [1.0, 2.0]})]),
        lambda: client.upsert(collection_name, points=[models.PointStruct(id=1000, vector=[1.0] * 8)]),
        lambda: client.query_points(collection_name, query=[1.0] * 8, using="audio"),
        lambda: client.query_points(collection_name, query=[1.0] * 3, using="text"),
        lambda: client.query_points(collection_name, query=[1.0] * 8),
        lambda: client.query_points(collection_name, query=[1.0] * 8, using="words"),
        lambda: client.delete_vectors(collection_name, vectors=["audio"], points=[1]),
        lambda: client.update_vectors(collection_name, points=[models.PointVectors(id=1, vector={"text": [1.0]})]),
    ]
    for call in bad:
        with pytest.raises(UnexpectedResponse) as e:
            call()
        assert 400 <= e.value.status_code < 500, e.value
    assert client.count(collection_name).count == before
    assert 1000 not in [p.id for p in client.retrieve(collection_name, ids=[1000])]
