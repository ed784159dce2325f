"""Backpressure as a client sees it: a full partition mailbox answers 429 with
Retry-After, which qdrant-client turns into ResourceExhaustedResponse; nothing of a
refused write is applied."""

from __future__ import annotations

import time

import httpx
import pytest
from qdrant_client import models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse

from conftest import AmetistServer


@pytest.fixture(scope="module")
def small_server():
    # One partition with a mailbox of 2 messages, and the fault-injection route.
    s = AmetistServer("limits.partition_mailbox=2", "server.enable_fault_injection=true", partitions=1)
    yield s
    s.stop()


def stall(server, name, ms):
    r = httpx.post(f"{server.url}/collections/{name}/partitions/0/fault", json={"stall_ms": ms})
    assert r.status_code == 200, r.text


def test_full_mailbox_answers_429(small_server):
    client = small_server.client()
    name = "overload"
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    stall(small_server, name, 3000)  # the partition stops taking messages for 3 s

    # Raw HTTP first: the status, the header and Qdrant's error envelope.
    statuses = []
    for i in range(10):
        r = httpx.put(
            f"{small_server.url}/collections/{name}/points?wait=false",
            json={"points": [{"id": i, "vector": [1.0, 0.0]}]},
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1"
            assert "overload" in r.json()["status"]["error"].lower()
            break
    assert statuses[-1] == 429, statuses
    accepted = statuses.count(200)

    # The client raises its own exception for 429 + Retry-After.
    with pytest.raises(ResourceExhaustedResponse) as e:
        client.upsert(name, points=[models.PointStruct(id=999, vector=[0.0, 1.0])], wait=False)
    assert e.value.retry_after_s == 1

    # Once the stall is over, the accepted writes are applied and the refused ones are not.
    deadline = time.monotonic() + 15
    while client.get_collection(name).points_count != accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get_collection(name).points_count == accepted
    assert client.retrieve(name, ids=[999]) == []
    client.upsert(name, points=[models.PointStruct(id=999, vector=[0.0, 1.0])], wait=True)
    assert client.get_collection(name).points_count == accepted + 1
    client.close()
