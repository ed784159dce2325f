"""Shard keys, aliases, strict mode and collection updates (issue 16), through the real
qdrant-client: one test per client method, tenant isolation with two shard keys, an alias
swap under concurrent queries, strict-mode refusals, and a restart that keeps keys and
aliases. Aliases are compared with the client's local mode (`QdrantClient(":memory:")`),
which implements them; it does not implement shard keys or strict mode."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import UnexpectedResponse

from conftest import AmetistServer

DIM = 8


def vec(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def create_custom(client, name, shard_number=2, **kwargs):
    client.create_collection(
        name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID),
        shard_number=shard_number,
        sharding_method=models.ShardingMethod.CUSTOM,
        **kwargs,
    )


def tenant_points(rng, tenant, n=30):
    # The same ids in every tenant: a point lives only in its key's partitions.
    return [models.PointStruct(id=i, vector=vec(rng), payload={"tenant": tenant, "i": i}) for i in range(n)]


def status_of(call) -> int:
    with pytest.raises(UnexpectedResponse) as e:
        call()
    return e.value.status_code


# --- shard keys --------------------------------------------------------------------------


def test_create_list_delete_shard_key(client, collection_name):
    create_custom(client, collection_name)
    assert client.get_collection(collection_name).config.params.sharding_method == models.ShardingMethod.CUSTOM
    assert client.list_shard_keys(collection_name).shard_keys == []
    assert client.create_shard_key(collection_name, "a", shards_number=2)
    assert client.create_shard_key(collection_name, 7)
    keys = [k.key for k in client.list_shard_keys(collection_name).shard_keys]
    assert keys == ["a", 7]
    # A key exists once; a key on another replica count or placement is refused.
    assert status_of(lambda: client.create_shard_key(collection_name, "a")) == 400
    assert status_of(lambda: client.create_shard_key(collection_name, "b", replication_factor=2)) == 400
    assert client.delete_shard_key(collection_name, 7)
    assert [k.key for k in client.list_shard_keys(collection_name).shard_keys] == ["a"]
    assert status_of(lambda: client.delete_shard_key(collection_name, 7)) == 404
    # A collection without custom sharding has no keys, and refuses them.
    other = collection_name + "_auto"
    client.create_collection(other, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
    try:
        assert client.list_shard_keys(other).shard_keys is None
        assert status_of(lambda: client.create_shard_key(other, "a")) == 400
        assert (
            status_of(lambda: client.upsert(other, [models.PointStruct(id=1, vector=[0.0] * DIM)], shard_key_selector="a"))
            == 400
        )
    finally:
        client.delete_collection(other)


def test_shard_key_isolation(server, client, collection_name):
    import httpx

    rng = random.Random(16)
    create_custom(client, collection_name)
    client.create_shard_key(collection_name, "tenant_a")
    client.create_shard_key(collection_name, "tenant_b", shards_number=1)
    a, b = tenant_points(rng, "a"), tenant_points(rng, "b", 20)
    client.upsert(collection_name, a, shard_key_selector="tenant_a", wait=True)
    client.upsert(collection_name, b, shard_key_selector="tenant_b", wait=True)

    # Writes: without a key, or with an unknown one, refused and nothing written.
    p = [models.PointStruct(id=999, vector=vec(rng))]
    assert status_of(lambda: client.upsert(collection_name, p)) == 400
    assert status_of(lambda: client.upsert(collection_name, p, shard_key_selector="nobody")) == 400
    assert client.count(collection_name).count == 50

    # Queries: a key sees its own points only; no key sees both.
    for key, tenant, n in [("tenant_a", "a", 30), ("tenant_b", "b", 20)]:
        hits = client.query_points(collection_name, vec(rng), limit=100, shard_key_selector=key).points
        assert len(hits) == n and {h.payload["tenant"] for h in hits} == {tenant}
        scrolled, _ = client.scroll(collection_name, limit=100, shard_key_selector=key)
        assert len(scrolled) == n and {r.payload["tenant"] for r in scrolled} == {tenant}
        assert client.count(collection_name, shard_key_selector=key).count == n
        got = client.retrieve(collection_name, [0, 1, 25], shard_key_selector=key)
        assert {r.payload["tenant"] for r in got} == {tenant}
        batch = [models.QueryRequest(query=vec(rng), limit=5, shard_key=key, with_payload=True)]
        found = client.query_batch_points(collection_name, batch)[0].points
        assert len(found) == 5 and {h.payload["tenant"] for h in found} == {tenant}
        # The routes built on queries keep to the key too: groups, recommend, facets.
        groups = client.query_points_groups(
            collection_name, group_by="tenant", query=vec(rng), limit=5, group_size=3, shard_key_selector=key
        ).groups
        assert [g.id for g in groups] == [tenant]
        rec = client.query_points(
            collection_name, models.RecommendQuery(recommend=models.RecommendInput(positive=[vec(rng)])),
            limit=100, shard_key_selector=key,
        ).points
        assert len(rec) == n and {h.payload["tenant"] for h in rec} == {tenant}
        r = httpx.post(
            f"{server.url}/collections/{collection_name}/points/recommend",
            json={"positive": [vec(rng)], "limit": 100, "shard_key": key, "with_payload": True},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        old = r.json()["result"]
        assert len(old) == n and {h["payload"]["tenant"] for h in old} == {tenant}
    hits = client.query_points(collection_name, vec(rng), limit=100).points
    assert {h.payload["tenant"] for h in hits} == {"a", "b"} and len(hits) == 50
    assert client.count(collection_name).count == 50
    # A list of keys reads both; the fallback selector reads its target when it exists.
    assert client.count(collection_name, shard_key_selector=["tenant_a", "tenant_b"]).count == 50
    fb = models.ShardKeyWithFallback(target="tenant_c", fallback="tenant_b")
    assert client.count(collection_name, shard_key_selector=fb).count == 20

    # Payload changes and deletes by filter stay in their key.
    everything = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=0))])
    client.set_payload(collection_name, {"seen": True}, points=everything, shard_key_selector="tenant_a", wait=True)
    seen = models.Filter(must=[models.FieldCondition(key="seen", match=models.MatchValue(value=True))])
    assert client.count(collection_name, count_filter=seen).count == 30
    low = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(lt=10))])
    client.delete(collection_name, points_selector=models.FilterSelector(filter=low), shard_key_selector="tenant_b", wait=True)
    assert client.count(collection_name, shard_key_selector="tenant_a").count == 30
    assert client.count(collection_name, shard_key_selector="tenant_b").count == 10
    # Deleting a key deletes its points.
    client.delete_shard_key(collection_name, "tenant_b")
    assert client.count(collection_name).count == 30
    assert status_of(lambda: client.count(collection_name, shard_key_selector="tenant_b")) == 400


# --- aliases ------------------------------------------------------------------------------


def alias_ops(client, name_a, name_b):
    client.update_collection_aliases(
        [
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name_a, alias_name="prod")),
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name_b, alias_name="next")),
        ]
    )
    client.update_collection_aliases(
        [models.RenameAliasOperation(rename_alias=models.RenameAlias(old_alias_name="next", new_alias_name="staging"))]
    )
    everything = sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases)
    of_a = [(a.alias_name, a.collection_name) for a in client.get_collection_aliases(name_a).aliases]
    client.update_collection_aliases([models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="staging"))])
    after = sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases)
    return everything, of_a, after


def test_aliases_match_local_mode(client, collection_name):
    rng = random.Random(3)
    local = QdrantClient(":memory:")
    names = (collection_name + "_a", collection_name + "_b")
    points = [models.PointStruct(id=i, vector=vec(rng), payload={"i": i}) for i in range(40)]
    for c in (client, local):
        for n in names:
            c.create_collection(n, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID))
        c.upsert(names[0], points, wait=True)
    try:
        ours, theirs = alias_ops(client, *names), alias_ops(local, *names)
        assert ours == theirs
        # Every route takes the alias where it takes a collection name.
        q = vec(rng)
        via_alias = [(h.id, round(h.score, 4)) for h in client.query_points("prod", q, limit=5).points]
        expected = [(h.id, round(h.score, 4)) for h in local.query_points("prod", q, limit=5).points]
        assert via_alias == expected
        assert client.count("prod").count == 40
        assert client.get_collection("prod").points_count == 40
        client.upsert("prod", [models.PointStruct(id=100, vector=vec(rng))], wait=True)
        assert client.count(names[0]).count == 41
        # An alias can not take a collection's name, nor a collection an alias's.
        bad = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=names[0], alias_name=names[1]))
        assert status_of(lambda: client.update_collection_aliases([bad])) == 400
        assert status_of(
            lambda: client.create_collection("prod", vectors_config=models.VectorParams(size=DIM, distance="Dot"))
        ) == 400
        # All or nothing: a failing action leaves the earlier ones undone.
        ok = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=names[1], alias_name="x"))
        gone = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="never"))
        assert status_of(lambda: client.update_collection_aliases([ok, gone])) == 404
        assert "x" not in {a.alias_name for a in client.get_aliases().aliases}
        # Deleting a collection deletes its aliases.
        client.delete_collection(names[0])
        assert "prod" not in {a.alias_name for a in client.get_aliases().aliases}
    finally:
        for n in names:
            client.delete_collection(n)


def test_alias_swap_under_query_load(client, collection_name):
    rng = random.Random(5)
    names = [f"{collection_name}_{v}" for v in ("v1", "v2")]
    for n in names:
        client.create_collection(n, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID))
        client.upsert(n, [models.PointStruct(id=i, vector=vec(rng), payload={"v": n}) for i in range(200)], wait=True)
    alias = collection_name + "_live"
    create = lambda n: models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=n, alias_name=alias))
    drop = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
    client.update_collection_aliases([create(names[0])])
    stop, failures, answers = threading.Event(), [], []

    def load():
        c = QdrantClient(url=client._client.rest_uri, timeout=30)
        qrng = random.Random(threading.get_ident())
        while not stop.is_set():
            try:
                hits = c.query_points(alias, vec(qrng), limit=10).points
                answers.append(len(hits))
                if len(hits) != 10:
                    failures.append(f"{len(hits)} hits")
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))
        c.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            client.update_collection_aliases([drop, create(names[(i + 1) % 2])])
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for n in names:
            client.delete_collection(n)
    assert not failures, failures[:5]
    assert len(answers) > 40


# --- strict mode and collection updates ----------------------------------------------------


def test_strict_mode_refusals(client, collection_name):
    rng = random.Random(9)
    strict = models.StrictModeConfig(
        enabled=True,
        max_query_limit=3,
        search_allow_exact=False,
        search_max_hnsw_ef=64,
        search_max_oversampling=2.0,
        upsert_max_batchsize=5,
        unindexed_filtering_retrieve=False,
        unindexed_filtering_update=False,
        filter_max_conditions=2,
        condition_max_size=3,
        max_points_count=8,
        search_max_batchsize=2,
        max_payload_index_count=1,
    )
    client.create_collection(
        collection_name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT),
        strict_mode_config=strict,
    )
    got = client.get_collection(collection_name).config.strict_mode_config
    assert got.enabled and got.max_query_limit == 3
    pts = lambda ids: [models.PointStruct(id=i, vector=vec(rng), payload={"k": f"v{i}", "n": i}) for i in ids]
    client.upsert(collection_name, pts(range(5)), wait=True)
    assert status_of(lambda: client.upsert(collection_name, pts(range(5, 11)))) == 403  # batch of 6 > 5
    assert status_of(lambda: client.upsert(collection_name, pts(range(5, 10)))) == 403  # 10 points > 8
    client.upsert(collection_name, pts(range(5, 8)), wait=True)
    assert client.count(collection_name, exact=False).count == 8
    q = vec(rng)
    assert len(client.query_points(collection_name, q, limit=3).points) == 3
    with pytest.raises(UnexpectedResponse) as e:
        client.query_points(collection_name, q, limit=5)
    assert e.value.status_code == 403
    assert json.loads(e.value.content)["status"]["error"] == (
        'Forbidden: Limit exceeded 5 > 3 for "limit". Help: Reduce the "limit" parameter to or below 3.'
    )
    assert status_of(lambda: client.query_points(collection_name, q, limit=2, search_params=models.SearchParams(exact=True))) == 403
    assert status_of(lambda: client.query_points(collection_name, q, limit=2, search_params=models.SearchParams(hnsw_ef=65))) == 403
    over = models.SearchParams(quantization=models.QuantizationSearchParams(oversampling=3.0))
    assert status_of(lambda: client.query_points(collection_name, q, limit=2, search_params=over)) == 403
    assert status_of(lambda: client.scroll(collection_name, limit=4)) == 403
    # Filters: unindexed keys are refused until indexed; condition count and size.
    by_k = models.Filter(must=[models.FieldCondition(key="k", match=models.MatchValue(value="v1"))])
    assert status_of(lambda: client.query_points(collection_name, q, limit=2, query_filter=by_k)) == 403
    assert status_of(lambda: client.delete(collection_name, models.FilterSelector(filter=by_k))) == 403
    client.create_payload_index(collection_name, "k", models.PayloadSchemaType.KEYWORD, wait=True)
    assert status_of(lambda: client.create_payload_index(collection_name, "n", models.PayloadSchemaType.INTEGER)) == 403
    assert [h.id for h in client.query_points(collection_name, q, limit=2, query_filter=by_k).points] == [1]
    three = models.Filter(must=[models.FieldCondition(key="k", match=models.MatchValue(value=f"v{i}")) for i in range(3)])
    assert status_of(lambda: client.query_points(collection_name, q, limit=2, query_filter=three)) == 403
    big = models.Filter(must=[models.FieldCondition(key="k", match=models.MatchAny(any=["a", "b", "c", "d"]))])
    assert status_of(lambda: client.query_points(collection_name, q, limit=2, query_filter=big)) == 403
    batch = [models.QueryRequest(query=q, limit=1)] * 3
    assert status_of(lambda: client.query_batch_points(collection_name, batch)) == 403
    # A refused request changed nothing.
    assert client.count(collection_name, exact=False).count == 8
    # Limits Ametist cannot enforce are refused by name when set.
    with pytest.raises(UnexpectedResponse) as e:
        client.update_collection(
            collection_name, strict_mode_config=models.StrictModeConfig(max_collection_payload_size_bytes=10)
        )
    assert e.value.status_code == 400 and "max_collection_payload_size_bytes" in e.value.content.decode()
    # update_collection changes a limit (merged into the others); disabling lifts them all.
    client.update_collection(collection_name, strict_mode_config=models.StrictModeConfig(max_query_limit=6))
    assert len(client.query_points(collection_name, q, limit=5).points) == 5
    assert status_of(lambda: client.query_points(collection_name, q, limit=7)) == 403
    client.update_collection(collection_name, strict_mode_config=models.StrictModeConfig(enabled=False))
    assert len(client.query_points(collection_name, q, limit=8).points) == 8


def test_strict_mode_rate_limits_and_timeout(client, collection_name):
    rng = random.Random(10)
    strict = models.StrictModeConfig(enabled=True, read_rate_limit=4, write_rate_limit=2, max_timeout=5)
    client.create_collection(
        collection_name, vectors_config=models.VectorParams(size=DIM, distance="Dot"), strict_mode_config=strict
    )
    for i in range(2):
        client.upsert(collection_name, [models.PointStruct(id=i, vector=vec(rng))], wait=True)
    with pytest.raises(ResourceExhaustedResponse) as e:
        client.upsert(collection_name, [models.PointStruct(id=9, vector=vec(rng))])
    assert "Write rate limit exceeded" in e.value.message
    for _ in range(4):
        client.count(collection_name)
    with pytest.raises(ResourceExhaustedResponse):
        client.query_points(collection_name, vec(rng), limit=1)
    # Collection info is neither a read nor a write of points; a `timeout` above the
    # limit is refused on any route.
    assert client.get_collection(collection_name).points_count == 2
    assert status_of(lambda: client.delete_collection(collection_name, timeout=6)) == 403
    client.update_collection(collection_name, strict_mode_config=models.StrictModeConfig(enabled=False))
    assert client.count(collection_name).count == 2


def test_update_collection(client, collection_name):
    client.create_collection(
        collection_name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        metadata={"team": "search", "v": 1},
    )
    assert client.update_collection(collection_name)  # an empty body
    client.update_collection(collection_name, metadata={"v": 2, "team": None, "owner": "x"})
    assert client.get_collection(collection_name).config.metadata == {"v": 2, "owner": "x"}
    client.update_collection(collection_name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=100))
    with pytest.raises(UnexpectedResponse) as e:
        client.update_collection(collection_name, hnsw_config=models.HnswConfigDiff(m=8))
    assert e.value.status_code == 400 and "hnsw_config" in e.value.content.decode()
    with pytest.raises(UnexpectedResponse) as e:
        client.update_collection(collection_name, collection_params=models.CollectionParamsDiff(replication_factor=3))
    assert e.value.status_code == 400 and "replication_factor" in e.value.content.decode()


# --- durability ---------------------------------------------------------------------------


def test_keys_aliases_and_settings_survive_a_crash():
    rng = random.Random(21)
    s = AmetistServer()
    try:
        c = s.client()
        create_custom(c, "tenants", strict_mode_config=models.StrictModeConfig(enabled=True, max_query_limit=4),
                      metadata={"a": 1})
        for key in ("red", "blue", "green"):
            c.create_shard_key("tenants", key, shards_number=2)
        c.upsert("tenants", tenant_points(rng, "red", 12), shard_key_selector="red", wait=True)
        c.upsert("tenants", tenant_points(rng, "blue", 7), shard_key_selector="blue", wait=True)
        c.upsert("tenants", tenant_points(rng, "green", 5), shard_key_selector="green", wait=True)
        # A deleted key's partitions must not come back, nor be reused by the next key.
        c.delete_shard_key("tenants", "green")
        c.create_shard_key("tenants", "black", shards_number=1)
        c.update_collection_aliases(
            [models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="tenants", alias_name="t"))]
        )
        c.close()
        s.restart(kill=True)
        c = s.client()
        assert [k.key for k in c.list_shard_keys("t").shard_keys] == ["red", "blue", "black"]
        assert c.count("t", shard_key_selector="red").count == 12
        assert c.count("t", shard_key_selector="blue").count == 7
        assert c.count("t", shard_key_selector="black").count == 0
        assert c.count("t").count == 19
        hits = c.query_points("t", vec(rng), limit=4, shard_key_selector="blue").points
        assert {h.payload["tenant"] for h in hits} == {"blue"}
        assert status_of(lambda: c.query_points("t", vec(rng), limit=5)) == 403
        assert c.get_collection("t").config.metadata == {"a": 1}
        assert [(a.alias_name, a.collection_name) for a in c.get_aliases().aliases] == [("t", "tenants")]
        c.close()
    finally:
        s.stop()
