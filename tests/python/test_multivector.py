"""Multivector fields (issue 15, item 3): `multivector_config: {comparator: max_sim}` on the
unnamed vector and on named ones, beside plain dense and sparse fields. Checked against
qdrant-client's local mode (`QdrantClient(":memory:")`) on seeded random clustered data:
every subset of fields per point, searches by multivector queries (graph walk and exact),
filters, `with_vector` lists, `has_vector`, vector updates and deletes, kill -9 and a clean
restart; malformed multivectors are refused with a 400 that names the problem."""

from __future__ import annotations

import os
import random

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from conftest import AmetistServer

SEED = int(os.environ.get("AMETIST_TEST_SEED", "3"))
TOL = 1e-4
MAX_SIM = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)


def close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= TOL * max(1.0, abs(a))
    return a == b


def fields_of(vector) -> dict:
    if vector is None:
        return {}
    if isinstance(vector, list):
        return {"": vector}
    return {n: (v.model_dump() if hasattr(v, "model_dump") else v) for n, v in vector.items()}


def create(client, name: str) -> None:
    client.create_collection(
        name,
        vectors_config={
            "": models.VectorParams(size=4, distance=models.Distance.COSINE, multivector_config=MAX_SIM),
            "late": models.VectorParams(size=3, distance=models.Distance.EUCLID, multivector_config=MAX_SIM),
            "plain": models.VectorParams(size=2, distance=models.Distance.DOT),
        },
        sparse_vectors_config={"words": models.SparseVectorParams()},
        hnsw_config=models.HnswConfigDiff(full_scan_threshold=10),
    )


class Clusters:
    """Vectors near a few random centres, so that MaxSim has clear winners."""

    def __init__(self, rng: random.Random, dim: int, n: int = 6):
        self.rng, self.dim = rng, dim
        self.centres = [[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]

    def multi(self, most: int) -> list:
        rows = []
        for _ in range(self.rng.randint(1, most)):
            c = self.rng.choice(self.centres)
            rows.append([x + self.rng.uniform(-0.2, 0.2) for x in c])
        return rows


def subset_points(rng: random.Random, c4: Clusters, c3: Clusters, n: int) -> list:
    """Point i carries the fields of the bits of i % 16: 1 the unnamed multivector, 2
    `late`, 4 `plain`, 8 `words`."""
    points = []
    for i in range(n):
        bits, vector = i % 16, {}
        if bits & 1:
            vector[""] = c4.multi(5)
        if bits & 2:
            vector["late"] = c3.multi(4)
        if bits & 4:
            vector["plain"] = [rng.uniform(-1, 1) for _ in range(2)]
        if bits & 8:
            idx = sorted(rng.sample(range(20), 3))
            vector["words"] = models.SparseVector(indices=idx, values=[rng.uniform(0.1, 1) for _ in idx])
        points.append(models.PointStruct(id=i, vector=vector, payload={"i": i, "odd": i % 2 == 1}))
    return points


def records(client, name: str) -> dict:
    points, _ = client.scroll(name, limit=1000, with_payload=True, with_vectors=True)
    return {p.id: (p.payload, fields_of(p.vector)) for p in points}


def same_answers(ours, local, name: str, c4: Clusters, c3: Clusters) -> None:
    a, b = records(ours, name), records(local, name)
    assert a.keys() == b.keys()
    for i in a:
        assert a[i][0] == b[i][0], i
        assert close(a[i][1], b[i][1]), (i, a[i][1], b[i][1])
    odd = models.Filter(must=[models.FieldCondition(key="odd", match=models.MatchValue(value=True))])
    for using, clusters in [(None, c4), ("late", c3)]:
        for round in range(6):
            q = clusters.multi(3)
            flt = odd if round % 2 else None
            for exact in (False, True):
                params = models.SearchParams(exact=exact, hnsw_ef=64)
                x = ours.query_points(name, query=q, using=using, limit=8, query_filter=flt, search_params=params)
                y = local.query_points(name, query=q, using=using, limit=8, query_filter=flt)
                assert [p.id for p in x.points] == [p.id for p in y.points], (using, round, exact)
                assert close([p.score for p in x.points], [p.score for p in y.points]), (using, round, exact)
    for field in ["", "late", "plain", "words"]:
        flt = models.Filter(must=[models.HasVectorCondition(has_vector=field)])
        assert ours.count(name, count_filter=flt).count == local.count(name, count_filter=flt).count, field
    x = ours.retrieve(name, ids=list(range(20)), with_vectors=["late", "plain"])
    y = local.retrieve(name, ids=list(range(20)), with_vectors=["late", "plain"])
    assert close({p.id: fields_of(p.vector) for p in x}, {p.id: fields_of(p.vector) for p in y})


def test_multivector_fields_answer_as_local_mode_through_updates_and_restarts():
    print(f"seed {SEED} (replay with AMETIST_TEST_SEED={SEED})")
    rng = random.Random(SEED)
    c4, c3 = Clusters(rng, 4), Clusters(rng, 3)
    server = AmetistServer(partitions=3)
    local = QdrantClient(":memory:")
    ours = server.client()
    try:
        for c in (ours, local):
            create(c, "late")
        points = subset_points(rng, c4, c3, 160)
        for c in (ours, local):
            c.upsert("late", points=points, wait=True)
        same_answers(ours, local, "late", c4, c3)

        info = ours.get_collection("late").config.params.vectors
        assert info[""].multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
        assert info["late"].multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
        assert info["plain"].multivector_config is None

        new_rows = c4.multi(5)
        for c in (ours, local):
            c.delete_vectors("late", points=[3, 19, 35], vectors=[""], wait=True)
            c.delete_vectors("late", points=[2, 7], vectors=["late"], wait=True)
            c.update_vectors(
                "late",
                points=[
                    models.PointVectors(id=0, vector={"late": [[0.5, 0.5, 0.5]]}),
                    models.PointVectors(id=5, vector={"": new_rows}),
                ],
                wait=True,
            )
        same_answers(ours, local, "late", c4, c3)

        server.restart(kill=True)
        same_answers(ours, local, "late", c4, c3)
        server.restart()  # a clean stop writes images; the next start reads them
        same_answers(ours, local, "late", c4, c3)
    finally:
        ours.close()
        local.close()
        server.stop()


def test_an_unnamed_only_multivector_collection_answers_lists_of_vectors(client, collection_name):
    local = QdrantClient(":memory:")
    rng = random.Random(SEED + 1)
    clusters = Clusters(rng, 3)
    points = [models.PointStruct(id=i, vector=clusters.multi(4)) for i in range(40)]
    for c in (client, local):
        c.create_collection(
            collection_name,
            vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT, multivector_config=MAX_SIM),
        )
        c.upsert(collection_name, points=points, wait=True)
    sent = client.scroll(collection_name, limit=100, with_vectors=True)[0]
    assert close({p.id: p.vector for p in sent}, {p.id: p.vector for p in local.scroll(collection_name, limit=100, with_vectors=True)[0]})
    assert all(isinstance(p.vector, list) and isinstance(p.vector[0], list) for p in sent)
    params = client.get_collection(collection_name).config.params.vectors
    assert params.size == 3 and params.multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
    for _ in range(5):
        q = clusters.multi(3)
        x = client.query_points(collection_name, query=q, limit=5).points
        y = local.query_points(collection_name, query=q, limit=5).points
        assert [p.id for p in x] == [p.id for p in y]
        assert close([p.score for p in x], [p.score for p in y])
    local.close()


@pytest.mark.parametrize(
    "vector, expect",
    [
        ({"late": [0.1, 0.2, 0.3]}, "is a multivector"),
        ({"late": [[0.1, 0.2, 0.3], [0.1, 0.2]]}, "vector 1 of the multivector has 2 dimensions"),
        ({"late": []}, "is a multivector"),
        ({"plain": [[0.1, 0.2]]}, "is not a multivector field"),
        ({"late": [[0.1, 0.2, float("nan")]]}, None),
        ({"": [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]}, "vector 1 of the multivector: cosine distance needs a non-zero vector"),
    ],
)
def test_malformed_multivectors_are_refused_naming_the_problem(client, collection_name, vector, expect):
    create(client, collection_name)
    client.upsert(collection_name, points=[models.PointStruct(id=1, vector={"late": [[1.0, 2.0, 3.0]]})], wait=True)
    with pytest.raises((UnexpectedResponse, ValueError)) as e:
        client.upsert(collection_name, points=[models.PointStruct(id=2, vector=vector)], wait=True)
    if expect is not None:
        assert expect in str(e.value), str(e.value)
    assert client.count(collection_name).count == 1
    with pytest.raises(UnexpectedResponse) as e:
        client.query_points(collection_name, query=[[0.1, 0.2]], using="plain", limit=3)
    assert "is not a multivector field" in str(e.value)
