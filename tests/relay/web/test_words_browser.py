"""The link page and the status page in a real headless Chromium: Romanian and English, phone and desktop, light and dark.

Screenshots are kept as test artefacts under var/screenshots/ (ignored by git).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.keys import TOKENS
from tests.driver import ADMIN, GRANT, panic
from tests.relay.web.test_links_browser import PHONE, arrived, chromium
from tests.support import ServerThread, make_settings, query, signed

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"
DESKTOP_WIDTH = 1280
AGENTS = (
    {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"], "locale": "ro",
     "tz": "Europe/Bucharest", "phone": "+40722123456"},
    {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["console"], "locale": "en"},
)  # fmt: skip
WORDS = {
    "ana": {
        "title": "O invitație pentru Ana",
        "buttons": ["Întreabă blând ce face", "Stai alături"],
        "sent": "Trimis ",
        "disclosure": "Am fost acolo — marchează ca încheiat",
    },
    "bo": {
        "title": "An invitation for Bo",
        "buttons": ["Check in gently", "Hold space"],
        "sent": "Sent ",
        "disclosure": "I was there — close the loop",
    },
}


@pytest.fixture(params=["phone", "desktop"])
def screen(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, screen: str) -> Iterator[Any]:
    """Headless Chromium as a phone (390 CSS pixels wide) or a desktop (1280)."""
    yield from chromium(tmp_path, monkeypatch, PHONE if screen == "phone" else None)


@pytest.fixture
def server(database_url: str) -> Iterator[ServerThread]:
    """The real app on a loopback port (dev mode, console channel): Ana reads Romanian, Bo English."""
    with ServerThread(make_settings(database_url, dev=True)) as running:
        for path, body in [*(("/admin/agents", agent) for agent in AGENTS), ("/admin/consents", GRANT)]:
            status, _ = running.json("POST", path, body, ADMIN)
            assert status == 201
        yield running


def invite_both(server: ServerThread) -> tuple[str, dict[str, str]]:
    """One panic.ui to the circle: its status URL, and each agent's action link."""
    payload = panic()
    status, answer = server.json("POST", "/hooks/m3", *signed("m3", payload))
    assert status == 202 and answer["status"] == "invited"
    links = {}
    for agent in ("ana", "bo"):
        ((invitation,),) = server.call(
            query(
                server.app,
                "SELECT invitation.id FROM invitation JOIN signal ON signal.id = invitation.signal_id"
                " WHERE signal.event_id = ? AND invitation.agent_id = ?",
                payload["id"],
                agent,
            )
        )
        links[agent] = f"{server.url}/a/{server.app[TOKENS].action_token(invitation)}"
    return f"{server.url}{answer['status_url']}", links


def show(driver: Any, *, dark: bool) -> None:
    """The colour scheme Chromium reports to the page (DevTools' media emulation)."""
    scheme = "dark" if dark else "light"
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )


def snap(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 5000


def luminance(driver: Any, css: str) -> float:
    """The relative brightness (0 black to 1 white) of an element's computed background colour."""
    colour = driver.execute_script(f"return getComputedStyle(document.querySelector('{css}')).backgroundColor")
    red, green, blue = (int(part) for part in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_link_pages_read_in_each_agents_language_at_each_width_light_and_dark(
    server: ServerThread, driver: Any, screen: str
) -> None:
    """Ana's page in Romanian and Bo's in English: labels on buttons, the time sent, the close form hidden, dark mode."""
    from selenium.webdriver.common.by import By

    _, links = invite_both(server)
    width = DESKTOP_WIDTH if screen == "desktop" else PHONE["width"]
    for agent, words in WORDS.items():
        for dark in (False, True):
            show(driver, dark=dark)
            driver.get(links[agent])
            assert driver.find_element(By.TAG_NAME, "h1").text == words["title"]
            buttons = driver.find_elements(By.CSS_SELECTOR, "button[name=response]")
            assert [b.text.split("\n")[0] for b in buttons] == words["buttons"]
            assert all(b.size["height"] >= 44 for b in buttons)
            assert driver.find_element(By.ID, "sent-at").text.startswith(words["sent"])
            assert not driver.find_element(By.ID, "close-form").is_displayed()  # not before an answer
            assert driver.find_element(By.CSS_SELECTOR, "details.close > summary").text == words["disclosure"]
            shown = driver.execute_script("return document.documentElement.clientWidth")
            assert width - 20 <= shown <= width  # a desktop's scroll bar may take its share
            assert driver.execute_script("return document.documentElement.scrollWidth") <= shown
            page = luminance(driver, "body")
            assert page < 0.2 if dark else page > 0.8
            snap(driver, f"link-{agent}-{screen}-{'dark' if dark else 'light'}")
    blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert blocked == []


@pytest.mark.parametrize("screen", ["phone"], indirect=True)
def test_the_close_form_opens_from_the_disclosure_and_after_an_answer(server: ServerThread, driver: Any) -> None:
    """ "I was there — close the loop" opens the form; after an answer the form is on screen at once."""
    from selenium.webdriver.common.by import By

    _, links = invite_both(server)
    show(driver, dark=False)
    driver.get(links["bo"])
    driver.find_element(By.CSS_SELECTOR, "details.close > summary").click()
    assert driver.find_element(By.ID, "close-form").is_displayed()
    driver.get(links["ana"])
    before = driver.find_element(By.TAG_NAME, "h1")
    driver.find_element(By.CSS_SELECTOR, "button[name=response][value=hold-space]").click()
    arrived(driver, before, "am notat")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Mulțumim, Ana — am notat: Stai alături"
    assert driver.find_element(By.ID, "close-form").is_displayed()
    snap(driver, "link-ana-phone-answered")


def test_the_status_page_shows_ana_here_then_the_outcome_and_nothing_private(
    server: ServerThread, driver: Any, screen: str
) -> None:
    """The status URL in Chromium: invited, "Ana is here" with her label, then the outcome; no note or phone number."""
    from selenium.webdriver.common.by import By

    status_url, links = invite_both(server)
    show(driver, dark=False)
    driver.get(status_url)
    assert "Your circle was invited" in driver.find_element(By.ID, "circle").text
    snap(driver, f"status-invited-{screen}")

    driver.get(links["ana"])
    before = driver.find_element(By.TAG_NAME, "h1")
    driver.find_element(By.CSS_SELECTOR, "button[name=response][value=soft-checkin]").click()
    arrived(driver, before, "am notat")
    driver.get(status_url)
    assert driver.find_element(By.ID, "here").text == "Ana is here — Check in gently"
    snap(driver, f"status-acked-{screen}")

    driver.get(links["ana"])
    driver.find_element(By.ID, "outcome").send_keys("held-space")
    driver.find_element(By.ID, "note").send_keys("We sat together; her number is +40722123456.")
    before = driver.find_element(By.TAG_NAME, "h1")
    driver.find_element(By.CSS_SELECTOR, "#close-form button[type=submit]").click()
    arrived(driver, before, "Am stat alături")
    show(driver, dark=True)
    driver.get(status_url)
    assert driver.find_element(By.ID, "closed").text == "Ana closed the loop — I held space"
    assert "Ana is here — Check in gently" in driver.find_element(By.ID, "here").text
    source = driver.page_source
    for private in ("We sat together", "+40722123456", "722123456", "gates", "consent"):
        assert private not in source, private
    assert luminance(driver, "body") < 0.2
    snap(driver, f"status-done-{screen}-dark")
    driver.get(status_url + "&lang=ro")
    assert driver.find_element(By.ID, "closed").text == "Ana a încheiat — Am stat alături"
    snap(driver, f"status-done-ro-{screen}")
