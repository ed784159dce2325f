"""Keyword search survives kill -9 (issue 6): the real `ametist serve` on a data directory
of its own, a 3-partition collection with two text indexes (one made before the upserts,
one on existing data, with stemming and stop words), documents upserted with `wait=true`,
then deleted (by id and by filter), overwritten and re-payloaded, so the BM25 statistics
must reflect those changes. Keyword, filtered keyword and hybrid (rrf, dbsf) answers are
recorded, the process is killed with SIGKILL, restarted on the same directory, and the
answers must be identical (ids and scores, bit for bit).

Two recovery paths:
* `test_keyword_search_survives_kill9_log_replay`: no snapshot was ever taken (asserted),
  so everything comes back by replaying the write-ahead logs;
* `test_keyword_search_survives_kill9_snapshot_then_log`: every write is followed by a
  partition snapshot (`storage.snapshot_wal_bytes=1`), kill -9, restart from the snapshots
  alone; then more deletes/updates go to the log only, kill -9 again, and the restart
  loads the snapshots and replays the log tail.

The scores are also checked against an independent BM25 (bm25_ref.direct_scores) over
the documents that should exist, which shows the statistics forgot deleted and
overwritten text.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from bm25_ref import direct_scores
from conftest import ametist_binary, free_port

NAME = "docs"
SHARDS = 3
DIM = 8
VOCAB = [
    "error", "disk", "full", "rust", "actor", "vector", "search", "keyword", "index", "snapshot",
    "partition", "log", "replay", "crash", "server", "client", "query", "score", "token", "shard",
    "network", "timeout", "memory", "thread", "mailbox", "graph", "filter", "payload", "batch", "commit",
    "running", "runs", "ran", "the", "and", "of", "is", "a", "e1234", "x42",
]


class Serve:
    """`ametist serve` on a given data directory; can be killed with SIGKILL and restarted."""

    def __init__(self, data_dir: Path, *sets: str):
        self.data_dir = data_dir
        self.sets = sets
        self.log_path = data_dir.parent / "server.log"
        self.proc = None
        self.start()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMETIST")}
        env["RUST_LOG"] = "warn"
        for _attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            args = [str(ametist_binary()), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                    "--data-dir", str(self.data_dir), "--set", "server.grpc_port=null"]
            for s in self.sets:
                args += ["--set", s]
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(args, cwd=self.data_dir.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if httpx.get(self.url + "/", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if "in use" not in self.log().lower():
                break
        raise RuntimeError(f"ametist serve did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL: no shutdown snapshot, no flush
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def call(self, method: str, path: str, body=None) -> dict:
        r = httpx.request(method, self.url + path, json=body, timeout=60)
        assert r.status_code == 200, (method, path, r.status_code, r.text, self.log())
        return r.json()["result"]

    def wait_ready(self, name: str = NAME) -> None:
        """Until every partition answers (recovery may still be running after GET / answers)."""
        deadline = time.monotonic() + 60
        while True:
            r = httpx.post(f"{self.url}/collections/{name}/points/count", json={"exact": True}, timeout=30)
            if r.status_code == 200:
                return
            assert time.monotonic() < deadline, (r.status_code, r.text, self.log())
            time.sleep(0.1)


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="ametist-textrecovery-") as tmp:
        d = Path(tmp) / "data"
        d.mkdir()
        yield d


def text(rng: random.Random) -> str:
    # A skewed vocabulary so that document frequencies differ a lot between terms.
    return " ".join(VOCAB[min(int(rng.expovariate(0.12)), len(VOCAB) - 1)] for _ in range(rng.randint(3, 14)))


def point(rng: random.Random, i: int) -> dict:
    return {
        "id": i,
        "vector": [rng.uniform(-1, 1) for _ in range(DIM)],
        "payload": {"body": text(rng), "title": text(rng), "group": i % 4},
    }


class Corpus:
    """What the collection should hold: {id: body} (for the reference scores)."""

    def __init__(self):
        self.body: dict[int, str] = {}

    def upsert(self, s: Serve, pts: list[dict]) -> None:
        s.call("PUT", f"/collections/{NAME}/points?wait=true", {"points": pts})
        for p in pts:
            self.body[p["id"]] = p["payload"]["body"]

    def delete_ids(self, s: Serve, ids: list[int]) -> None:
        s.call("POST", f"/collections/{NAME}/points/delete?wait=true", {"points": ids})
        for i in ids:
            self.body.pop(i, None)

    def delete_group(self, s: Serve, group: int, below: int) -> None:
        flt = {"must": [{"key": "group", "match": {"value": group}}, {"has_id": [i for i in self.body if i < below]}]}
        s.call("POST", f"/collections/{NAME}/points/delete?wait=true", {"filter": flt})
        for i in [i for i in self.body if i < below and i % 4 == group]:
            del self.body[i]

    def set_body(self, s: Serve, ids: list[int], body: str) -> None:
        s.call("POST", f"/collections/{NAME}/points/payload?wait=true", {"payload": {"body": body}, "points": ids})
        for i in ids:
            if i in self.body:
                self.body[i] = body


def setup(s: Serve, corpus: Corpus, rng: random.Random) -> None:
    s.call("PUT", f"/collections/{NAME}", {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": SHARDS})
    s.call("PUT", f"/collections/{NAME}/index?wait=true", {"field_name": "body", "field_schema": "text"})
    s.call("PUT", f"/collections/{NAME}/index?wait=true", {"field_name": "group", "field_schema": "integer"})
    for start in range(0, 400, 50):
        corpus.upsert(s, [point(rng, i) for i in range(start, start + 50)])
    # A text index made on existing data, with stemming and stop words.
    s.call("PUT", f"/collections/{NAME}/index?wait=true", {
        "field_name": "title",
        "field_schema": {"type": "text", "tokenizer": "word", "lowercase": True,
                         "stemmer": {"type": "snowball", "language": "english"}, "stopwords": "english"},
    })
    change(s, corpus, rng, 0)


def change(s: Serve, corpus: Corpus, rng: random.Random, round_: int) -> None:
    """Deletes, overwrites and payload updates that move the BM25 statistics."""
    live = sorted(corpus.body)
    corpus.delete_ids(s, rng.sample(live, 40))
    # Overwrite some (new text and vector), add a few new ones.
    live = sorted(corpus.body)
    corpus.upsert(s, [point(rng, i) for i in rng.sample(live, 30)] + [point(rng, 1000 + 100 * round_ + k) for k in range(10)])
    corpus.set_body(s, rng.sample(sorted(corpus.body), 15), "error e1234 disk full error")
    corpus.delete_group(s, group=round_ % 4, below=60 + 40 * round_)


QUERIES = ["error", "disk full", "e1234 error", "rust actor vector", "snapshot replay crash", "the", "x42", "commit batch log"]


def answers(s: Serve) -> dict:
    """Every query's answer: [(id, score)] in order."""
    out = {}
    q = f"/collections/{NAME}/points/query"

    def run(key, body):
        out[key] = [(p["id"], p["score"]) for p in s.call("POST", q, body)["points"]]

    for text_ in QUERIES:
        run(("body", text_), {"query": {"bm25": {"field": "body", "text": text_}}, "limit": 1000})
    for text_ in ["running the client", "runs of shards", "timeout memory thread"]:
        run(("title", text_), {"query": {"bm25": {"field": "title", "text": text_}}, "limit": 25})
    run(("filtered",), {"query": {"bm25": {"field": "body", "text": "error disk"}}, "limit": 20,
                        "filter": {"must": [{"key": "group", "match": {"any": [1, 2]}}]}})
    for fusion in ("rrf", "dbsf"):
        run(("hybrid", fusion), {
            "prefetch": [
                {"query": [0.3, -0.2, 0.9, 0.1, 0.0, 0.5, -0.7, 0.2], "limit": 30},
                {"query": {"bm25": {"field": "body", "text": "error search index"}}, "limit": 30},
                {"query": {"bm25": {"field": "title", "text": "crashed servers"}}, "limit": 30},
            ],
            "query": {"fusion": fusion},
            "limit": 15,
        })
    out[("count",)] = s.call("POST", f"/collections/{NAME}/points/count", {"exact": True})["count"]
    return out


def check_reference(got: dict, corpus: Corpus) -> None:
    """Body scores equal an independent BM25 over the documents that should be there."""
    assert got[("count",)] == len(corpus.body)
    for text_ in QUERIES:
        want = direct_scores(corpus.body, text_)
        have = dict(got[("body", text_)])
        assert set(have) == set(want), text_
        for i, score in have.items():
            assert abs(score - want[i]) < 1e-4, (text_, i, score, want[i])
    for key, hits in got.items():
        if key[0] != "count":
            assert hits, key


def snapshots(data_dir: Path) -> list[Path]:
    return sorted(data_dir.rglob("*.snap"))


def test_keyword_search_survives_kill9_log_replay(data_dir):
    rng = random.Random(61)
    corpus = Corpus()
    s = Serve(data_dir, f"partitions.count={SHARDS}")
    try:
        setup(s, corpus, rng)
        change(s, corpus, rng, 1)
        before = answers(s)
        check_reference(before, corpus)
        assert snapshots(data_dir) == [], "this variant must recover from the log alone"
        s.kill9()
        s.start()
        s.wait_ready()
        after = answers(s)
        assert after == before
        # Writes after the restart still move the statistics.
        change(s, corpus, rng, 2)
        check_reference(answers(s), corpus)
    finally:
        s.stop()


def test_keyword_search_survives_kill9_snapshot_then_log(data_dir):
    rng = random.Random(62)
    corpus = Corpus()
    # Every commit is followed by a snapshot of its partition.
    s = Serve(data_dir, f"partitions.count={SHARDS}", "storage.snapshot_wal_bytes=1")
    try:
        setup(s, corpus, rng)
        before = answers(s)  # a search reaches each partition after its pending snapshot
        check_reference(before, corpus)
        parts = {p.parent for p in snapshots(data_dir)}
        assert len(parts) >= SHARDS, f"expected snapshots in every partition, found {parts}"
        s.kill9()

        # Restart with the default settings (no snapshot before 64 MiB of log or 10 min):
        # the state comes from the snapshots alone.
        s.sets = (f"partitions.count={SHARDS}",)
        s.start()
        s.wait_ready()
        assert answers(s) == before

        # Now changes that only the log holds, then kill -9 again: snapshot + log replay.
        newest = snapshots(data_dir)
        change(s, corpus, rng, 1)
        before = answers(s)
        check_reference(before, corpus)
        assert snapshots(data_dir) == newest, "no snapshot was expected after the restart"
        s.kill9()
        s.start()
        s.wait_ready()
        after = answers(s)
        assert after == before
    finally:
        s.stop()
