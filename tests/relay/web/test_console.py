"""The web console over HTTP (CONTRACT section 11): sign-in, the session cookie, CSRF, and each page's action.

Every action is checked by its effect through the admin API (the same services), with the
signed-in name as `by`; phone numbers appear in full only on an agent's edit form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse

from relay.keys import SETTINGS
from relay.web.console import ONE_TIME
from relay.web.console.base import SESSIONS
from tests.driver import ADMIN, ANA, GRANT, Relay, Start, panic
from tests.fakes.twilio import FakeTwilio
from tests.relay.web.console_client import Console
from tests.support import ADMIN_TOKEN

ANN_TOKEN = "ops-ann-token-0123456789"
NAMED = {"relay_admins": (("ops-ann", ANN_TOKEN),)}
ANA_PHONE = "+40722000111"
ANA_WHATSAPP = "+40733000222"
BO = {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["console"]}
SMS_ANA = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "phone": ANA_PHONE, "channels": ["sms"]}


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


def twilio_settings(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_sms_from": "+15005550006",
        "twilio_api_base_url": fake.base_url,
    }


async def signed_in(start: Start, token: str = ANN_TOKEN, **settings: Any) -> tuple[Relay, Console]:
    relay = await start(**(NAMED | settings))
    console = Console(relay)
    await console.sign_in(token)
    return relay, console


def cookie_of(response_headers: Any) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response_headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


# Signing in ---------------------------------------------------------------------------------


async def test_a_page_opened_without_a_session_goes_to_sign_in_and_back_after(start: Start) -> None:
    """Without a session a page answers 303 to sign-in with `next`; signing in goes back to that page."""
    relay = await start()
    console = Console(relay)
    status, _, location = await console.open("/console/consent?x=1")
    assert status == 303 and location == "/console/sign-in?next=%2Fconsole%2Fconsent%3Fx%3D1"
    assert await console.sign_in(ADMIN_TOKEN, next_path="/console/consent?x=1") == "/console/consent?x=1"
    assert "Grants in force" in await console.page("/console/consent?x=1")


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "//evil.example/console", "/admin/agents", "/consolex"])
async def test_sign_in_only_ever_sends_the_browser_to_a_console_page(start: Start, elsewhere: str) -> None:
    """A `next` outside the console (another site, another path) is replaced by the console's first page."""
    console = Console(await start())
    assert await console.sign_in(ADMIN_TOKEN, next_path=elsewhere) == "/console"


async def test_a_named_admin_signs_in_as_their_name_an_admin_token_as_admin(start: Start) -> None:
    """A RELAY_ADMINS token signs in as its name; a RELAY_ADMIN_TOKENS token as "admin"."""
    relay = await start(**NAMED)
    ann = Console(relay)
    await ann.sign_in(ANN_TOKEN)
    assert re.search(r"Signed in as <strong data-admin>ops-ann</strong>", await ann.page("/console"))
    relay.client.session.cookie_jar.clear()
    anyone = Console(relay)
    await anyone.sign_in(ADMIN_TOKEN)
    assert "Signed in as <strong data-admin>admin</strong>" in await anyone.page("/console")


async def test_a_wrong_token_signs_nobody_in(start: Start) -> None:
    """A token that is no admin's answers 403 with the form again and what to do; no session."""
    relay = await start(**NAMED)
    console = Console(relay)
    await console.page("/console/sign-in")
    status, html, _ = await console.send("/console/sign-in", token="not-a-token-of-this-relay", next="/console")
    assert status == 403 and "admin tokens; nothing was signed in" in html
    assert "not-a-token-of-this-relay" not in html
    assert (await console.open("/console"))[0] == 303


async def test_the_session_cookie_is_httponly_strict_secure_and_lasts_eight_hours(start: Start) -> None:
    """Outside dev: HttpOnly, SameSite=Strict, Secure, Path=/console, Max-Age 8 hours; in dev, not Secure."""
    for dev, secure in ((False, True), (True, False)):
        relay = await start(dev=dev)
        response = await relay.get("/console/sign-in")
        cookie = cookie_of(response.headers)["care_relay_console"]
        assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
        assert cookie["max-age"] == str(8 * 3600)
        assert bool(cookie["secure"]) is secure


async def test_a_tampered_session_cookie_is_no_session(start: Start) -> None:
    """A cookie whose signature does not verify opens nothing: the page goes to sign-in."""
    relay, _ = await signed_in(start)
    (cookie,) = [c for c in relay.client.session.cookie_jar if c.key == "care_relay_console"]
    relay.client.session.cookie_jar.clear()
    good = cookie.value
    assert (await relay.get("/console", headers={"Cookie": f"care_relay_console={good}"})).status == 200
    for bad in (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), "x" * 2000, ""):
        response = await relay.get("/console", headers={"Cookie": f"care_relay_console={bad}"}, allow_redirects=False)
        assert response.status == 303


async def test_sign_out_ends_the_session(start: Start) -> None:
    """Signing out (a CSRF-checked form) ends the session: the next page goes to sign-in."""
    _relay, console = await signed_in(start)
    await console.page("/console")
    status, _, location = await console.send("/console/sign-out")
    assert status == 303 and location == "/console/sign-in?notice=signed-out"
    assert "You are signed out." in await console.page(location)
    assert (await console.open("/console/agents"))[0] == 303


def session_cookie(relay: Relay) -> str:
    """The console cookie this test client's browser holds (its jar emptied after: the next browser is another)."""
    (cookie,) = [c for c in relay.client.session.cookie_jar if c.key == "care_relay_console"]
    relay.client.session.cookie_jar.clear()
    return cookie.value


async def with_cookie(relay: Relay, method: str, path: str, cookie: str, **kwargs: Any) -> tuple[int, str, str | None]:
    """A request that carries this console cookie and no other; its status, body and Location."""
    relay.client.session.cookie_jar.clear()
    response = await relay.request(
        method, path, headers={"Cookie": f"care_relay_console={cookie}"}, allow_redirects=False, **kwargs
    )
    return response.status, await response.text(), response.headers.get("Location")


async def test_a_signed_out_sessions_cookie_opens_nothing_on_any_replica(start: Start) -> None:
    """Sign-out is kept in storage: a copy of the signed-out cookie gets the sign-in page (a post with it is
    refused with 403) on this relay and on another relay of the same database, though it is signed and not
    8 hours old; another admin's session and the same admin's session in another browser stay signed in."""
    relay = await start(**NAMED)
    replica = await start(**NAMED)
    ann = Console(relay)
    await ann.sign_in(ANN_TOKEN)
    await ann.page("/console")
    copied, csrf = session_cookie(relay), ann.csrf
    await Console(relay).sign_in(ANN_TOKEN)
    ann_elsewhere = session_cookie(relay)
    await Console(relay).sign_in(ADMIN_TOKEN)
    other_admin = session_cookie(relay)
    for cookie in (copied, ann_elsewhere, other_admin):
        assert (await with_cookie(replica, "GET", "/console/agents", cookie))[0] == 200

    status, _, location = await with_cookie(relay, "POST", "/console/sign-out", copied, data={"csrf": csrf})
    assert status == 303 and location == "/console/sign-in?notice=signed-out"

    for server in (relay, replica):
        status, _, location = await with_cookie(server, "GET", "/console/agents", copied)
        assert status == 303 and location == "/console/sign-in?next=%2Fconsole%2Fagents"
        status, html, _ = await with_cookie(server, "GET", "/console/sign-in", copied)
        assert status == 200 and 'name="token"' in html  # the form, not a redirect back into the console
        # and the form's cookie is not the signed-out session signed afresh (it would outlive its sign-out)
        renewed = server.app[SESSIONS].load(session_cookie(server))
        assert renewed is not None and (renewed.name, renewed.key, renewed.sid) == (None, None, None)
        fields = {"csrf": csrf, "subject": "actor:raz", "scope": "panic.ui", "groups": "care-circle"}
        status, html, _ = await with_cookie(server, "POST", "/console/consent", copied, data=fields)
        assert status == 403 and "Your session has ended" in html
    assert (await relay.admin("GET", "/admin/consents"))[1]["items"] == []
    for cookie in (ann_elsewhere, other_admin):
        status, html, _ = await with_cookie(replica, "GET", "/console/agents", cookie)
        assert status == 200, html


async def test_dev_mode_one_time_link_signs_in_once(start: Start) -> None:
    """In dev mode the banner's one-time token signs in as admin once; used again, it is refused."""
    relay = await start(dev=True)
    once = relay.app[ONE_TIME].issue()
    console = Console(relay)
    html = await console.page(f"/console/sign-in?once={once}")
    assert 'id="sign-in-once"' in html
    status, _, location = await console.send("/console/sign-in", once=once, next="/console")
    assert status == 303 and location == "/console"
    assert "Signed in as <strong data-admin>admin</strong>" in await console.page("/console")
    relay.client.session.cookie_jar.clear()
    again = Console(relay)
    await again.page(f"/console/sign-in?once={once}")
    status, html, _ = await again.send("/console/sign-in", once=once, next="/console")
    assert status == 403 and "used already" in html


async def test_outside_dev_a_one_time_token_signs_nobody_in(start: Start) -> None:
    """Outside dev mode the sign-in form offers no one-time sign-in and takes none."""
    relay = await start(dev=False)
    once = relay.app[ONE_TIME].issue()
    response = await relay.get(f"/console/sign-in?once={once}")
    assert "sign-in-once" not in await response.text()


# CSRF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf", ["missing", "wrong"])
async def test_a_form_posted_without_its_csrf_token_is_refused_with_403(start: Start, csrf: str) -> None:
    """A grant posted without the session's CSRF token (or with another) is a 403 page saying so; nothing changes."""
    relay, console = await signed_in(start)
    await console.page("/console/consent")
    if csrf == "wrong":
        console.csrf = "x" * 32
    fields = {"subject": "actor:raz", "scope": "panic.ui", "groups": "care-circle"}
    status, html, _ = await console.send("/console/consent", csrf=csrf == "wrong", **fields)
    assert status == 403 and "was not sent from a console page of this session" in html
    assert 'data-code="forbidden"' in html
    assert (await relay.admin("GET", "/admin/consents"))[1]["items"] == []


async def test_a_form_posted_without_a_session_is_refused(start: Start) -> None:
    """A post with no session at all (another site's form) is refused with 403, never redirected into effect."""
    relay = await start()
    response = await relay.post("/console/consent", data={"subject": "actor:raz"}, allow_redirects=False)
    assert response.status == 403
    assert "was not sent from a console page" in await response.text()


# Agents ---------------------------------------------------------------------------------------


async def test_add_edit_and_deactivate_an_agent(start: Start) -> None:
    """Add (numbers as people write them), edit, deactivate and reactivate: through the directory, seen by the API."""
    relay, console = await signed_in(start)
    await console.page("/console/agents/new")
    status, html, location = await console.send(
        "/console/agents",
        id="bo",
        display="Bo",
        groups="care-circle, night",
        channels="sms",
        phone="+40 722 000 111",
        quiet_hours="22:00-07:00",
        tz="Europe/Bucharest",
    )
    assert status == 303, html
    assert location == "/console/agents?notice=agent-added#agent-bo"
    _, bo = await relay.admin("GET", "/admin/agents/bo")
    assert (bo["phone"], bo["groups"], bo["quiet_hours"]) == (ANA_PHONE, ["care-circle", "night"], "22:00-07:00")

    edit = await console.page("/console/agents/bo/edit")
    assert f'value="{ANA_PHONE}"' in edit  # the edit form is where the full number is
    status, _, _ = await console.send(
        "/console/agents/bo/edit", display="Bo B.", groups="care-circle", channels="sms", phone=ANA_PHONE
    )
    assert status == 303
    _, bo = await relay.admin("GET", "/admin/agents/bo")
    assert (bo["display"], bo["groups"], bo["quiet_hours"], bo["tz"]) == ("Bo B.", ["care-circle"], None, None)

    assert (await console.send("/console/agents/bo/active", active="false"))[0] == 303
    assert (await relay.admin("GET", "/admin/agents/bo"))[1]["active"] is False
    assert 'data-agent="bo" data-active="false"' in await console.page("/console/agents")
    assert (await console.send("/console/agents/bo/active", active="true"))[0] == 303
    assert (await relay.admin("GET", "/admin/agents/bo"))[1]["active"] is True


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"id": "bo", "display": "Bo", "phone": "not a number"}, 422, "phone"),
        ({"id": "ana", "display": "Another Ana"}, 400, "already exists"),
        ({"id": "bo b", "display": "Bo"}, 422, "id"),
        ({"id": "bo", "display": "Bo", "tz": "Mars/Olympus"}, 422, "is not a time zone"),
    ],
)
async def test_a_refused_agent_is_a_calm_message_on_the_form(
    start: Start, fields: dict[str, str], status: int, says: str
) -> None:
    """The directory's refusal is shown on the form with what was typed, never a 500."""
    relay, console = await signed_in(start)
    await relay.seed()
    await console.page("/console/agents/new")
    answer, html, _ = await console.send("/console/agents", **fields)
    assert answer == status
    assert "Nothing was saved. Please fix:" in html and says in html
    assert f'value="{fields["display"]}"' in html


async def test_resending_a_join_code_goes_through_the_directory(start: Start, twilio: FakeTwilio) -> None:
    """With RELAY_VERIFY_ADDRESSES on, a new SMS number is unconfirmed; the edit page sends a new join code."""
    relay, console = await signed_in(start, relay_verify_addresses=True, **twilio_settings(twilio))
    await relay.seed(GRANT, agents=[SMS_ANA])
    await relay.drain()
    first = len(twilio.messages)
    assert 'data-unverified="sms"' in await console.page("/console/agents")
    await console.page("/console/agents/ana/edit")
    status, _, location = await console.send("/console/agents/ana/verify", channel="sms")
    assert status == 303 and location == "/console/agents/ana/edit?notice=code-sent"
    await relay.drain()
    assert len(twilio.messages) == first + 1 and "JOIN" in twilio.messages[-1]["Body"]


async def test_a_join_code_that_cannot_be_sent_shows_failed_on_the_deliveries_page(start: Start) -> None:
    """No channel can send it (nothing configured): the code is queued all the same, and once the
    outbox tried, the Deliveries page shows it failed with why, to be retried once SMS is set up."""
    relay, console = await signed_in(start, relay_verify_addresses=True)
    await relay.seed(agents=[SMS_ANA])
    await console.page("/console/agents/ana/edit")
    status, html, _ = await console.send("/console/agents/ana/verify", channel="sms")
    assert status == 303, html
    await relay.drain()
    page = await console.page("/console/deliveries")
    assert "channel sms is not configured" in page


async def test_a_join_code_that_cannot_be_sent_is_a_calm_message(start: Start) -> None:
    """A join code for an address the agent does not have: the edit form says why, with 400, not a 500."""
    relay, console = await signed_in(start, relay_verify_addresses=True)
    await relay.seed(agents=[SMS_ANA])
    await console.page("/console/agents/ana/edit")
    status, html, _ = await console.send("/console/agents/ana/verify", channel="whatsapp")
    assert status == 400 and "has no whatsapp address to confirm; add one first." in html


# Consent --------------------------------------------------------------------------------------


async def test_grant_and_revoke_with_the_signed_in_name_as_by(start: Start) -> None:
    """A grant and its revocation are recorded by the signed-in admin; the page lists the revoked grant with who and when."""
    relay, console = await signed_in(start)
    await console.page("/console/consent")
    status, html, _location = await console.send(
        "/console/consent", subject="actor:raz", scope="panic.ui", groups="care-circle"
    )
    assert status == 303, html
    # checkboxes arrive once per ticked box
    response = await relay.post(
        "/console/consent",
        data=[
            ("csrf", console.csrf),
            ("subject", "actor:kim"),
            ("scope", "panic.ui"),
            ("scope", "status.set"),
            ("groups", "care-circle"),
            ("channels", "sms"),
        ],
        allow_redirects=False,
    )
    assert response.status == 303
    grants = {g["subject"]: g for g in (await relay.admin("GET", "/admin/consents"))[1]["items"]}
    assert grants["actor:raz"]["by"] == "ops-ann" and grants["actor:raz"]["scope"] == ["panic.ui"]
    assert grants["actor:kim"]["scope"] == ["panic.ui", "status.set"] and grants["actor:kim"]["channels"] == ["sms"]

    grant_id = grants["actor:raz"]["id"]
    await console.page("/console/consent")
    assert (await console.send(f"/console/consent/{grant_id}/revoke"))[0] == 303
    (revoked,) = [g for g in (await relay.admin("GET", "/admin/consents"))[1]["items"] if g["id"] == grant_id]
    assert revoked["revoked_by"] == "ops-ann" and revoked["revoked_at"]
    page = await console.page("/console/consent")
    section = page.split('id="revoked-grants"')[1]
    assert grant_id in section and f"{revoked['revoked_at']} by ops-ann" in section


async def test_a_refused_grant_keeps_what_was_typed(start: Start) -> None:
    """A grant the form cannot take (no group, a bad subject) is shown with what to fix; nothing recorded."""
    relay, console = await signed_in(start)
    await console.page("/console/consent")
    status, html, _ = await console.send("/console/consent", subject="raz", scope="panic.ui", groups="")
    assert status == 422 and "Nothing was recorded" in html and "subject" in html
    assert 'value="raz"' in html
    assert (await relay.admin("GET", "/admin/consents"))[1]["items"] == []


# Loops and deliveries -----------------------------------------------------------------------------


async def test_loops_list_open_first_and_a_loop_shows_its_timeline(start: Start) -> None:
    """The Loops page opens on the open loops; a loop's page shows its decision, invitations, answers and done."""
    relay, console = await signed_in(start)
    answer, invitation = await relay.invited()
    blocked = await relay.send("m3", panic(actor={"id": "nobody-granted"}))
    page = await console.page("/console")
    assert answer["id"] in page and blocked["id"] not in page  # pending_consent is not open
    assert blocked["id"] in await console.page("/console?status=all")
    assert blocked["id"] in await console.page("/console?status=pending_consent")

    await relay.drain()
    assert (await relay.press(relay.link(invitation), action="ack", response="soft-checkin"))[0] == 200
    assert (await relay.press(relay.link(invitation), action="done", outcome="held-space", note=""))[0] == 200
    timeline = await console.page(f"/console/loops/m3/{answer['id']}")
    assert "explicit consent, within care window" in timeline
    assert 'data-agent="ana" data-delivery="sent"' in timeline
    assert "Ana — soft-checkin" in timeline and "held-space" in timeline
    status, html, _ = await console.open("/console/loops/m3/no-such-event")
    assert status == 404 and "No event with this id" in html


async def test_a_failed_delivery_is_retried_from_the_deliveries_page_by_the_signed_in_admin(
    start: Start, twilio: FakeTwilio
) -> None:
    """Twilio refuses Ana's SMS for good: Deliveries lists it (number redacted), the retry (by ops-ann) sends it."""
    relay, console = await signed_in(start, **twilio_settings(twilio))
    await relay.seed(GRANT, agents=[SMS_ANA])
    answer = await relay.send("m3", panic())
    twilio.fail_next(status=400, code=21211)
    await relay.drain()
    page = await console.page("/console/deliveries?status=failed")
    ((row_id,),) = await relay.sql("SELECT id FROM outbox WHERE kind = 'invite' AND status = 'failed'")
    assert f'data-outbox="{row_id}" data-status="failed"' in page and "Twilio 400 (error 21211)" in page
    assert answer["id"] in await console.page(f"/console/loops/m3/{answer['id']}")
    status, _, location = await console.send(
        f"/console/deliveries/{row_id}/retry", back="/console/deliveries?status=failed"
    )
    assert status == 303 and location == "/console/deliveries?notice=retried"
    await relay.drain()
    assert (await relay.loop(answer))["invitations"][0]["status"] in ("sent", "delivered")
    retried = [a for a in await relay.audit() if a["kind"] == "outbox_retry"]
    assert retried and retried[0]["detail"]["by"] == "ops-ann"
    # the same row again: not failed any more, said calmly
    status, html, _ = await console.send(f"/console/deliveries/{row_id}/retry", back="/console/deliveries")
    assert status == 409 and "not failed" in html


async def test_the_audit_page_filters_by_kind(start: Start) -> None:
    """The audit trail, one kind at a time."""
    relay, console = await signed_in(start)
    await relay.invited()
    assert 'data-kind="decision"' in await console.page("/console/audit?kind=decision")
    assert 'data-kind="decision"' not in await console.page("/console/audit?kind=outbox_retry")


async def test_no_page_shows_a_full_phone_number_but_the_agent_edit_form(start: Start, twilio: FakeTwilio) -> None:
    """Loops, a loop, Agents, Consent, Deliveries and Audit show numbers redacted (+40…0111); only the edit form in full."""
    relay, console = await signed_in(start, **twilio_settings(twilio))
    await relay.seed(GRANT, agents=[SMS_ANA | {"whatsapp": ANA_WHATSAPP}])
    answer = await relay.send("m3", panic())
    twilio.fail_next(status=400, code=21211)
    await relay.drain()
    # Ana closes the loop from her page with a note that quotes her own number
    invitation = await relay.invitation_id(answer["id"])
    status, _ = await relay.press(
        relay.link(invitation), action="done", outcome="held-space", note=f"called {ANA_PHONE}"
    )
    assert status == 200
    digits = (ANA_PHONE.lstrip("+"), ANA_WHATSAPP.lstrip("+"), "722000111", "733000222")
    for path in (
        "/console",
        "/console?status=all",
        f"/console/loops/m3/{answer['id']}",
        "/console/agents",
        "/console/consent",
        "/console/deliveries",
        "/console/audit",
    ):
        html = await console.page(path)
        assert not any(d in html for d in digits), path
    assert "+40…0111" in await console.page("/console/agents")
    edit = await console.page("/console/agents/ana/edit")
    assert ANA_PHONE in edit and ANA_WHATSAPP in edit


# The admin API with named admins ------------------------------------------------------------------


async def test_the_admin_api_takes_named_admin_tokens_and_records_their_name(start: Start) -> None:
    """A RELAY_ADMINS bearer works on /admin/*; a grant or revocation without `by` is theirs, and so is one
    whose `?by=` names them; a `?by=` naming someone else is 400 and revokes nothing."""
    relay = await start(**NAMED)
    ann = {"Authorization": f"Bearer {ANN_TOKEN}"}
    body = {k: v for k, v in GRANT.items() if k != "by"}
    response = await relay.post("/admin/consents", json=body, headers=ann)
    assert response.status == 201 and (await response.json())["by"] == "ops-ann"
    grant_id = (await response.json())["id"]
    assert (await relay.post("/admin/consents", json=body, headers=ADMIN)).status == 422  # unnamed: say who
    assert (await relay.delete(f"/admin/consents/{grant_id}", headers=ann)).status == 204
    (grant,) = (await relay.admin("GET", "/admin/consents"))[1]["items"]
    assert grant["revoked_by"] == "ops-ann"
    second = await relay.post("/admin/consents", json=body, headers=ann)
    other = (await second.json())["id"]
    refused = await relay.delete(f"/admin/consents/{other}?by=night-shift", headers=ann)
    assert refused.status == 400 and (await refused.json())["error"] == "bad_request"
    revoked = {g["id"]: g["revoked_by"] for g in (await relay.admin("GET", "/admin/consents"))[1]["items"]}
    assert revoked[other] is None
    assert (await relay.delete(f"/admin/consents/{other}?by=ops-ann", headers=ann)).status == 204
    revoked = {g["id"]: g["revoked_by"] for g in (await relay.admin("GET", "/admin/consents"))[1]["items"]}
    assert revoked[other] == "ops-ann"
    assert (await relay.get("/admin/agents", headers={"Authorization": "Bearer ops-ann"})).status == 403


ANN = {"Authorization": f"Bearer {ANN_TOKEN}"}
SAM_GRANT = {"subject": "actor:sam", "scope": ["panic.ui"], "groups": ["care-circle"]}


def by_query(by: str | None) -> str:
    return "" if by is None else "?" + urlencode({"by": by})


def with_by(body: dict[str, Any], by: str | None) -> dict[str, Any]:
    return body if by is None else {**body, "by": by}


async def audited_by(relay: Relay, kind: str, read: Callable[[dict[str, Any]], str]) -> list[str]:
    return [read(a["detail"]) for a in await relay.audit() if a["kind"] == kind]


async def granted_by(relay: Relay, subject: str) -> list[str]:
    return [g["by"] for g in (await relay.admin("GET", "/admin/consents"))[1]["items"] if g["subject"] == subject]


async def revoked_by(relay: Relay, grant_id: str) -> list[str]:
    items = (await relay.admin("GET", "/admin/consents"))[1]["items"]
    return [g["revoked_by"] for g in items if g["id"] == grant_id and g["revoked_by"] is not None]


@dataclass(frozen=True)
class ByRoute:
    """An admin route that records who acts: the call (with a `by`, or None for none) and who it recorded."""

    call: Callable[[Relay, dict[str, Any], str | None, dict[str, str]], Awaitable[ClientResponse]]
    recorded: Callable[[Relay, dict[str, Any]], Awaitable[list[str]]]


BY_ROUTES = {
    "away": ByRoute(
        lambda relay, at, by, headers: relay.patch(
            f"/admin/agents/ana{by_query(by)}", json={"away": True}, headers=headers
        ),
        lambda relay, at: audited_by(
            relay, "agent_away", lambda d: d["user_instruction"].removesuffix(" set ana away")
        ),
    ),
    "invite now": ByRoute(
        lambda relay, at, by, headers: relay.post(
            f"/admin/events/{at['event']}/invite", json=with_by({"agents": ["bo"]}, by), headers=headers
        ),
        lambda relay, at: audited_by(relay, "invite_now", lambda d: d["by"].removeprefix("admin:")),
    ),
    "grant": ByRoute(
        lambda relay, at, by, headers: relay.post("/admin/consents", json=with_by(SAM_GRANT, by), headers=headers),
        lambda relay, at: granted_by(relay, "actor:sam"),
    ),
    "revoke": ByRoute(
        lambda relay, at, by, headers: relay.delete(f"/admin/consents/{at['grant']}{by_query(by)}", headers=headers),
        lambda relay, at: revoked_by(relay, at["grant"]),
    ),
    "outbox retry": ByRoute(
        lambda relay, at, by, headers: relay.post(f"/admin/outbox/{at['failed']}/retry{by_query(by)}", headers=headers),
        lambda relay, at: audited_by(relay, "outbox_retry", lambda d: d["by"]),
    ),
}


async def by_routes_ready(start: Start) -> tuple[Relay, dict[str, Any]]:
    """Ana invited on a loop (her delivery failed, so it can be retried), Bo in the circle and not invited yet."""
    relay = await start(**NAMED)
    (grant,) = await relay.seed()
    answer = await relay.send("m3", panic())
    await relay.drain()
    await relay.create("/admin/agents", BO)
    ((failed,),) = await relay.sql("SELECT id FROM outbox WHERE kind = 'invite'")
    await relay.sql("UPDATE outbox SET status = 'failed', last_error = 'test: refused' WHERE id = ?", failed)
    return relay, {"event": answer["id"], "grant": grant, "failed": failed}


@pytest.mark.parametrize("route", BY_ROUTES)
@pytest.mark.parametrize("given", [None, "ops-ann", " OPS-Ann "])
async def test_a_named_admins_action_is_recorded_as_theirs(start: Start, route: str, given: str | None) -> None:
    """Every admin route that records `by`: with a RELAY_ADMINS token it records the token's admin, whether
    `by` is left out or names the same admin."""
    relay, at = await by_routes_ready(start)
    action = BY_ROUTES[route]
    response = await action.call(relay, at, given, ANN)
    assert response.status < 300, await response.text()
    assert await action.recorded(relay, at) == ["ops-ann"]


@pytest.mark.parametrize("route", BY_ROUTES)
async def test_a_named_admin_cannot_act_as_someone_else(start: Start, route: str) -> None:
    """Every admin route that records `by`: a RELAY_ADMINS token with a `by` naming someone else is 400
    `bad_request`, saying the token already names who acts, and nothing is done or recorded."""
    relay, at = await by_routes_ready(start)
    action = BY_ROUTES[route]
    response = await action.call(relay, at, "night-shift", ANN)
    body = await response.json()
    assert response.status == 400 and body["error"] == "bad_request", body
    assert "already names who acts (ops-ann)" in body["detail"]
    assert await action.recorded(relay, at) == []


@pytest.mark.parametrize("route", BY_ROUTES)
async def test_an_unnamed_admin_token_records_the_by_it_is_given(start: Start, route: str) -> None:
    """A RELAY_ADMIN_TOKENS token names nobody: the `by` it sends is recorded, as before."""
    relay, at = await by_routes_ready(start)
    action = BY_ROUTES[route]
    response = await action.call(relay, at, "night-shift", ADMIN)
    assert response.status < 300, await response.text()
    assert await action.recorded(relay, at) == ["night-shift"]


async def test_dev_banner_prints_a_one_time_sign_in_link_kept_beside_the_address(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve --dev`'s banner prints a console sign-in link with a one-time token (also in var/dev-console.url, 0600)
    that signs in once."""
    from relay.cli import serve
    from relay.cli.dev import DEV_CONSOLE_FILE, forget_console_link

    monkeypatch.chdir(tmp_path)
    relay = await start(dev=True)
    settings = relay.app[SETTINGS]
    link = serve._announce_dev(relay.app, settings, "127.0.0.1", 8080, settings.public_base_url)
    printed = capsys.readouterr().out
    assert link in printed and "/console/sign-in?once=" in link
    assert (tmp_path / DEV_CONSOLE_FILE).read_text().strip() == link
    assert (tmp_path / DEV_CONSOLE_FILE).stat().st_mode & 0o777 == 0o600
    path = link.split(settings.public_base_url, 1)[1]
    console = Console(relay)
    await console.page(path)
    once = path.split("once=", 1)[1]
    assert (await console.send("/console/sign-in", once=once, next="/console"))[0] == 303
    forget_console_link(link)
    assert not (tmp_path / DEV_CONSOLE_FILE).exists()


# Invite now and the loop's timeline -----------------------------------------------------------------

CY = {"id": "cy", "display": "Cy", "groups": ["elsewhere"], "channels": ["console"]}


def invite_form(html: str) -> str:
    """The invite-now form of a loop's page."""
    return html.split('id="invite-form"', 1)[1].split("</form>", 1)[0]


def loop_page(answer: dict[str, Any]) -> str:
    return f"/console/loops/m3/{answer['id']}"


async def test_invite_now_from_a_loop_page_invites_by_the_signed_in_admin(start: Start) -> None:
    """An unroutable loop's page lists the directory's agents, nobody ticked; ticking Ana invites her through the
    Instructions service with ops-ann as `by` (the page says on which channel); again, she is named as invited already."""
    relay, console = await signed_in(start, relay_agent_max_invites_per_hour=0)
    await relay.seed(agents=[ANA, BO])
    answer = await relay.send("m3", panic())
    assert answer["status"] == "unroutable"
    form = invite_form(await console.page(loop_page(answer)))
    assert 'value="ana"> Ana' in form and 'value="bo"> Bo' in form and "checked" not in form

    status, html, _ = await console.send(f"{loop_page(answer)}/invite", agents="ana")
    assert status == 200, html
    assert 'data-answer="invited"' in html and "Ana is invited on console." in html
    loop = await relay.loop(answer)
    assert loop["status"] == "invited"
    assert loop["invitations"] == [
        {"agent": "ana", "channel": "console", "status": "queued", "invited_by": "admin:ops-ann"},
        {"agent": "bo", "channel": None, "status": "skipped"},  # past the hourly limit, as routing left it
    ]
    assert "<dd data-invited-by>admin:ops-ann</dd>" in html  # the timeline: who asked for it
    (row,) = [a for a in await relay.audit() if a["kind"] == "invite_now"]
    assert row["action_origin"] == "user_directed" and row["detail"]["by"] == "admin:ops-ann"
    assert row["detail"]["user_instruction"] == "ops-ann invited ana"

    # each ticked box arrives as its own field
    response = await relay.post(
        f"{loop_page(answer)}/invite",
        data=[("csrf", console.csrf), ("agents", "ana"), ("agents", "bo")],
        allow_redirects=False,
    )
    html = await response.text()
    assert response.status == 200, html
    assert "Bo is invited on console." in html
    assert "Ana holds an invitation to this loop already; nothing changed for them." in html
    assert [(i["agent"], i["invited_by"]) for i in (await relay.loop(answer))["invitations"]] == [
        ("ana", "admin:ops-ann"),
        ("bo", "admin:ops-ann"),
    ]


async def test_invite_now_without_consent_is_a_calm_409_and_invites_nobody(start: Start) -> None:
    """No live grant covers Zed's signal: 409 consent_required on the loop's page, with what to do; nobody invited."""
    relay, console = await signed_in(start)
    await relay.seed()
    zed = await relay.send("m3", panic(actor={"id": "zed", "display": "Zed"}))
    assert zed["status"] == "pending_consent"
    await console.page(loop_page(zed))
    status, html, _ = await console.send(f"{loop_page(zed)}/invite", agents="ana")
    assert status == 409 and 'data-code="consent_required"' in html
    assert "No live consent grant" in html and "Record a consent grant on the Consent page first." in html
    assert [i for i in (await relay.loop(zed))["invitations"] if i["status"] != "skipped"] == []


async def test_invite_now_names_each_refused_agent_and_why(start: Start) -> None:
    """Cy is outside the granted groups and Ana is away: 400 naming both and why; nobody is invited."""
    relay, console = await signed_in(start, relay_agent_max_invites_per_hour=0)
    await relay.seed(agents=[ANA, CY])
    answer = await relay.send("m3", panic())
    await relay.admin("PATCH", "/admin/agents/ana", {"away": True})
    await console.page(loop_page(answer))
    response = await relay.post(
        f"{loop_page(answer)}/invite",
        data=[("csrf", console.csrf), ("agents", "cy"), ("agents", "ana")],
        allow_redirects=False,
    )
    html = await response.text()
    assert response.status == 400 and 'data-answer="refused"' in html
    assert "&#39;cy&#39; is outside the groups" in html and "&#39;ana&#39; is away" in html
    assert "Nobody was invited." in html
    assert [(i["agent"], i["status"]) for i in (await relay.loop(answer))["invitations"]] == [("ana", "skipped")]


async def test_invite_now_with_nobody_ticked_or_for_a_closed_loop_is_a_calm_message(start: Start) -> None:
    """No agent ticked: 422 "tick at least one"; a loop a person closed: 409 already_done, and its page offers
    no invite form; an event that does not exist: 404."""
    relay, console = await signed_in(start)
    answer, invitation = await relay.invited()
    await console.page(loop_page(answer))
    status, html, _ = await console.send(f"{loop_page(answer)}/invite")
    assert status == 422 and "Tick at least one agent to invite. Nobody was invited." in html

    await relay.drain()
    assert (await relay.press(relay.link(invitation), action="done", outcome="held-space", note=""))[0] == 200
    page = await console.page(loop_page(answer))
    assert 'id="invite-form"' not in page
    status, html, _ = await console.send(f"{loop_page(answer)}/invite", agents="ana")
    assert status == 409 and 'data-code="already_done"' in html and "closed by a person" in html
    status, html, _ = await console.send("/console/loops/m3/evt_nope/invite", agents="ana")
    assert status == 404 and "No event with this id" in html


async def test_a_loop_shows_its_joined_signals_and_a_joined_signal_the_loop_it_joined(start: Start) -> None:
    """A second panic about Raz while Ana's loop is open joins it: the loop's timeline lists it (id, type, when),
    and the joined signal's page names the loop it joined."""
    relay, console = await signed_in(start, relay_coalesce=True)
    first, _ = await relay.invited()
    second = await relay.send("m3", panic())
    assert second["status"] == "joined"
    (joined,) = (await relay.loop(first))["joined"]
    timeline = await console.page(loop_page(first))
    section = timeline.split('id="joined"', 1)[1].split("</ul>", 1)[0]
    assert f'data-joined="{second["id"]}"' in section and "panic.ui" in section and joined["ts"] in section
    page = await console.page(loop_page(second))
    assert f'This signal joined the open loop <a href="{loop_page(first)}">{first["id"]}</a>' in page


# Away and back ---------------------------------------------------------------------------------------


async def test_away_and_back_from_the_agent_page_by_the_signed_in_admin(start: Start) -> None:
    """The agent's page sets Ana away (Directory.set_away, ops-ann's instruction, audited) and the Agents list
    shows it; back again the same way; an agent not in the directory is a calm 404."""
    relay, console = await signed_in(start)
    await relay.seed(agents=[ANA, BO])
    assert 'id="set-away"' in await console.page("/console/agents/ana/edit")
    status, _, location = await console.send("/console/agents/ana/away", away="true")
    assert status == 303 and location == "/console/agents/ana/edit?notice=agent-away"
    assert (await relay.admin("GET", "/admin/agents/ana"))[1]["away"] is True
    edit = await console.page(location)
    assert "routing passes them over until someone sets them back" in edit and 'id="set-back"' in edit
    listed = await console.page("/console/agents")
    assert 'data-agent="ana" data-active="true" data-away="true"' in listed
    assert 'data-agent="bo" data-active="true" data-away="false"' in listed

    status, _, location = await console.send("/console/agents/ana/away", away="false")
    assert status == 303 and location == "/console/agents/ana/edit?notice=agent-back"
    assert (await relay.admin("GET", "/admin/agents/ana"))[1]["away"] is False
    back, away = [a for a in await relay.audit() if a["kind"] in ("agent_away", "agent_back")]  # newest first
    assert (away["kind"], away["action_origin"]) == ("agent_away", "user_directed")
    assert away["detail"] == {"via": "console", "user_instruction": "ops-ann set ana away"}
    assert back["kind"] == "agent_back" and back["detail"]["user_instruction"] == "ops-ann set ana back"

    status, html, _ = await console.send("/console/agents/nobody/away", away="true")
    assert status == 404 and "No agent &#39;nobody&#39; in the directory." in html


@pytest.mark.parametrize("action", ["invite", "away"])
async def test_invite_now_and_away_need_the_csrf_token_and_a_session(start: Start, action: str) -> None:
    """Either action posted without the session's CSRF token, or without a session, is a 403 and changes nothing;
    the loop's page without a session goes to sign-in."""
    relay, console = await signed_in(start, relay_agent_max_invites_per_hour=0)
    await relay.seed()
    answer = await relay.send("m3", panic())
    path, fields = (
        (f"{loop_page(answer)}/invite", {"agents": "ana"})
        if action == "invite"
        else ("/console/agents/ana/away", {"away": "true"})
    )
    await console.page(loop_page(answer))
    status, html, _ = await console.send(path, csrf=False, **fields)
    assert status == 403 and "was not sent from a console page of this session" in html
    relay.client.session.cookie_jar.clear()
    response = await relay.post(path, data={"csrf": console.csrf, **fields}, allow_redirects=False)
    assert response.status == 403
    assert (await console.open(loop_page(answer)))[0] == 303
    assert [i["status"] for i in (await relay.loop(answer))["invitations"]] == ["skipped"]
    assert (await relay.admin("GET", "/admin/agents/ana"))[1]["away"] is False
