"""The memory ceiling: under the default limits, a burst of oversized requests is refused
or served while the server's resident memory stays below a stated bound (issue 21, item 2
and 6: a 34 KB batch used to hold 7-11 GB, and 100 concurrent 30 MB upserts 5.4 GB).

The bound, `CEILING`, is stated in the README next to the limits that give it."""

from __future__ import annotations

import concurrent.futures
import json
import random

import httpx
import pytest

# What the README promises for the default limits (see "Limits and what they cost").
CEILING = 1536 << 20

POINTS = 10_000
DIM = 64


@pytest.mark.restarts_server
def test_oversized_requests_leave_memory_under_the_ceiling():
    from ametist_server import AmetistServer

    s = AmetistServer(partitions=2)
    try:
        h = httpx.Client(base_url=s.url, timeout=120)
        assert h.put("/collections/m", json={"vectors": {"size": DIM, "distance": "Dot"}}).status_code == 200
        rng = random.Random(11)
        for start in range(0, POINTS, 2000):
            points = [
                {"id": i, "vector": [rng.uniform(-1, 1) for _ in range(DIM)], "payload": {"i": i, "t": "x" * 200}}
                for i in range(start, start + 2000)
            ]
            assert h.put("/collections/m/points?wait=true", json={"points": points}).status_code == 200
        baseline = s.rss_bytes()

        statuses: list[int] = []
        # 1. The small batch that asked for 5 million hits.
        body = {"searches": [{"query": [1.0] * DIM, "limit": 10_000, "with_vector": True} for _ in range(500)]}
        statuses.append(h.post("/collections/m/points/query/batch", json=body).status_code)
        # 2. The largest single queries, with vectors and payloads, several at once.
        def big_query(_):
            b = {"query": [rng.uniform(-1, 1) for _ in range(DIM)], "limit": 10_000, "with_vector": True,
                 "with_payload": True}
            return httpx.post(f"{s.url}/collections/m/points/query", json=b, timeout=120).status_code

        # 3. Many large upserts at once (about 8 MB each).
        blob = json.dumps(
            {"points": [{"id": 100_000 + i, "vector": [0.123456789] * DIM, "payload": {"p": "y" * 7000}} for i in range(1000)]}
        ).encode()
        assert len(blob) > 7 << 20

        def big_write(_):
            try:
                r = httpx.put(
                    f"{s.url}/collections/m/points?wait=true",
                    content=blob,
                    headers={"content-type": "application/json"},
                    timeout=120,
                )
                return r.status_code
            except httpx.TransportError:
                # Refused before its body was read: the server may close the connection
                # while the client is still sending.
                return 429

        with concurrent.futures.ThreadPoolExecutor(48) as pool:
            statuses += list(pool.map(big_write, range(40)))
            statuses += list(pool.map(big_query, range(8)))
        peak = s.rss_bytes(peak=True)
        print(f"baseline {baseline >> 20} MiB, peak {peak >> 20} MiB, statuses {sorted(set(statuses))}")
        assert all(code in (200, 400, 429) for code in statuses), statuses
        assert 429 in statuses, "some writes must have been refused by the write budget"
        assert peak < CEILING, f"peak resident memory {peak >> 20} MiB is above the ceiling {CEILING >> 20} MiB"
        assert h.get("/healthz").status_code == 200
    finally:
        s.stop()
