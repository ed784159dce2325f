"""The dashboard in a real browser against a real server, view by view, as a user would use
it: collections are created through the page, points arrive through the API (as they
would from an application), and what the page shows is compared with what the API says.

The tests of this module run in order and build on each other (one server, one browser).
"""

from __future__ import annotations

import json
import random

import httpx
from selenium.webdriver.common.by import By

DIM = 16
GRAPH_POINTS = 1500


def points_of(name: str, n: int, dim: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = ["actor", "mailbox", "graph", "vector", "restart", "snapshot", "amethyst", "crystal"]
    return [
        {
            "id": i,
            "vector": [rng.uniform(-1, 1) for _ in range(dim)],
            "payload": {"group": "abc"[i % 3], "n": i, "title": " ".join(rng.sample(words, 3)), "source": name},
        }
        for i in range(n)
    ]


def upsert(http: httpx.Client, name: str, points: list[dict]) -> None:
    for at in range(0, len(points), 500):
        r = http.put(f"/collections/{name}/points?wait=true", json={"points": points[at : at + 500]})
        assert r.status_code == 200, r.text


def test_root_sends_browsers_to_the_dashboard_and_api_clients_get_json(http):
    r = http.get("/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard", r.text
    r = http.get("/")
    assert r.status_code == 200 and r.json()["title"] == "ametist - vector search engine"
    r = http.get("/dashboard")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_collections_created_through_the_page_show_points_upserted_through_the_api(page, http):
    page.open("collections")
    # "shop" from the form's fields.
    page.type("#new-name", "shop")
    page.type("#new-size", str(DIM))
    page.select("#new-distance", "Dot")
    page.type("#new-partitions", "2")
    page.select("#new-quantization", "int8")
    page.click("#create-submit")
    page.wait_text("#create-done", lambda t: "Created shop" in t)
    info = http.get("/collections/shop").json()["result"]
    assert info["config"]["params"]["vectors"] == {"size": DIM, "distance": "Dot"}
    assert info["config"]["params"]["shard_number"] == 2

    # "bits" walks on Qdrant's binary codes, two bits per dimension.
    page.type("#new-name", "bits")
    page.select("#new-quantization", "binary_two_bits")
    page.click("#create-submit")
    page.wait_text("#create-done", lambda t: "Created bits" in t)
    qc = http.get("/collections/bits").json()["result"]["config"]["quantization_config"]
    assert qc == {"binary": {"always_ram": True, "encoding": "two_bits"}}, qc
    page.select("#new-quantization", "none")

    # "graph" from a whole create body: a graph index even for few points, so that the
    # search console's recall check has something to measure.
    page.driver.find_element(By.CSS_SELECTOR, "#create-form details summary").click()
    body = {
        "vectors": {"size": DIM, "distance": "Cosine"},
        "shard_number": 3,
        "hnsw_config": {"m": 4, "ef_construct": 8, "full_scan_threshold": 10},
    }
    page.type("#new-name", "graph")
    page.set_value("#new-body", json.dumps(body))
    page.click("#create-submit")
    page.wait_text("#create-done", lambda t: "Created graph" in t)
    assert http.get("/collections/graph").json()["result"]["config"]["hnsw_config"]["m"] == 4

    # Points arrive through the API; the page, refreshing itself, shows them.
    upsert(http, "shop", points_of("shop", 300, DIM, 1))
    upsert(http, "graph", points_of("graph", GRAPH_POINTS, DIM, 2))
    r = http.put("/collections/graph/index", json={"field_name": "title", "field_schema": "text"})
    assert r.status_code == 200, r.text
    page.wait_text('tr[data-collection="shop"] .points', lambda t: t == "300")
    page.wait_text('tr[data-collection="graph"] .points', lambda t: t == f"{GRAPH_POINTS:,}")
    assert page.text('tr[data-collection="shop"] .partitions') == "2"
    assert page.text('tr[data-collection="shop"] .vectors') == f"{DIM} · Dot"
    assert page.text('tr[data-collection="shop"] .quantization') == "int8"
    assert page.text('tr[data-collection="graph"] .partitions') == "3"
    page.wait_text('tr[data-collection="graph"] .indexes', lambda t: "title (text)" in t)
    assert page.text('tr[data-collection="shop"] .status') == "green"
    assert "no aliases" in page.text("#aliases").lower()
    page.screenshot("collections")


def test_a_collection_is_deleted_only_after_confirmation(page, http):
    assert http.put("/collections/scratch", json={"vectors": {"size": 2, "distance": "Dot"}}).status_code == 200
    page.open("collections")
    page.click('tr[data-collection="scratch"] .delete-collection')
    page.click('tr[data-collection="scratch"] .cancel-delete')
    page.el('tr[data-collection="scratch"] .delete-collection')
    assert http.get("/collections/scratch/exists").json()["result"]["exists"]
    page.click('tr[data-collection="scratch"] .delete-collection')
    page.click('tr[data-collection="scratch"] .confirm-delete')
    page.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-collection="scratch"]'))
    assert not http.get("/collections/scratch/exists").json()["result"]["exists"]


def test_points_browser_pages_filters_opens_and_deletes(page, http, console):
    page.open("points")
    page.select("#points-collection", "shop")
    page.wait_text("#points-summary", lambda t: t.startswith("300 points"))
    ids = [e.text for e in page.els("#points-table tbody td.id")]
    assert ids == [str(i) for i in range(20)]
    page.click("#points-next")
    page.wait_text("#points-summary", lambda t: "page 2" in t)
    assert [e.text for e in page.els("#points-table tbody td.id")] == [str(i) for i in range(20, 40)]

    # A filter: the page's count and ids are the API's.
    flt = {"must": [{"key": "group", "match": {"value": "b"}}, {"key": "n", "range": {"lt": 100}}]}
    page.set_value("#points-filter", json.dumps(flt))
    page.click("#points-apply")
    expected = http.post("/collections/shop/points/count", json={"filter": flt}).json()["result"]["count"]
    page.wait_text("#points-summary", lambda t: t.startswith(f"{expected} points match"))
    shown = [e.text for e in page.els("#points-table tbody td.id")]
    assert shown == [str(i) for i in range(100) if i % 3 == 1][:20]

    # Open one point: its payload and vector as stored.
    page.click('#points-table tr[data-id="4"]')
    payload = json.loads(page.text("#point-payload"))
    stored = http.get("/collections/shop/points/4").json()["result"]
    assert payload == stored["payload"]
    assert json.loads(page.text("#point-vector")) == stored["vector"]
    page.screenshot("points")

    # Delete it, after confirming.
    page.click("#point-delete")
    page.click("#point-delete-confirm")
    page.wait_text("#point-deleted", lambda t: "Point 4 deleted" in t)
    assert http.get("/collections/shop/points/4").status_code == 404
    page.wait_text("#points-summary", lambda t: t.startswith(f"{expected - 1} points match"))

    # Mistakes are shown under the filter: JSON that does not parse (caught by the page), and
    # a filter the server refuses (its 400 message).
    page.set_value("#points-filter", '{"must": [')
    page.click("#points-apply")
    page.wait_text("#points-filter-error", lambda t: "not valid JSON" in t)
    page.set_value("#points-filter", json.dumps({"must": [{"key": "n", "nonsense": {}}]}))
    page.click("#points-apply")
    page.wait_text("#points-filter-error", lambda t: "Wrong input" in t or "Format error" in t)
    console.append("status of 400")


def test_search_console_results_and_recall_against_exact(page, http):
    rng = random.Random(7)
    query = [rng.uniform(-1, 1) for _ in range(DIM)]
    page.open("search")
    page.select("#search-collection", "graph")
    page.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#search-collection").get_attribute("value") == "graph")
    page.el("#search-vector")
    page.set_value("#search-vector", json.dumps(query))
    page.type("#search-limit", "10")
    page.type("#search-ef", "10")
    page.click("#search-run")
    page.wait_text("#search-time", lambda t: t.startswith("10 hits") and "server" in t)
    body = {"query": query, "limit": 10, "with_payload": True, "params": {"hnsw_ef": 10}}
    want = http.post("/collections/graph/points/query", json=body).json()["result"]["points"]
    rows = page.els("#search-results tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, ".id").text for r in rows] == [str(p["id"]) for p in want]
    assert [r.find_element(By.CSS_SELECTOR, ".score").text for r in rows] == [f"{p['score']:.4f}" for p in want]
    assert json.loads(rows[0].find_element(By.CSS_SELECTOR, ".payload").text) == want[0]["payload"]

    # Compare with exact: the page's recall@10 is the share of the exact top 10 found.
    page.click("#search-compare")
    text = page.wait_text("#search-recall", lambda t: t.startswith("recall@10"))
    exact = http.post("/collections/graph/points/query", json={**body, "params": {"exact": True}}).json()["result"]["points"]
    truth = {p["id"] for p in exact}
    found = sum(p["id"] in truth for p in want)
    assert float(page.el("#search-recall").get_attribute("data-recall")) == found / 10, text
    assert f"({found} of 10)" in text
    misses = {r.get_attribute("data-id") for r in page.els("#search-results tbody tr.miss")}
    assert misses == {str(p["id"]) for p in want if p["id"] not in truth}
    page.screenshot("search")

    # By a point's id: its neighbours by its own vector (the point itself left out, as
    # Qdrant does), the API's answer.
    page.select("#search-mode", "point")
    page.type("#search-point", "1234")
    page.click("#search-exact")
    page.click("#search-run")
    page.wait_text("#search-time", lambda t: t.startswith("10 hits"))
    by_id = {"query": 1234, "limit": 10, "params": {"exact": True}}
    want = http.post("/collections/graph/points/query", json=by_id).json()["result"]["points"]
    assert [e.text for e in page.els("#search-results tbody .id")] == [str(p["id"]) for p in want]
    assert "1234" not in [e.text for e in page.els("#search-results tbody .id")]
    page.click("#search-exact")

    # BM25 over the indexed title: every hit holds a word of the query.
    page.select("#search-mode", "bm25")
    page.select("#search-field", "title")
    page.type("#search-text", "mailbox")
    page.click("#search-run")
    page.wait_text("#search-time", lambda t: t.startswith("10 hits"))
    assert all("mailbox" in json.loads(e.text)["title"] for e in page.els("#search-results tbody .payload"))

    # A hybrid query (vector + BM25, fused with RRF) answers too.
    page.select("#search-mode", "hybrid")
    page.type("#search-text", "mailbox restart")
    page.click("#search-run")
    page.wait_text("#search-time", lambda t: t.startswith("10 hits"))


def test_actors_show_a_panic_and_the_restart(page, http):
    page.open("actors")
    page.select("#actors-collection", "shop")
    page.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#actor-tiles .tile")) == 2)
    page.wait_text('.tile[data-partition="0"] .state', lambda t: t == "running")
    assert page.el('.tile[data-partition="0"] .restarts').get_attribute("data-value") == "0"
    points = sum(int(e.text) for e in page.els("#actor-tiles .points"))
    assert points == 299

    page.click("#fault-toggle")
    page.click('.tile[data-partition="0"] .inject-panic')
    page.wait_text("#fault-note", lambda t: "Injected panic into partition 0" in t)
    # The tiles refresh themselves (no reload): the supervisor's restart shows up.
    page.wait(lambda d: d.find_element(By.CSS_SELECTOR, '.tile[data-partition="0"] .restarts').get_attribute("data-value") == "1")
    page.wait_text('.tile[data-partition="0"] .state', lambda t: t == "running")
    assert "injected from the dashboard" in page.text('.tile[data-partition="0"] .failure')
    assert page.el('.tile[data-partition="1"] .restarts').get_attribute("data-value") == "0"
    parts = http.get("/collections/shop/partitions").json()["result"]["partitions"]
    assert [p["restarts"] for p in parts] == [1, 0]
    page.screenshot("actors")


def test_cluster_view_of_a_single_node(page):
    page.open("cluster")
    page.wait_text("#cluster-disabled", lambda t: "runs alone" in t)
    page.screenshot("cluster")


def test_metrics_charts_from_the_servers_own_figures(page, http):
    page.open("metrics")
    row = 'tr[data-route="POST /collections/{name}/points/query"]'
    page.wait_text(f"{row} .count", lambda t: int(t.replace(",", "")) >= 3)
    history = http.get("/metrics/history").json()["result"]
    assert history["routes"][0]["route"] == "*" and history["routes"][0]["count"] > 0
    # The charts are drawn: both canvases have painted pixels.
    painted = page.driver.execute_script(
        "return ['chart-rate', 'chart-latency'].map((id) => {"
        "  const c = document.getElementById(id);"
        "  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; });"
    )
    assert all(n > 500 for n in painted), painted
    page.click(row)
    page.wait(lambda d: "points/query" in d.find_element(By.CSS_SELECTOR, ".chart:nth-child(2) h2").text)
    page.screenshot("metrics")


def test_every_view_loads_without_console_errors(page, browser):
    """Each view in turn, waiting for its data: the page logs no error at all (the
    `console` fixture checks it, with nothing allowed)."""
    browser.get_log("browser")
    for view, ready in [
        ("collections", 'tr[data-collection="graph"] .points'),
        ("points", "#points-table tbody td.id"),
        ("search", "#search-run"),
        ("actors", "#actor-tiles .tile"),
        ("cluster", "#cluster-disabled"),
        ("metrics", "#metrics-routes tbody tr"),
    ]:
        page.open(view)
        page.el(ready)
