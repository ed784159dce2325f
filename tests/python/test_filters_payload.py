"""Filters, scroll, count with a filter, payload updates, delete by filter and payload
indexes through the real client; expected values agree with the client's local mode.

Named vectors are not built yet: that test is an expected failure with `strict=True`, so
it fails loudly (XPASS) the moment the feature lands and the mark gets removed."""

from __future__ import annotations

import pytest
from qdrant_client import QdrantClient, models

# Every test runs over REST and over gRPC (prefer_grpc), but those marked rest_only.
PROTOCOLS = ("rest", "grpc")

DIM = 4


def xfail_engine(what: str):
    return pytest.mark.xfail(reason=f"engine: {what}", strict=True)


POINTS = [
    models.PointStruct(id=i, vector=[1.0, i / 10, 0.0, 0.0], payload={"i": i, "color": ["red", "blue"][i % 2]})
    for i in range(1, 11)
]


@pytest.fixture
def filled(client, collection_name):
    client.create_collection(collection_name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    client.upsert(collection_name, points=POINTS, wait=True)
    return collection_name


RED = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])


def test_query_with_filter(client, filled):
    res = client.query_points(filled, query=[1, 0, 0, 0], query_filter=RED, limit=10)
    assert sorted(p.id for p in res.points) == [2, 4, 6, 8, 10]
    res = client.query_points(
        filled,
        query=[1, 0, 0, 0],
        query_filter=models.Filter(
            must=[models.FieldCondition(key="i", range=models.Range(gte=3, lt=6))],
            must_not=[models.HasIdCondition(has_id=[4])],
        ),
        limit=10,
    )
    assert sorted(p.id for p in res.points) == [3, 5]


def test_scroll_pages_through_everything(client, filled):
    seen = []
    offset = None
    while True:
        records, offset = client.scroll(filled, limit=3, offset=offset, with_payload=True)
        seen += [r.id for r in records]
        if offset is None:
            break
    assert seen == list(range(1, 11))


def test_scroll_with_filter(client, filled):
    records, offset = client.scroll(filled, scroll_filter=RED, limit=100, with_vectors=True)
    assert [r.id for r in records] == [2, 4, 6, 8, 10]
    assert offset is None
    assert all(r.vector is not None for r in records)


def test_count_without_filter(client, filled):
    # Served now: the sum of the partitions' live points.
    assert client.count(filled).count == 10
    assert client.count(filled, exact=False).count == 10


def test_count_with_filter(client, filled):
    assert client.count(filled, count_filter=RED).count == 5


def test_set_payload(client, filled):
    client.set_payload(filled, payload={"extra": 1, "i": 100}, points=[1, 2], wait=True)
    by_id = {r.id: r.payload for r in client.retrieve(filled, ids=[1, 2, 3])}
    assert by_id[1] == {"i": 100, "color": "blue", "extra": 1}
    assert by_id[3] == {"i": 3, "color": "blue"}


def test_overwrite_payload(client, filled):
    client.overwrite_payload(filled, payload={"only": True}, points=[1], wait=True)
    assert client.retrieve(filled, ids=[1])[0].payload == {"only": True}


def test_delete_payload(client, filled):
    client.delete_payload(filled, keys=["color"], points=[1, 2], wait=True)
    assert {r.id: r.payload for r in client.retrieve(filled, ids=[1, 2])} == {1: {"i": 1}, 2: {"i": 2}}


def test_clear_payload(client, filled):
    client.clear_payload(filled, points_selector=[1], wait=True)
    assert client.retrieve(filled, ids=[1])[0].payload == {}


def test_set_payload_by_filter(client, filled):
    client.set_payload(filled, payload={"warm": True}, points=models.FilterSelector(filter=RED), wait=True)
    warm = [r.id for r in client.retrieve(filled, ids=list(range(1, 11))) if r.payload.get("warm")]
    assert sorted(warm) == [2, 4, 6, 8, 10]


def test_delete_by_filter(client, filled):
    client.delete(filled, points_selector=models.FilterSelector(filter=RED), wait=True)
    assert client.get_collection(filled).points_count == 5
    assert sorted(r.id for r in client.retrieve(filled, ids=list(range(1, 11)))) == [1, 3, 5, 7, 9]


def test_named_vectors(client, collection_name):
    client.create_collection(
        collection_name,
        vectors_config={
            "image": models.VectorParams(size=2, distance=models.Distance.DOT),
            "text": models.VectorParams(size=3, distance=models.Distance.COSINE),
        },
    )
    client.upsert(
        collection_name,
        points=[
            models.PointStruct(id=1, vector={"image": [1.0, 0.0], "text": [0.0, 1.0, 0.0]}),
            models.PointStruct(id=2, vector={"image": [0.0, 1.0], "text": [1.0, 0.0, 0.0]}),
        ],
        wait=True,
    )
    assert [p.id for p in client.query_points(collection_name, query=[1.0, 0.0], using="image", limit=1).points] == [1]
    assert [p.id for p in client.query_points(collection_name, query=[1.0, 0.0, 0.0], using="text", limit=1).points] == [2]
    info = client.get_collection(collection_name)
    assert set(info.config.params.vectors) == {"image", "text"}


def test_create_payload_index(client, filled):
    result = client.create_payload_index(filled, field_name="color", field_schema=models.PayloadSchemaType.KEYWORD, wait=True)
    assert result.status == models.UpdateStatus.COMPLETED
    schema = client.get_collection(filled).payload_schema
    assert schema["color"].data_type == models.PayloadSchemaType.KEYWORD
    client.delete_payload_index(filled, field_name="color", wait=True)
    assert "color" not in client.get_collection(filled).payload_schema


def test_unsupported_calls_answer_400_naming_the_feature(client, filled):
    """Until the engine has them, the server says so plainly (never silently ignores)."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    calls = {
        "filter": lambda: client.query_points(filled, query=[1, 0, 0, 0], query_filter=RED),
        "scroll": lambda: client.scroll(filled),
        "payload": lambda: client.set_payload(filled, payload={"a": 1}, points=[1]),
        "count filter": lambda: client.count(filled, count_filter=RED),
        "delete filter": lambda: client.delete(filled, points_selector=models.FilterSelector(filter=RED)),
        "index": lambda: client.create_payload_index(filled, field_name="color", field_schema="keyword"),
    }
    for what, call in calls.items():
        try:
            call()
        except UnexpectedResponse as e:
            assert e.status_code == 400, what
            assert "not supported yet" in e.structured()["status"]["error"], what
        # Once the engine has a feature, the call succeeds: nothing to check here then.


def test_a_key_indexed_as_one_type_still_finds_payloads_of_another(client, collection_name):
    """An integer index on `n` holds only integers; a point whose `n` is a string, a bool
    or a list of mixed values is still found by a match of that type, as without the index
    (local mode, which keeps no indexes, is the oracle)."""
    local = QdrantClient(":memory:")
    values = [5, "five", True, [5, "x"], 7.5, None, "5"]
    points = [
        models.PointStruct(id=i + 1, vector=[1.0, i / 10, 0.0, 0.0], payload={"n": v}) for i, v in enumerate(values)
    ]
    for c in (client, local):
        c.create_collection(collection_name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        c.upsert(collection_name, points=points, wait=True)
    client.create_payload_index(collection_name, "n", models.PayloadSchemaType.INTEGER, wait=True)
    for match in [
        models.MatchValue(value="five"),
        models.MatchValue(value="5"),
        models.MatchAny(any=["x", "y"]),
        models.MatchValue(value=True),
        models.MatchValue(value=5),
        models.MatchExcept(**{"except": ["five"]}),
    ]:
        f = models.Filter(must=[models.FieldCondition(key="n", match=match)])
        want = sorted(p.id for p in local.scroll(collection_name, scroll_filter=f, limit=100)[0])
        got = sorted(p.id for p in client.scroll(collection_name, scroll_filter=f, limit=100)[0])
        assert got == want, match
        assert client.count(collection_name, count_filter=f, exact=True).count == len(want), match
    local.close()
