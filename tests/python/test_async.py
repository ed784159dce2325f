"""The asyncio client (AsyncQdrantClient) speaks the same REST API."""

from __future__ import annotations

import asyncio

from qdrant_client import AsyncQdrantClient, models


def test_async_client_round_trip(server, collection_name):
    async def run():
        c = AsyncQdrantClient(url=server.url, prefer_grpc=False, timeout=30)
        try:
            await c.create_collection(
                collection_name, vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE)
            )
            assert await c.collection_exists(collection_name)
            await c.upsert(
                collection_name,
                points=[
                    models.PointStruct(id=i, vector=[1.0, i / 10, 0.0], payload={"i": i}) for i in range(20)
                ],
                wait=True,
            )
            # Concurrent queries.
            answers = await asyncio.gather(
                *[c.query_points(collection_name, query=[1.0, i / 10, 0.0], limit=1) for i in range(20)]
            )
            assert [a.points[0].id for a in answers] == list(range(20))
            batch = await c.query_batch_points(
                collection_name, requests=[models.QueryRequest(query=[1.0, 0.0, 0.0], limit=2, with_payload=True)]
            )
            assert [p.payload["i"] for p in batch[0].points] == [0, 1]
            assert (await c.get_collection(collection_name)).points_count == 20
            await c.delete(collection_name, points_selector=[0, 1], wait=True)
            assert len(await c.retrieve(collection_name, ids=[0, 1, 2])) == 1
            assert await c.delete_collection(collection_name)
        finally:
            await c.close()

    asyncio.run(run())
