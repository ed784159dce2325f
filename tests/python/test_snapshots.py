"""Collection snapshots through the real client: create, list, download, recover."""

from __future__ import annotations

import httpx
from qdrant_client import models


def test_snapshot_create_list_download_recover(server, client, collection_name):
    client.create_collection(collection_name, vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    client.upsert(
        collection_name,
        points=[models.PointStruct(id=i, vector=[1.0, float(i), 0.5], payload={"i": i}) for i in range(20)],
        wait=True,
    )
    snap = client.create_snapshot(collection_name, wait=True)
    assert snap.name and snap.size > 0
    assert snap.name in [s.name for s in client.list_snapshots(collection_name)]

    r = httpx.get(f"{server.url}/collections/{collection_name}/snapshots/{snap.name}", timeout=30)
    assert r.status_code == 200 and len(r.content) == snap.size
    # `file://` locations are read only inside the server's snapshots directory (or
    # `storage.recover_from_dirs`): an operator puts the file there.
    imports = server.data_dir / "snapshots" / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    saved = imports / f"{collection_name}-copy.snapshot"
    saved.write_bytes(r.content)

    # Change the collection, then recover it from the downloaded file: back as it was.
    client.delete(collection_name, points_selector=models.PointIdsList(points=list(range(10))), wait=True)
    client.upsert(collection_name, points=[models.PointStruct(id=99, vector=[0.0, 0.0, 1.0])], wait=True)
    assert client.count(collection_name).count == 11
    assert client.recover_snapshot(collection_name, location=f"file://{saved}", wait=True)
    assert client.count(collection_name).count == 20
    got = client.retrieve(collection_name, ids=[3, 99], with_vectors=True)
    assert [p.id for p in got] == [3]
    assert got[0].payload == {"i": 3} and got[0].vector == [1.0, 3.0, 0.5]

    # Unknown snapshots are 404; a damaged file is refused and changes nothing.
    r = httpx.get(f"{server.url}/collections/{collection_name}/snapshots/nope.snapshot", timeout=30)
    assert r.status_code == 404
    bad = imports / f"{collection_name}-bad.snapshot"
    bad.write_bytes(r.content[:10] + b"garbage" * 10)
    r = httpx.put(
        f"{server.url}/collections/{collection_name}/snapshots/recover", json={"location": f"file://{bad}"}, timeout=30
    )
    assert r.status_code == 400, r.text
    assert client.count(collection_name).count == 20


def test_snapshot_upload_as_multipart_form_and_raw_body(server, client, collection_name, tmp_path):
    client.create_collection(
        collection_name,
        vectors_config={"a": models.VectorParams(size=2, distance=models.Distance.EUCLID)},
        sparse_vectors_config={"s": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upsert(
        collection_name,
        points=[
            models.PointStruct(
                id=i, vector={"a": [float(i), 1.0], "s": models.SparseVector(indices=[i % 5], values=[1.0])}
            )
            for i in range(30)
        ],
        wait=True,
    )
    snap = client.create_snapshot(collection_name, wait=True)
    data = httpx.get(f"{server.url}/collections/{collection_name}/snapshots/{snap.name}", timeout=30).content
    saved = tmp_path / "named.snapshot"
    saved.write_bytes(data)

    # The client's upload call sends a multipart form with a `snapshot` field.
    client.delete(collection_name, points_selector=models.PointIdsList(points=list(range(20))), wait=True)
    assert client.count(collection_name).count == 10
    with open(saved, "rb") as f:
        assert client.http.snapshots_api.recover_from_uploaded_snapshot(collection_name, wait=True, snapshot=f).result
    assert client.count(collection_name).count == 30
    got = client.retrieve(collection_name, ids=[7], with_vectors=True)[0].vector
    assert got["a"] == [7.0, 1.0] and got["s"].indices == [2]
    hits = client.query_points(collection_name, query=models.SparseVector(indices=[3], values=[1.0]), using="s").points
    assert sorted(p.id for p in hits) == [3, 8, 13, 18, 23, 28]

    # The raw body still works, into a new collection.
    other = collection_name + "_raw"
    r = httpx.post(
        f"{server.url}/collections/{other}/snapshots/upload",
        content=data,
        headers={"content-type": "application/octet-stream"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert client.count(other).count == 30
    client.delete_collection(other)

    # A form without the field, and a SHA-256 check Ametist cannot make, are refused.
    r = httpx.post(f"{server.url}/collections/{collection_name}/snapshots/upload", files={"other": b"x"}, timeout=30)
    assert r.status_code == 400 and "snapshot" in r.text
    r = httpx.post(
        f"{server.url}/collections/{collection_name}/snapshots/upload?checksum=abc", files={"snapshot": data}, timeout=30
    )
    assert r.status_code == 400 and "checksum" in r.text
