"""The console in a real headless Chromium, against the real server, a real SQLite file and the fake Slack.

One admin's evening: sign in, add an agent, grant consent, watch a loop arrive, retry the
invitation Slack refused, set the agent away and back, invite them now for a loop that found
nobody, revoke the grant, sign out; and the refusals around it (a page
without a session, a form without its CSRF token). Every wait is a condition with a
deadline. Screenshots at phone (390x844) and desktop width go to var/screenshots/.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.driver import panic
from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack
from tests.relay.web.test_links_browser import chromium
from tests.support import ROOT, ServerThread, make_settings, signed

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
SCREENSHOTS = ROOT / "var" / "screenshots"
ANN_TOKEN = "ops-ann-token-0123456789"
WAIT_SEC = 15


class LoopThread:
    """An event loop in its own thread, for the fake provider the server talks to while selenium blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The fake Slack, serving from its own thread."""
    thread = LoopThread()

    async def started() -> FakeSlack:
        return await FakeSlack().start()

    fake: FakeSlack = thread.call(started())
    try:
        yield fake
    finally:
        thread.call(fake.stop())
        thread.close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's headless Chromium through its own chromedriver, at a desktop's size; nothing is downloaded."""
    yield from chromium(tmp_path, monkeypatch, None)


def slack_settings(fake: FakeSlack) -> dict[str, Any]:
    return {
        "slack_bot_token": DEFAULT_TOKEN,
        "slack_signing_secret": "console-browser-signing-secret",
        "slack_api_url": fake.api_url,
        "relay_admins": (("ops-ann", ANN_TOKEN),),
    }


@pytest.fixture
def server(database_url: str, slack: FakeSlack) -> Iterator[ServerThread]:
    """The real app (dev mode: cookies without Secure over loopback http) with Slack on the fake, outbox running."""
    with ServerThread(make_settings(database_url, dev=True, **slack_settings(slack))) as running:
        yield running


@pytest.fixture
def verifying_server(database_url: str, slack: FakeSlack) -> Iterator[ServerThread]:
    """As `server`, with RELAY_VERIFY_ADDRESSES on: a new Slack user waits for its owner's Join."""
    settings = make_settings(database_url, dev=True, relay_verify_addresses=True, **slack_settings(slack))
    with ServerThread(settings) as running:
        yield running


# How a person uses the page -------------------------------------------------------------------


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, *, reload: bool = False) -> Any:
    """Wait (WAIT_SEC at most) until `condition(driver)` is truthy; with `reload`, the page is reloaded between tries."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(d: Any) -> Any:
        found = condition(d)
        if not found and reload:
            d.refresh()
        return found

    return WebDriverWait(driver, WAIT_SEC, poll_frequency=0.2, ignored_exceptions=(WebDriverException,)).until(
        check, message=f"waited {WAIT_SEC}s for {what}"
    )


def submit(driver: Any, button_selector: str, *, then: str) -> None:
    """Press a form's button and wait for the next page (its URL to contain `then`)."""
    from selenium.webdriver.support import expected_conditions as until

    old = by_css(driver, "main")
    by_css(driver, button_selector).click()
    wait_for(driver, until.staleness_of(old), "the next page")
    wait_for(driver, lambda d: then in d.current_url, f"a URL with {then}")


def fill(driver: Any, **fields: str) -> None:
    for name, value in fields.items():
        box = by_css(driver, f"#{name}")
        box.clear()
        box.send_keys(value)


def page_text(driver: Any) -> str:
    return str(by_css(driver, "main").text)


def screenshots(driver: Any, name: str) -> None:
    """The page as it stands at phone width (no sideways scrolling) and at desktop width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        width = driver.execute_script("return document.documentElement.clientWidth")
        assert width == PHONE["width"]
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width, name
        assert driver.save_screenshot(str(SCREENSHOTS / f"console-{name}-phone.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert driver.save_screenshot(str(SCREENSHOTS / f"console-{name}-desktop.png"))


def sign_in(driver: Any, server: ServerThread, path: str = "/console") -> None:
    """Open a console page without a session: it goes to sign-in; the token brings the browser back."""
    driver.get(server.url + path)
    wait_for(driver, lambda d: "/console/sign-in" in d.current_url, "the sign-in page")
    fill(driver, token=ANN_TOKEN)
    submit(driver, "#sign-in", then=path)
    assert by_css(driver, "[data-admin]").text == "ops-ann"


def add_agent(driver: Any, server: ServerThread, **fields: str) -> None:
    driver.get(server.url + "/console/agents")
    by_css(driver, "#add-agent").click()
    wait_for(driver, lambda d: d.current_url.endswith("/console/agents/new"), "the new-agent form")
    fill(driver, **fields)
    submit(driver, "#save-agent", then="notice=agent-added")


def away_then_invited_now(browser: Any, server: ServerThread, slack: FakeSlack) -> None:
    """Bo is set away on his page, so the next panic finds nobody (unroutable); back again, he is invited
    now from that loop's page (the third Slack message), by ops-ann."""
    browser.get(server.url + "/console/agents/bo/edit")
    submit(browser, "#set-away", then="notice=agent-away")
    browser.get(server.url + "/console/agents")
    assert by_css(browser, "#agent-bo").get_attribute("data-away") == "true"
    screenshots(browser, "agents-away")
    unroutable = panic()
    status, nobody = server.json("POST", "/hooks/m3", *signed("m3", unroutable))
    assert status == 202 and nobody["status"] == "unroutable"
    browser.get(server.url + "/console/agents/bo/edit")
    submit(browser, "#set-back", then="notice=agent-back")
    browser.get(f"{server.url}/console/loops/m3/{unroutable['id']}")
    assert not by_css(browser, "#invite-form input[value='bo']").is_selected()  # nobody is ticked for you
    by_css(browser, "#invite-form input[value='bo']").click()
    submit(browser, "#invite-now", then="/invite")
    assert by_css(browser, "#invite-answer").text == "Bo is invited on slack."
    assert by_css(browser, "[data-agent='bo'] [data-invited-by]").text == "admin:ops-ann"
    screenshots(browser, "invite-now")
    wait_for(browser, lambda _: len(slack.calls_to("chat.postMessage")) == 3, "the invitation sent to Bo")
    _, invited = server.json("GET", nobody["status_url"])
    assert invited["status"] == "invited" and invited["invitations"][0]["invited_by"] == "admin:ops-ann"


# The tests ------------------------------------------------------------------------------------


def test_an_admin_evening_in_the_console(server: ServerThread, slack: FakeSlack, browser: Any) -> None:
    """Sign in; add Bo on Slack; grant Raz's circle; a panic arrives and its loop appears; Slack refused it,
    so Deliveries retries it and it is sent; Bo is set away, so the next panic is unroutable; Bo is back and
    invited now from that loop's page; revoke the grant; sign out, and the console asks for sign-in again."""
    sign_in(browser, server, "/console/agents")
    add_agent(browser, server, id="bo", display="Bo", groups="care-circle", channels="slack", slack_user="U0BOBOBO")
    assert "Bo · bo" in by_css(browser, "#agent-bo").text
    screenshots(browser, "agents")

    browser.get(server.url + "/console/consent")
    fill(browser, subject="actor:raz", groups="care-circle")
    by_css(browser, "input[name=scope][value='panic.ui']").click()
    submit(browser, "#grant", then="notice=granted")
    assert "actor:raz" in by_css(browser, "#live-grants").text
    screenshots(browser, "consent")

    slack.fail_next("chat.postMessage", error="channel_not_found")  # for good: the invitation fails at once
    payload = panic()
    status, answer = server.json("POST", "/hooks/m3", *signed("m3", payload))
    assert status == 202 and answer["status"] == "invited"
    browser.get(server.url + "/console")
    row = f"[data-loop='{payload['id']}']"
    wait_for(browser, lambda d: d.find_elements("css selector", row), "the loop on the Loops page", reload=True)
    screenshots(browser, "loops")

    browser.get(server.url + "/console/deliveries")
    failed = "[data-status='failed'][data-kind='invite']"
    wait_for(browser, lambda d: d.find_elements("css selector", failed), "the failed invitation", reload=True)
    assert "channel_not_found" in by_css(browser, failed).text
    screenshots(browser, "deliveries")
    submit(browser, f"{failed} button.retry", then="notice=retried")
    assert "tried again" in page_text(browser)

    def delivered(_: Any) -> bool:
        _, loop = server.json("GET", answer["status_url"])
        return bool(loop["invitations"][0]["status"] in ("sent", "delivered"))

    wait_for(browser, delivered, "the retried invitation to be sent")
    assert len(slack.calls_to("chat.postMessage")) == 2
    browser.get(f"{server.url}/console/loops/m3/{payload['id']}")
    assert by_css(browser, "[data-agent='bo']").get_attribute("data-delivery") in ("sent", "delivered")
    screenshots(browser, "loop")

    away_then_invited_now(browser, server, slack)

    browser.get(server.url + "/console/consent")
    submit(browser, "#live-grants button", then="notice=revoked")
    assert "by ops-ann" in by_css(browser, "#revoked-grants").text

    browser.get(server.url + "/console/audit")
    screenshots(browser, "audit")

    submit(browser, "#sign-out", then="notice=signed-out")
    assert "You are signed out." in page_text(browser)
    browser.get(server.url + "/console/deliveries")
    wait_for(browser, lambda d: "/console/sign-in?next=%2Fconsole%2Fdeliveries" in d.current_url, "sign-in")
    screenshots(browser, "sign-in")

    blocked = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert blocked == []  # the pages need nothing their own policy forbids


def test_a_new_slack_user_waits_for_its_owner_and_a_join_code_can_be_sent_again(
    verifying_server: ServerThread, slack: FakeSlack, browser: Any
) -> None:
    """With RELAY_VERIFY_ADDRESSES on, an added agent's Slack user shows as not yet confirmed; the edit page
    sends the Join message again."""
    server = verifying_server
    sign_in(browser, server)
    add_agent(browser, server, id="cy", display="Cy", groups="care-circle", channels="slack", slack_user="U0CYCYCY")
    assert by_css(browser, "#agent-cy [data-unverified='slack']").text == "not yet confirmed by its owner"
    wait_for(browser, lambda _: len(slack.calls_to("chat.postMessage")) == 1, "the first Join message")
    browser.get(server.url + "/console/agents/cy/edit")
    screenshots(browser, "agent-edit")
    submit(browser, "[data-channel='slack'] button", then="notice=code-sent")
    wait_for(browser, lambda _: len(slack.calls_to("chat.postMessage")) == 2, "the Join message sent again")


def test_a_form_posted_without_its_csrf_token_is_refused(server: ServerThread, browser: Any) -> None:
    """A grant form whose CSRF field is gone is refused with a 403 page that says so; nothing is recorded."""
    sign_in(browser, server, "/console/consent")
    browser.execute_script("document.querySelector('#grant-form input[name=csrf]').remove()")
    fill(browser, subject="actor:raz", groups="care-circle")
    by_css(browser, "input[name=scope][value='panic.ui']").click()
    old = by_css(browser, "main")
    by_css(browser, "#grant").click()
    from selenium.webdriver.support import expected_conditions as until

    wait_for(browser, until.staleness_of(old), "the answer")
    assert by_css(browser, "main").get_attribute("data-status") == "403"
    assert "was not sent from a console page of this session" in page_text(browser)
    screenshots(browser, "refused")
    status, grants = server.json("GET", "/admin/consents", headers={"Authorization": f"Bearer {ANN_TOKEN}"})
    assert status == 200 and grants["items"] == []


def test_a_page_opened_without_a_session_goes_to_sign_in(server: ServerThread, browser: Any) -> None:
    """Any console page opened without a session shows the sign-in form, and after it, that page."""
    browser.get(server.url + "/console/audit?kind=decision")
    wait_for(browser, lambda d: "/console/sign-in" in d.current_url, "the sign-in page")
    assert by_css(browser, "h1").text == "Sign in to the console"
    fill(browser, token=ANN_TOKEN)
    submit(browser, "#sign-in", then="/console/audit?kind=decision")
    assert by_css(browser, "h1").text == "Audit"
