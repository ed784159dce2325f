"""Qdrant's query API beyond nearest neighbours, differential against qdrant-client's local
mode (`QdrantClient(":memory:")`, the oracle): recommend (both strategies and the sum of
scores), discover, context, listing without a query, `order_by` (query and scroll),
`sample: random`, groups, facets and the deprecated recommend/discover routes. Every test
runs on 1 and 4 partitions with seeded random data (the seed is printed); scores compare
within 1e-4, and hits whose scores tie within that are compared as sets."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models

N = 300
DIM = 8
TOL = 1e-4
SEED = 1919


def dataset(seed: int):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    ids: list = [i + 1 if i % 4 else str(uuid.UUID(int=(seed << 64) | i)) for i in range(N)]
    payloads = []
    for i in range(N):
        p = {
            "i": i,
            "color": ["red", "green", "blue", "black", "white"][int(rng.integers(0, 5))],
            # Few distinct values: many ties for order_by, groups spread over partitions.
            "rank": int(rng.integers(0, 20)),
            "price": round(float(rng.uniform(0, 50)), 2),
            "flag": bool(i % 3 == 0),
            "tags": [f"t{int(x)}" for x in rng.integers(0, 6, size=int(rng.integers(0, 3)))],
        }
        if i % 7 == 0:
            p["when"] = f"2024-01-{1 + i % 28:02d}T00:00:00Z"
        if i % 11 == 0:
            del p["rank"]
        payloads.append(p)
    return rng, ids, vectors, payloads


def load(client, name, ids, vectors, payloads, distance, shards=None):
    kwargs = {"shard_number": shards} if shards else {}
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance), **kwargs)
    client.upsert(
        name,
        points=models.Batch(ids=ids, vectors=vectors.tolist(), payloads=payloads),
        wait=True,
    )


@pytest.fixture(scope="module")
def local():
    c = QdrantClient(":memory:")
    yield c
    c.close()


_made: dict = {}


@pytest.fixture(params=[1, 4], ids=["1part", "4parts"])
def both(request, client, local):
    """(ours, theirs, name, data): the same collection (cosine) in ametist and local mode."""
    shards = request.param
    name = f"qapi_{shards}"
    if name not in _made:
        print(f"seed {SEED}")
        rng, ids, vectors, payloads = dataset(SEED)
        if client.collection_exists(name):
            client.delete_collection(name)
        load(client, name, ids, vectors, payloads, models.Distance.COSINE, shards)
        if not local.collection_exists(name):
            load(local, name, ids, vectors, payloads, models.Distance.COSINE)
        _made[name] = (ids, vectors, payloads)
    return client, local, name, _made[name]


def assert_same_hits(ours, theirs, *, payload=True):
    """Same hits in the same order and scores within TOL; hits whose scores tie (within
    TOL) may come in either order, and a tie at the cut may pick different members."""
    assert len(ours) == len(theirs), ([p.id for p in ours], [p.id for p in theirs])
    for a, b in zip(ours, theirs):
        assert a.score == pytest.approx(b.score, abs=TOL), (a.id, a.score, b.id, b.score)
    i = 0
    while i < len(theirs):
        j = i
        while j + 1 < len(theirs) and abs(theirs[j + 1].score - theirs[i].score) <= TOL:
            j += 1
        a = {p.id for p in ours[i : j + 1]}
        b = {p.id for p in theirs[i : j + 1]}
        if j + 1 < len(theirs):
            assert a == b, (i, a, b)
        i = j + 1
    if payload:
        by_id = {p.id: p for p in theirs}
        for p in ours:
            if p.id in by_id:
                assert p.payload == by_id[p.id].payload


def both_query(ours, theirs, name, **kwargs):
    a = ours.query_points(name, **kwargs).points
    b = theirs.query_points(name, **kwargs).points
    return a, b


def test_recommend_strategies_match_local_mode(both):
    ours, theirs, name, (ids, vectors, _) = both
    rng = np.random.default_rng(SEED + 1)
    for strategy in (
        models.RecommendStrategy.AVERAGE_VECTOR,
        models.RecommendStrategy.BEST_SCORE,
        models.RecommendStrategy.SUM_SCORES,
    ):
        for positive, negative in (
            ([ids[3], ids[10]], []),
            ([ids[4]], [ids[5], ids[6]]),
            ([rng.standard_normal(DIM).tolist(), ids[8]], [rng.standard_normal(DIM).tolist()]),
        ):
            for kwargs in (
                dict(limit=10),
                dict(limit=5, offset=3),
                dict(limit=8, query_filter=models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])),
            ):
                q = models.RecommendQuery(
                    recommend=models.RecommendInput(positive=positive, negative=negative, strategy=strategy)
                )
                a, b = both_query(ours, theirs, name, query=q, search_params=models.SearchParams(exact=True), **kwargs)
                assert_same_hits(a, b)
    # Only negatives: best_score ranks the points farthest from them first.
    q = models.RecommendQuery(
        recommend=models.RecommendInput(negative=[ids[1]], strategy=models.RecommendStrategy.BEST_SCORE)
    )
    a, b = both_query(ours, theirs, name, query=q, limit=6)
    assert_same_hits(a, b)
    # A score threshold between two hits.
    top = theirs.query_points(name, query=q, limit=20).points
    t = (top[9].score + top[10].score) / 2
    a, b = both_query(ours, theirs, name, query=q, limit=20, score_threshold=t)
    assert len(b) == 10
    assert_same_hits(a, b)


def test_discover_and_context_match_local_mode(both):
    ours, theirs, name, (ids, vectors, _) = both
    rng = np.random.default_rng(SEED + 2)
    pairs = [
        models.ContextPair(positive=ids[20], negative=ids[21]),
        models.ContextPair(positive=rng.standard_normal(DIM).tolist(), negative=ids[22]),
    ]
    for target in (ids[30], rng.standard_normal(DIM).tolist()):
        q = models.DiscoverQuery(discover=models.DiscoverInput(target=target, context=pairs))
        for kwargs in (dict(limit=10), dict(limit=4, offset=2, with_payload=["color"])):
            a, b = both_query(ours, theirs, name, query=q, **kwargs)
            assert_same_hits(a, b)
    q = models.ContextQuery(context=pairs)
    a, b = both_query(ours, theirs, name, query=q, limit=15)
    # Context scores saturate at 0 for many points: compare as tied sets.
    assert_same_hits(a, b)
    f = models.Filter(must_not=[models.FieldCondition(key="flag", match=models.MatchValue(value=True))])
    a, b = both_query(ours, theirs, name, query=q, limit=15, query_filter=f)
    assert_same_hits(a, b)


def test_lookup_from_another_collection(client, local, collection_name):
    rng, ids, vectors, payloads = dataset(SEED + 3)
    for c in (client, local):
        load(c, collection_name, ids, vectors, payloads, models.Distance.DOT, 4 if c is client else None)
        c.create_collection(
            collection_name + "_ex", vectors_config={"other": models.VectorParams(size=DIM, distance=models.Distance.DOT)}
        )
        c.upsert(
            collection_name + "_ex",
            points=[models.PointStruct(id=k, vector={"other": vectors[k].tolist()}) for k in range(1, 6)],
            wait=True,
        )
    try:
        q = models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 2], negative=[3]))
        lookup = models.LookupLocation(collection=collection_name + "_ex", vector="other")
        a = client.query_points(collection_name, query=q, lookup_from=lookup, limit=10).points
        b = local.query_points(collection_name, query=q, lookup_from=lookup, limit=10).points
        assert_same_hits(a, b)
    finally:
        client.delete_collection(collection_name + "_ex")
        local.delete_collection(collection_name)
        local.delete_collection(collection_name + "_ex")


def test_listing_order_by_and_sample(both):
    ours, theirs, name, (ids, _, payloads) = both
    # No query: id order, with offset and filter.
    for kwargs in (dict(limit=7), dict(limit=5, offset=6), dict(limit=9, query_filter=models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="blue"))]))):
        a, b = both_query(ours, theirs, name, **kwargs)
        assert [p.id for p in a] == [p.id for p in b]
        assert [p.payload for p in a] == [p.payload for p in b]
        assert all(p.score == 1.0 for p in a)

    def same_ordered(a, b):
        assert [p.order_value for p in a] == [p.order_value for p in b]
        # Equal values may come in another order; only the last run may differ in members.
        runs_a, runs_b = {}, {}
        for p in a:
            runs_a.setdefault(p.order_value, set()).add(p.id)
        for p in b:
            runs_b.setdefault(p.order_value, set()).add(p.id)
        last = b[-1].order_value if b else None
        for v in runs_b:
            if v != last:
                assert runs_a[v] == runs_b[v], v

    for key in ("rank", "price", "when"):
        for direction in (models.Direction.ASC, models.Direction.DESC):
            for start in (None, 5):
                if key == "when" and start is not None:
                    start = "2024-01-10T00:00:00Z"
                order = models.OrderBy(key=key, direction=direction, start_from=start)
                a, b = both_query(ours, theirs, name, query=models.OrderByQuery(order_by=order), limit=25)
                same_ordered(a, b)
                ra, _ = ours.scroll(name, order_by=order, limit=25)
                rb, _ = theirs.scroll(name, order_by=order, limit=25)
                same_ordered(ra, rb)
    # A filter with order_by, and the short form (a key).
    f = models.Filter(must=[models.FieldCondition(key="flag", match=models.MatchValue(value=True))])
    a, b = both_query(ours, theirs, name, query=models.OrderByQuery(order_by="rank"), limit=30, query_filter=f)
    same_ordered(a, b)

    # Random samples: distinct points that match the filter, as many as asked.
    red = {ids[i] for i, p in enumerate(payloads) if p["color"] == "red"}
    f = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    seen = set()
    for _ in range(3):
        got = ours.query_points(name, query=models.SampleQuery(sample=models.Sample.RANDOM), limit=10, query_filter=f).points
        assert len(got) == 10 and len({p.id for p in got}) == 10
        assert {p.id for p in got} <= red
        seen |= {p.id for p in got}
    assert len(seen) > 10, "three samples should not all be the same points"


def test_malformed_queries_are_400_naming_the_field(both, server):
    ours, _, name, _ = both
    http = httpx.Client(base_url=server.url)
    for body, word in (
        ({"query": {"recommend": {"positive": [1], "strategy": "nope"}}}, "strategy"),
        ({"query": {"recommend": {"positive": [1], "extra": 1}}}, "extra"),
        ({"query": {"recommend": {"negative": [1]}}}, "positive"),
        ({"query": {"discover": {"context": []}}}, "target"),
        ({"query": {"order_by": {"key": "rank", "direction": "up"}}}, "direction"),
        ({"query": {"sample": "sometimes"}}, "sample"),
        ({"query": {"nearest": [0.0] * DIM, "mmr": {"diversity": 2}}}, "mmr.diversity"),
        ({"query": {"nearest": [0.0] * DIM, "mmr": {"lambda": 0.5}}}, "lambda"),
        ({"prefetch": {"query": [0.0] * DIM}}, "query"),
        ({"query": {"fusion": "rrf"}}, "prefetch"),
        ({"prefetch": {"query": [0.0] * DIM}, "query": {"formula": {"sum": ["$score"]}}}, "formula"),
    ):
        r = http.post(f"/collections/{name}/points/query", json=body)
        assert r.status_code == 400, (body, r.text)
        assert word in r.json()["status"]["error"], (body, r.text)
    r = http.post(f"/collections/{name}/points/scroll", json={"order_by": "rank", "offset": 3})
    assert r.status_code == 400 and "offset" in r.json()["status"]["error"]


def same_groups(a, b):
    assert [g.id for g in a.groups] == [g.id for g in b.groups]
    for ga, gb in zip(a.groups, b.groups):
        assert_same_hits(ga.hits, gb.hits)
        assert (ga.lookup is None) == (gb.lookup is None)
        if ga.lookup is not None:
            assert ga.lookup.id == gb.lookup.id and ga.lookup.payload == gb.lookup.payload


def test_groups_match_local_mode(both, server):
    ours, theirs, name, (ids, vectors, _) = both
    rng = np.random.default_rng(SEED + 4)
    exact = models.SearchParams(exact=True)
    for _ in range(3):
        q = rng.standard_normal(DIM).tolist()
        for kwargs in (
            dict(group_by="color", limit=3, group_size=4),
            dict(group_by="rank", limit=6, group_size=2),
            dict(group_by="tags", limit=10, group_size=3),
            dict(group_by="rank", limit=4, group_size=3, query_filter=models.Filter(must=[models.FieldCondition(key="flag", match=models.MatchValue(value=False))])),
        ):
            a = ours.query_points_groups(name, query=q, search_params=exact, **kwargs)
            b = theirs.query_points_groups(name, query=q, search_params=exact, **kwargs)
            same_groups(a, b)
    # Grouped recommendations, and the older search/groups route (same answer as the query one).
    rec = models.RecommendQuery(recommend=models.RecommendInput(positive=[ids[2]], negative=[ids[9]], strategy="best_score"))
    same_groups(
        ours.query_points_groups(name, query=rec, group_by="color", limit=5, group_size=2),
        theirs.query_points_groups(name, query=rec, group_by="color", limit=5, group_size=2),
    )
    q = rng.standard_normal(DIM).tolist()
    r = httpx.post(
        f"{server.url}/collections/{name}/points/search/groups",
        json={"vector": q, "group_by": "rank", "limit": 4, "group_size": 2, "with_payload": True},
    )
    assert r.status_code == 200, r.text
    got = models.GroupsResult(**r.json()["result"])
    same_groups(got, theirs.query_points_groups(name, query=q, group_by="rank", limit=4, group_size=2))


def test_groups_with_lookup(client, local, collection_name):
    rng, ids, vectors, payloads = dataset(SEED + 5)
    for c in (client, local):
        load(c, collection_name, ids, vectors, payloads, models.Distance.EUCLID, 4 if c is client else None)
        c.create_collection(collection_name + "_g", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        c.upsert(
            collection_name + "_g",
            points=[models.PointStruct(id=k, vector=[1.0, 0.0], payload={"rank name": f"r{k}"}) for k in range(0, 20, 2)],
            wait=True,
        )
    try:
        q = rng.standard_normal(DIM).tolist()
        for lookup in (collection_name + "_g", models.WithLookup(collection=collection_name + "_g", with_payload=True)):
            a = client.query_points_groups(collection_name, query=q, group_by="rank", limit=8, group_size=2, with_lookup=lookup)
            b = local.query_points_groups(collection_name, query=q, group_by="rank", limit=8, group_size=2, with_lookup=lookup)
            same_groups(a, b)
    finally:
        client.delete_collection(collection_name + "_g")
        local.delete_collection(collection_name)
        local.delete_collection(collection_name + "_g")


def test_facets_match_local_mode(both):
    ours, theirs, name, _ = both
    f = models.Filter(must=[models.FieldCondition(key="flag", match=models.MatchValue(value=True))])
    for key in ("color", "rank", "flag", "tags"):
        for kwargs in (dict(), dict(limit=3), dict(facet_filter=f, limit=50)):
            a = ours.facet(name, key, **kwargs).hits
            b = theirs.facet(name, key, **kwargs).hits
            assert [(h.value, h.count) for h in a] == [(h.value, h.count) for h in b], (key, kwargs)


def test_older_recommend_and_discover_routes(both, server):
    ours, theirs, name, (ids, _, _) = both
    http = httpx.Client(base_url=server.url)
    body = {"positive": [ids[3]], "negative": [ids[4]], "limit": 6, "with_payload": True}
    r = http.post(f"/collections/{name}/points/recommend", json=body)
    assert r.status_code == 200, r.text
    got = [models.ScoredPoint(**p) for p in r.json()["result"]]
    q = models.RecommendQuery(recommend=models.RecommendInput(positive=[ids[3]], negative=[ids[4]]))
    assert_same_hits(got, theirs.query_points(name, query=q, limit=6).points)

    batch = {"searches": [dict(body, strategy="best_score"), dict(body, limit=3, offset=2)]}
    r = http.post(f"/collections/{name}/points/recommend/batch", json=batch)
    assert r.status_code == 200, r.text
    first, second = ([models.ScoredPoint(**p) for p in answer] for answer in r.json()["result"])
    best = models.RecommendQuery(recommend=models.RecommendInput(positive=[ids[3]], negative=[ids[4]], strategy="best_score"))
    assert_same_hits(first, theirs.query_points(name, query=best, limit=6).points)
    assert_same_hits(second, theirs.query_points(name, query=q, limit=3, offset=2).points)

    r = http.post(f"/collections/{name}/points/recommend/groups", json=dict(body, group_by="color", limit=2, group_size=3))
    assert r.status_code == 200, r.text
    same_groups(models.GroupsResult(**r.json()["result"]), theirs.query_points_groups(name, query=q, group_by="color", limit=2, group_size=3))

    pairs = [{"positive": ids[20], "negative": ids[21]}]
    r = http.post(f"/collections/{name}/points/discover", json={"target": ids[5], "context": pairs, "limit": 5, "with_payload": True})
    assert r.status_code == 200, r.text
    d = models.DiscoverQuery(discover=models.DiscoverInput(target=ids[5], context=[models.ContextPair(positive=ids[20], negative=ids[21])]))
    assert_same_hits([models.ScoredPoint(**p) for p in r.json()["result"]], theirs.query_points(name, query=d, limit=5).points)
    r = http.post(f"/collections/{name}/points/discover/batch", json={"searches": [{"context": pairs, "limit": 5, "with_payload": True}]})
    assert r.status_code == 200, r.text
    cq = models.ContextQuery(context=[models.ContextPair(positive=ids[20], negative=ids[21])])
    assert_same_hits([models.ScoredPoint(**p) for p in r.json()["result"][0]], theirs.query_points(name, query=cq, limit=5).points)

    for route, bad, word in (
        ("points/recommend", dict(body, wat=1), "wat"),
        ("points/recommend", {"positive": [ids[3]]}, "limit"),
        ("points/recommend/groups", dict(body, group_by="color", offset=2), "offset"),
        ("points/discover", {"target": ids[5], "limit": 5, "context": [{"positive": ids[1]}]}, "negative"),
        ("facet", {"key": "color", "limit": 0}, "limit"),
        ("facet", {"key": "color", "exactly": True}, "exactly"),
        ("points/query/groups", {"query": [0.0] * DIM, "group_by": "color", "offset": 1}, "offset"),
    ):
        r = http.post(f"/collections/{name}/{route}", json=bad)
        assert r.status_code == 400, (route, bad, r.text)
        assert word in r.json()["status"]["error"], (route, bad, r.text)


def test_nested_prefetch_and_rerank_match_local_mode(both):
    ours, theirs, name, (ids, _, _) = both
    rng = np.random.default_rng(SEED + 6)
    q = [rng.standard_normal(DIM).tolist() for _ in range(4)]
    red_or_blue = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchAny(any=["red", "blue"]))])
    not_flag = models.Filter(must_not=[models.FieldCondition(key="flag", match=models.MatchValue(value=True))])
    three_deep = models.Prefetch(
        query=q[1],
        limit=40,
        prefetch=[
            models.Prefetch(query=q[2], limit=60, filter=red_or_blue, prefetch=models.Prefetch(query=q[3], limit=120)),
            models.Prefetch(query=ids[7], limit=50),
        ],
    )
    cases = [
        # Re-rank by a dense vector over a three-level prefetch tree, with a filter at the top.
        dict(prefetch=three_deep, query=q[0], limit=10),
        dict(prefetch=three_deep, query=q[0], limit=5, offset=3, query_filter=not_flag),
        # Fusion of nested prefetches.
        dict(prefetch=[three_deep, models.Prefetch(query=q[2], limit=30)], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10),
        dict(prefetch=[three_deep, models.Prefetch(query=q[3], limit=30, filter=not_flag)], query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=8),
        # A recommend query and an order_by over prefetched hits.
        dict(prefetch=three_deep, query=models.RecommendQuery(recommend=models.RecommendInput(positive=[ids[3]], strategy="best_score")), limit=7),
        dict(prefetch=models.Prefetch(query=q[1], limit=30), query=models.OrderByQuery(order_by="price"), limit=10),
    ]
    for kwargs in cases:
        a, b = both_query(ours, theirs, name, with_payload=True, **kwargs)
        if isinstance(kwargs.get("query"), models.OrderByQuery):
            assert [p.order_value for p in a] == [p.order_value for p in b]
        else:
            assert_same_hits(a, b)


def test_mmr_matches_local_mode(both):
    ours, theirs, name, _ = both
    rng = np.random.default_rng(SEED + 7)
    red = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    for _ in range(3):
        q = rng.standard_normal(DIM).tolist()
        for mmr, kwargs in (
            (models.Mmr(diversity=0.5, candidates_limit=40), dict(limit=10)),
            (models.Mmr(diversity=0.9, candidates_limit=100), dict(limit=6, offset=2, with_vectors=True)),
            (models.Mmr(), dict(limit=8)),
            (models.Mmr(diversity=0.0, candidates_limit=20), dict(limit=5, query_filter=red)),
        ):
            a, b = both_query(ours, theirs, name, query=models.NearestQuery(nearest=q, mmr=mmr), **kwargs)
            assert [p.id for p in a] == [p.id for p in b]
            for x, y in zip(a, b):
                assert x.score == pytest.approx(y.score, abs=TOL)
                if kwargs.get("with_vectors"):
                    assert x.vector == pytest.approx(y.vector, abs=TOL)


def test_search_matrix_matches_local_mode(both):
    ours, theirs, name, (ids, _, payloads) = both
    # A sample as large as the matching points takes them all: the answer is deterministic.
    f = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="green"))])
    kwargs = dict(query_filter=f, sample=N, limit=3)
    a, b = ours.search_matrix_pairs(name, **kwargs), theirs.search_matrix_pairs(name, **kwargs)
    assert [(p.a, p.b) for p in a.pairs] == [(p.a, p.b) for p in b.pairs]
    assert [p.score for p in a.pairs] == pytest.approx([p.score for p in b.pairs], abs=TOL)
    a, b = ours.search_matrix_offsets(name, **kwargs), theirs.search_matrix_offsets(name, **kwargs)
    assert a.ids == b.ids and a.offsets_row == b.offsets_row and a.offsets_col == b.offsets_col
    assert a.scores == pytest.approx(b.scores, abs=TOL)
    # A random sample: `sample` distinct matching points, each with `limit` neighbours among them.
    green = {ids[i] for i, p in enumerate(payloads) if p["color"] == "green"}
    r = ours.search_matrix_offsets(name, query_filter=f, sample=12, limit=2)
    assert len(r.ids) == 12 and set(r.ids) <= green and r.ids == sorted(r.ids, key=lambda i: (isinstance(i, str), i))
    assert len(r.scores) == 24 and all(row != col for row, col in zip(r.offsets_row, r.offsets_col))
