"""Names at their limits work end to end. Found while fuzzing (`test_fuzz.py`): a collection
named with the 255 bytes a name could have then could not be snapshotted, restored or
deleted: the files and hidden directories named after it (its name with a time stamp, a
process id, a suffix) were longer than a file name may be, and each answered 500. Names
are now at most 200 bytes, so that every derived name fits."""

from __future__ import annotations

from conftest import refused


def test_a_collection_with_the_longest_name_snapshots_and_recovers(http):
    name = "n" * 200
    r = http.put(f"/collections/{name}", json={"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2})
    assert r.status_code == 200, r.text
    points = [{"id": i, "vector": [1.0, float(i)]} for i in range(10)]
    assert http.put(f"/collections/{name}/points?wait=true", json={"points": points}).status_code == 200

    r = http.post(f"/collections/{name}/snapshots")
    assert r.status_code == 200, r.text
    snapshot = r.json()["result"]["name"]
    assert len(snapshot.encode()) < 255
    listed = [s["name"] for s in http.get(f"/collections/{name}/snapshots").json()["result"]]
    assert listed == [snapshot]
    assert http.get(f"/collections/{name}/snapshots/{snapshot}").status_code == 200

    assert http.post(f"/collections/{name}/points/delete?wait=true", json={"points": [0, 1]}).status_code == 200
    r = http.put(f"/collections/{name}/snapshots/recover", json={"location": snapshot})
    assert r.status_code == 200, r.text
    assert http.post(f"/collections/{name}/points/count", json={}).json()["result"]["count"] == 10
    assert http.delete(f"/collections/{name}").status_code == 200


def test_a_longer_name_is_refused(http):
    r = http.put(f"/collections/{'n' * 201}", json={"vectors": {"size": 2, "distance": "Dot"}})
    refused(r, 400, "at most 200 bytes")
