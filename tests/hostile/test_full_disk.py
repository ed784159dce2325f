"""A full disk (issue 21, item 7): the server's data directory on a small tmpfs, filled up.

While the disk is full, reads (search, count, retrieve) answer 200 from memory; writes answer
503 with Retry-After and a message naming ENOSPC, never 500; creating a collection, a payload
index or a snapshot is refused the same way and leaves nothing half-made. Once space is freed
the partitions take writes again by themselves, with no restart, and every acknowledged point
is there, also after a restart.

Mounting a tmpfs needs root (or CAP_SYS_ADMIN); where that is not allowed the test is skipped
with a message saying so.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ametist_server import AmetistServer

DIM = 8
# Big enough for the server's files and a few hundred points, small enough to fill at once.
TMPFS_SIZE = "6m"
# What the filler leaves free, so that a few upserts still succeed before the disk is full.
SLACK = 192 << 10


def vec(i: int) -> list[float]:
    return [float((i * 7 + k) % 11) - 5.0 for k in range(DIM)]


def points(ids, pad: int = 0) -> dict:
    # A padded payload makes each write take room in the log.
    return {"points": [{"id": i, "vector": vec(i), "payload": {"n": i, "pad": "x" * pad}} for i in ids]}


def envelope_error(r: httpx.Response) -> str:
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.headers, r.text)
    message = r.json()["status"]["error"]
    assert isinstance(message, str) and message
    return message


def refused_for_space(r: httpx.Response) -> str:
    """A retryable refusal naming the full disk, in Qdrant's envelope: 503 (or 507)."""
    assert r.status_code in (503, 507), f"{r.status_code}: {r.text[:500]}"
    message = envelope_error(r)
    assert "ENOSPC" in message or "disk full" in message, message
    if r.status_code == 503:
        assert r.headers.get("retry-after"), r.headers
    return message


def fill(path: Path, leave: int) -> None:
    """Writes `path` until the file system has only about `leave` bytes free."""
    chunk = b"\0" * (64 << 10)
    with open(path, "wb") as f:
        while True:
            st = os.statvfs(path.parent)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            try:
                f.write(chunk[: max(4096, min(len(chunk), free - leave))])
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break


def ids_present(http: httpx.Client, name: str, ids) -> set[int]:
    r = http.post(f"/collections/{name}/points", json={"ids": sorted(ids), "with_payload": False})
    assert r.status_code == 200, r.text
    return {p["id"] for p in r.json()["result"]}


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs for the full-disk test (needs root or CAP_SYS_ADMIN): "
            f"{(r.stderr or r.stdout).strip() or 'mount failed'}"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.restarts_server
def test_a_full_disk_keeps_reads_and_writes_come_back(small_disk):
    started = time.monotonic()
    filler = small_disk / "filler"
    s = AmetistServer(partitions=2, data_dir=small_disk / "data")
    try:
        http = httpx.Client(base_url=s.url, timeout=30)
        r = http.put("/collections/full", json={"vectors": {"size": DIM, "distance": "Euclid"}, "shard_number": 2})
        assert r.status_code == 200, r.text
        acked: set[int] = set(range(100))
        r = http.put("/collections/full/points?wait=true", json=points(acked))
        assert r.status_code == 200, r.text

        # Fill the disk, then write until the log hits ENOSPC.
        fill(filler, SLACK)
        unknown: set[int] = set()
        refusal = None
        for batch in range(200):
            ids = set(range(1000 + batch * 10, 1010 + batch * 10))
            r = http.put("/collections/full/points?wait=true", json=points(ids, pad=2000))
            if r.status_code == 200:
                acked |= ids
                continue
            refusal = refused_for_space(r)
            unknown |= ids
            break
        assert refusal is not None, "the disk never filled up"
        print(f"first refusal after {len(acked)} acknowledged points: {refusal}")
        assert "partition" in refusal, refusal

        def reads_answer() -> None:
            r = http.post("/collections/full/points/search", json={"vector": vec(3), "limit": 5})
            assert r.status_code == 200, r.text
            assert len(r.json()["result"]) == 5
            r = http.post("/collections/full/points/count", json={"exact": True})
            assert r.status_code == 200, r.text
            count = r.json()["result"]["count"]
            assert len(acked) <= count <= len(acked | unknown), (count, len(acked))
            assert ids_present(http, "full", acked) == acked
            r = http.get("/collections/full/points/7")
            assert r.status_code == 200, r.text

        # Reads answer from memory.
        reads_answer()

        # Writes are refused at once, naming the cause; never a 500. More of them than the
        # supervisor's max-restarts (3): a full disk is not a crash, the partition stays up.
        for _ in range(5):
            t0 = time.monotonic()
            r = http.put("/collections/full/points?wait=true", json=points([5000], pad=2000))
            assert time.monotonic() - t0 < 2.0, "a write on a full disk is refused at once, not queued"
            if r.status_code == 200:
                acked.add(5000)  # it went to a partition that still had room
                continue
            message = refused_for_space(r)
            if "not written" in message:
                assert "nothing of this request was acknowledged" in message, message
            else:
                unknown.add(5000)
                assert "may or may not" in message, message
        reads_answer()
        parts = http.get("/collections/full/partitions").json()["result"]["partitions"]
        print(f"partitions on a full disk: {parts}")
        read_only = [p for p in parts if p["state"] == "read_only"]
        assert read_only, parts
        for p in read_only:
            e = p["storage_error"]
            assert e["disk_full"] and "ENOSPC" in e["reason"] and e["next_retry_ms"] >= 0, p
        assert all(p["state"] != "stopped" and p["restarts"] == 0 for p in parts), parts
        metrics = http.get("/metrics")
        if metrics.status_code == 200:
            assert 'ametist_partition_writable{collection="full"' in metrics.text

        # Making new things on a full disk: a clear retryable error, nothing half-made.
        r = http.put("/collections/other", json={"vectors": {"size": DIM, "distance": "Cosine"}})
        print(f"create collection on a full disk: {r.status_code} {r.text[:300]}")
        assert r.status_code != 500, r.text
        if r.status_code != 200:
            refused_for_space(r)
            names = [c["name"] for c in http.get("/collections").json()["result"]["collections"]]
            assert "other" not in names, names
            assert not (small_disk / "data" / "collections" / "other").exists()
        r = http.put("/collections/full/index?wait=true", json={"field_name": "n", "field_schema": "integer"})
        print(f"create index on a full disk: {r.status_code} {r.text[:300]}")
        assert r.status_code != 500, r.text
        if r.status_code != 200:
            refused_for_space(r)
            info = http.get("/collections/full").json()["result"]
            assert "n" not in info.get("payload_schema", {}), info
        r = http.post("/collections/full/snapshots")
        print(f"create snapshot on a full disk: {r.status_code} {r.text[:300]}")
        assert r.status_code != 500, r.text
        if r.status_code != 200:
            refused_for_space(r)

        # Free the space: writes come back by themselves, within the log's retry backoff.
        filler.unlink()
        freed = time.monotonic()
        deadline = freed + 40
        while True:
            r = http.put("/collections/full/points?wait=true", json=points([6000]))
            if r.status_code == 200:
                acked.add(6000)
                print(f"writes came back {time.monotonic() - freed:.1f}s after the space was freed")
                break
            refused_for_space(r)
            assert time.monotonic() < deadline, f"writes did not come back: {r.text}"
            time.sleep(0.25)
        more = set(range(7000, 7050))
        r = http.put("/collections/full/points?wait=true", json=points(more))
        assert r.status_code == 200, r.text
        acked |= more
        parts = http.get("/collections/full/partitions").json()["result"]["partitions"]
        assert all(p["state"] == "running" and p.get("storage_error") is None for p in parts), parts
        assert all(p["restarts"] == 0 for p in parts), parts
        assert ids_present(http, "full", acked) == acked
        r = http.put("/collections/other", json={"vectors": {"size": DIM, "distance": "Cosine"}})
        assert r.status_code == 200, r.text

        # Everything acknowledged is there after a restart too.
        s.restart()
        http = httpx.Client(base_url=s.url, timeout=30)
        assert ids_present(http, "full", acked) == acked
        r = http.post("/collections/full/points/count", json={"exact": True})
        assert len(acked) <= r.json()["result"]["count"] <= len(acked | unknown)
        assert time.monotonic() - started < 60, "the full-disk test must stay well under a minute"
    finally:
        s.stop()
        filler.unlink(missing_ok=True)
