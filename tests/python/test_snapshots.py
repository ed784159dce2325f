"""Collection snapshots through the real client: create, list, download, recover."""

from __future__ import annotations

import httpx
from qdrant_client import models


def test_snapshot_create_list_download_recover(server, client, collection_name, tmp_path):
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
    saved = tmp_path / "copy.snapshot"
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
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(r.content[:10] + b"garbage" * 10)
    r = httpx.put(
        f"{server.url}/collections/{collection_name}/snapshots/recover", json={"location": f"file://{bad}"}, timeout=30
    )
    assert r.status_code == 400, r.text
    assert client.count(collection_name).count == 20
