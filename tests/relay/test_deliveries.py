"""Deliveries you can rely on (CONTRACT section 6): schedules by kind, failed work listed and retried.

The relay's clock is driven by hand (the `clock` fixture): a retry comes due when the clock
reaches its `next_attempt_at`, never because a test slept.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relay.answers import Ack
from relay.keys import ANSWERS, OUTBOX
from tests.conftest import BOTH_DATABASES, Clock
from tests.driver import ADMIN, GRANT, TEAM, TEAM_GRANTS, Relay, Start, panic
from tests.fakes.sink import Sink
from tests.fakes.twilio import FakeTwilio
from tests.support import clean_env, run_cli

DEFAULT_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
FIELDS = {
    "id",
    "kind",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "event_id",
    "source",
    "agent",
    "channel",
    "created_at",
    "updated_at",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ANA_PHONE = "+40722000111"
SMS_ANA = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "phone": ANA_PHONE, "channels": ["sms"]}


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as server:
        yield server


def at(ms: int) -> float:
    """The clock reading at which `millis(clock)` is `ms` (a hair past it, against float rounding)."""
    return (ms + 0.5) / 1000


async def callback_row(relay: Relay) -> dict[str, Any]:
    ((status, attempts, due, updated, error),) = await relay.sql(
        "SELECT status, attempts, next_attempt_at, updated_at, last_error FROM outbox WHERE kind = 'callback'"
    )
    return {"status": status, "attempts": attempts, "due": due, "updated": updated, "error": error}


async def acked(relay: Relay, answer: dict[str, Any], agent: str = "ana") -> None:
    """`agent` acks the loop of this intake answer (as a link page would), queueing the callback."""
    sid = await relay.signal_id(answer["id"])
    assert (
        await relay.app[ANSWERS].record(Ack(signal_id=sid, agent_id=agent, response="soft-checkin", via="link"))
    ).recorded


async def listing(relay: Relay, query: str = "") -> dict[str, Any]:
    response = await relay.get(f"/admin/outbox{query}", headers=ADMIN)
    assert response.status == 200, await response.text()
    page: dict[str, Any] = await response.json()
    return page


async def retry(relay: Relay, row_id: int | str, by: str | None = "ops-ann") -> tuple[int, dict[str, Any]]:
    query = "" if by is None else f"?by={by}"
    response = await relay.post(f"/admin/outbox/{row_id}/retry{query}", headers=ADMIN)
    return response.status, await response.json()


def cli_env(database_url: str) -> dict[str, str]:
    return clean_env(RELAY_DATABASE_URL=database_url)


async def care_relay(database_url: str, cwd: Path, *args: str) -> tuple[int, str, str]:
    """`care-relay ARGS` in a subprocess against the test's database, off the event loop the relay runs on."""
    done = await asyncio.to_thread(run_cli, cli_env(database_url), cwd, *args)
    return done.returncode, done.stdout, done.stderr


# Schedules by kind ----------------------------------------------------------------------


@BOTH_DATABASES
async def test_a_callback_sink_down_for_a_while_gets_the_callback_on_schedule_exactly_once(
    start: Start, sink: Sink, clock: Clock
) -> None:
    """500, 500, a timeout, a refused connection, then 200: each retry waits its RELAY_CALLBACK_SCHEDULE step
    (±20 %), not a moment less, and the callback is delivered once and never again."""
    clock.fixed = time.time()
    relay = await start(m3_callback_url=f"{sink.url}/m3/callbacks")
    relay.app[OUTBOX].callback_timeout_sec = 0.3
    await relay.seed(*TEAM_GRANTS, agents=TEAM)
    answer = await relay.send("m3", panic())
    await relay.drain()
    sink.answer(500, times=2)
    sink.hang()
    await acked(relay, answer)
    await relay.drain()

    failures = ["HTTP 500", "HTTP 500", "timed out", "connection error"]
    for attempt, (step, error) in enumerate(zip(DEFAULT_SCHEDULE, failures, strict=False), start=1):
        row = await callback_row(relay)
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        assert row["error"].startswith(error), row
        assert 0.8 * step * 1000 <= row["due"] - row["updated"] <= 1.2 * step * 1000, (attempt, row)
        reached = len(sink.received)
        clock.fixed = at(row["due"] - 2)  # a moment early: nothing goes
        await relay.drain()
        assert len(sink.received) == reached and (await callback_row(relay))["attempts"] == attempt
        clock.fixed = at(row["due"])
        if attempt == 3:  # the fourth attempt finds nobody listening
            async with sink.refusing():
                await relay.drain()
        else:
            await relay.drain()

    row = await callback_row(relay)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 5, None)
    assert [r.status for r in sink.received] == [500, 500, None, 200]  # None: the one never answered
    (delivered,) = sink.delivered
    body = json.loads(delivered.body)
    assert body["type"] == "care.ack" and body["for"] == answer["id"]
    assert len({json.loads(r.body)["id"] for r in sink.received}) == 1  # one callback id, every attempt

    clock.fixed += 2 * 86400
    await relay.drain()
    assert len(sink.received) == 4
    assert (await listing(relay, "?kind=callback"))["items"] == []


async def test_a_callback_fails_after_the_last_step_of_its_schedule(start: Start, sink: Sink, clock: Clock) -> None:
    """With RELAY_CALLBACK_SCHEDULE=5,60 a callback has three attempts, then it is failed (whatever
    RELAY_OUTBOX_MAX_ATTEMPTS says)."""
    clock.fixed = time.time()
    relay = await start(m3_callback_url=sink.url, relay_callback_schedule=(5, 60), relay_outbox_max_attempts=20)
    await relay.seed(*TEAM_GRANTS, agents=TEAM)
    answer = await relay.send("m3", panic())
    await relay.drain()
    sink.answer(503, times=10)
    await acked(relay, answer)
    await relay.drain()
    for step in (5, 60):
        row = await callback_row(relay)
        assert row["status"] == "pending" and 0.8 * step * 1000 <= row["due"] - row["updated"] <= 1.2 * step * 1000
        clock.fixed = at(row["due"])
        await relay.drain()
    row = await callback_row(relay)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 3, "HTTP 503")
    assert len(sink.received) == 3


@BOTH_DATABASES
async def test_410_gone_fails_a_callback_at_once_and_the_listing_shows_it(
    start: Start, sink: Sink, clock: Clock
) -> None:
    """A sender answering 410 Gone is not asked again; the failed row is listed with the contract's fields."""
    clock.fixed = time.time()
    relay = await start(m3_callback_url=sink.url)
    await relay.seed(*TEAM_GRANTS, agents=TEAM)
    answer = await relay.send("m3", panic())
    await relay.drain()
    sink.answer(410)
    await acked(relay, answer)
    await relay.drain()
    row = await callback_row(relay)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 1, "HTTP 410")
    clock.fixed += 86400
    await relay.drain()
    assert len(sink.received) == 1

    page = await listing(relay, "?status=failed")
    (item,) = page["items"]
    assert set(item) == FIELDS and page["next_cursor"] is None
    assert {k: item[k] for k in FIELDS - {"id", "created_at", "updated_at"}} == {
        "kind": "callback",
        "status": "failed",
        "attempts": 1,
        "next_attempt_at": None,
        "last_error": "HTTP 410",
        "event_id": answer["id"],
        "source": "m3",
        "agent": "ana",
        "channel": None,
    }
    assert ISO.match(item["created_at"]) and ISO.match(item["updated_at"])


# Retry ------------------------------------------------------------------------------------


@BOTH_DATABASES
async def test_a_retry_makes_a_failed_callback_due_now_with_a_fresh_budget_and_is_audited(
    start: Start, sink: Sink, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failed after its schedule; retried: due at once, attempts from 0, the whole schedule again; audited
    `outbox_retry` (user_directed, with who asked). Retrying work that is not failed is 409 not_failed."""
    clock.fixed = time.time()
    relay = await start(m3_callback_url=sink.url, relay_callback_schedule=(1, 1))
    await relay.seed(*TEAM_GRANTS, agents=TEAM)
    answer = await relay.send("m3", panic())
    await relay.drain()
    sink.answer(500, times=5)
    await acked(relay, answer)
    for _ in range(3):
        await relay.drain()
        clock.fixed += 2
    row = await callback_row(relay)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    (item,) = (await listing(relay, "?status=failed&kind=callback"))["items"]

    status, body = await retry(relay, item["id"], by=None)
    assert status == 400 and body["error"] == "bad_request" and "'by'" in body["detail"]
    capsys.readouterr()
    status, body = await retry(relay, item["id"])
    assert status == 202, body
    assert (body["id"], body["status"], body["attempts"]) == (item["id"], "pending", 0)
    assert body["next_attempt_at"] == datetime.fromtimestamp(int(clock()), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert '"kind":"outbox_retry"' in capsys.readouterr().out
    (audited,) = [a for a in await relay.audit() if a["kind"] == "outbox_retry"]
    assert audited["action_origin"] == "user_directed" and audited["detail"]["by"] == "ops-ann"
    assert audited["detail"]["outbox"] == item["id"] and audited["event_id"] == answer["id"]

    status, body = await retry(relay, item["id"])  # pending now: not failed
    assert status == 409 and body["error"] == "not_failed" and "pending" in body["detail"]

    await relay.drain()  # the fourth 500: with a fresh budget this is attempt 1 of 3, not the end
    row = await callback_row(relay)
    assert (row["status"], row["attempts"], row["error"]) == ("pending", 1, "HTTP 500")
    clock.fixed = at(row["due"])
    await relay.drain()
    clock.fixed = at((await callback_row(relay))["due"])
    await relay.drain()
    row = await callback_row(relay)
    assert (row["status"], row["attempts"]) == ("sent", 3) and len(sink.delivered) == 1
    status, body = await retry(relay, item["id"])  # sent: not failed either
    assert status == 409 and body["error"] == "not_failed"


@pytest.mark.parametrize("row_id", ["999999", "abc", "0", "-1", "99999999999999999999999"])
async def test_retrying_an_unknown_row_is_404(relay: Relay, row_id: str) -> None:
    """An id that names no outbox row is 404 not_found, never a 500."""
    status, body = await retry(relay, row_id)
    assert status == 404 and body["error"] == "not_found" and body["detail"]


async def test_the_outbox_pages_need_the_admin_token(relay: Relay) -> None:
    """No bearer: 401; a wrong one: 403 (listing and retry alike)."""
    assert (await relay.get("/admin/outbox")).status == 401
    assert (await relay.post("/admin/outbox/1/retry?by=x")).status == 401
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    assert (await relay.get("/admin/outbox", headers=wrong)).status == 403
    assert (await relay.post("/admin/outbox/1/retry?by=x", headers=wrong)).status == 403


# The listing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?status=sent", "failed, pending, sending"),
        ("?status=failed,bogus", "failed, pending, sending"),
        ("?kind=sms", "invite, update, callback, forward"),
        ("?cursor=not-a-cursor", "next_cursor"),
        ("?cursor=MA", "next_cursor"),
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
    ],
)
async def test_a_bad_listing_query_is_400_with_what_to_use(relay: Relay, query: str, named: str) -> None:
    """Unknown status or kind, a cursor that no page gave, a bad limit: 400 bad_request saying what would do."""
    response = await relay.get(f"/admin/outbox{query}", headers=ADMIN)
    body = await response.json()
    assert response.status == 400 and body["error"] == "bad_request" and named in body["detail"], body


@BOTH_DATABASES
async def test_the_listing_filters_by_status_and_kind_and_pages_by_cursor(
    start: Start, sink: Sink, clock: Clock
) -> None:
    """Three failed and two pending callbacks: filters pick them out; pages of two, newest first, each row once."""
    clock.fixed = time.time()
    relay = await start(m3_callback_url=sink.url)
    await relay.seed(*TEAM_GRANTS, agents=TEAM)
    answers = [await relay.send("m3", panic()) for _ in range(3)]
    await relay.drain()
    sink.answer(410, times=3)
    sink.answer(500, times=2)
    for answer in answers:
        await acked(relay, answer, "ana")
        await relay.drain()
    for answer in answers[:2]:
        await acked(relay, answer, "bo")
        await relay.drain()

    failed = (await listing(relay, "?status=failed"))["items"]
    pending = (await listing(relay, "?status=pending&kind=callback"))["items"]
    assert [(i["status"], i["agent"]) for i in failed] == [("failed", "ana")] * 3
    assert [(i["status"], i["agent"], i["attempts"]) for i in pending] == [("pending", "bo", 1)] * 2
    assert all(ISO.match(i["next_attempt_at"]) for i in pending)
    assert (await listing(relay, "?kind=invite,update"))["items"] == []  # sent work is not listed
    both = (await listing(relay, "?status=failed,pending"))["items"]
    assert [i["id"] for i in both] == sorted((i["id"] for i in failed + pending), reverse=True)
    assert (await listing(relay, "?status=failed&status=pending"))["items"] == both

    seen, cursor, pages = [], "", 0
    while True:
        page = await listing(relay, f"?limit=2{f'&cursor={cursor}' if cursor else ''}")
        seen += [i["id"] for i in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == [i["id"] for i in both] and pages == 3


# Invitations: retried, and checked again at send time ------------------------------------


def twilio_settings(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "dev": False,
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_sms_from": "+15005550006",
        "twilio_api_base_url": fake.base_url,
        "relay_public_base_url": "https://relay.example",
    }


async def failed_sms_invitation(relay: Relay, twilio: FakeTwilio) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Ana on SMS, a panic that invites her, a send Twilio refuses for good: the answer, the grant id, the listed row."""
    (grant_id,) = await relay.seed(GRANT, agents=[SMS_ANA])
    answer = await relay.send("m3", panic())
    twilio.fail_next(status=400, code=21211)  # Twilio's text for it quotes the number
    await relay.drain()
    assert (await relay.loop(answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "failed"}]
    page = await listing(relay, "?status=failed&kind=invite")
    (item,) = page["items"]
    assert (item["agent"], item["channel"], item["event_id"]) == ("ana", "sms", answer["id"])
    assert item["last_error"] == "Twilio 400 (error 21211)"
    assert ANA_PHONE.lstrip("+") not in json.dumps(page)
    return answer, grant_id, item


@BOTH_DATABASES
async def test_a_retried_invitation_whose_grant_was_revoked_is_skipped_not_sent(
    start: Start, twilio: FakeTwilio
) -> None:
    """Retry does not bypass consent: the invitation goes back to queued, meets the send-time check,
    and is skipped with consent_revoked (audited), Twilio never asked again."""
    relay = await start(**twilio_settings(twilio))
    answer, grant_id, item = await failed_sms_invitation(relay, twilio)
    assert (await relay.delete(f"/admin/consents/{grant_id}?by=admin", headers=ADMIN)).status == 204
    status, body = await retry(relay, item["id"])
    assert status == 202 and body["status"] == "pending"
    assert (await relay.loop(answer))["invitations"][0]["status"] == "queued"
    await relay.drain()
    assert len(twilio.requests) == 1 and twilio.messages == []
    assert (await relay.loop(answer))["invitations"][0]["status"] == "skipped"
    assert await relay.sql("SELECT status, last_error FROM outbox WHERE kind = 'invite'") == [
        ("skipped", "consent_revoked")
    ]
    kinds = [(a["kind"], a["gate_failures"]) for a in await relay.audit() if a["event_id"] == answer["id"]]
    assert ("invitation_skipped", ["consent_revoked"]) in kinds and ("outbox_retry", []) in kinds
    status, body = await retry(relay, item["id"])  # skipped is final, not failed
    assert status == 409 and body["error"] == "not_failed"


async def test_a_retried_invitation_whose_loop_a_person_closed_is_skipped_not_sent(
    start: Start, twilio: FakeTwilio
) -> None:
    """Someone closed the loop while Ana's SMS had failed: a retry of it is skipped (loop_closed), never sent."""
    relay = await start(**twilio_settings(twilio))
    answer, _grant_id, item = await failed_sms_invitation(relay, twilio)
    invitation = await relay.invitation_id(answer["id"])
    assert (await relay.press(relay.link(invitation), action="done", outcome="held-space", note=""))[0] == 200
    assert (await retry(relay, item["id"]))[0] == 202
    await relay.drain()
    assert len(twilio.requests) == 1 and twilio.messages == []
    assert await relay.sql("SELECT status, last_error FROM outbox WHERE kind = 'invite'") == [
        ("skipped", "loop_closed")
    ]
    assert (await relay.loop(answer))["status"] == "done"


@BOTH_DATABASES
async def test_the_cli_lists_failed_work_and_retries_it(
    start: Start, twilio: FakeTwilio, database_url: str, tmp_path: Path
) -> None:
    """`care-relay outbox --status failed --json` lists what the API lists; `outbox retry --failed --kind invite
    --by NAME` retries it through the same service (audited with the name), and the invitation goes out."""
    relay = await start(**twilio_settings(twilio))
    answer, _, item = await failed_sms_invitation(relay, twilio)

    code, out, err = await care_relay(database_url, tmp_path, "outbox", "--status", "failed", "--json")
    assert code == 0, err
    assert json.loads(out) == [item]
    code, out, err = await care_relay(database_url, tmp_path, "outbox")
    assert code == 0 and re.search(rf"^{item['id']}\s+invite\s+failed\s+1\b", out, re.MULTILINE), out
    assert ANA_PHONE.lstrip("+") not in out

    code, out, err = await care_relay(
        database_url, tmp_path, "outbox", "retry", "--failed", "--kind", "callback", "--by", "ops-bo"
    )
    assert code == 0 and "nothing has failed" in out, err
    code, out, err = await care_relay(
        database_url, tmp_path, "outbox", "retry", "--failed", "--kind", "invite", "--by", "ops-bo"
    )
    assert code == 0, err
    assert f"\nretried outbox row {item['id']} (invite, m3 {answer['id']}): due now" in out
    assert out.startswith('[CARE_AUDIT] {"kind":"outbox_retry"')  # audit lines go to stdout, from the CLI too
    code, out, err = await care_relay(database_url, tmp_path, "outbox", "retry", str(item["id"]), "--by", "ops-bo")
    assert code == 2 and "not failed" in err and err.count("\n") == 1
    code, out, err = await care_relay(database_url, tmp_path, "outbox", "retry", "--by", "ops-bo")
    assert code == 2 and "--failed" in err

    (audited,) = [a for a in await relay.audit() if a["kind"] == "outbox_retry"]
    assert audited["detail"]["by"] == "ops-bo" and audited["action_origin"] == "user_directed"
    assert audited["agent"] == "ana" and audited["detail"]["channel"] == "sms"
    await relay.drain()
    assert [m["To"] for m in twilio.messages] == [ANA_PHONE]
    assert (await relay.loop(answer))["invitations"][0]["status"] == "sent"
    assert (await listing(relay))["items"] == []


async def test_an_invitation_that_comes_due_in_quiet_hours_is_skipped(
    start: Start, twilio: FakeTwilio, clock: Clock
) -> None:
    """Decided by day on SMS, sent only once the agent's quiet hours began: skipped with quiet_hours, audited."""
    now = datetime.now(UTC)
    clock.fixed = now.timestamp()
    quiet = f"{(now + timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=5)):%H:%M}"
    relay = await start(**twilio_settings(twilio))
    await relay.seed(GRANT, agents=[SMS_ANA | {"quiet_hours": quiet, "tz": "UTC"}])
    answer = await relay.send("m3", panic())
    assert (await relay.loop(answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "queued"}]
    clock.fixed += 3 * 3600
    await relay.drain()
    assert twilio.requests == []
    assert (await relay.loop(answer))["invitations"][0]["status"] == "skipped"
    (skipped,) = [a for a in await relay.audit() if a["kind"] == "invitation_skipped"]
    assert skipped["gate_failures"] == ["quiet_hours"] and skipped["action_origin"] == "care_autonomous"
