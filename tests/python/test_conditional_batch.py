"""Conditional updates and batch updates (issue 16, item 6), through the real qdrant-client:
`upsert` with `update_filter` and `update_mode`, `update_vectors` with `update_filter`, and
`batch_update_points`, each compared with the client's local mode (`QdrantClient(":memory:")`)
on seeded random data (the seed is printed); refused conditions and bad batches change
nothing (count and contents before and after); a conditional upsert survives kill -9."""

from __future__ import annotations

import os
import random

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse
from qdrant_client.local.qdrant_local import QdrantLocal

from conftest import AmetistServer

DIM = 6
SEED = int(os.environ.get("AMETIST_TEST_SEED") or random.SystemRandom().randrange(2**32))


@pytest.fixture
def rng():
    print(f"seed {SEED} (replay: AMETIST_TEST_SEED={SEED})")
    return random.Random(SEED)


def vec(rng):
    return [round(rng.uniform(-1, 1), 4) for _ in range(DIM)]


def payload(rng):
    return {"g": rng.choice(["a", "b", "c"]), "n": rng.randrange(10)}


def points(rng, ids):
    return [models.PointStruct(id=i, vector=vec(rng), payload=payload(rng)) for i in ids]


def make(client, name, shards=3):
    extra = {} if isinstance(client._client, QdrantLocal) else {"shard_number": shards}
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT), **extra)


def random_filter(rng):
    return rng.choice(
        [
            models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=rng.choice("abc")))]),
            models.Filter(must=[models.FieldCondition(key="n", range=models.Range(lt=rng.randrange(1, 10)))]),
            models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchAny(any=["a", "b"]))]),
            models.Filter(must=[models.HasIdCondition(has_id=list(range(0, 60, 3)))]),
        ]
    )


def state(client, name):
    """Every point, by id: payload and vector (rounded: the two sides store float32)."""
    recs, _ = client.scroll(name, limit=10_000, with_payload=True, with_vectors=True)
    return {r.id: (r.payload, [round(x, 4) for x in r.vector]) for r in recs}


def assert_same(server_client, local, name):
    a, b = state(server_client, name), state(local, name)
    assert a.keys() == b.keys(), f"ids differ: {sorted(a.keys() ^ b.keys())}"
    for i in a:
        assert a[i] == b[i], f"point {i}: {a[i]} != {b[i]}"


@pytest.fixture
def both(client, collection_name):
    local = QdrantClient(":memory:")
    make(client, collection_name)
    make(local, collection_name)
    yield client, local, collection_name
    local.close()


def test_upsert_with_update_filter_and_update_mode_matches_local_mode(both, rng):
    client, local, name = both
    first = points(rng, range(40))
    for c in (client, local):
        c.upsert(name, first, wait=True)
    for _ in range(12):
        batch = points(rng, rng.sample(range(60), 20))
        mode = rng.choice([None, models.UpdateMode.UPSERT, models.UpdateMode.INSERT_ONLY, models.UpdateMode.UPDATE_ONLY])
        flt = random_filter(rng) if rng.random() < 0.7 else None
        for c in (client, local):
            c.upsert(name, batch, update_filter=flt, update_mode=mode, wait=True)
        assert_same(client, local, name)


def test_upsert_batch_form_with_conditions(both, rng):
    client, local, name = both
    seed = points(rng, range(20))
    for c in (client, local):
        c.upsert(name, seed, wait=True)
    ids = list(range(10, 30))
    batch = models.Batch(ids=ids, vectors=[vec(rng) for _ in ids], payloads=[payload(rng) for _ in ids])
    flt = models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=5))])
    for c in (client, local):
        c.upsert(name, batch, update_filter=flt, wait=True)
    assert_same(client, local, name)


def test_insert_only_and_update_only(client, collection_name, rng):
    make(client, collection_name)
    client.upsert(collection_name, points(rng, range(10)), wait=True)
    before = state(client, collection_name)
    # insert_only over existing points: nothing changes.
    client.upsert(collection_name, points(rng, range(10)), update_mode=models.UpdateMode.INSERT_ONLY, wait=True)
    assert state(client, collection_name) == before
    # update_only with absent points: nothing is inserted.
    client.upsert(collection_name, points(rng, range(10, 20)), update_mode=models.UpdateMode.UPDATE_ONLY, wait=True)
    assert state(client, collection_name) == before
    assert client.count(collection_name).count == 10
    # A filter no point matches: existing points stay.
    none = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value="zzz"))])
    client.upsert(collection_name, points(rng, range(10)), update_filter=none, wait=True)
    assert state(client, collection_name) == before
    # insert_only of new points inserts them; update_only replaces existing ones.
    client.upsert(collection_name, points(rng, range(10, 12)), update_mode=models.UpdateMode.INSERT_ONLY, wait=True)
    assert client.count(collection_name).count == 12
    new = points(rng, [0])
    client.upsert(collection_name, new, update_mode=models.UpdateMode.UPDATE_ONLY, wait=True)
    assert client.retrieve(collection_name, [0])[0].payload == new[0].payload


def test_update_vectors_with_update_filter_matches_local_mode(both, rng):
    client, local, name = both
    seed = points(rng, range(30))
    for c in (client, local):
        c.upsert(name, seed, wait=True)
    for _ in range(5):
        upd = [models.PointVectors(id=i, vector=vec(rng)) for i in rng.sample(range(30), 12)]
        flt = random_filter(rng)
        for c in (client, local):
            c.update_vectors(name, upd, update_filter=flt, wait=True)
        assert_same(client, local, name)


def test_bad_conditions_are_refused_and_change_nothing(server, client, collection_name, rng):
    make(client, collection_name)
    client.upsert(collection_name, points(rng, range(10)), wait=True)
    before = state(client, collection_name)
    # Raw requests: shapes the client would not send.
    url = f"{server.url}/collections/{collection_name}/points?wait=true"
    body = {"points": [{"id": 1, "vector": vec(rng)}]}
    for bad, word in [
        ({"update_mode": "sometimes"}, "update_mode"),
        ({"update_filter": {"must": [{"key": "g", "nope": 1}]}}, "filter"),
    ]:
        r = httpx.put(url, json={**body, **bad})
        assert r.status_code == 400 and word in r.text, r.text
    assert state(client, collection_name) == before


def random_operations(rng, n_ids=40):
    ops = []
    for _ in range(rng.randrange(3, 9)):
        k = rng.randrange(8)
        ids = rng.sample(range(n_ids), rng.randrange(1, 6))
        sel = models.PointIdsList(points=ids) if rng.random() < 0.6 else models.FilterSelector(filter=random_filter(rng))
        if k == 0:
            up = models.PointsList(
                points=points(rng, ids),
                update_filter=random_filter(rng) if rng.random() < 0.4 else None,
                update_mode=rng.choice([None, models.UpdateMode.INSERT_ONLY, models.UpdateMode.UPDATE_ONLY]),
            )
            ops.append(models.UpsertOperation(upsert=up))
        elif k == 1:
            ops.append(models.DeleteOperation(delete=sel))
        elif k in (2, 3):
            sp = (
                models.SetPayload(payload={"x": rng.randrange(5)}, points=ids)
                if isinstance(sel, models.PointIdsList)
                else models.SetPayload(payload={"x": rng.randrange(5)}, filter=sel.filter)
            )
            ops.append(models.SetPayloadOperation(set_payload=sp) if k == 2 else models.OverwritePayloadOperation(overwrite_payload=sp))
        elif k == 4:
            dp = (
                models.DeletePayload(keys=["n"], points=ids)
                if isinstance(sel, models.PointIdsList)
                else models.DeletePayload(keys=["g"], filter=sel.filter)
            )
            ops.append(models.DeletePayloadOperation(delete_payload=dp))
        elif k == 5:
            ops.append(models.ClearPayloadOperation(clear_payload=sel))
        elif k == 6:
            # Upserted first, so the points exist when their vectors are updated.
            ops.append(models.UpsertOperation(upsert=models.PointsList(points=points(rng, ids))))
            ops.append(
                models.UpdateVectorsOperation(
                    update_vectors=models.UpdateVectors(
                        points=[models.PointVectors(id=i, vector=vec(rng)) for i in ids],
                        update_filter=random_filter(rng) if rng.random() < 0.5 else None,
                    )
                )
            )
        else:
            ops.append(models.UpsertOperation(upsert=models.PointsList(points=points(rng, ids))))
    return ops


def needs_existing(op, existing: set) -> bool:
    """True when the op names ids by list that do not exist (the server refuses the whole
    batch before applying anything, local mode applies the ops before it): such batches are
    left out of the comparison."""
    inner = getattr(op, "set_payload", None) or getattr(op, "overwrite_payload", None) or getattr(op, "delete_payload", None)
    if inner is not None and inner.points is not None:
        return not set(inner.points) <= existing
    if isinstance(op, models.ClearPayloadOperation) and isinstance(op.clear_payload, models.PointIdsList):
        return not set(op.clear_payload.points) <= existing
    return False


def reset_local(local, name, points_by_id):
    local.delete_collection(name)
    make(local, name)
    if points_by_id:
        local.upsert(name, [models.PointStruct(id=i, vector=v, payload=p) for i, (p, v) in points_by_id.items()])


def test_batch_update_points_matches_local_mode(both, rng):
    client, local, name = both
    seed = points(rng, range(25))
    for c in (client, local):
        c.upsert(name, seed, wait=True)
    applied = refused = 0
    for _ in range(40):
        ops = random_operations(rng)
        before = state(local, name)
        assert state(client, name) == before
        try:
            results_local = local.batch_update_points(name, ops)
        except (KeyError, ValueError):
            # An operation names a point that is not there when it comes. The server finds
            # that before applying anything when the batch tells (the point is neither in
            # the collection nor upserted earlier in the batch): then nothing changed.
            # After a delete by filter it can only tell when it gets there, and stops there.
            with pytest.raises(UnexpectedResponse) as e:
                client.batch_update_points(name, ops, wait=True)
            assert e.value.status_code == 404, e.value.content
            if "nothing of the batch was applied" in e.value.content.decode():
                assert state(client, name) == before
                refused += 1
            reset_local(local, name, state(client, name))
            continue
        results = client.batch_update_points(name, ops, wait=True)
        assert len(results) == len(ops) == len(results_local)
        assert all(r.status == models.UpdateStatus.COMPLETED for r in results)
        assert_same(client, local, name)
        applied += 1
    print(f"{applied} batches applied, {refused} refused whole")
    assert applied >= 3


def test_bad_batch_changes_nothing(server, client, collection_name, rng):
    make(client, collection_name)
    client.upsert(collection_name, points(rng, range(20)), wait=True)
    before, count = state(client, collection_name), client.count(collection_name).count
    good = [
        models.DeleteOperation(delete=models.PointIdsList(points=[1, 2])),
        models.SetPayloadOperation(set_payload=models.SetPayload(payload={"x": 1}, points=[3])),
        models.UpsertOperation(upsert=models.PointsList(points=points(rng, [100]))),
    ]
    bads = [
        # A vector of the wrong size in the last operation.
        (models.UpsertOperation(upsert=models.PointsList(points=[models.PointStruct(id=5, vector=[1.0, 2.0])])), "#3"),
        # A vector the collection does not have.
        (
            models.UpdateVectorsOperation(
                update_vectors=models.UpdateVectors(points=[models.PointVectors(id=4, vector={"nope": vec(rng)})])
            ),
            "nope",
        ),
        # A point that does not exist (nor is upserted earlier in the batch).
        (models.SetPayloadOperation(set_payload=models.SetPayload(payload={"x": 1}, points=[999])), "999"),
        # A point the batch itself deleted before.
        (models.ClearPayloadOperation(clear_payload=models.PointIdsList(points=[1])), "1"),
        # A vector deleted by name the collection does not have.
        (models.DeleteVectorsOperation(delete_vectors=models.DeleteVectors(points=[4], vector=["nope"])), "nope"),
    ]
    for bad, word in bads:
        with pytest.raises(UnexpectedResponse) as e:
            client.batch_update_points(collection_name, good + [bad], wait=True)
        assert e.value.status_code in (400, 404), e.value.content
        text = e.value.content.decode()
        assert "operation #3" in text and word in text, text
        assert client.count(collection_name).count == count
        assert state(client, collection_name) == before
    # Shapes the client would not send: an unknown operation, an empty list.
    url = f"{server.url}/collections/{collection_name}/points/batch?wait=true"
    ok = {"delete": {"points": [1]}}
    for body, word in [
        ({"operations": [ok, {"frobnicate": {}}]}, "frobnicate"),
        ({"operations": [ok, {"delete": {"points": [1]}, "upsert": {"points": []}}]}, "operation #1"),
        ({"operations": []}, "empty"),
        ({"operations": [ok, {"upsert": {"points": [{"id": 1, "vector": vec(rng)}], "update_mode": "x"}}]}, "update_mode"),
    ]:
        r = httpx.post(url, json=body)
        assert r.status_code == 400 and word in r.text, r.text
    assert state(client, collection_name) == before
    # The same batch without the bad operation applies, in order.
    res = client.batch_update_points(collection_name, good, wait=True)
    assert [r.status for r in res] == [models.UpdateStatus.COMPLETED] * 3
    assert client.count(collection_name).count == count - 1
    assert client.retrieve(collection_name, [3])[0].payload["x"] == 1


def test_batch_update_points_without_wait_keeps_the_order(client, collection_name, rng):
    make(client, collection_name)
    ops = [
        models.UpsertOperation(upsert=models.PointsList(points=points(rng, range(10)))),
        models.SetPayloadOperation(set_payload=models.SetPayload(payload={"k": 1}, points=list(range(10)))),
        models.DeleteOperation(delete=models.FilterSelector(filter=models.Filter(must=[models.HasIdCondition(has_id=[0, 1])]))),
    ]
    res = client.batch_update_points(collection_name, ops, wait=False)
    assert len(res) == 3
    client.upsert(collection_name, points(rng, [50]), wait=True)  # behind the batch in every mailbox
    recs, _ = client.scroll(collection_name, limit=100, with_payload=True)
    assert sorted(r.id for r in recs) == list(range(2, 10)) + [50]
    assert all(r.payload.get("k") == 1 for r in recs if r.id != 50)


def test_conditional_upsert_survives_kill9(rng):
    s = AmetistServer()
    try:
        c = s.client()
        local = QdrantClient(":memory:")
        for cl in (c, local):
            make(cl, "cond")
        seed = points(rng, range(30))
        for cl in (c, local):
            cl.upsert("cond", seed, wait=True)
        for _ in range(4):
            batch = points(rng, rng.sample(range(45), 15))
            flt, mode = random_filter(rng), rng.choice([None, models.UpdateMode.INSERT_ONLY, models.UpdateMode.UPDATE_ONLY])
            for cl in (c, local):
                cl.upsert("cond", batch, update_filter=flt, update_mode=mode, wait=True)
        want = state(local, "cond")
        assert state(c, "cond") == want
        c.close()
        s.restart(kill=True)
        c = s.client()
        assert state(c, "cond") == want
        c.close()
    finally:
        s.stop()
