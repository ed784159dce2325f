"""LangChain's QdrantVectorStore (langchain-qdrant, pinned) against ametist serve, with a
deterministic fake embedding: add texts, search with a metadata filter, delete."""

from __future__ import annotations

import hashlib
import math
import uuid

from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore
from qdrant_client import models

DIM = 32


class HashingEmbeddings(Embeddings):
    """Bag of words hashed into DIM buckets, normalised: texts sharing words are close."""

    def _embed(self, text: str) -> list[float]:
        v = [0.0] * DIM
        for word in text.lower().split():
            h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            v[h % DIM] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


TEXTS = [
    ("cats purr and sleep all day", "pets"),
    ("dogs bark and fetch sticks", "pets"),
    ("rust compiles fast safe code", "tech"),
    ("vector databases search embeddings", "tech"),
    ("cats and dogs can be friends", "pets"),
]


def test_langchain_add_search_filter_delete(server, collection_name):
    emb = HashingEmbeddings()
    ids = [str(uuid.uuid4()) for _ in TEXTS]
    store = QdrantVectorStore.from_texts(
        [t for t, _ in TEXTS],
        emb,
        metadatas=[{"source": s, "n": i} for i, (_, s) in enumerate(TEXTS)],
        ids=ids,
        url=server.url,
        prefer_grpc=False,
        collection_name=collection_name,
    )

    hits = store.similarity_search("cats sleep", k=2)
    assert hits[0].page_content == "cats purr and sleep all day"
    assert hits[0].metadata["source"] == "pets"

    # A metadata filter: only tech documents, however close the pets ones are.
    tech = models.Filter(must=[models.FieldCondition(key="metadata.source", match=models.MatchValue(value="tech"))])
    hits = store.similarity_search("cats sleep", k=3, filter=tech)
    assert {d.metadata["source"] for d in hits} == {"tech"}
    assert len(hits) == 2

    scored = store.similarity_search_with_score("rust code", k=1)
    assert scored[0][0].page_content == "rust compiles fast safe code"
    assert 0.0 < scored[0][1] <= 1.0 + 1e-6

    # add_texts on the existing store, then delete.
    new_ids = store.add_texts(["cats chase mice at night"], metadatas=[{"source": "pets", "n": 99}])
    assert len(new_ids) == 1
    hits = store.similarity_search("cats chase mice", k=1)
    assert hits[0].metadata["n"] == 99

    assert store.delete(ids=[ids[0], new_ids[0]])
    contents = [d.page_content for d in store.similarity_search("cats", k=10)]
    assert "cats purr and sleep all day" not in contents
    assert "cats chase mice at night" not in contents
    assert len(contents) == 4
