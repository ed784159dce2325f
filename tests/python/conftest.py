"""Fixtures: a real `ametist serve` process and real qdrant-client clients talking to it.

The server launcher lives in `tests/support/ametist_server.py` (shared with the hostile
suite); it is re-exported here so that tests can `from conftest import AmetistServer`.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from ametist_server import REPO, AmetistServer, ametist_binary, free_port  # noqa: E402,F401


@pytest.fixture(scope="session")
def server():
    s = AmetistServer()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server):
    c = server.client()
    yield c
    c.close()


_names = itertools.count()


@pytest.fixture
def collection_name(client):
    """A fresh collection name; the collection (if the test made one) is deleted after."""
    name = f"t{next(_names)}_{uuid.uuid4().hex[:8]}"
    yield name
    try:
        client.delete_collection(name)
    except Exception:
        pass
