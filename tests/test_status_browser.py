"""The status page in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) watching a real crawl (master + 2 local workers on a
slow local site). One page of the site is held back until the checks are done, so the crawl
is still running whatever the machine's speed; the rest of it takes a few seconds.

Set STATUS_SCREENSHOT=/some/file.png to keep a screenshot of the page."""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.request

import pytest

from crawler.sitegen import Site
from procs import wait_for, write_seeds

selenium = pytest.importorskip("selenium", reason="selenium is in the test extra: "
                               "pip install -e '.[test]'")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> tuple[str, str]:
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("NO BROWSER FOUND: the status page is NOT tested in a browser. Install "
                    "Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver; .ci/run does) to run this test.")
    return browser, driver


@pytest.fixture
def browser(tmp_path, monkeypatch):
    binary, driver_path = find_browser()
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must never try to download a driver
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-proxy-server", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,2000",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def table(driver, table_id: str) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tr')].slice(1)"
        ".map(r => [...r.cells].map(c => c.textContent))", "#" + table_id)


def number(driver, element_id: str) -> int:
    text = driver.execute_script("const e = document.getElementById(arguments[0]);"
                                 "return e ? e.textContent : '';", element_id)
    return int(text.replace(",", "")) if re.fullmatch(r"[\d,]+", text or "") else -1


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "stats.json", timeout=5) as response:
        return json.loads(response.read())


def test_status_page_in_chromium_follows_the_crawl(browser, serve, project, procs, tmp_path):
    held = threading.Event()
    site = serve(Site(pages=100), delay=0.1)
    site.extra["/held"] = lambda: (held.wait(60), (200, "text/html", b"<title>held</title>"))[1]
    seeds = write_seeds(project, site.url, site.url + "held")
    master = procs.master([seeds, "--workers", "2", "-o", tmp_path / "out.jsonl",
                           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2"], project)
    try:
        url = re.search(r"status page: (\S+)", master.wait_output("status page: ", 20)).group(1)
        browser.get(url)
        first = wait_for(lambda: max(0, number(browser, "pages-done")), 20,
                         "the page to show a page done", describe=master.describe)
        wait_for(lambda: number(browser, "pages-done") > first, 20,
                 f"the page's pages done to grow past {first}", describe=master.describe)
        assert browser.find_element("id", "state").text == "running"
        assert master.alive()

        def workers_match():
            ids = sorted(w["id"] for w in stats(url)["workers"])
            rows = table(browser, "workers")
            return len(ids) == 2 and sorted(r[0] for r in rows) == ids and rows
        rows = wait_for(workers_match, 20, "the workers table to list the master's 2 workers")
        known = {w["id"]: w for w in stats(url)["workers"]}
        for row in rows:
            assert row[1] == known[row[0]]["address"] and int(row[2]) == known[row[0]]["pid"]
            assert row[-1] == known[row[0]]["version"]

        def hosts_match():
            s = stats(url)
            shown = [r[0] for r in table(browser, "hosts-queue")]
            return shown == [h["host"] for h in s["hosts"]["by_queue"]] == ["127.0.0.1"]
        wait_for(hosts_match, 20, "the hosts table to list the host as /stats.json does")
        points = wait_for(lambda: browser.execute_script(
            "return [...document.querySelectorAll('#chart polyline')]"
            ".map(p => p.getAttribute('points').trim().split(/\\s+/).length)")
            if number(browser, "pages-done") > 0 else None, 20, "the chart's lines")
        assert len(points) == 2 and min(points) >= 2, points
        wait_for(lambda: min(browser.execute_script(
            "return [...document.querySelectorAll('#chart polyline')]"
            ".map(p => p.getAttribute('points').trim().split(/\\s+/).length)")) >= 3, 20,
            "the chart to grow")
        assert browser.execute_script("return document.getElementById('chart')"
                                      ".getBoundingClientRect().height") > 100
        browser.save_screenshot(str(tmp_path / "status-page.png"))
        if os.environ.get("STATUS_SCREENSHOT"):
            shutil.copy(tmp_path / "status-page.png", os.environ["STATUS_SCREENSHOT"])
        assert master.alive(), "the held page keeps the crawl running until here"
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"browser console errors: {errors}"
        browser.get("about:blank")  # stop polling before the master goes away
    finally:
        held.set()
    assert master.wait(60) == 0, master.describe()
    assert "crawl finished: 106 pages done" in master.stdout, master.describe()
