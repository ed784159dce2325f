"""Points through the real qdrant-client: upsert, upload, query, batch query, retrieve,
delete, and the errors a client sees."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from qdrant_client import models
from qdrant_client.http import models as rest  # qdrant_client.models.QueryResponse is fastembed's
from qdrant_client.http.exceptions import UnexpectedResponse

# Every test runs over REST and over gRPC (prefer_grpc), but those marked rest_only.
PROTOCOLS = ("rest", "grpc")

DIM = 4


def make_collection(client, name, distance=models.Distance.COSINE, dim=DIM, **kwargs):
    client.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=distance), **kwargs)


def wait_for_count(client, name, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        count = client.get_collection(name).points_count
        if count == n or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


# Four points whose cosine similarities to [1, 0, 0, 0] are all different.
POINTS = [
    models.PointStruct(id=1, vector=[1.0, 0.0, 0.0, 0.0], payload={"name": "one", "n": 1, "tags": ["a"]}),
    models.PointStruct(id=2, vector=[0.9, 0.3, 0.0, 0.0], payload={"name": "two", "n": 2, "nested": {"x": 1.5}}),
    models.PointStruct(id=3, vector=[0.5, 0.5, 0.5, 0.0], payload={"name": "three", "n": 3}),
    models.PointStruct(id=4, vector=[0.0, 0.0, 0.2, 1.0], payload={"name": "four", "n": 4}),
]


@pytest.fixture
def filled(client, collection_name):
    make_collection(client, collection_name)
    client.upsert(collection_name, points=POINTS, wait=True)
    return collection_name


def test_upsert_point_structs_wait(client, collection_name):
    make_collection(client, collection_name)
    result = client.upsert(collection_name, points=POINTS, wait=True)
    assert isinstance(result, models.UpdateResult)
    assert result.status == models.UpdateStatus.COMPLETED
    assert isinstance(result.operation_id, int)
    assert client.get_collection(collection_name).points_count == 4
    records = client.retrieve(collection_name, ids=[1, 2, 3, 4])
    assert {r.id: r.payload for r in records} == {p.id: p.payload for p in POINTS}


def test_upsert_without_wait_is_acknowledged_then_visible(client, collection_name):
    make_collection(client, collection_name)
    result = client.upsert(collection_name, points=POINTS, wait=False)
    assert result.status in (models.UpdateStatus.ACKNOWLEDGED, models.UpdateStatus.COMPLETED)
    assert wait_for_count(client, collection_name, 4) == 4


def test_upsert_batch(client, collection_name):
    make_collection(client, collection_name, distance=models.Distance.EUCLID)
    batch = models.Batch(
        ids=[10, 11, 12],
        vectors=[[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0], [5.0, 5.0, 5.0, 5.0]],
        payloads=[{"k": "a"}, {"k": "b"}, {"k": "c"}],
    )
    result = client.upsert(collection_name, points=batch, wait=True)
    assert result.status == models.UpdateStatus.COMPLETED
    records = client.retrieve(collection_name, ids=[10, 11, 12], with_vectors=True)
    by_id = {r.id: r for r in records}
    assert by_id[10].vector == [1.0, 2.0, 3.0, 4.0]  # euclid vectors are stored as sent
    assert by_id[12].payload == {"k": "c"}


def test_upsert_batch_without_payloads(client, collection_name):
    make_collection(client, collection_name, distance=models.Distance.DOT)
    client.upsert(collection_name, points=models.Batch(ids=[1, 2], vectors=[[1, 0, 0, 0], [0, 1, 0, 0]]), wait=True)
    assert client.get_collection(collection_name).points_count == 2


def test_upsert_replaces_vector_and_payload(client, filled):
    client.upsert(filled, points=[models.PointStruct(id=1, vector=[0, 1, 0, 0], payload={"new": True})], wait=True)
    (record,) = client.retrieve(filled, ids=[1], with_vectors=True)
    assert record.payload == {"new": True}
    assert record.vector == pytest.approx([0.0, 1.0, 0.0, 0.0])
    assert client.get_collection(filled).points_count == 4


def test_string_and_uuid_ids(client, collection_name):
    make_collection(client, collection_name)
    u = uuid.UUID("8c4f0a52-3d5e-4f2b-9d1a-2b7e6f1c0a11")
    client.upsert(
        collection_name,
        points=[
            models.PointStruct(id=str(u).upper(), vector=[1, 0, 0, 0], payload={"kind": "uuid"}),
            models.PointStruct(id=7, vector=[0, 1, 0, 0], payload={"kind": "int"}),
        ],
        wait=True,
    )
    records = client.retrieve(collection_name, ids=[str(u), 7])
    assert {r.id for r in records} == {str(u), 7}  # UUIDs come back canonical, lowercase
    hits = client.query_points(collection_name, query=[1, 0, 0, 0], limit=1).points
    assert hits[0].id == str(u)


def test_upload_points(client, collection_name):
    make_collection(client, collection_name, dim=8)
    rng = np.random.default_rng(7)
    points = [
        models.PointStruct(id=i, vector=rng.standard_normal(8).tolist(), payload={"i": i}) for i in range(300)
    ]
    client.upload_points(collection_name, points=points, batch_size=64, wait=True)
    assert client.get_collection(collection_name).points_count == 300
    records = client.retrieve(collection_name, ids=[0, 150, 299])
    assert sorted(r.payload["i"] for r in records) == [0, 150, 299]


def test_upload_collection_numpy(client, collection_name):
    make_collection(client, collection_name, dim=8, distance=models.Distance.DOT)
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((250, 8)).astype(np.float32)
    client.upload_collection(
        collection_name,
        vectors=vectors,
        payload=({"row": i} for i in range(250)),
        ids=range(1000, 1250),
        batch_size=100,
        wait=True,
    )
    assert client.get_collection(collection_name).points_count == 250
    (record,) = client.retrieve(collection_name, ids=[1042], with_vectors=True)
    assert record.payload == {"row": 42}
    assert record.vector == pytest.approx(vectors[42].tolist(), abs=1e-6)


def test_upload_collection_generates_uuid_ids(client, collection_name):
    make_collection(client, collection_name, dim=2, distance=models.Distance.DOT)
    client.upload_collection(collection_name, vectors=[[1.0, 0.0], [0.0, 1.0]], wait=True)
    assert client.get_collection(collection_name).points_count == 2


def test_query_nearest(client, filled):
    res = client.query_points(filled, query=[1.0, 0.0, 0.0, 0.0], limit=3)
    assert isinstance(res, rest.QueryResponse)
    assert [p.id for p in res.points] == [1, 2, 3]
    scores = [p.score for p in res.points]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    first = res.points[0]
    assert isinstance(first, models.ScoredPoint)
    assert isinstance(first.version, int)
    # with_payload defaults to True in query_points, with_vectors to False.
    assert first.payload == POINTS[0].payload
    assert first.vector is None


def test_query_nearest_query_object(client, filled):
    res = client.query_points(filled, query=models.NearestQuery(nearest=[0.0, 0.0, 0.2, 1.0]), limit=1)
    assert [p.id for p in res.points] == [4]


def test_query_numpy_vector(client, filled):
    res = client.query_points(filled, query=np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), limit=1)
    assert [p.id for p in res.points] == [1]


def test_query_offset_and_limit(client, filled):
    res = client.query_points(filled, query=[1.0, 0.0, 0.0, 0.0], limit=2, offset=1)
    assert [p.id for p in res.points] == [2, 3]
    res = client.query_points(filled, query=[1.0, 0.0, 0.0, 0.0], limit=10)
    assert [p.id for p in res.points] == [1, 2, 3, 4]


def test_query_with_payload_and_vectors(client, filled):
    res = client.query_points(filled, query=[1, 0, 0, 0], limit=1, with_payload=False, with_vectors=True)
    hit = res.points[0]
    assert hit.payload is None
    assert hit.vector == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_query_payload_selectors(client, filled):
    hit = client.query_points(filled, query=[0.9, 0.3, 0, 0], limit=1, with_payload=["name", "nested"]).points[0]
    assert hit.id == 2
    assert hit.payload == {"name": "two", "nested": {"x": 1.5}}
    hit = client.query_points(
        filled, query=[0.9, 0.3, 0, 0], limit=1, with_payload=models.PayloadSelectorExclude(exclude=["name", "nested"])
    ).points[0]
    assert hit.payload == {"n": 2}
    hit = client.query_points(
        filled, query=[0.9, 0.3, 0, 0], limit=1, with_payload=models.PayloadSelectorInclude(include=["nested.x"])
    ).points[0]
    assert hit.payload == {"nested": {"x": 1.5}}


def test_query_score_threshold(client, filled):
    res = client.query_points(filled, query=[1, 0, 0, 0], limit=10, score_threshold=0.9)
    assert [p.id for p in res.points] == [1, 2]
    assert all(p.score >= 0.9 for p in res.points)


def test_query_score_threshold_euclid_is_a_maximum_distance(client, collection_name):
    make_collection(client, collection_name, distance=models.Distance.EUCLID, dim=2)
    client.upsert(
        collection_name,
        points=models.Batch(ids=[1, 2, 3], vectors=[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]),
        wait=True,
    )
    res = client.query_points(collection_name, query=[0.0, 0.0], limit=10, score_threshold=1.5)
    assert [p.id for p in res.points] == [1, 2]
    assert [p.score for p in res.points] == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize(
    "params",
    [
        models.SearchParams(exact=True),
        models.SearchParams(hnsw_ef=128),
        models.SearchParams(hnsw_ef=16, exact=False),
    ],
)
def test_query_search_params(client, filled, params):
    res = client.query_points(filled, query=[1, 0, 0, 0], limit=2, search_params=params)
    assert [p.id for p in res.points] == [1, 2]


def test_query_hnsw_index_finds_neighbours(client, collection_name):
    # Enough points (and a low full_scan_threshold) that the partitions use their graphs.
    make_collection(
        client,
        collection_name,
        dim=16,
        distance=models.Distance.EUCLID,
        hnsw_config=models.HnswConfigDiff(m=8, ef_construct=64, full_scan_threshold=10),
    )
    rng = np.random.default_rng(3)
    data = rng.standard_normal((1000, 16)).astype(np.float32)
    client.upsert(collection_name, points=models.Batch(ids=list(range(1000)), vectors=data.tolist()), wait=True)
    queries = rng.standard_normal((10, 16)).astype(np.float32)
    hits = 0
    for q in queries:
        exact = client.query_points(
            collection_name, query=q, limit=10, search_params=models.SearchParams(exact=True)
        ).points
        want = np.argsort(np.linalg.norm(data - q, axis=1))[:10].tolist()
        assert [p.id for p in exact] == want
        approx = client.query_points(
            collection_name, query=q, limit=10, search_params=models.SearchParams(hnsw_ef=64)
        ).points
        hits += len({p.id for p in approx} & set(want))
    assert hits / 100 >= 0.8


def test_query_batch_points(client, filled):
    requests = [
        models.QueryRequest(query=[1.0, 0.0, 0.0, 0.0], limit=2, with_payload=True),
        models.QueryRequest(query=models.NearestQuery(nearest=[0.0, 0.0, 0.2, 1.0]), limit=1),
        models.QueryRequest(
            query=[1.0, 0.0, 0.0, 0.0],
            limit=1,
            offset=1,
            with_vector=True,
            params=models.SearchParams(exact=True),
        ),
    ]
    responses = client.query_batch_points(filled, requests=requests)
    assert len(responses) == 3
    assert all(isinstance(r, rest.QueryResponse) for r in responses)
    assert [p.id for p in responses[0].points] == [1, 2]
    assert responses[0].points[0].payload == POINTS[0].payload
    assert [p.id for p in responses[1].points] == [4]
    assert responses[1].points[0].payload is None  # QueryRequest's default: no payload
    assert [p.id for p in responses[2].points] == [2]
    assert responses[2].points[0].vector is not None


def test_query_batch_points_empty(client, filled):
    assert client.query_batch_points(filled, requests=[]) == []


@pytest.mark.rest_only
def test_query_batch_points_one_bad_request_fails_the_batch(client, filled):
    with pytest.raises(UnexpectedResponse) as e:
        client.query_batch_points(
            filled,
            requests=[models.QueryRequest(query=[1, 0, 0, 0]), models.QueryRequest(query=[1, 0, 0])],
        )
    assert e.value.status_code == 400


@pytest.mark.rest_only
def test_retrieve(client, filled):
    records = client.retrieve(filled, ids=[3, 1, 999])
    assert sorted(r.id for r in records) == [1, 3]  # absent ids are left out
    assert all(isinstance(r, models.Record) for r in records)
    by_id = {r.id: r for r in records}
    assert by_id[3].payload == POINTS[2].payload
    assert by_id[3].vector is None

    (r,) = client.retrieve(filled, ids=[3], with_payload=False, with_vectors=True)
    assert r.payload is None
    norm = np.linalg.norm(POINTS[2].vector)
    assert r.vector == pytest.approx((np.array(POINTS[2].vector) / norm).tolist(), abs=1e-6)  # cosine: normalised

    (r,) = client.retrieve(filled, ids=[2], with_payload=["nested"])
    assert r.payload == {"nested": {"x": 1.5}}


def test_retrieve_empty_id_list(client, filled):
    assert client.retrieve(filled, ids=[]) == []


@pytest.mark.rest_only
def test_point_without_payload_reads_as_empty_payload(client, collection_name):
    make_collection(client, collection_name)
    client.upsert(collection_name, points=[models.PointStruct(id=1, vector=[1, 0, 0, 0])], wait=True)
    (r,) = client.retrieve(collection_name, ids=[1])
    assert r.payload == {}
    (hit,) = client.query_points(collection_name, query=[1, 0, 0, 0], limit=1).points
    assert hit.payload == {}


def test_delete_by_ids(client, filled):
    result = client.delete(filled, points_selector=models.PointIdsList(points=[1, 3]), wait=True)
    assert result.status == models.UpdateStatus.COMPLETED
    assert client.get_collection(filled).points_count == 2
    assert sorted(r.id for r in client.retrieve(filled, ids=[1, 2, 3, 4])) == [2, 4]
    res = client.query_points(filled, query=[1, 0, 0, 0], limit=10)
    assert [p.id for p in res.points] == [2, 4]


def test_delete_plain_id_list_and_absent_ids(client, filled):
    client.delete(filled, points_selector=[4, 12345], wait=True)
    assert client.get_collection(filled).points_count == 3


def test_delete_without_wait(client, filled):
    result = client.delete(filled, points_selector=[1, 2], wait=False)
    assert result.status in (models.UpdateStatus.ACKNOWLEDGED, models.UpdateStatus.COMPLETED)
    assert wait_for_count(client, filled, 2) == 2


# --- errors -------------------------------------------------------------------------


@pytest.mark.rest_only
def test_upsert_wrong_dimension_is_400_and_changes_nothing(client, filled):
    with pytest.raises(UnexpectedResponse) as e:
        client.upsert(
            filled,
            points=[
                models.PointStruct(id=100, vector=[1, 0, 0, 0]),
                models.PointStruct(id=101, vector=[1, 0, 0]),
            ],
        )
    assert e.value.status_code == 400
    assert "dimension" in e.value.structured()["status"]["error"].lower()
    assert client.get_collection(filled).points_count == 4
    assert client.retrieve(filled, ids=[100, 101]) == []


@pytest.mark.rest_only
def test_query_wrong_dimension_is_400(client, filled):
    with pytest.raises(UnexpectedResponse) as e:
        client.query_points(filled, query=[1.0, 0.0], limit=3)
    assert e.value.status_code == 400


@pytest.mark.rest_only
def test_unknown_collection_is_404_for_points(client):
    for call in (
        lambda: client.upsert("no_such_collection", points=[models.PointStruct(id=1, vector=[1, 0])]),
        lambda: client.query_points("no_such_collection", query=[1, 0]),
        lambda: client.retrieve("no_such_collection", ids=[1]),
        lambda: client.delete("no_such_collection", points_selector=[1]),
        lambda: client.query_batch_points("no_such_collection", requests=[models.QueryRequest(query=[1, 0])]),
    ):
        with pytest.raises(UnexpectedResponse) as e:
            call()
        assert e.value.status_code == 404


@pytest.mark.rest_only
def test_limit_zero_is_400(client, filled):
    with pytest.raises(UnexpectedResponse) as e:
        client.query_points(filled, query=[1, 0, 0, 0], limit=0)
    assert e.value.status_code == 400


def test_query_by_point_id(client, filled):
    # Qdrant's "recommend-like" query: the vector of point 1, the point itself excluded.
    res = client.query_points(filled, query=1, limit=2)
    assert [p.id for p in res.points] == [2, 3]


def test_update_vectors_keeps_payload(client, filled):
    result = client.update_vectors(
        filled, points=[models.PointVectors(id=4, vector=[1.0, 0.1, 0.0, 0.0])], wait=True
    )
    assert result.status == models.UpdateStatus.COMPLETED
    (r,) = client.retrieve(filled, ids=[4], with_vectors=True)
    assert r.payload == POINTS[3].payload
    assert r.vector == pytest.approx((np.array([1.0, 0.1, 0, 0]) / np.linalg.norm([1.0, 0.1])).tolist(), abs=1e-6)
    assert [p.id for p in client.query_points(filled, query=[1, 0.1, 0, 0], limit=1).points] == [4]


@pytest.mark.rest_only
def test_update_vectors_of_an_absent_point_is_404_and_changes_nothing(client, filled):
    with pytest.raises(UnexpectedResponse) as e:
        client.update_vectors(
            filled,
            points=[models.PointVectors(id=1, vector=[0, 0, 0, 1.0]), models.PointVectors(id=77, vector=[1.0, 0, 0, 0])],
        )
    assert e.value.status_code == 404
    (r,) = client.retrieve(filled, ids=[1], with_vectors=True)
    assert r.vector == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_timeout_and_consistency_parameters_are_accepted(client, filled):
    client.upsert(filled, points=[models.PointStruct(id=9, vector=[0, 0, 1, 0])], wait=True, timeout=5)
    res = client.query_points(
        filled, query=[0, 0, 1, 0], limit=1, timeout=5, consistency=models.ReadConsistencyType.MAJORITY
    )
    assert [p.id for p in res.points] == [9]
    assert len(client.retrieve(filled, ids=[9], timeout=5, consistency=models.ReadConsistencyType.ALL)) == 1
