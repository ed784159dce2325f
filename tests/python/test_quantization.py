"""The graph walk on codes, through the real server and the real Python client:
* 4-bit codes (`quantization_config: {"scalar": {"type": "int4"}}`, an Ametist extension of
  Qdrant's create-collection body): searches re-score with the f32 vectors, so scores are
  exact and agree with `exact=true`; the partitions route says what the walk reads;
  `params.quantization` (oversampling, ignore) acts; a bad type is a 400 that creates
  nothing; after kill -9 the collection comes back walking on codes (from the log alone,
  and from partition snapshots);
* Qdrant's own `ScalarQuantization(int8)` from the typed client: 8-bit codes over the
  range its `quantile` asks for, reported back in Qdrant's shape; per named vector too.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient, models

from test_text_recovery import Serve

# Every test runs over REST and over gRPC (prefer_grpc).
PROTOCOLS = ("rest", "grpc")

DIM = 64
N = 3000


def check_search(s: Serve, name: str, vectors: list[list[float]], rng: random.Random) -> None:
    client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)
    try:
        info = client.get_collection(name)  # the client parses the answer
        assert info.points_count == N
        parts = s.call("GET", f"/collections/{name}/partitions")
        assert [p["index"]["quantization"] for p in parts["partitions"]] == ["int4", "int4"], parts
        hits = 0
        for _ in range(30):
            i = rng.randrange(N)
            q = [x + rng.uniform(-0.02, 0.02) for x in vectors[i]]
            got = client.query_points(name, query=q, limit=10, search_params=models.SearchParams(hnsw_ef=64)).points
            exact = client.query_points(name, query=q, limit=10, search_params=models.SearchParams(exact=True)).points
            assert len(got) == 10
            truth = {p.id: p.score for p in exact}
            for p in got:
                # Re-scored with the f32 vectors: the score is the exact one.
                want = sum((a - b) ** 2 for a, b in zip(q, vectors[p.id])) ** 0.5
                assert p.score == pytest.approx(want, rel=1e-4, abs=1e-4), (p.id, p.score, want)
                if p.id in truth:
                    assert p.score == pytest.approx(truth[p.id], rel=1e-5, abs=1e-5)
            hits += len(truth.keys() & {p.id for p in got})
        assert hits / 300 >= 0.9, f"recall@10 {hits / 300}"

        # Qdrant's params.quantization: oversampling widens the beam that is re-scored
        # (ef 10 with oversampling 4 walks exactly as ef 40), ignore walks on the f32 vectors.
        q = vectors[7]
        wide = client.query_points(
            name, query=q, limit=10,
            search_params=models.SearchParams(hnsw_ef=10, quantization=models.QuantizationSearchParams(oversampling=4.0)),
        ).points
        ef40 = client.query_points(name, query=q, limit=10, search_params=models.SearchParams(hnsw_ef=40)).points
        assert [(p.id, p.score) for p in wide] == [(p.id, p.score) for p in ef40]
        plain = client.query_points(
            name, query=q, limit=10,
            search_params=models.SearchParams(hnsw_ef=64, quantization=models.QuantizationSearchParams(ignore=True, rescore=False)),
        ).points
        assert plain[0].id == 7 and plain[0].score == 0.0
        r = httpx.post(f"{s.url}/collections/{name}/points/query",
                       json={"query": q, "limit": 3, "params": {"quantization": {"oversampling": 0.5}}}, timeout=30)
        assert r.status_code == 400 and "oversampling" in r.text, r.text
    finally:
        client.close()


@pytest.mark.parametrize("snapshots", [False, True], ids=["log", "snapshot"])
def test_int4_walk_exact_scores_and_survives_kill9(snapshots: bool):
    rng = random.Random(20261130)
    sets = ["partitions.count=2"] + (["storage.snapshot_wal_bytes=1"] if snapshots else [])
    with tempfile.TemporaryDirectory(prefix="ametist-quant-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        s = Serve(data, *sets)
        try:
            body = {
                "vectors": {"size": DIM, "distance": "Euclid"},
                "hnsw_config": {"full_scan_threshold": 10},
                "quantization_config": {"scalar": {"type": "int3"}},
            }
            r = httpx.put(f"{s.url}/collections/bad", json=body, timeout=30)
            assert r.status_code == 400 and "quantization_config.scalar.type" in r.text, r.text
            assert httpx.get(f"{s.url}/collections/bad", timeout=30).status_code == 404, "nothing was created"

            body["quantization_config"] = {"scalar": {"type": "int4"}}
            s.call("PUT", "/collections/q", body)
            vectors = [[rng.random() for _ in range(DIM)] for _ in range(N)]
            for start in range(0, N, 500):
                pts = [{"id": i, "vector": vectors[i]} for i in range(start, min(N, start + 500))]
                s.call("PUT", "/collections/q/points?wait=true", {"points": pts})
            check_search(s, "q", vectors, rng)

            s.kill9()
            s.start()
            s.wait_ready("q")
            check_search(s, "q", vectors, rng)
        finally:
            s.stop()


def test_qdrant_int8_scalar_quantization_through_the_client(server, client, collection_name):
    """Qdrant's own `ScalarQuantization(int8)`, sent by the typed client, makes the walk read
    8-bit codes; `get_collection` reports it in Qdrant's shape; scores stay exact."""
    rng = random.Random(8)
    client.create_collection(
        collection_name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID),
        hnsw_config=models.HnswConfigDiff(full_scan_threshold=10),
        quantization_config=models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        ),
    )
    vectors = [[rng.random() for _ in range(DIM)] for _ in range(1000)]
    client.upsert(collection_name, [models.PointStruct(id=i, vector=v) for i, v in enumerate(vectors)], wait=True)
    info = client.get_collection(collection_name)
    assert info.config.quantization_config.scalar.type == models.ScalarType.INT8
    assert info.config.quantization_config.scalar.quantile == pytest.approx(0.99)
    parts = httpx.get(f"{server.url}/collections/{collection_name}/partitions", timeout=30).json()["result"]
    assert {p["index"]["quantization"] for p in parts["partitions"]} == {"int8"}, parts
    # The codes' range holds the central 99% of the values (uniform in [0, 1) here).
    for p in parts["partitions"]:
        lo, hi = p["index"]["code_range"]
        assert lo == pytest.approx(0.005, abs=0.002) and hi == pytest.approx(0.995, abs=0.002), parts
    # A quantile outside Qdrant's [0.5, 1] is a 400 that creates nothing.
    body = {
        "vectors": {"size": DIM, "distance": "Euclid"},
        "quantization_config": {"scalar": {"type": "int8", "quantile": 0.3}},
    }
    r = httpx.put(f"{server.url}/collections/{collection_name}_bad", json=body, timeout=30)
    assert r.status_code == 400 and "quantile must be between 0.5 and 1" in r.text, r.text
    assert not client.collection_exists(f"{collection_name}_bad")
    for i in range(0, 1000, 97):
        got = client.query_points(collection_name, query=vectors[i], limit=5).points
        assert got[0].id == i and got[0].score == 0.0
        for p in got[1:]:
            want = sum((a - b) ** 2 for a, b in zip(vectors[i], vectors[p.id])) ** 0.5
            assert p.score == pytest.approx(want, rel=1e-4)


def test_per_vector_quantization_config_survives_kill9():
    """Qdrant's per-vector `quantization_config` (typed client): one named vector walks on
    8-bit codes over its own quantile, the other on f32 vectors; `get_collection` and the
    partitions route say which; scores stay exact; the setting survives kill -9. A bad
    per-vector setting is a 400 that names the vector and creates nothing. The unnamed
    vector's own setting is the collection's."""
    rng = random.Random(20261201)
    with tempfile.TemporaryDirectory(prefix="ametist-quant-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        s = Serve(data, "partitions.count=2")
        try:
            client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)
            bad = {
                "vectors": {"codes": {"size": DIM, "distance": "Euclid",
                                      "quantization_config": {"scalar": {"type": "int8", "quantile": 2}}}},
            }
            r = httpx.put(f"{s.url}/collections/bad", json=bad, timeout=30)
            assert r.status_code == 400 and "vectors.codes.quantization_config.scalar.quantile" in r.text, r.text
            assert not client.collection_exists("bad")

            client.create_collection(
                "nv",
                vectors_config={
                    "codes": models.VectorParams(
                        size=DIM, distance=models.Distance.EUCLID,
                        quantization_config=models.ScalarQuantization(
                            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99)
                        ),
                    ),
                    "plain": models.VectorParams(size=DIM, distance=models.Distance.EUCLID),
                },
                hnsw_config=models.HnswConfigDiff(full_scan_threshold=10),
            )
            vectors = [[rng.random() for _ in range(DIM)] for _ in range(1000)]
            client.upsert(
                "nv", [models.PointStruct(id=i, vector={"codes": v, "plain": v}) for i, v in enumerate(vectors)], wait=True
            )

            def check() -> None:
                client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)  # the port changes on restart
                info = client.get_collection("nv")
                params = info.config.params.vectors
                assert params["codes"].quantization_config.scalar.type == models.ScalarType.INT8
                assert params["codes"].quantization_config.scalar.quantile == pytest.approx(0.99)
                assert params["plain"].quantization_config is None
                assert info.config.quantization_config is None, "the collection's own setting is unchanged"
                parts = s.call("GET", "/collections/nv/partitions")["partitions"]
                for p in parts:
                    named = p["index"]["vectors"]
                    assert named["codes"]["quantization"] == "int8" and named["plain"]["quantization"] == "none", p
                    lo, hi = named["codes"]["code_range"]
                    assert lo == pytest.approx(0.005, abs=0.002) and hi == pytest.approx(0.995, abs=0.002), p
                    assert named["plain"].get("code_range") is None, p
                for i in range(0, 1000, 97):
                    for using in ("codes", "plain"):
                        got = client.query_points("nv", query=vectors[i], using=using, limit=5).points
                        assert got[0].id == i and got[0].score == 0.0, (using, got[0])
                        for p in got[1:]:
                            want = sum((a - b) ** 2 for a, b in zip(vectors[i], vectors[p.id])) ** 0.5
                            assert p.score == pytest.approx(want, rel=1e-4), (using, p.id)

            check()
            s.kill9()
            s.start()
            s.wait_ready("nv")
            check()

            # The unnamed vector's own setting is the collection's.
            client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)
            client.create_collection(
                "uv",
                vectors_config=models.VectorParams(
                    size=DIM, distance=models.Distance.EUCLID,
                    quantization_config=models.ScalarQuantization(
                        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)
                    ),
                ),
            )
            assert client.get_collection("uv").config.quantization_config.scalar.type == models.ScalarType.INT8
            parts = s.call("GET", "/collections/uv/partitions")["partitions"]
            assert {p["index"]["quantization"] for p in parts} == {"int8"}, parts
        finally:
            s.stop()


# ----- binary codes ------------------------------------------------------------------------

BQ_DIM = 64
BQ_CLUSTERS = 200


def bq_data(rng: random.Random) -> tuple[list[list[float]], list[list[float]]]:
    """An easy set for binary codes: 200 random centres (components centred on zero, as
    binary codes expect), ten points spread around each; queries are centres. A query's
    exact top 10 is then its centre's ten points, and their sign codes differ from the
    query's in far fewer bits than any other point's, so a re-scored walk finds exactly them."""
    centres = [[rng.gauss(0, 1) for _ in range(BQ_DIM)] for _ in range(BQ_CLUSTERS)]
    points = [[x + rng.gauss(0, 0.3) for x in c] for c in centres for _ in range(10)]
    return points, centres


def exact_top(points: list[list[float]], q: list[float], k: int) -> list[tuple[int, float]]:
    """Cosine top-k by a plain scan: (id, similarity), best first."""
    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)
    scored = sorted(((cos(q, p), i) for i, p in enumerate(points)), reverse=True)
    return [(i, s) for s, i in scored[:k]]


def check_binary(s: Serve, name: str, points, queries, using: str | None = None, kind: str = "binary") -> None:
    client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)  # the port changes on restart
    try:
        info = client.get_collection(name)
        assert info.points_count == len(points)
        parts = s.call("GET", f"/collections/{name}/partitions")["partitions"]
        if using is None:
            assert {p["index"]["quantization"] for p in parts} == {kind}, parts
        else:
            assert {p["index"]["vectors"][using]["quantization"] for p in parts} == {kind}, parts
        rescored = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0))
        for q in queries[:40]:
            got = client.query_points(name, query=q, using=using, limit=10, search_params=rescored).points
            want = exact_top(points, q, 10)
            assert [p.id for p in got] == [i for i, _ in want], (q[:3], got, want)
            for p, (_, score) in zip(got, want):
                assert p.score == pytest.approx(score, rel=1e-4, abs=1e-5)
        # Not re-scored: the codes' order and scores, the cosine between the codes read as
        # ±1 vectors (1 - 2h/n): a stored point finds itself at 1 exactly.
        raw = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=False))
        for i in range(0, len(points), 397):
            got = client.query_points(name, query=points[i], using=using, limit=5, search_params=raw).points
            assert got[0].score == 1.0 and i in {p.id for p in got if p.score == 1.0}, (i, got)
            assert all(-1.0 <= p.score <= 1.0 for p in got)
            assert all(a.score >= b.score for a, b in zip(got, got[1:]))
    finally:
        client.close()


@pytest.mark.parametrize("snapshots", [False, True], ids=["log", "snapshot"])
def test_binary_quantization_through_the_client_survives_kill9(snapshots: bool):
    """Qdrant's `BinaryQuantization` from the typed client: the walk reads 1-bit codes,
    `get_collection` reports it in Qdrant's shape; searches with `rescore` and `oversampling`
    give an exact scan's top 10 with exact scores; `rescore: false` gives the codes' scores;
    after kill -9 it answers the same (recovered from the log alone, and from partition
    snapshots, which hold no codes: they are trained again on open). A per-vector binary setting with `encoding: two_bits`
    applies to that vector only; product quantization and a query encoding Ametist does not
    implement are 400s naming the field."""
    rng = random.Random(20261205)
    points, queries = bq_data(rng)
    with tempfile.TemporaryDirectory(prefix="ametist-bq-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        s = Serve(data, "partitions.count=2", *(["storage.snapshot_wal_bytes=1"] if snapshots else []))
        try:
            client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)
            for bad, field in [
                ({"product": {"compression": "x16"}}, "quantization_config.product"),
                ({"binary": {"query_encoding": "scalar8bits"}}, "quantization_config.binary.query_encoding"),
                ({"binary": {"encoding": "three_bits"}}, "quantization_config.binary.encoding"),
            ]:
                body = {"vectors": {"size": BQ_DIM, "distance": "Cosine"}, "quantization_config": bad}
                r = httpx.put(f"{s.url}/collections/bad", json=body, timeout=30)
                assert r.status_code == 400 and field in r.text, r.text
                assert not client.collection_exists("bad")

            client.create_collection(
                "bq",
                vectors_config=models.VectorParams(size=BQ_DIM, distance=models.Distance.COSINE),
                hnsw_config=models.HnswConfigDiff(full_scan_threshold=10),
                quantization_config=models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)),
            )
            client.create_collection(
                "nbq",
                vectors_config={
                    "bits": models.VectorParams(
                        size=BQ_DIM, distance=models.Distance.COSINE,
                        quantization_config=models.BinaryQuantization(
                            binary=models.BinaryQuantizationConfig(
                                always_ram=True, encoding=models.BinaryQuantizationEncoding.TWO_BITS
                            )
                        ),
                    ),
                    "plain": models.VectorParams(size=BQ_DIM, distance=models.Distance.COSINE),
                },
                hnsw_config=models.HnswConfigDiff(full_scan_threshold=10),
            )
            client.upsert("bq", [models.PointStruct(id=i, vector=v) for i, v in enumerate(points)], wait=True)
            client.upsert(
                "nbq", [models.PointStruct(id=i, vector={"bits": v, "plain": v}) for i, v in enumerate(points)], wait=True
            )

            def check() -> None:
                client = QdrantClient(url=s.url, prefer_grpc=False, timeout=30)
                try:
                    qc = client.get_collection("bq").config.quantization_config
                    assert isinstance(qc, models.BinaryQuantization), qc
                    assert qc.binary.encoding in (None, models.BinaryQuantizationEncoding.ONE_BIT), qc
                    params = client.get_collection("nbq").config.params.vectors
                    assert params["bits"].quantization_config.binary.encoding == models.BinaryQuantizationEncoding.TWO_BITS
                    assert params["plain"].quantization_config is None
                finally:
                    client.close()
                check_binary(s, "bq", points, queries)
                check_binary(s, "nbq", points, queries, using="bits", kind="binary_two_bits")

            check()
            s.kill9()
            s.start()
            s.wait_ready("bq")
            s.wait_ready("nbq")
            check()
        finally:
            s.stop()
