"""With `service.api_key` set, the dashboard shows nothing of the data until the key is
given: its assets are public (they hold no data), every figure comes from the API, which
refuses requests without the key."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By

from conftest import Page

KEY = "dashboard-test-key"
SECRET_NAME = "payroll-2026"
SECRET_PAYLOAD = "only-with-the-key"


@pytest.fixture(scope="module")
def keyed_server():
    from ametist_server import AmetistServer

    s = AmetistServer(f"service.api_key={KEY}", partitions=1)
    with httpx.Client(base_url=s.url, timeout=30, headers={"api-key": KEY}) as c:
        assert c.put(f"/collections/{SECRET_NAME}", json={"vectors": {"size": 2, "distance": "Dot"}}).status_code == 200
        r = c.put(
            f"/collections/{SECRET_NAME}/points?wait=true",
            json={"points": [{"id": 1, "vector": [1, 0], "payload": {"note": SECRET_PAYLOAD}}]},
        )
        assert r.status_code == 200, r.text
    yield s
    s.stop()


def test_without_the_key_the_api_refuses_and_the_assets_hold_no_data(keyed_server):
    with httpx.Client(base_url=keyed_server.url, timeout=30) as c:
        for path in ["/dashboard", "/dashboard/app.js", "/dashboard/style.css"]:
            r = c.get(path)
            assert r.status_code == 200, path
            assert SECRET_NAME not in r.text
        assert c.get("/", headers={"accept": "text/html"}).status_code == 303
        for path in ["/", "/collections", "/metrics/history", f"/collections/{SECRET_NAME}/partitions", "/cluster"]:
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json()["status"]["error"], path
        assert c.get("/metrics/history", headers={"api-key": KEY}).status_code == 200


def visible_data(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text + driver.find_element(By.ID, "view").get_attribute("innerHTML")


def test_the_page_asks_for_the_key_and_shows_nothing_without_it(browser, keyed_server, console):
    page = Page(browser, keyed_server.url)
    browser.get(f"{keyed_server.url}/dashboard#/collections")
    page.wait(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert not browser.find_element(By.ID, "nav").is_displayed()
    assert SECRET_NAME not in visible_data(browser)
    page.screenshot("api-key-login")

    # Another view by its address: still only the key form.
    browser.get(f"{keyed_server.url}/dashboard#/points")
    page.wait(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert SECRET_NAME not in visible_data(browser) and SECRET_PAYLOAD not in visible_data(browser)

    # A wrong key is refused, and still nothing is shown.
    page.type("#login-key", "not-the-key")
    page.click("#login-form button")
    page.wait_text("#login-error", lambda t: "refused" in t)
    assert SECRET_NAME not in visible_data(browser)

    # The right key: the data appears, and the page sends the key with every request.
    page.type("#login-key", KEY)
    page.click("#login-form button")
    page.el("#points-collection")
    page.wait_text("#points-table tbody", lambda t: SECRET_PAYLOAD in t)
    page.open("collections")
    page.wait_text(f'tr[data-collection="{SECRET_NAME}"] .points', lambda t: t == "1")

    # Forgetting the key hides everything again.
    page.click("#sign-out")
    page.wait(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert SECRET_NAME not in visible_data(browser)
    # The first visit's and the wrong key's refusals are the only errors the page logged.
    console.extend(["status of 401", "status of 403"])
