"""Qdrant's gRPC API (issue 20): qdrant-client with `prefer_grpc=True` against the real
server, each call compared with the same call over REST; and raw gRPC calls that must fail
with the right status code and change nothing.
"""

from __future__ import annotations

import grpc
import httpx
import pytest
from qdrant_client import grpc as pb
from qdrant_client import models as m

from conftest import AmetistServer

DIM = 4


@pytest.fixture(scope="module")
def rpc(server):
    """A client that speaks gRPC to the session's server."""
    c = server.client(prefer_grpc=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield ch
    ch.close()


def points(n: int, start: int = 0):
    return [
        m.PointStruct(
            id=i,
            vector=[float(i % 7), 1.0, float(i % 3), 0.5],
            payload={"i": i, "color": ["red", "green", "blue"][i % 3], "nested": {"x": i * 0.5}},
        )
        for i in range(start, start + n)
    ]


def records(rs):
    """Records as comparable tuples (REST and gRPC give the same models)."""
    return [(r.id, r.payload, r.vector) for r in rs]


def scored(ps):
    return [(p.id, round(p.score, 5), p.payload, p.vector) for p in ps]


def test_health_check_matches_rest(client, rpc):
    g, r = rpc.info(), client.info()
    assert (g.title, g.version) == (r.title, r.version)


def test_collection_lifecycle_over_grpc(client, rpc, collection_name):
    rpc.create_collection(
        collection_name,
        vectors_config={"a": m.VectorParams(size=DIM, distance=m.Distance.DOT), "b": m.VectorParams(size=2, distance=m.Distance.EUCLID)},
        sparse_vectors_config={"s": m.SparseVectorParams(modifier=m.Modifier.IDF)},
        hnsw_config=m.HnswConfigDiff(m=8, ef_construct=64),
    )
    assert rpc.collection_exists(collection_name) and client.collection_exists(collection_name)
    assert collection_name in [c.name for c in rpc.get_collections().collections]
    g, r = rpc.get_collection(collection_name), client.get_collection(collection_name)
    assert g.config.params.vectors == r.config.params.vectors
    assert g.config.params.sparse_vectors == r.config.params.sparse_vectors
    assert (g.config.hnsw_config.m, g.config.hnsw_config.ef_construct) == (8, 64)
    assert (g.status, g.points_count, g.config.params.shard_number) == (r.status, r.points_count, r.config.params.shard_number)
    # Settings that cannot change are refused by name, as on REST.
    with pytest.raises(Exception, match="hnsw_config"):
        rpc.update_collection(collection_name, hnsw_config=m.HnswConfigDiff(m=32))
    assert rpc.update_collection(collection_name, metadata={"owner": "tests"})
    assert client.get_collection(collection_name).config.metadata == {"owner": "tests"}
    assert rpc.delete_collection(collection_name)
    assert not rpc.collection_exists(collection_name)
    assert not client.collection_exists(collection_name)
    # Product quantization is refused, as on REST, and nothing is created.
    with pytest.raises(Exception, match="(?i)product"):
        rpc.create_collection(
            collection_name,
            vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE),
            quantization_config=m.ProductQuantization(product=m.ProductQuantizationConfig(compression=m.CompressionRatio.X4)),
        )
    assert not client.collection_exists(collection_name)


def test_points_and_reads_match_rest(client, rpc, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    ack = rpc.upsert(collection_name, points=points(30), wait=True)
    assert ack.status == m.UpdateStatus.COMPLETED
    ids = list(range(30, 40))
    rpc.upsert(
        collection_name,
        points=m.Batch(ids=ids, vectors=[[1.0, float(i), 0.0, 2.0] for i in ids], payloads=[{"i": i} for i in ids]),
        wait=True,
    )
    assert rpc.count(collection_name).count == client.count(collection_name).count == 40
    flt = m.Filter(must=[m.FieldCondition(key="color", match=m.MatchValue(value="red"))])
    assert rpc.count(collection_name, count_filter=flt).count == client.count(collection_name, count_filter=flt).count

    for kwargs in [dict(with_vectors=True), dict(with_payload=["i"]), dict(with_payload=m.PayloadSelectorExclude(exclude=["nested"]))]:
        assert records(rpc.retrieve(collection_name, [1, 5, 35, 999], **kwargs)) == records(
            client.retrieve(collection_name, [1, 5, 35, 999], **kwargs)
        )
    g_page, g_next = rpc.scroll(collection_name, limit=7, offset=3, scroll_filter=flt, with_vectors=True)
    r_page, r_next = client.scroll(collection_name, limit=7, offset=3, scroll_filter=flt, with_vectors=True)
    assert records(g_page) == records(r_page) and g_next == r_next
    g_page, _ = rpc.scroll(collection_name, limit=5, order_by=m.OrderBy(key="i", direction=m.Direction.DESC))
    r_page, _ = client.scroll(collection_name, limit=5, order_by=m.OrderBy(key="i", direction=m.Direction.DESC))
    assert records(g_page) == records(r_page)

    query = [1.0, 1.0, 1.0, 0.5]
    for kwargs in [
        dict(limit=5),
        dict(limit=5, offset=2, with_vectors=True, with_payload=False),
        dict(limit=10, query_filter=m.Filter(must=[m.FieldCondition(key="i", range=m.Range(gte=10, lt=35))])),
        dict(limit=5, query_filter=m.Filter(must_not=[m.HasIdCondition(has_id=[0, 7, 14])]), score_threshold=0.5),
        dict(limit=5, search_params=m.SearchParams(exact=True)),
    ]:
        assert scored(rpc.query_points(collection_name, query=query, **kwargs).points) == scored(
            client.query_points(collection_name, query=query, **kwargs).points
        ), kwargs
    # A point id as the query, a recommendation, and fusion of prefetches.
    for q in [
        dict(query=3),
        dict(query=m.RecommendQuery(recommend=m.RecommendInput(positive=[1, 2], negative=[3]))),
        dict(prefetch=[m.Prefetch(query=query, limit=10), m.Prefetch(query=[0.0, 1.0, 2.0, 0.5], limit=10)], query=m.FusionQuery(fusion=m.Fusion.RRF)),
    ]:
        assert scored(rpc.query_points(collection_name, limit=5, **q).points) == scored(
            client.query_points(collection_name, limit=5, **q).points
        ), q

    requests = [
        m.QueryRequest(query=query, limit=3),
        m.QueryRequest(query=[0.0, 1.0, 2.0, 0.5], limit=4, filter=flt, with_payload=True),
    ]
    g_batch = rpc.query_batch_points(collection_name, requests)
    r_batch = client.query_batch_points(collection_name, requests)
    assert [scored(b.points) for b in g_batch] == [scored(b.points) for b in r_batch]

    # Deletes by ids and by filter.
    rpc.delete(collection_name, points_selector=m.PointIdsList(points=[0, 1]), wait=True)
    rpc.delete(collection_name, points_selector=m.FilterSelector(filter=flt), wait=True)
    assert client.count(collection_name).count == rpc.count(collection_name).count
    assert client.retrieve(collection_name, [0, 1]) == []
    assert client.count(collection_name, count_filter=flt).count == 0


def test_named_vectors_over_grpc(client, rpc, collection_name):
    client.create_collection(
        collection_name,
        vectors_config={"text": m.VectorParams(size=DIM, distance=m.Distance.DOT), "img": m.VectorParams(size=2, distance=m.Distance.EUCLID)},
        sparse_vectors_config={"kw": m.SparseVectorParams()},
    )
    rpc.upsert(
        collection_name,
        points=[
            m.PointStruct(
                id=i,
                vector={"text": [float(i), 1.0, 0.0, 1.0], "img": [float(i), 2.0], "kw": m.SparseVector(indices=[i % 5, 7], values=[1.0, 0.5])},
                payload={"i": i},
            )
            for i in range(12)
        ],
        wait=True,
    )
    assert records(rpc.retrieve(collection_name, [3, 4], with_vectors=True)) == records(
        client.retrieve(collection_name, [3, 4], with_vectors=True)
    )
    assert records(rpc.retrieve(collection_name, [3], with_vectors=["img"])) == records(
        client.retrieve(collection_name, [3], with_vectors=["img"])
    )
    for q in [
        dict(query=[1.0, 0.0, 0.0, 1.0], using="text"),
        dict(query=[3.0, 2.0], using="img", query_filter=m.Filter(must=[m.FieldCondition(key="i", range=m.Range(lt=8))])),
        dict(query=m.SparseVector(indices=[2, 7], values=[1.0, 1.0]), using="kw"),
    ]:
        assert scored(rpc.query_points(collection_name, limit=4, with_vectors=True, **q).points) == scored(
            client.query_points(collection_name, limit=4, with_vectors=True, **q).points
        ), q
    rpc.update_vectors(collection_name, points=[m.PointVectors(id=1, vector={"img": [9.0, 9.0]})], wait=True)
    assert client.retrieve(collection_name, [1], with_vectors=["img"])[0].vector == {"img": [9.0, 9.0]}
    rpc.delete_vectors(collection_name, vectors=["img"], points=[2], wait=True)
    assert "img" not in client.retrieve(collection_name, [2], with_vectors=True)[0].vector


def test_payload_writes_and_indexes_over_grpc(client, rpc, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    client.upsert(collection_name, points=points(10), wait=True)
    rpc.set_payload(collection_name, payload={"tag": "x", "n": 1}, points=[1, 2], wait=True)
    assert client.retrieve(collection_name, [1])[0].payload["tag"] == "x"
    rpc.overwrite_payload(collection_name, payload={"only": True}, points=[3], wait=True)
    assert client.retrieve(collection_name, [3])[0].payload == {"only": True}
    rpc.delete_payload(collection_name, keys=["n"], points=m.Filter(must=[m.FieldCondition(key="tag", match=m.MatchValue(value="x"))]), wait=True)
    assert "n" not in client.retrieve(collection_name, [2])[0].payload
    rpc.clear_payload(collection_name, points_selector=m.PointIdsList(points=[4]), wait=True)
    assert client.retrieve(collection_name, [4])[0].payload == {}

    rpc.create_payload_index(collection_name, "color", field_schema=m.PayloadSchemaType.KEYWORD, wait=True)
    rpc.create_payload_index(collection_name, "i", field_schema=m.PayloadSchemaType.INTEGER, wait=True)
    schema = client.get_collection(collection_name).payload_schema
    assert schema["color"].data_type == m.PayloadSchemaType.KEYWORD and schema["i"].data_type == m.PayloadSchemaType.INTEGER
    assert rpc.get_collection(collection_name).payload_schema["color"].data_type == m.PayloadSchemaType.KEYWORD
    rpc.delete_payload_index(collection_name, "color", wait=True)
    assert "color" not in client.get_collection(collection_name).payload_schema


def test_datetime_uuid_geo_indexes_over_grpc(client, rpc, collection_name):
    """CreateFieldIndex with FieldType Datetime, Uuid and Geo (with and without their params
    objects) builds the indexes REST lists, and their filters answer over gRPC as over REST."""
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    pts = [
        m.PointStruct(
            id=i,
            vector=[1.0, float(i), 0.5, 0.25],
            payload={
                "t": f"2024-01-{i % 28 + 1:02}T12:00:00+01:00",
                "u": f"00000000-0000-4000-8000-{i % 4:012}",
                "g": {"lon": 13.0 + i * 0.01, "lat": 52.0 + i * 0.01},
            },
        )
        for i in range(40)
    ]
    client.upsert(collection_name, points=pts, wait=True)
    rpc.create_payload_index(collection_name, "t", field_schema=m.PayloadSchemaType.DATETIME, wait=True)
    rpc.create_payload_index(
        collection_name, "u", field_schema=m.UuidIndexParams(type=m.UuidIndexType.UUID, is_tenant=True), wait=True
    )
    rpc.create_payload_index(
        collection_name, "g", field_schema=m.GeoIndexParams(type=m.GeoIndexType.GEO, on_disk=False), wait=True
    )
    schema = client.get_collection(collection_name).payload_schema
    assert {k: (v.data_type, v.points) for k, v in schema.items()} == {
        "t": (m.PayloadSchemaType.DATETIME, 40),
        "u": (m.PayloadSchemaType.UUID, 40),
        "g": (m.PayloadSchemaType.GEO, 40),
    }
    assert rpc.get_collection(collection_name).payload_schema["g"].data_type == m.PayloadSchemaType.GEO
    conditions = [
        m.FieldCondition(key="t", range=m.DatetimeRange(gte="2024-01-05T00:00:00Z", lt="2024-01-10T11:00:00Z")),
        m.FieldCondition(key="u", match=m.MatchValue(value="00000000-0000-4000-8000-000000000002")),
        m.FieldCondition(key="g", geo_radius=m.GeoRadius(center=m.GeoPoint(lon=13.1, lat=52.1), radius=5_000.0)),
    ]
    for c in conditions:
        f = m.Filter(must=[c])
        assert records(rpc.scroll(collection_name, scroll_filter=f, limit=100)[0]) == records(
            client.scroll(collection_name, scroll_filter=f, limit=100)[0]
        )
        assert rpc.count(collection_name, count_filter=f).count == client.count(collection_name, count_filter=f).count > 0
    rpc.delete_payload_index(collection_name, "g", wait=True)
    assert "g" not in client.get_collection(collection_name).payload_schema


def test_search_rpcs_match_rest_query(client, channel, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.EUCLID))
    client.upsert(collection_name, points=points(20), wait=True)
    stub = pb.PointsStub(channel)
    q = [2.0, 1.0, 1.0, 0.5]
    one = stub.Search(
        pb.SearchPoints(
            collection_name=collection_name,
            vector=q,
            limit=5,
            with_payload=pb.WithPayloadSelector(enable=True),
            filter=pb.Filter(must=[pb.Condition(field=pb.FieldCondition(key="color", match=pb.Match(keyword="blue")))]),
        )
    )
    rest = client.query_points(
        collection_name, query=q, limit=5, query_filter=m.Filter(must=[m.FieldCondition(key="color", match=m.MatchValue(value="blue"))])
    ).points
    assert [(p.id.num, round(p.score, 5)) for p in one.result] == [(p.id, round(p.score, 5)) for p in rest]
    batch = stub.SearchBatch(
        pb.SearchBatchPoints(
            collection_name=collection_name,
            search_points=[pb.SearchPoints(collection_name=collection_name, vector=q, limit=3)] * 2,
        )
    )
    expected = [p.id for p in client.query_points(collection_name, query=q, limit=3).points]
    assert [[p.id.num for p in b.result] for b in batch.result] == [expected, expected]


def test_older_recommend_discover_and_facets_match_rest(client, rpc, channel, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    client.upsert(collection_name, points=points(30), wait=True)
    stub = pb.PointsStub(channel)
    rec = stub.Recommend(
        pb.RecommendPoints(
            collection_name=collection_name,
            positive=[pb.PointId(num=1), pb.PointId(num=2)],
            negative=[pb.PointId(num=3)],
            limit=5,
            strategy=pb.RecommendStrategy.BestScore,
        )
    )
    expected = client.query_points(
        collection_name,
        query=m.RecommendQuery(recommend=m.RecommendInput(positive=[1, 2], negative=[3], strategy=m.RecommendStrategy.BEST_SCORE)),
        limit=5,
    ).points
    assert [(p.id.num, round(p.score, 5)) for p in rec.result] == [(p.id, round(p.score, 5)) for p in expected]
    batch = stub.RecommendBatch(
        pb.RecommendBatchPoints(
            collection_name=collection_name,
            recommend_points=[pb.RecommendPoints(collection_name=collection_name, positive=[pb.PointId(num=1)], limit=3)],
        )
    )
    expected = client.query_points(collection_name, query=m.RecommendQuery(recommend=m.RecommendInput(positive=[1])), limit=3).points
    assert [p.id.num for p in batch.result[0].result] == [p.id for p in expected]

    disc = stub.Discover(
        pb.DiscoverPoints(
            collection_name=collection_name,
            target=pb.TargetVector(single=pb.VectorExample(id=pb.PointId(num=4))),
            context=[pb.ContextExamplePair(positive=pb.VectorExample(id=pb.PointId(num=5)), negative=pb.VectorExample(id=pb.PointId(num=6)))],
            limit=5,
        )
    )
    expected = client.query_points(
        collection_name,
        query=m.DiscoverQuery(discover=m.DiscoverInput(target=4, context=[m.ContextPair(positive=5, negative=6)])),
        limit=5,
    ).points
    assert [(p.id.num, round(p.score, 5)) for p in disc.result] == [(p.id, round(p.score, 5)) for p in expected]

    for kwargs in [dict(group_by="color", limit=2, group_size=3), dict(group_by="i", limit=4, group_size=1, with_payload=["i"])]:
        g = rpc.query_points_groups(collection_name, query=[1.0, 1.0, 1.0, 0.5], **kwargs).groups
        r = client.query_points_groups(collection_name, query=[1.0, 1.0, 1.0, 0.5], **kwargs).groups
        assert [(x.id, scored(x.hits)) for x in g] == [(x.id, scored(x.hits)) for x in r], kwargs

    for kwargs in [dict(key="color"), dict(key="i", limit=3, facet_filter=m.Filter(must=[m.FieldCondition(key="i", range=m.Range(lt=10))]))]:
        assert rpc.facet(collection_name, **kwargs) == client.facet(collection_name, **kwargs)


def batch_operations():
    """Every kind of batch operation, each depending on the ones before it."""
    return [
        m.UpsertOperation(upsert=m.PointsList(points=[
            m.PointStruct(id=100, vector={"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 0.0]}, payload={"k": 1, "color": "red"}),
            m.PointStruct(id=101, vector={"a": [0.5, 0.5, 0.5, 0.5]}, payload={"k": 2}),
        ])),
        m.UpdateVectorsOperation(update_vectors=m.UpdateVectors(points=[m.PointVectors(id=101, vector={"b": [0.0, 1.0]})])),
        m.SetPayloadOperation(set_payload=m.SetPayload(payload={"tag": "x"}, points=[100, 101, 1])),
        m.OverwritePayloadOperation(overwrite_payload=m.SetPayload(payload={"only": True}, points=[2])),
        m.DeletePayloadOperation(delete_payload=m.DeletePayload(keys=["k"], points=[100])),
        m.ClearPayloadOperation(clear_payload=m.PointIdsList(points=[3])),
        m.DeleteVectorsOperation(delete_vectors=m.DeleteVectors(points=[101], vector=["b"])),
        m.DeleteOperation(delete=m.PointIdsList(points=[4, 5])),
        m.DeleteOperation(delete=m.FilterSelector(filter=m.Filter(must=[m.FieldCondition(key="color", match=m.MatchValue(value="blue"))]))),
    ]


def test_update_batch_matches_rest(client, rpc, collection_name):
    config = {"a": m.VectorParams(size=DIM, distance=m.Distance.COSINE), "b": m.VectorParams(size=2, distance=m.Distance.DOT)}
    seed = [m.PointStruct(id=p.id, vector={"a": p.vector, "b": [float(p.id % 2), 1.0]}, payload=p.payload) for p in points(20)]
    other = collection_name + "_rest"
    try:
        for name in (collection_name, other):
            client.create_collection(name, vectors_config=config)
            client.upsert(name, points=seed, wait=True)
        g = rpc.batch_update_points(collection_name, batch_operations(), wait=True)
        r = client.batch_update_points(other, batch_operations(), wait=True)
        assert [x.status for x in g] == [x.status for x in r] == [m.UpdateStatus.COMPLETED] * len(batch_operations())
        g_all, _ = client.scroll(collection_name, limit=100, with_vectors=True)
        r_all, _ = client.scroll(other, limit=100, with_vectors=True)
        assert records(g_all) == records(r_all)
        ids = {p.id for p in g_all}
        assert {100, 101} <= ids and not {4, 5} & ids and len(ids) == 16  # blue ones deleted: 8, 11, 14, 17 (2 lost its color)

        # A batch with a bad operation is refused whole, with REST's message naming the
        # operation, and nothing of it is applied.
        bad = [
            m.UpsertOperation(upsert=m.PointsList(points=[m.PointStruct(id=200, vector={"a": [1.0, 0.0, 0.0, 0.0]})])),
            m.UpdateVectorsOperation(update_vectors=m.UpdateVectors(points=[m.PointVectors(id=999, vector={"b": [0.0, 1.0]})])),
        ]
        with pytest.raises(grpc.RpcError) as e:
            rpc.batch_update_points(collection_name, bad, wait=True)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and "operation #1" in e.value.details(), e.value.details()
        with pytest.raises(Exception) as rest_e:
            client.batch_update_points(other, bad, wait=True)
        assert e.value.details() in str(rest_e.value)
        wrong_dim = [m.UpsertOperation(upsert=m.PointsList(points=[m.PointStruct(id=201, vector={"a": [1.0]})]))]
        with pytest.raises(grpc.RpcError) as e:
            rpc.batch_update_points(collection_name, wrong_dim, wait=True)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "operation #0" in e.value.details()
        assert client.retrieve(collection_name, [200, 201]) == []
        assert records(client.scroll(collection_name, limit=100, with_vectors=True)[0]) == records(g_all)
    finally:
        client.delete_collection(other)


def test_update_batch_raw_calls(client, channel, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    client.upsert(collection_name, points=points(5), wait=True)
    stub = pb.PointsStub(channel)
    # The deprecated operations still work; an empty batch and an empty operation are refused.
    answer = stub.UpdateBatch(
        pb.UpdateBatchPoints(
            collection_name=collection_name,
            wait=True,
            operations=[
                pb.PointsUpdateOperation(clear_payload_deprecated=pb.PointsSelector(points=pb.PointsIdsList(ids=[pb.PointId(num=1)]))),
                pb.PointsUpdateOperation(delete_deprecated=pb.PointsSelector(points=pb.PointsIdsList(ids=[pb.PointId(num=2)]))),
            ],
        )
    )
    assert [x.status for x in answer.result] == [pb.UpdateStatus.Completed] * 2
    assert client.retrieve(collection_name, [1])[0].payload == {} and client.retrieve(collection_name, [2]) == []
    code, details = code_of(stub.UpdateBatch, pb.UpdateBatchPoints(collection_name=collection_name, operations=[]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "empty" in details
    code, details = code_of(
        stub.UpdateBatch, pb.UpdateBatchPoints(collection_name=collection_name, operations=[pb.PointsUpdateOperation()])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "operation #0" in details
    code, _ = code_of(stub.UpdateBatch, pb.UpdateBatchPoints(collection_name="no_such_collection", operations=[]))
    assert code == grpc.StatusCode.NOT_FOUND
    assert count(client, collection_name) == 4


def test_groups_and_matrix_match_rest(server, client, rpc, channel, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    client.upsert(collection_name, points=points(30), wait=True)
    stub = pb.PointsStub(channel)

    def groups(result):
        return [(g.id.string_value, [(h.id.num, round(h.score, 5)) for h in g.hits]) for g in result.groups]

    def rest_groups(route, body):
        # qdrant-client 1.20 has no methods for these older routes: plain REST.
        r = httpx.post(f"{server.url}/collections/{collection_name}/points/{route}/groups", json=body)
        assert r.status_code == 200, r.text
        return [(g["id"], [(h["id"], round(h["score"], 5)) for h in g["hits"]]) for g in r.json()["result"]["groups"]]

    query = [1.0, 1.0, 1.0, 0.5]
    g = stub.SearchGroups(pb.SearchPointGroups(collection_name=collection_name, vector=query, group_by="color", limit=2, group_size=3))
    r = rest_groups("search", {"vector": query, "group_by": "color", "limit": 2, "group_size": 3})
    assert groups(g.result) == r and len(r) == 2 and len(r[0][1]) == 3

    g = stub.RecommendGroups(
        pb.RecommendPointGroups(
            collection_name=collection_name,
            positive=[pb.PointId(num=1), pb.PointId(num=2)],
            negative=[pb.PointId(num=3)],
            group_by="color",
            limit=3,
            group_size=2,
            strategy=pb.RecommendStrategy.BestScore,
        )
    )
    r = rest_groups(
        "recommend",
        {"positive": [1, 2], "negative": [3], "group_by": "color", "limit": 3, "group_size": 2, "strategy": "best_score"},
    )
    assert groups(g.result) == r and len(r) == 3
    # REST's checks judge gRPC's requests too.
    code, details = code_of(stub.SearchGroups, pb.SearchPointGroups(collection_name=collection_name, vector=query, group_by="color", limit=2))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "group_size" in details, details
    code, _ = code_of(stub.RecommendGroups, pb.RecommendPointGroups(collection_name=collection_name, positive=[pb.PointId(num=1)], limit=2, group_size=1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    # Sampling every point makes the matrix the same on both protocols.
    red = m.Filter(must=[m.FieldCondition(key="color", match=m.MatchValue(value="red"))])
    for kwargs in [dict(sample=30, limit=3), dict(sample=50, limit=2, query_filter=red)]:
        g, r = rpc.search_matrix_pairs(collection_name, **kwargs), client.search_matrix_pairs(collection_name, **kwargs)
        assert [(p.a, p.b, round(p.score, 5)) for p in g.pairs] == [(p.a, p.b, round(p.score, 5)) for p in r.pairs]
        assert len(r.pairs) == (30 if "query_filter" not in kwargs else 10) * kwargs["limit"]
        g, r = rpc.search_matrix_offsets(collection_name, **kwargs), client.search_matrix_offsets(collection_name, **kwargs)
        assert (g.offsets_row, g.offsets_col, g.ids) == (r.offsets_row, r.offsets_col, r.ids)
        assert [round(x, 5) for x in g.scores] == [round(x, 5) for x in r.scores]
    code, _ = code_of(stub.SearchMatrixPairs, pb.SearchMatrixPoints(collection_name=collection_name, sample=0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(stub.SearchMatrixOffsets, pb.SearchMatrixPoints(collection_name=collection_name, using="nope"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nope" in details


def test_aliases_over_grpc(client, rpc, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    a, b = collection_name + "_a", collection_name + "_b"
    try:
        assert rpc.update_collection_aliases([
            m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=collection_name, alias_name=a)),
            m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=collection_name, alias_name=b)),
            m.RenameAliasOperation(rename_alias=m.RenameAlias(old_alias_name=b, new_alias_name=b + "2")),
        ])
        assert rpc.get_aliases() == client.get_aliases()
        assert rpc.get_collection_aliases(collection_name) == client.get_collection_aliases(collection_name)
        assert sorted(x.alias_name for x in rpc.get_collection_aliases(collection_name).aliases) == [a, b + "2"]
        # An alias reads as its collection over gRPC too.
        client.upsert(collection_name, points=points(3), wait=True)
        assert rpc.count(a).count == 3
        # A bad list changes nothing (REST's rule: all or nothing), with REST's status.
        with pytest.raises(grpc.RpcError) as e:
            rpc.update_collection_aliases([
                m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=a)),
                m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name="no_such_collection", alias_name="z")),
            ])
        assert e.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        assert rpc.get_aliases() == client.get_aliases() and len(client.get_collection_aliases(collection_name).aliases) == 2
        with pytest.raises(grpc.RpcError) as e:
            rpc.get_collection_aliases("no_such_collection")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        for alias in (a, b + "2"):
            try:
                client.update_collection_aliases([m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=alias))])
            except Exception:
                pass
    assert rpc.get_collection_aliases(collection_name).aliases == []


def test_shard_keys_and_cluster_info_over_grpc(client, rpc, channel, collection_name):
    client.create_collection(
        collection_name,
        vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE),
        shard_number=1,
        sharding_method=m.ShardingMethod.CUSTOM,
    )
    assert rpc.create_shard_key(collection_name, "a", shards_number=2)
    assert rpc.create_shard_key(collection_name, 7)
    assert [k.key for k in rpc.list_shard_keys(collection_name).shard_keys] == [
        k.key for k in client.list_shard_keys(collection_name).shard_keys
    ]
    assert sorted(map(str, (k.key for k in rpc.list_shard_keys(collection_name).shard_keys))) == ["7", "a"]
    client.upsert(collection_name, points=points(6), shard_key_selector="a", wait=True)
    g, r = rpc.collection_cluster_info(collection_name), client.collection_cluster_info(collection_name)
    assert (g.peer_id, g.shard_count, g.remote_shards, g.shard_transfers) == (r.peer_id, r.shard_count, r.remote_shards, r.shard_transfers)
    assert [(s.shard_id, s.points_count, s.state, s.shard_key) for s in g.local_shards] == [
        (s.shard_id, s.points_count, s.state, s.shard_key) for s in r.local_shards
    ]
    assert g.shard_count == 3 and sum(s.points_count for s in g.local_shards) == 6
    # REST's refusals, with their gRPC codes.
    stub = pb.CollectionsStub(channel)
    for request in [
        pb.CreateShardKey(shard_key=pb.ShardKey(keyword="a")),
        pb.CreateShardKey(shard_key=pb.ShardKey(keyword="b"), replication_factor=2),
        pb.CreateShardKey(shard_key=pb.ShardKey(keyword="b"), initial_state=pb.ReplicaState.Partial),
        pb.CreateShardKey(),
    ]:
        code, details = code_of(stub.CreateShardKey, pb.CreateShardKeyRequest(collection_name=collection_name, request=request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (request, details)
    assert rpc.delete_shard_key(collection_name, 7)
    code, _ = code_of(
        stub.DeleteShardKey,
        pb.DeleteShardKeyRequest(collection_name=collection_name, request=pb.DeleteShardKey(shard_key=pb.ShardKey(number=7))),
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert [k.key for k in rpc.list_shard_keys(collection_name).shard_keys] == ["a"]
    code, _ = code_of(stub.CollectionClusterInfo, pb.CollectionClusterInfoRequest(collection_name="no_such_collection"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(stub.ListShardKeys, pb.ListShardKeysRequest(collection_name="no_such_collection"))
    assert code == grpc.StatusCode.NOT_FOUND


# ---- errors ----------------------------------------------------------------------------


def count(client, name):
    return client.count(name).count


def code_of(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kwargs)
    return e.value.code(), e.value.details()


def test_bad_calls_get_their_status_and_change_nothing(client, channel, collection_name):
    client.create_collection(collection_name, vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    client.upsert(collection_name, points=points(5), wait=True)
    stub = pb.PointsStub(channel)
    before = count(client, collection_name)

    def upsert(name, vector):
        return stub.Upsert(
            pb.UpsertPoints(
                collection_name=name,
                wait=True,
                points=[pb.PointStruct(id=pb.PointId(num=100), vectors=pb.Vectors(vector=pb.Vector(dense=pb.DenseVector(data=vector))))],
            )
        )

    code, details = code_of(upsert, collection_name, [1.0, 2.0])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dim" in details.lower(), details
    code, details = code_of(upsert, collection_name, [1.0, float("nan"), 0.0, 1.0])
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    code, details = code_of(upsert, "no_such_collection", [1.0, 2.0, 3.0, 4.0])
    assert code == grpc.StatusCode.NOT_FOUND and "no_such_collection" in details, details
    code, _ = code_of(stub.Count, pb.CountPoints(collection_name="no_such_collection"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(pb.CollectionsStub(channel).Get, pb.GetCollectionInfoRequest(collection_name="no_such_collection"))
    assert code == grpc.StatusCode.NOT_FOUND
    # Bytes that are not an UpsertPoints message.
    raw = channel.unary_unary("/qdrant.Points/Upsert", request_serializer=None, response_deserializer=None)
    code, details = code_of(raw, b"\x0a\xff\xff\xff\xff\x0f")
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    # A bad filter and a bad limit.
    code, _ = code_of(stub.Scroll, pb.ScrollPoints(collection_name=collection_name, limit=0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(
        stub.Delete,
        pb.DeletePoints(collection_name=collection_name, wait=True, points=pb.PointsSelector(filter=pb.Filter(must=[pb.Condition()]))),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert count(client, collection_name) == before
    # Creating an existing collection.
    code, _ = code_of(
        pb.CollectionsStub(channel).Create,
        pb.CreateCollection(
            collection_name=collection_name,
            vectors_config=pb.VectorsConfig(params=pb.VectorParams(size=DIM, distance=pb.Distance.Cosine)),
        ),
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    # What is not served yet says so, by name.
    code, details = code_of(stub.CreateVectorName, pb.CreateVectorNameRequest(collection_name=collection_name))
    assert code == grpc.StatusCode.UNIMPLEMENTED and "CreateVectorName" in details
    assert count(client, collection_name) == before


def test_api_key_is_checked_on_grpc():
    s = AmetistServer("service.api_key=sekrit")
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}")
        collections = pb.CollectionsStub(ch)
        # Health checks are open, as in Qdrant.
        assert pb.QdrantStub(ch).HealthCheck(pb.HealthCheckRequest()).version
        for metadata in [None, [("api-key", "wrong")], [("authorization", "Bearer wrong")]]:
            code, _ = code_of(collections.List, pb.ListCollectionsRequest(), metadata=metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED, metadata
        code, _ = code_of(
            collections.Create,
            pb.CreateCollection(collection_name="k", vectors_config=pb.VectorsConfig(params=pb.VectorParams(size=2, distance=pb.Distance.Dot))),
            metadata=[("api-key", "wrong")],
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert collections.List(pb.ListCollectionsRequest(), metadata=[("api-key", "sekrit")]).collections == []
        assert collections.List(pb.ListCollectionsRequest(), metadata=[("authorization", "Bearer sekrit")]).collections == []
        ch.close()
    finally:
        s.stop()


def test_grpc_port_can_be_turned_off():
    s = AmetistServer("server.grpc_port=null")
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}")
        code, _ = code_of(pb.QdrantStub(ch).HealthCheck, pb.HealthCheckRequest(), timeout=2)
        assert code == grpc.StatusCode.UNAVAILABLE
        ch.close()
    finally:
        s.stop()


def test_message_size_limit_is_rest_body_limit():
    s = AmetistServer("server.max_request_bytes=4096")
    try:
        c = s.client()
        c.create_collection("big", vectors_config=m.VectorParams(size=DIM, distance=m.Distance.DOT))
        ch = grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}")
        stub = pb.PointsStub(ch)
        many = [
            pb.PointStruct(id=pb.PointId(num=i), vectors=pb.Vectors(vector=pb.Vector(dense=pb.DenseVector(data=[1.0, 2.0, 3.0, 4.0]))))
            for i in range(400)
        ]
        code, details = code_of(stub.Upsert, pb.UpsertPoints(collection_name="big", wait=True, points=many))
        assert code == grpc.StatusCode.OUT_OF_RANGE and "4096" in details, (code, details)
        assert c.count("big").count == 0
        stub.Upsert(pb.UpsertPoints(collection_name="big", wait=True, points=many[:10]))
        assert c.count("big").count == 10
        ch.close()
        c.close()
    finally:
        s.stop()


def test_grpc_calls_are_counted_in_telemetry_and_metrics():
    """`/telemetry`'s `requests.grpc` and `/metrics`' `ametist_grpc_*` count the calls this
    server answered, failed ones apart (a server of its own, so the counts are exact)."""
    from qdrant_client import models

    s = AmetistServer()
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}")
        collections = pb.CollectionsStub(ch)
        for _ in range(3):
            collections.List(pb.ListCollectionsRequest())
        code, _ = code_of(collections.Get, pb.GetCollectionInfoRequest(collection_name="absent"))
        assert code == grpc.StatusCode.NOT_FOUND
        ch.close()
        t = httpx.get(s.url + "/telemetry").json()["result"]
        calls = models.TelemetryData(**t).requests.grpc.responses  # Qdrant's shape
        # Per RPC, per status code (its number: 0 OK, 5 NOT_FOUND).
        assert calls["/qdrant.Collections/List"]["0"].count == 3
        assert calls["/qdrant.Collections/List"]["0"].fail_count == 0
        assert calls["/qdrant.Collections/Get"]["5"].count == 1
        assert calls["/qdrant.Collections/Get"]["5"].fail_count == 1
        text = httpx.get(s.url + "/metrics").text
        assert 'ametist_grpc_requests_total{rpc="/qdrant.Collections/List",code="Ok"} 3' in text
        assert 'ametist_grpc_requests_total{rpc="/qdrant.Collections/Get",code="NotFound"} 1' in text
        history = httpx.get(s.url + "/metrics/history").json()["result"]["routes"]
        get = [r for r in history if r["method"] == "gRPC" and r["route"] == "/qdrant.Collections/Get"]
        assert get and get[0]["count"] == 1 and get[0]["errors"] == 1
    finally:
        s.stop()
