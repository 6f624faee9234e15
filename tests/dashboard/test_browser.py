"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium.

List → sign in → open a halted execution → a user who is not an approver is
refused → an approver approves → the page follows the execution to completed
live (Server-Sent Events, no reload). Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as expected
from selenium.webdriver.support.ui import WebDriverWait

import flowkit
from flowkit.dashboard import create_app

from .conftest import USERS, Shop, halted, on_backends
from .server import serving

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver; .ci/run installs both

HOSTILE = "<script>window.pwned = true</script><img src=x onerror='window.pwned = true'>"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1100",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(browser: WebDriver, name: str) -> None:
    wait = WebDriverWait(browser, 20)
    wait.until(expected.presence_of_element_located((By.ID, "login")))
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(f"{name}-pw")
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait.until(expected.text_to_be_present_in_element((By.ID, "user"), name))


@on_backends("sqlite", "redis")
def test_approve_in_the_browser_and_watch_it_complete(
    browser: WebDriver, engine: flowkit.Engine, shop: Shop, tmp_path: Path
) -> None:
    execution_id = halted(engine, 250, note=HOSTILE)
    wait = WebDriverWait(browser, 30)

    with serving(create_app(engine, users=USERS, poll_seconds=0.2)) as base:
        # The list, after signing in as bob (no approver of this expense).
        browser.get(f"{base}/executions")
        _sign_in(browser, "bob")
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-execution="{execution_id}"]')
        assert "halted" in row.text
        browser.save_screenshot(str(tmp_path / "1-list.png"))

        # Open the halted execution: its prompt, its graph, the hostile ctx shown as text.
        row.find_element(By.TAG_NAME, "a").click()
        wait.until(expected.text_to_be_present_in_element((By.ID, "prompt"), "Approve 250?"))
        assert browser.find_element(By.ID, "status").text == "halted"
        current = browser.find_element(By.CSS_SELECTOR, "svg.graph g.current")
        assert current.get_attribute("data-step") == "ask"
        assert HOSTILE in browser.find_element(By.ID, "ctx").text
        assert browser.execute_script("return window.pwned === undefined")

        # bob may not decide.
        browser.find_element(By.ID, "approve").click()
        wait.until(expected.text_to_be_present_in_element((By.ID, "error"), "not one of them"))
        assert "'bob' is not one of them" in browser.find_element(By.ID, "error").text
        assert engine.load(execution_id).status is flowkit.Status.HALTED
        browser.save_screenshot(str(tmp_path / "2-refused.png"))

        # alice may: sign out, come back to the execution, sign in as alice.
        browser.find_element(By.CSS_SELECTOR, "header form button").click()
        wait.until(expected.presence_of_element_located((By.ID, "login")))  # signed out
        browser.get(f"{base}/executions/{execution_id}")
        _sign_in(browser, "alice")
        wait.until(expected.presence_of_element_located((By.ID, "approve")))
        wait.until(lambda driver: driver.execute_script("return document.body.dataset.live"))
        browser.save_screenshot(str(tmp_path / "3-halted.png"))

        shop.gate.clear()  # the step after the approval waits, so the page sees it run
        browser.find_element(By.ID, "response").send_keys('{"ok": true}')
        browser.find_element(By.ID, "approve").click()
        wait.until(expected.text_to_be_present_in_element((By.ID, "notice"), "Approved."))
        assert browser.find_element(By.ID, "status").text == "running"
        browser.execute_script("window.samePage = true")
        wait.until(lambda driver: driver.execute_script("return document.body.dataset.live"))

        shop.gate.set()  # the execution completes in the engine; the page hears of it
        wait.until(expected.text_to_be_present_in_element((By.ID, "status"), "completed"))
        assert browser.execute_script("return window.samePage === true"), "the page reloaded"
        assert '"approved": true' in browser.find_element(By.ID, "result").text
        done = browser.find_elements(By.CSS_SELECTOR, "svg.graph g.done")
        assert {box.get_attribute("data-step") for box in done} >= {"ask", "ship", "done"}
        browser.save_screenshot(str(tmp_path / "4-completed.png"))

    assert engine.load(execution_id).status is flowkit.Status.COMPLETED
    assert sorted(path.name for path in tmp_path.glob("*.png")) == [
        "1-list.png",
        "2-refused.png",
        "3-halted.png",
        "4-completed.png",
    ]
