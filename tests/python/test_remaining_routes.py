"""The remaining Qdrant routes (issue 16, item 7), through the real qdrant-client where it
has a method: `GET /` with `commit` and a version the client accepts without a warning,
`collection_cluster_info` (with `points_count`), `get_optimizations`, `GET /telemetry`,
full-storage snapshots (create, list, download, delete, and a restore into an empty data
directory with `ametist restore-snapshot`), shard snapshots (create, list, download,
delete, recover), and `get_collection` still parsing after all of it."""

from __future__ import annotations

import random
import re
import subprocess
import warnings

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from conftest import AmetistServer, ametist_binary

DIM = 5


def vec(rng):
    return [round(rng.uniform(-1, 1), 4) for _ in range(DIM)]


def fill(client, name, rng, n=40, shards=3):
    client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT), shard_number=shards
    )
    pts = [models.PointStruct(id=i, vector=vec(rng), payload={"i": i}) for i in range(n)]
    client.upsert(name, pts, wait=True)
    return pts


def everything(client, name):
    recs, _ = client.scroll(name, limit=10_000, with_payload=True, with_vectors=True)
    return {r.id: (r.payload, r.vector) for r in recs}


def test_root_has_commit_and_a_version_the_client_accepts(server):
    body = httpx.get(server.url + "/").json()
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", body["commit"]), body
    assert body["version"] and body["title"]
    # The client checks the version when it connects: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = QdrantClient(url=server.url, prefer_grpc=False, check_compatibility=True)
        c.get_collections()
        c.close()


def test_collection_cluster_info(client, collection_name):
    rng = random.Random(1)
    fill(client, collection_name, rng, n=50, shards=3)
    info = client.collection_cluster_info(collection_name)
    assert info.shard_count == 3
    assert sorted(s.shard_id for s in info.local_shards) == [0, 1, 2]
    assert sum(s.points_count for s in info.local_shards) == 50
    assert all(s.state == models.ReplicaState.ACTIVE for s in info.local_shards)
    # And the collection's own info still parses.
    assert client.get_collection(collection_name).points_count == 50


def test_get_optimizations(client, collection_name):
    fill(client, collection_name, random.Random(2), n=5)
    o = client.get_optimizations(collection_name)
    assert o.running == [] and o.summary.queued_optimizations == 0
    o = client.get_optimizations(collection_name, with_=["queued", "completed", "idle_segments"], completed_limit=3)
    assert o.queued == [] and o.completed == [] and o.idle_segments == []
    with pytest.raises(UnexpectedResponse) as e:
        client.get_optimizations("no-such-collection")
    assert e.value.status_code == 404


def test_telemetry(server, client, collection_name):
    fill(client, collection_name, random.Random(3), n=17, shards=2)
    r = httpx.get(server.url + "/telemetry", params={"details_level": 2})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    t = models.TelemetryData(**result)  # Qdrant's shape
    assert t.app.name == "ametist"
    assert t.collections.number_of_collections == len(client.get_collections().collections)
    mine = [c for c in result["collections"]["collections"] if c["id"] == collection_name]
    assert mine == [{"id": collection_name, "points": 17, "partitions": 2, "partitions_answering": 2}]
    # Requests are counted per route and status, from what the server has answered.
    rest = t.requests.rest.responses
    assert rest["PUT /collections/{name}/points"]["200"].count >= 1
    for refused in ({"anonymize": "true"}, {"per_collection": "true"}, {"details_level": "x"}):
        assert httpx.get(server.url + "/telemetry", params=refused).status_code == 400


def test_full_snapshot_create_list_delete_and_restore_into_an_empty_data_dir(tmp_path):
    rng = random.Random(4)
    s = AmetistServer()
    try:
        c = s.client()
        fill(c, "a", rng, n=30, shards=2)
        fill(c, "b", rng, n=7, shards=1)
        c.update_collection_aliases(
            [models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="a", alias_name="alias-a"))]
        )
        want = {n: everything(c, n) for n in ("a", "b")}
        d = c.create_full_snapshot()
        assert d.name.endswith(".snapshot") and d.size > 0
        assert [x.name for x in c.list_full_snapshots()] == [d.name]
        # Only full snapshots are listed there: the collections' own are not left behind.
        assert c.list_snapshots("a") == [] and c.list_snapshots("b") == []
        file = tmp_path / d.name
        r = httpx.get(f"{s.url}/snapshots/{d.name}")
        assert r.status_code == 200
        file.write_bytes(r.content)
        assert len(r.content) == d.size
        assert c.delete_full_snapshot(d.name)
        assert c.list_full_snapshots() == []
        with pytest.raises(UnexpectedResponse) as e:
            c.delete_full_snapshot(d.name)
        assert e.value.status_code == 404
        c.close()
    finally:
        s.stop()
    # Restore into an empty data dir, then serve it.
    data = tmp_path / "restored"
    out = subprocess.run(
        [str(ametist_binary()), "restore-snapshot", str(file), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "restored 2 collection(s)" in out.stdout
    # A second restore into the now non-empty dir is refused and changes nothing.
    again = subprocess.run(
        [str(ametist_binary()), "restore-snapshot", str(file), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120,
    )
    assert again.returncode != 0 and "without collections" in again.stderr
    s = AmetistServer(data_dir=data)
    try:
        c = s.client()
        assert sorted(x.name for x in c.get_collections().collections) == ["a", "b"]
        for n in ("a", "b"):
            assert everything(c, n) == want[n]
        assert everything(c, "alias-a") == want["a"]
        assert c.get_collection("a").config.params.shard_number == 2
        c.close()
    finally:
        s.stop()
    # A damaged file is refused before anything is made.
    broken = tmp_path / "broken.snapshot"
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    broken.write_bytes(bytes(raw))
    empty = tmp_path / "empty"
    out = subprocess.run(
        [str(ametist_binary()), "restore-snapshot", str(broken), "--data-dir", str(empty)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0 and "checksum" in out.stderr, out.stderr


def test_shard_snapshots(server, client, collection_name):
    rng = random.Random(5)
    fill(client, collection_name, rng, n=60, shards=2)
    before = everything(client, collection_name)
    d = client.create_shard_snapshot(collection_name, 1)
    assert d.size > 0
    assert [x.name for x in client.list_shard_snapshots(collection_name, 1)] == [d.name]
    assert client.list_shard_snapshots(collection_name, 0) == []
    r = httpx.get(f"{server.url}/collections/{collection_name}/shards/1/snapshots/{d.name}")
    assert r.status_code == 200 and len(r.content) == d.size
    # Change every point, then bring shard 1 back: its points are as before, shard 0's keep
    # the change.
    client.set_payload(collection_name, {"changed": True}, points=list(range(60)), wait=True)
    client.delete(collection_name, points_selector=models.PointIdsList(points=list(range(50, 60))), wait=True)
    assert client.recover_shard_snapshot(collection_name, 1, location=d.name)
    after = everything(client, collection_name)
    shard_of = {s.shard_id: s.points_count for s in client.collection_cluster_info(collection_name).local_shards}
    recovered = [i for i in before if i in after and "changed" not in after[i][0]]
    assert len(recovered) == shard_of[1]
    for i in recovered:
        assert after[i] == before[i]
    assert all(after[i][0].get("changed") for i in after if i not in recovered)
    # Shard 1's image does not belong to shard 0: refused, nothing changes.
    with pytest.raises(UnexpectedResponse) as e:
        client.recover_shard_snapshot(collection_name, 0, location=f"file://{server.data_dir}/snapshots/{collection_name}/shards/1/{d.name}")
    assert e.value.status_code == 400 and "does not belong to shard 0" in e.value.content.decode()
    assert everything(client, collection_name) == after
    # Unknown shard, unknown snapshot, a setting that would be ignored.
    assert httpx.post(f"{server.url}/collections/{collection_name}/shards/7/snapshots").status_code == 404
    with pytest.raises(UnexpectedResponse) as e:
        client.recover_shard_snapshot(collection_name, 1, location="nope.snapshot")
    assert e.value.status_code == 404
    r = httpx.put(
        f"{server.url}/collections/{collection_name}/shards/1/snapshots/recover",
        json={"location": d.name, "api_key": "k"},
    )
    assert r.status_code == 400 and "api_key" in r.text
    assert client.delete_shard_snapshot(collection_name, 1, d.name)
    assert client.list_shard_snapshots(collection_name, 1) == []
    assert client.get_collection(collection_name).points_count == len(after)
