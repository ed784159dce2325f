"""Fixtures: a real `ametist serve` process and real qdrant-client clients talking to it.

The server launcher lives in `tests/support/ametist_server.py` (shared with the hostile
suite); it is re-exported here so that tests can `from conftest import AmetistServer`.
"""

from __future__ import annotations

import itertools
import os
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


def pytest_generate_tests(metafunc):
    """A module that sets `PROTOCOLS = ("rest", "grpc")` runs its tests that take `client`
    once per protocol: the same qdrant-client calls over REST and over Qdrant's gRPC API
    (`prefer_grpc=True`). Other modules use REST."""
    if "client" in metafunc.fixturenames:
        protocols = getattr(metafunc.module, "PROTOCOLS", ("rest",))
        if metafunc.definition.get_closest_marker("rest_only"):
            protocols = ("rest",)
        if os.environ.get("AMETIST_TEST_PROTOCOLS"):
            protocols = tuple(os.environ["AMETIST_TEST_PROTOCOLS"].split(","))
        metafunc.parametrize("client", protocols, indirect=True, scope="session")


@pytest.fixture(scope="session")
def client(server, request):
    c = server.client(prefer_grpc=getattr(request, "param", "rest") == "grpc")
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
