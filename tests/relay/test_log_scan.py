"""A served relay (`care-relay serve`, its own process) prints no care data, whatever happens.

One realistic run against Slack's and Twilio's fakes and a sender's callback endpoint: the
golden path answered on Slack, by SMS and on the action-link page, a stranger refused on
Slack and by SMS, a failing provider (retried, then failing for good), a forged signature,
status lookups, probes and a scrape. Everything the process wrote, stdout and stderr, at
RELAY_LOG_LEVEL=debug, is then searched for the whispers, notes, display names and full
phone numbers of the run (tests/leaks.py). The session-wide search (tests/care_scan.py) covers
the in-process servers of every other test.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.leaks import leaks
from tests.relay.channels import test_slack
from tests.relay.channels.test_slack import SECRET, Sink, ephemerals, invitation_of, press, submit
from tests.relay.channels.test_twilio import PUBLIC, SMS_FROM, WA_FROM, reply
from tests.support import (
    ADMIN_TOKEN,
    AISHA_SECRETS,
    M3_SECRETS,
    SERVING_ENV,
    clean_env,
    fixture,
    fresh,
    m3_headers,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LISTENING = re.compile(r"listening on http://[^:\s\"]+:(\d+)")
CODE = re.compile(r"Reply ([A-Z2-9]{4}) 1 for ")
LINK = re.compile(re.escape(PUBLIC) + r"(/a/\S+)$")
BO_PHONE, CY_PHONE, STRANGER_PHONE = "+40722000333", "+40722000555", "+40744999888"
AGENTS = [
    {"id": "ana", "display": "Ana", "groups": ["care-circle"], "slack_user": "U0ANA", "channels": ["slack"]},
    {"id": "bo", "display": "Bo", "groups": ["care-circle"], "phone": BO_PHONE, "channels": ["sms"]},
    {"id": "cy", "display": "Cy", "groups": ["care-circle"], "phone": CY_PHONE, "channels": ["sms"]},
]
GRANT = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "admin"}

sink = test_slack.sink


async def _until(what: str, check: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.05)
    return found


async def _signal(relay: aiohttp.ClientSession, name: str) -> dict[str, Any]:
    payload = fresh("m3", fixture("m3", name))
    body = json.dumps(payload).encode()
    response = await relay.post("/hooks/m3", data=body, headers=m3_headers(body, payload["type"]))
    assert response.status == 202, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def _run(relay: aiohttp.ClientSession, slack: FakeSlack, twilio: FakeTwilio, sink: Sink) -> None:
    for agent in AGENTS:
        assert (await relay.post("/admin/agents", json=agent, headers=ADMIN)).status == 201
    assert (await relay.post("/admin/consents", json=GRANT, headers=ADMIN)).status == 201
    answer = await _signal(relay, "panic.ui__golden")
    await slack.wait_for("chat.postMessage", count=1)

    def text_to(number: str) -> str:
        return next((m["Body"] for m in reversed(twilio.messages) if m["To"] == number), "")

    async def both_texted() -> bool:
        return bool(text_to(BO_PHONE) and text_to(CY_PHONE))

    await _until("both invitations texted", both_texted)

    # the golden path: bo acks by SMS, cy on the link page, ana on Slack and closes the loop there
    code = CODE.search(text_to(BO_PHONE))
    assert code
    assert await reply(relay, f"{code.group(1)} 1", from_=BO_PHONE)  # type: ignore[arg-type]
    link = LINK.search(text_to(CY_PHONE))
    assert link
    assert (await relay.get(link.group(1))).status == 200
    page = await relay.post(link.group(1), data={"action": "ack", "response": "soft-checkin"})
    assert page.status == 200, await page.text()
    invitation = invitation_of(slack, "U0ANA")
    await press(relay, "U0ANA", "care_ack_1", f"{invitation}:1")  # type: ignore[arg-type]
    # strangers: a Slack user and a number not in the directory
    await press(relay, "U0STRANGER", "care_ack_1", f"{invitation}:1")  # type: ignore[arg-type]
    assert ephemerals(slack, "U0STRANGER")
    assert await reply(relay, f"{code.group(1)} 1", from_=STRANGER_PHONE) == []  # type: ignore[arg-type]
    await press(relay, "U0ANA", "care_done", str(invitation))  # type: ignore[arg-type]
    closed = await submit(relay, "U0ANA", invitation, "held-space", note="low energy")  # type: ignore[arg-type]
    assert closed.status == 200
    status = await relay.get(answer["status_url"])
    assert (await status.json())["status"] == "done"

    async def called_back() -> bool:
        return len(sink.got) >= 4  # three acks and the done

    await _until("the callbacks", called_back)

    # a failing provider: Slack down for a while (retried), Twilio refusing a number for good
    slack.fail_next("chat.postMessage", status=500, times=2)
    twilio.fail_next(status=400, code=21211, times=2)
    second = await _signal(relay, "status.set__golden")

    async def settled() -> bool:
        loop = await (await relay.get(second["status_url"])).json()
        return all(i["status"] in ("sent", "failed") for i in loop["invitations"]) and loop["invitations"]

    await _until("the second signal's invitations settled", settled, seconds=60)

    # refusals at the door, probes, a scrape
    body = json.dumps(fresh("m3", fixture("m3", "panic.ui__golden"))).encode()
    forged = m3_headers(body, "panic.ui", secret="not-the-secret-0123456789")
    assert (await relay.post("/hooks/m3", data=body, headers=forged)).status == 401
    assert (await relay.get("/v1/events/evt_nope?token=forged")).status == 403
    assert (await relay.get("/nowhere")).status == 404
    for probe in ("/healthz", "/readyz"):
        assert (await relay.get(probe)).status == 200
    assert (await relay.get("/metrics", headers=ADMIN)).status == 200


async def test_a_served_relay_prints_no_care_data(
    tmp_path: Path, slack: FakeSlack, twilio: FakeTwilio, sink: Sink
) -> None:
    """Whatever a served relay wrote during a realistic run (stdout and stderr, debug level) names no whisper,
    note, display name or full phone number; its stderr is JSON lines, one per request with its id."""
    env = clean_env(
        **{
            **SERVING_ENV,
            "RELAY_ADMIN_TOKENS": ADMIN_TOKEN,
            "M3_WEBHOOK_SECRETS": ",".join(M3_SECRETS),
            "AISHA_WEBHOOK_SECRETS": ",".join(AISHA_SECRETS),
            "RELAY_PUBLIC_BASE_URL": PUBLIC,
        },
        RELAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/relay.db",
        RELAY_PORT="0",  # the system picks a free port, and the log names it
        RELAY_LOG_LEVEL="debug",
        RELAY_LOG_FORMAT="auto",  # stderr is a file here: JSON
        RELAY_OUTBOX_MAX_ATTEMPTS="2",
        M3_CALLBACK_URL=sink.url,
        SLACK_BOT_TOKEN=DEFAULT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.api_url,
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_SMS_FROM=SMS_FROM,
        TWILIO_WHATSAPP_FROM=WA_FROM,
        TWILIO_API_BASE_URL=twilio.base_url,
    )
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay.cli", "serve", env=env, cwd=tmp_path, stdout=out, stderr=err
        )
        try:

            async def bound() -> str | None:
                assert server.returncode is None, err_path.read_text()
                found = LISTENING.search(err_path.read_text(errors="replace"))
                return found.group(1) if found else None

            port = await _until("the served relay listening", bound, seconds=60)
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as relay:

                async def up() -> bool:
                    assert server.returncode is None, err_path.read_text()
                    return (await relay.get("/healthz")).status == 200

                await _until("the served relay", up, seconds=60)
                await _run(relay, slack, twilio, sink)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert leaks(stdout) == [], stdout
    assert leaks(stderr) == [], stderr
    lines = [json.loads(line) for line in stderr.splitlines() if not line.startswith(("Traceback", " "))]
    requests = [line for line in lines if line["logger"] == "care_relay.request"]
    assert {"/hooks/m3", "/slack/events", "/hooks/twilio/inbound", "/a/{token}", "/readyz"} <= {
        line["route"] for line in requests
    }
    assert all(re.fullmatch(r"[0-9a-f]{16}", line["request_id"]) for line in requests)
    assert any(line["logger"].startswith("alembic") for line in lines)  # debug: the libraries speak too
    assert not any(
        line["logger"].startswith(("sqlalchemy.engine", "aiosqlite", "slack_sdk", "twilio")) for line in lines
    )
    assert "[CARE_AUDIT] " in stdout and "delivery_failed" in stdout
