"""Collections through the real qdrant-client: create, inspect, list, delete, errors."""

from __future__ import annotations

import importlib.metadata
import warnings

import grpc
import httpx
import pytest
from qdrant_client import models
from qdrant_client.common.version_check import get_server_version, is_compatible
from qdrant_client.http.exceptions import UnexpectedResponse
from qdrant_client.qdrant_remote import QdrantRemote

# Every test runs over REST and over gRPC (prefer_grpc), but those marked rest_only.
PROTOCOLS = ("rest", "grpc")


def test_root_reports_a_version_the_client_accepts(server):
    root = httpx.get(server.url + "/").json()
    assert root["title"].startswith("ametist")
    assert "ametist_version" in root
    client_version = importlib.metadata.version("qdrant-client")
    server_version = get_server_version(server.url, {}, None, 5)
    assert server_version == root["version"]
    assert is_compatible(client_version, server_version), (client_version, server_version)


def test_check_compatibility_does_not_warn(server):
    # The client runs this check in a background thread on construction; run it in the
    # foreground so that a warning cannot be missed.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        QdrantRemote._check_compatibility(server.url, {}, None, 5)
        c = server.client()
        c.close()
    assert [str(w.message) for w in caught if "compatib" in str(w.message)] == []


def test_create_exists_get_delete(client, collection_name):
    assert client.collection_exists(collection_name) is False
    assert client.create_collection(
        collection_name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    assert client.collection_exists(collection_name) is True

    info = client.get_collection(collection_name)
    assert isinstance(info, models.CollectionInfo)
    assert info.status == models.CollectionStatus.GREEN
    assert info.optimizer_status == models.OptimizersStatusOneOf.OK
    assert info.points_count == 0
    assert info.indexed_vectors_count == 0
    assert info.payload_schema == {}
    params = info.config.params
    assert isinstance(params.vectors, models.VectorParams)
    assert params.vectors.size == 4
    assert params.vectors.distance == models.Distance.COSINE
    assert params.shard_number == 2  # the server's partitions.count
    assert info.config.hnsw_config.m == 16
    assert info.config.hnsw_config.ef_construct == 200

    assert client.delete_collection(collection_name) is True
    assert client.collection_exists(collection_name) is False


@pytest.mark.parametrize(
    "distance",
    [models.Distance.COSINE, models.Distance.EUCLID, models.Distance.DOT, models.Distance.MANHATTAN],
)
def test_every_distance_round_trips(client, collection_name, distance):
    client.create_collection(collection_name, vectors_config=models.VectorParams(size=3, distance=distance))
    assert client.get_collection(collection_name).config.params.vectors.distance == distance


def test_create_with_hnsw_config_and_shard_number(client, collection_name):
    client.create_collection(
        collection_name,
        vectors_config=models.VectorParams(size=8, distance=models.Distance.DOT),
        shard_number=3,
        hnsw_config=models.HnswConfigDiff(m=8, ef_construct=64, full_scan_threshold=500),
    )
    info = client.get_collection(collection_name)
    assert info.config.params.shard_number == 3
    assert info.segments_count == 3
    assert info.config.hnsw_config.m == 8
    assert info.config.hnsw_config.ef_construct == 64
    assert info.config.hnsw_config.full_scan_threshold == 500
    assert info.config.params.vectors.distance == models.Distance.DOT


def test_hnsw_config_inside_vector_params(client, collection_name):
    client.create_collection(
        collection_name,
        vectors_config=models.VectorParams(
            size=4, distance=models.Distance.EUCLID, hnsw_config=models.HnswConfigDiff(m=12)
        ),
    )
    assert client.get_collection(collection_name).config.hnsw_config.m == 12


def test_settings_ametist_does_not_act_on_are_accepted(client, collection_name):
    client.create_collection(
        collection_name,
        vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
        replication_factor=1,
        write_consistency_factor=1,
        on_disk_payload=False,
        optimizers_config=models.OptimizersConfigDiff(default_segment_number=2),
        wal_config=models.WalConfigDiff(wal_capacity_mb=16),
    )
    assert client.collection_exists(collection_name)


def test_get_collections_lists_names(client, collection_name):
    other = collection_name + "_b"
    try:
        for n in (collection_name, other):
            client.create_collection(n, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        listed = client.get_collections()
        assert isinstance(listed, models.CollectionsResponse)
        names = {c.name for c in listed.collections}
        assert {collection_name, other} <= names
    finally:
        client.delete_collection(other)
    assert other not in {c.name for c in client.get_collections().collections}


@pytest.mark.rest_only
def test_unknown_collection_is_404(client):
    with pytest.raises(UnexpectedResponse) as e:
        client.get_collection("no_such_collection")
    assert e.value.status_code == 404
    assert "no_such_collection" in e.value.structured()["status"]["error"]


def test_deleting_an_unknown_collection_answers_false(client):
    assert client.delete_collection("no_such_collection") is False


@pytest.mark.rest_only
def test_creating_an_existing_collection_fails(client, collection_name):
    params = models.VectorParams(size=2, distance=models.Distance.DOT)
    client.create_collection(collection_name, vectors_config=params)
    with pytest.raises(UnexpectedResponse) as e:
        client.create_collection(collection_name, vectors_config=params)
    assert e.value.status_code == 409  # as Qdrant answers
    assert "already exists" in e.value.structured()["status"]["error"]


@pytest.mark.rest_only
def test_bad_collection_settings_are_400(client, collection_name):
    with pytest.raises(UnexpectedResponse) as e:
        client.create_collection(collection_name, vectors_config=models.VectorParams(size=0, distance="Cosine"))
    assert e.value.status_code == 400
    assert not client.collection_exists(collection_name)


def test_info(client):
    info = client.info()
    assert isinstance(info, models.VersionInfo)
    assert info.title.startswith("ametist")


def test_aliases_are_empty(client, collection_name):
    client.create_collection(collection_name, vectors_config=models.VectorParams(size=2, distance="Dot"))
    assert client.get_aliases().aliases == []
    assert client.get_collection_aliases(collection_name).aliases == []
    with pytest.raises(Exception) as e:
        client.get_collection_aliases("no_such_collection")
    # 404 over REST, NOT_FOUND over gRPC.
    assert getattr(e.value, "status_code", None) == 404 or e.value.code() == grpc.StatusCode.NOT_FOUND


def test_recreate_collection_pattern(client, collection_name):
    # What applications do instead of the deprecated recreate_collection.
    params = models.VectorParams(size=2, distance=models.Distance.DOT)
    for _ in range(2):
        if client.collection_exists(collection_name):
            client.delete_collection(collection_name)
        client.create_collection(collection_name, vectors_config=params)
        client.upsert(collection_name, points=[models.PointStruct(id=1, vector=[1.0, 0.0])], wait=True)
        assert client.get_collection(collection_name).points_count == 1
