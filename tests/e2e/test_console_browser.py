"""The decision console in a real browser (headless Chromium from Debian, driven by Selenium):
a hard outage's failover recommendation shows up waiting, Approve is clicked, and the
application arrives on the page and in Route 53 (moto).

Set ``AUTOPILOT_CONSOLE_SCREENSHOTS=docs`` to write the screenshots the README shows."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until
from tests.e2e.test_e2e_approvals import (
    HARD_OUTAGE,
    SETS,
    approvals_env,
    make_zone,
    weights,
)
from tests.e2e.test_e2e_failover import wait_evaluating
from tests.support.aws import MotoServer
from tests.support.debian import ensure_debian_package

pytestmark = pytest.mark.kafka

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1440,1100",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    try:
        chromium = ensure_debian_package("chromium")
        driver_path = ensure_debian_package("chromedriver", "chromium-driver")
    except AssertionError as exc:
        pytest.skip(f"headless Chromium is not available: {exc}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fresh(action, attempts: int = 50):
    """``action()``, again if the page re-drew the element under it (new data arrived)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(attempts - 1):
        try:
            return action()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return action()


def shoot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if target := os.environ.get("AUTOPILOT_CONSOLE_SCREENSHOTS"):
        shutil.copy(path, ROOT / target / name)


def test_approve_in_the_console_applies_the_failover(
    browser, start_worker, topic_names, tmp_path: Path, aws: MotoServer
) -> None:
    from selenium.webdriver.common.by import By

    zone_id = make_zone()
    worker = start_worker(approvals_env(aws, tmp_path, zone_id))
    wait_evaluating(worker)
    scenario = tmp_path / "hard-outage.json"
    scenario.write_text(json.dumps(HARD_OUTAGE))
    worker.simulate(tmp_path, "--scenario", str(scenario), "--speed", "0")

    browser.get(f"http://127.0.0.1:{worker.web_port}/console/")
    selector = "tr[data-state='recommended'] button.approve"
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, selector),
        120,
        f"no failover recommendation on the console; log: {worker.log()[-2000:]}",
    )
    decision_id = fresh(
        lambda: browser.find_element(By.CSS_SELECTOR, selector).get_attribute("data-id")
    )
    text = fresh(lambda: browser.find_element(By.ID, f"d-{decision_id}").text)
    assert "failover shift_traffic" in text and "us-east" in text
    failed = browser.find_elements(By.CSS_SELECTOR, ".region.failed[data-region='us-east']")
    assert failed, browser.find_element(By.ID, "regions").text
    assert weights(zone_id) == {"use1": 100, "euw1": 100, "aps1": 100}
    browser.find_element(By.ID, "by").send_keys("oncall")
    browser.find_element(By.ID, "reason").send_keys("us-east is dark")
    shoot(browser, tmp_path, "console-recommended.png")

    approve = f"button.approve[data-id='{decision_id}']"
    fresh(lambda: browser.find_element(By.CSS_SELECTOR, approve).click())

    def state() -> str | None:
        rows = browser.find_elements(By.ID, f"d-{decision_id}")
        return rows[0].get_attribute("data-state") if rows else None

    def state_now() -> str | None:
        return fresh(state)

    wait_until(
        lambda: state_now() == "applied", 30, f"not applied: {state_now()}; {worker.log()[-2000:]}"
    )
    moved = weights(zone_id)
    assert moved["use1"] == 0 and max(moved.values()) > 100, moved
    assert set(moved) == set(SETS.values())
    row = f"#d-{decision_id}"
    fresh(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} summary").click())
    trail = fresh(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} ol.trail").text)
    assert "approve by oncall: us-east is dark" in trail
    assert "pending (awaiting_approval)" in trail and "applied" in trail
    assert not browser.find_elements(By.CSS_SELECTOR, f"button[data-id='{decision_id}']")
    shoot(browser, tmp_path, "console-applied.png")
