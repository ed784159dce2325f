"""Keyword (BM25) and hybrid queries through ametist serve: a text index made with the
client's `create_payload_index`, keyword queries (Ametist's `{"bm25": ...}` query), and
Qdrant's prefetch + fusion, compared with the client's local mode where it has the same
feature."""

from __future__ import annotations

import httpx
from qdrant_client import QdrantClient, models

# Every test runs over REST and over gRPC (prefer_grpc).
PROTOCOLS = ("rest", "grpc")

DOCS = [
    "error code E1234 when the disk is full",
    "the disk is full again",
    "rust actors and supervision trees",
    "error handling in rust with thiserror",
    "vector databases index embeddings",
    "hybrid search fuses keyword and vector results",
    "E1234 appears after an upgrade",
    "keyword search with bm25 scoring",
]


def points():
    return [
        models.PointStruct(
            id=i,
            vector=[1.0, float(i), float((i * 7) % 5) + 0.5],
            payload={"body": text, "group": i % 2},
        )
        for i, text in enumerate(DOCS)
    ]


def fill(client: QdrantClient, name: str) -> None:
    client.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    client.upsert(name, points=points(), wait=True)


def query(server, name, body):
    r = httpx.post(f"{server.url}/collections/{name}/points/query", json=body, timeout=30)
    return r.status_code, r.json()


def test_keyword_query_on_a_text_index(server, client, collection_name):
    fill(client, collection_name)
    client.create_payload_index(
        collection_name,
        field_name="body",
        field_schema=models.TextIndexParams(type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True),
        wait=True,
    )
    # The collection's schema lists the text index, as Qdrant does.
    schema = client.get_collection(collection_name).payload_schema
    assert schema["body"].data_type == models.PayloadSchemaType.TEXT, schema
    assert schema["body"].points == len(DOCS), schema
    status, v = query(server, collection_name, {"query": {"bm25": {"field": "body", "text": "error E1234"}}, "limit": 3, "with_payload": True})
    assert status == 200, v
    ids = [p["id"] for p in v["result"]["points"]]
    # The document with both terms first, then those with one of them.
    assert ids[0] == 0
    assert set(ids[1:]) <= {3, 6}
    assert all(p["score"] > 0 for p in v["result"]["points"])
    # The filter applies.
    status, v = query(
        server,
        collection_name,
        {"query": {"bm25": {"field": "body", "text": "error"}}, "filter": {"must": [{"key": "group", "match": {"value": 1}}]}},
    )
    assert status == 200, v
    assert [p["id"] for p in v["result"]["points"]] == [3]
    # A field without a text index is named.
    status, v = query(server, collection_name, {"query": {"bm25": {"field": "group", "text": "x"}}})
    assert status == 400 and "text index" in v["status"]["error"], v


def test_prefetch_fusion_matches_local_mode(client, collection_name):
    fill(client, collection_name)
    local = QdrantClient(":memory:")
    fill(local, collection_name)
    for fusion in (models.Fusion.RRF, models.Fusion.DBSF):
        kwargs = dict(
            prefetch=[
                models.Prefetch(query=[1.0, 2.0, 0.5], limit=5),
                models.Prefetch(query=[0.2, 7.0, 3.0], limit=5),
            ],
            query=models.FusionQuery(fusion=fusion),
            limit=4,
        )
        got = client.query_points(collection_name, **kwargs).points
        want = local.query_points(collection_name, **kwargs).points
        assert [p.id for p in got] == [p.id for p in want], fusion
        for g, w in zip(got, want):
            assert abs(g.score - w.score) < 1e-4, (fusion, g, w)


def test_hybrid_dense_and_keyword_with_a_filter(server, client, collection_name):
    fill(client, collection_name)
    client.create_payload_index(collection_name, field_name="body", field_schema="text", wait=True)
    body = {
        "prefetch": [
            {"query": [1.0, 6.0, 0.5], "limit": 5},
            {"query": {"bm25": {"field": "body", "text": "disk full error"}}, "limit": 5},
        ],
        "query": {"fusion": "rrf"},
        "filter": {"must": [{"key": "group", "match": {"value": 0}}]},
        "limit": 5,
        "with_payload": True,
    }
    status, v = query(server, collection_name, body)
    assert status == 200, v
    pts = v["result"]["points"]
    assert pts and all(p["payload"]["group"] == 0 for p in pts)
    # RRF scores (k = 2, 0-based ranks): each is a sum of 1/(2 + rank) over the lists.
    assert all(0 < p["score"] <= 1.0 + 1e-6 for p in pts)
    assert [p["score"] for p in pts] == sorted((p["score"] for p in pts), reverse=True)
