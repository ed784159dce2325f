"""Crafted collection snapshots: an uploaded or recovered file passes the checks a created
collection passes, every point must sit in the partition its id routes to, and a bad file
changes nothing (issue 21, items 4 and 5).

Snapshot layout (crates/ametist-engine/src/snapshots.rs): "AMCSNAP\\0" | u16 format |
u32 length + spec JSON | u32 partition count | per partition u64 length + image | u32
CRC-32C of everything before it.
"""

from __future__ import annotations

import json
import struct

import httpx
import pytest

from conftest import refused


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def parse(blob: bytes) -> tuple[dict, list[bytes]]:
    assert blob[:8] == b"AMCSNAP\0"
    (spec_len,) = struct.unpack_from("<I", blob, 10)
    spec = json.loads(blob[14 : 14 + spec_len])
    pos = 14 + spec_len
    (count,) = struct.unpack_from("<I", blob, pos)
    pos += 4
    images = []
    for _ in range(count):
        (n,) = struct.unpack_from("<Q", blob, pos)
        images.append(blob[pos + 8 : pos + 8 + n])
        pos += 8 + n
    assert crc32c(blob[:-4]) == struct.unpack("<I", blob[-4:])[0], "the parser and the format disagree"
    return spec, images


def build(spec: dict, images: list[bytes], count: int | None = None) -> bytes:
    spec_json = json.dumps(spec).encode()
    out = b"AMCSNAP\0" + struct.pack("<H", 1) + struct.pack("<I", len(spec_json)) + spec_json
    out += struct.pack("<I", len(images) if count is None else count)
    for img in images:
        out += struct.pack("<Q", len(img)) + img
    return out + struct.pack("<I", crc32c(out))


@pytest.fixture(scope="module")
def one_partition(http) -> tuple[dict, list[bytes]]:
    """A real snapshot of a one-partition collection of 20 points."""
    r = http.put("/collections/snapsrc", json={"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1})
    assert r.status_code == 200, r.text
    points = [{"id": i, "vector": [i, 1, 0, 0], "payload": {"i": i}} for i in range(20)]
    assert http.put("/collections/snapsrc/points?wait=true", json={"points": points}).status_code == 200
    d = http.post("/collections/snapsrc/snapshots").json()["result"]
    blob = http.get(f"/collections/snapsrc/snapshots/{d['name']}").content
    http.delete("/collections/snapsrc")
    return parse(blob)


def upload(http: httpx.Client, name: str, blob: bytes) -> httpx.Response:
    return http.post(
        f"/collections/{name}/snapshots/upload", files={"snapshot": ("crafted.snapshot", blob)}, timeout=120
    )


def test_a_real_snapshot_round_trips(http, one_partition):
    spec, images = one_partition
    r = upload(http, "roundtrip", build(spec, images))
    assert r.status_code == 200, r.text
    assert http.post("/collections/roundtrip/points/count", json={}).json()["result"]["count"] == 20
    http.delete("/collections/roundtrip")


@pytest.mark.parametrize("partitions", [0, 2000, 2**32 - 1])
def test_partition_counts_beyond_what_create_allows_are_refused(http, one_partition, partitions):
    spec, images = one_partition
    crafted = dict(spec, partitions=partitions)
    # The same image in every partition: each point would be counted `partitions` times.
    blob = build(crafted, images * min(partitions, 2000), count=partitions)
    refused(upload(http, "crafted", blob), 400, "partition")
    assert http.get("/collections/crafted/exists").json()["result"]["exists"] is False


def test_a_point_in_the_wrong_partition_is_refused(http, one_partition):
    spec, images = one_partition
    # Two partitions holding the same points: half of them sit where their id does not route.
    refused(upload(http, "crafted", build(dict(spec, partitions=2), images * 2)), 400, "belongs to partition")
    assert http.get("/collections/crafted/exists").json()["result"]["exists"] is False


@pytest.mark.parametrize(
    "field,value",
    [("dim", 0), ("dim", 70_000), ("index", {"type": "hnsw", "m": 10**9}), ("index", {"ef_construction": 2**32})],
)
def test_settings_a_create_would_refuse_are_refused(http, one_partition, field, value):
    spec, images = one_partition
    crafted = dict(spec)
    crafted[field] = dict(spec[field], **value) if isinstance(value, dict) else value
    refused(upload(http, "crafted", build(crafted, images)), 400)
    assert http.get("/collections/crafted/exists").json()["result"]["exists"] is False


def test_damaged_files_change_nothing(http, one_partition, reference):
    spec, images = one_partition
    good = build(spec, images)
    cases = {
        "truncated": good[: len(good) // 2],
        "bad checksum": good[:-1] + bytes([good[-1] ^ 1]),
        "trailing bytes": good + b"x",
        "not a snapshot": b"PK\x03\x04" + b"\0" * 100,
        "huge spec length": b"AMCSNAP\0" + struct.pack("<H", 1) + struct.pack("<I", 2**31) + b"{}",
        "huge image length": b"AMCSNAP\0"
        + struct.pack("<H", 1)
        + struct.pack("<I", len(json.dumps(spec)))
        + json.dumps(spec).encode()
        + struct.pack("<I", 1)
        + struct.pack("<Q", 2**62),
        "empty": b"",
    }
    for what, blob in cases.items():
        # Over an existing collection: a bad file must leave it as it was.
        r = upload(http, "reference", blob)
        assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text}"
