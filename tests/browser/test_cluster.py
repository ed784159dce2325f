"""The cluster view of a real one-node cluster (`remoting.enabled`): the member, the leader
and its term, and which node serves each partition, as `GET /cluster` says."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By

from conftest import Page


@pytest.fixture(scope="module")
def cluster_node():
    from ametist_server import AmetistServer, free_port

    s = AmetistServer(
        "remoting.enabled=true",
        "remoting.host=127.0.0.1",
        f"remoting.port={free_port()}",
        "remoting.secret=browser-test-secret",
        partitions=2,
    )
    yield s
    s.stop()


def test_cluster_view_shows_members_leader_term_and_placement(browser, cluster_node):
    with httpx.Client(base_url=cluster_node.url, timeout=30) as http:
        r = http.put("/collections/placed", json={"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 3})
        assert r.status_code == 200, r.text
        status = http.get("/cluster").json()["result"]
    assert status["status"] == "enabled"
    me = str(status["peer_id"])

    page = Page(browser, cluster_node.url)
    page.open("cluster")
    page.wait_text("#cluster-leader", lambda t: t == me)
    assert page.text("#cluster-self") == me
    assert int(page.text("#cluster-term")) >= 1
    rows = page.els("#cluster-members tbody tr")
    assert [r.get_attribute("data-node") for r in rows] == [me]
    assert "leader" in rows[0].text and "this node" in rows[0].text
    placement = [r.text.split() for r in page.els("#cluster-placement tbody tr")]
    # Collection, partition, primary, term, copies.
    assert placement == [["placed", str(p), me, "0", me] for p in range(3)]
    page.screenshot("cluster-enabled")
