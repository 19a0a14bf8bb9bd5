"""The action-link page in a real headless Chromium, on a phone-sized screen, against the real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.keys import TOKENS
from tests.driver import ADMIN, ANA, GRANT, panic
from tests.support import ServerThread, invitation_of, make_settings, signed

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = {"width": 390, "height": 844, "pixelRatio": 2}


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's headless Chromium through its own chromedriver, as a phone; nothing is downloaded."""
    yield from chromium(tmp_path, monkeypatch, PHONE)


def chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phone: dict[str, int] | None) -> Iterator[Any]:
    """Debian's headless Chromium through its own chromedriver: a phone's screen, or a desktop's (None)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver at /usr/bin (install them with `make browser`)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never fetch a browser or driver
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    if phone is not None:  # a phone: the page must lay itself out through its viewport meta at 390 CSS pixels
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": phone})
    else:
        options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    browser.set_page_load_timeout(20)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def server(database_url: str) -> Iterator[ServerThread]:
    """The real app on a loopback port (dev mode, console channel), with Ana and a grant for Raz."""
    with ServerThread(make_settings(database_url, dev=True)) as running:
        for path, body in (("/admin/agents", ANA), ("/admin/consents", GRANT)):
            status, _ = running.json("POST", path, body, ADMIN)
            assert status == 201
        yield running


def arrived(driver: Any, old_heading: Any, text: str) -> None:
    """Wait for the next page: the old heading gone, then the new one saying `text`.

    Polling an element while Chromium swaps documents can fail with an inspector error
    ("Node … does not belong to the document") instead of a stale-element one: in both
    waits that error is waited out (polled again), never taken as an answer.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    # staleness_of answers True on StaleElementReferenceException itself; any other WebDriverException
    # (the inspector error above, seen on a busy machine) only means "ask again".
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(until.staleness_of(old_heading))
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException, WebDriverException)).until(
        until.text_to_be_present_in_element((By.TAG_NAME, "h1"), text)
    )


def test_phone_opens_link_and_answers(server: ServerThread, driver: Any, tmp_path: Path) -> None:
    """Opening the link records nothing; tapping soft-checkin records the ack; closing the loop records done."""
    from selenium.webdriver.common.by import By

    payload = panic()
    status, answer = server.json("POST", "/hooks/m3", *signed("m3", payload))
    assert status == 202 and answer["status"] == "invited"
    status_url = answer["status_url"]
    invitation = server.call(invitation_of(server.app, payload["id"]))
    driver.get(f"{server.url}/a/{server.app[TOKENS].action_token(invitation)}")
    assert driver.find_element(By.TAG_NAME, "h1").text == "An invitation for Ana"
    assert "Raz sent a gentle signal" in driver.find_element(By.CLASS_NAME, "headline").text
    width = driver.execute_script("return document.documentElement.clientWidth")
    assert width == PHONE["width"]
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width  # no sideways scrolling
    buttons = driver.find_elements(By.CSS_SELECTOR, "button[name=response]")
    # labels, each with its one-line description; the value sent is the slug
    assert [b.text.split("\n")[0] for b in buttons] == ["Check in gently", "Hold space"]
    assert all(b.size["height"] >= 44 and b.size["width"] >= 300 for b in buttons)  # thumb-sized tap targets
    screenshot = Path(os.environ.get("LINKS_SCREENSHOT") or tmp_path / "link-page.png")
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 5000

    _, loop = server.json("GET", status_url)
    assert loop["status"] == "invited" and loop["acks"] == []  # the browser opened the page: nothing recorded

    before = driver.find_element(By.TAG_NAME, "h1")
    driver.find_element(By.CSS_SELECTOR, "button[name=response][value=soft-checkin]").click()
    arrived(driver, before, "recorded")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Thank you, Ana — recorded: Check in gently"
    _, loop = server.json("GET", status_url)
    assert loop["status"] == "acked"
    assert [(a["by"]["id"], a["action"]) for a in loop["acks"]] == [("ana", "soft-checkin")]

    # The close form, found by its labels the way a screen reader would announce it.
    label = driver.find_element(By.XPATH, "//label[starts-with(normalize-space(.), 'What happened?')]")
    driver.find_element(By.ID, label.get_attribute("for")).send_keys("held-space")
    driver.find_element(By.ID, "note").send_keys("We sat together for a while.")
    before = driver.find_element(By.TAG_NAME, "h1")
    driver.find_element(By.XPATH, "//button[normalize-space(.)='Close the loop']").click()
    arrived(driver, before, "I held space")
    assert driver.find_elements(By.TAG_NAME, "form") == []
    _, loop = server.json("GET", status_url)
    assert loop["status"] == "done"
    assert loop["done"]["outcome"] == "held-space" and loop["done"]["note"] == "We sat together for a while."

    blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert blocked == []  # the page needs nothing its own policy forbids
