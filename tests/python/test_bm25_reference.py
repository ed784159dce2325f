"""BM25 through `ametist serve` against an independent reference (issue 6): rank_bm25's
BM25Okapi (pinned in requirements.txt) with the same tokenisation and Lucene's idf (see
bm25_ref.py), within 1e-4, on a small corpus in collections of 1 and of 5 partitions,
whose answers must also be identical to each other (ids, order and scores). The
collection-wide statistics are what makes the 5-partition scores equal: each partition
alone would see other document counts and frequencies. Also after deletes and updates.
"""

from __future__ import annotations

import random

import httpx
import pytest

from bm25_ref import direct_scores, rank_bm25_scores

pytest.importorskip("rank_bm25")

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a quick brown dog outpaces a quick fox",
    "lazy dogs sleep all day",
    "the fox the fox the fox",
    "rust is a systems programming language",
    "vector databases index embeddings for nearest neighbour search",
    "full text search ranks documents with bm25",
    "the brown bear and the brown fox are friends",
    "search engines use inverted indexes for text search",
    "dog",
]
WORDS = "fox dog brown quick lazy search text index rust vector bear the a of and error disk e1234".split()
QUERIES = ["quick fox", "brown dog", "the", "text search", "search search", "lazy", "rust language unknownword",
           "fox dog bear", "e1234 error", "a"]


def corpus() -> dict:
    rng = random.Random(5)
    docs = {i: t for i, t in enumerate(CORPUS)}
    for i in range(len(CORPUS), 80):
        docs[i] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
    return docs


def make(server, name: str, shards: int, docs: dict) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as h:
        r = h.put(f"/collections/{name}", json={"vectors": {"size": 2, "distance": "Dot"}, "shard_number": shards})
        assert r.status_code == 200, r.text
        r = h.put(f"/collections/{name}/index?wait=true", json={"field_name": "body", "field_schema": "text"})
        assert r.status_code == 200, r.text
        pts = [{"id": i, "vector": [1.0, float(i)], "payload": {"body": t}} for i, t in docs.items()]
        r = h.put(f"/collections/{name}/points?wait=true", json={"points": pts})
        assert r.status_code == 200, r.text


def bm25(server, name: str, text: str) -> list:
    r = httpx.post(f"{server.url}/collections/{name}/points/query",
                   json={"query": {"bm25": {"field": "body", "text": text}}, "limit": 1000}, timeout=30)
    assert r.status_code == 200, r.text
    return [(p["id"], p["score"]) for p in r.json()["result"]["points"]]


def check(server, names: list, docs: dict) -> None:
    for q in QUERIES:
        want = rank_bm25_scores(docs, q)
        # The package and a direct evaluation of the formula agree (guards the plug-in).
        direct = direct_scores(docs, q)
        assert set(direct) == set(want) and all(abs(direct[i] - want[i]) < 1e-9 for i in want), q
        answers = [bm25(server, n, q) for n in names]
        for got in answers:
            assert {i for i, _ in got} == set(want), q
            for i, score in got:
                assert abs(score - want[i]) < 1e-4, (q, i, score, want[i])
            # Sorted by score, ties by id.
            assert got == sorted(got, key=lambda h: (-h[1], h[0])), q
        assert all(a == answers[0] for a in answers), f"{q}: 1 and 5 partitions differ"


def test_bm25_scores_equal_rank_bm25_with_1_and_5_partitions(server, client):
    docs = corpus()
    names = [f"bm25ref_{s}" for s in (1, 5)]
    try:
        for n, s in zip(names, (1, 5)):
            make(server, n, s, docs)
        check(server, names, docs)

        # Deletes and updates move the statistics the same way on both.
        rng = random.Random(9)
        gone = rng.sample(sorted(docs), 15)
        changed = rng.sample(sorted(set(docs) - set(gone)), 10)
        for n in names:
            with httpx.Client(base_url=server.url, timeout=30) as h:
                assert h.post(f"/collections/{n}/points/delete?wait=true", json={"points": gone}).status_code == 200
                r = h.post(f"/collections/{n}/points/payload?wait=true",
                           json={"payload": {"body": "error e1234 the quick fox"}, "points": changed})
                assert r.status_code == 200, r.text
        for i in gone:
            del docs[i]
        for i in changed:
            docs[i] = "error e1234 the quick fox"
        check(server, names, docs)
    finally:
        for n in names:
            client.delete_collection(n)
