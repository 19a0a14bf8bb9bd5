"""What every channel that takes answers must obey, run over each of them.

The real app with Slack and Twilio pointed at their fakes (the real SDKs, signatures on)
and a sender's callback sink. A channel joins by one `Channel` entry below: where its
invitations go, how an agent acks or closes on it, and what the agent is told back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from relay.app import create_app
from relay.keys import OUTBOX
from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.relay.channels import test_slack
from tests.relay.channels.test_slack import SECRET, Sink, ephemerals, invitation_of, press, submit
from tests.relay.channels.test_twilio import PUBLIC, SMS_FROM, WA_FROM, reply
from tests.support import ADMIN_TOKEN, fixture, fresh, make_settings, signed, wrote_in_on_whatsapp

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GRANT = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
#: who is who on every channel; ana and bo are invited, cy is in the directory but not invited.
PEOPLE = {
    "ana": {"slack_user": "U0ANA", "phone": "+40722000111", "whatsapp": "+40722000222", "groups": ["care-circle"]},
    "bo": {"slack_user": "U0BO", "phone": "+40722000333", "whatsapp": "+40722000444", "groups": ["care-circle"]},
    "cy": {"slack_user": "U0CY", "phone": "+40722000555", "whatsapp": "+40722000666", "groups": ["other-circle"]},
    "stranger": {"slack_user": "U0STRANGER", "phone": "+40744999888", "whatsapp": "+40744999777"},
}
CODE = re.compile(r"Reply ([A-Z2-9]{4}) 1 for ")
LINK = re.compile(re.escape(PUBLIC) + r"(/a/\S+)$")


@dataclass
class World:
    """The running relay, the providers' fakes, the sender's sink, and the signal every agent was invited to."""

    client: TestClient
    slack: FakeSlack
    twilio: FakeTwilio
    sink: Sink
    status_url: str = ""

    async def loop(self) -> dict[str, Any]:
        """The loop as the sender's status URL shows it."""
        return await (await self.client.get(self.status_url)).json()

    async def audit(self) -> list[dict[str, Any]]:
        return (await (await self.client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]

    async def callbacks(self) -> list[dict[str, Any]]:
        """Every callback the sender got (signature checked), once the outbox has sent what is due."""
        await self.client.app[OUTBOX].drain()
        return self.sink.verified()

    def text_to(self, number: str) -> str:
        """The last SMS or WhatsApp message sent to `number`."""
        return [m["Body"] for m in self.twilio.messages if m["To"].removeprefix("whatsapp:") == number][-1]


Answer = Callable[[World, str, str], Awaitable[str]]
Close = Callable[[World, str, str, str], Awaitable[str]]


@dataclass(frozen=True)
class Channel:
    """One way agents answer: `ack(world, who, holder)` / `done(world, who, holder, outcome)` return what `who` was told.

    `holder` is the invited agent whose invitation the answer names (a code, a button, a link).
    """

    name: str
    #: the directory channel the invitations go out on.
    sends_on: str
    ack: Answer
    done: Close
    #: what an agent is told on answering a loop someone else closed (SMS: the code is no longer open).
    told_when_closed: str = "already closed"
    #: False where the channel cannot tell a stranger from the holder (a link is a bearer capability).
    knows_who_answers: bool = True


async def _slack_ack(world: World, who: str, holder: str) -> str:
    invitation = invitation_of(world.slack, str(PEOPLE[holder]["slack_user"]))
    user = str(PEOPLE[who]["slack_user"])
    await press(world.client, user, "care_ack_1", f"{invitation}:1")
    return "\n".join(ephemerals(world.slack, user))


async def _slack_done(world: World, who: str, holder: str, outcome: str) -> str:
    invitation = invitation_of(world.slack, str(PEOPLE[holder]["slack_user"]))
    user = str(PEOPLE[who]["slack_user"])
    await press(world.client, user, "care_done", str(invitation))
    submitted = await (await submit(world.client, user, invitation, outcome)).text()
    return "\n".join([*ephemerals(world.slack, user), submitted])


def _twilio(whatsapp: bool) -> tuple[Answer, Close]:
    field = "whatsapp" if whatsapp else "phone"

    async def text(world: World, who: str, holder: str, words: str) -> str:
        code = CODE.search(world.text_to(str(PEOPLE[holder][field])))
        assert code, "the invitation names its code"
        said = await reply(
            world.client, words.format(code=code.group(1)), from_=str(PEOPLE[who][field]), whatsapp=whatsapp
        )
        return "\n".join(said)

    async def ack(world: World, who: str, holder: str) -> str:
        return await text(world, who, holder, "{code} 1")

    async def done(world: World, who: str, holder: str, outcome: str) -> str:
        return await text(world, who, holder, "DONE {code} " + outcome)

    return ack, done


def _link_of(world: World, holder: str) -> str:
    found = LINK.search(world.text_to(str(PEOPLE[holder]["phone"])))
    assert found, "the invitation carries its action link"
    return found.group(1)


async def _post_link(world: World, holder: str, form: dict[str, str]) -> str:
    response = await world.client.post(_link_of(world, holder), data=form)
    return f"{response.status} {await response.text()}"


async def _link_ack(world: World, who: str, holder: str) -> str:
    return await _post_link(world, holder, {"action": "ack", "response": "soft-checkin"})


async def _link_done(world: World, who: str, holder: str, outcome: str) -> str:
    return await _post_link(world, holder, {"action": "done", "outcome": outcome, "note": ""})


CHANNELS = [
    Channel("slack", "slack", _slack_ack, _slack_done),
    Channel("sms", "sms", *_twilio(whatsapp=False), told_when_closed="I don't have an open invitation"),
    Channel("whatsapp", "whatsapp", *_twilio(whatsapp=True), told_when_closed="I don't have an open invitation"),
    Channel("link", "sms", _link_ack, _link_done, told_when_closed="409 ", knows_who_answers=False),
]


#: the sender's callback endpoint, as the Slack tests record it
sink = test_slack.sink


@pytest.fixture(params=CHANNELS, ids=[c.name for c in CHANNELS])
def channel(request: pytest.FixtureRequest) -> Channel:
    found: Channel = request.param
    return found


@pytest.fixture
async def world(
    aiohttp_client: Any, database_url: str, slack: FakeSlack, twilio: FakeTwilio, sink: Sink, channel: Channel
) -> World:
    """The relay on every provider's fake; ana, bo and cy in the directory; a panic.ui sent to ana and bo."""
    settings = make_settings(
        database_url,
        slack_bot_token=DEFAULT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_sms_from=SMS_FROM,
        twilio_whatsapp_from=WA_FROM,
        twilio_api_base_url=twilio.base_url,
        relay_public_base_url=PUBLIC,
        m3_callback_url=sink.url,
    )
    client: TestClient = await aiohttp_client(create_app(settings, run_outbox=False))
    for name in ("ana", "bo", "cy"):
        agent = {"id": name, "display": name.title(), "channels": [channel.sends_on], **PEOPLE[name]}
        assert (await client.post("/admin/agents", json=agent, headers=ADMIN)).status == 201
    await wrote_in_on_whatsapp(client.app, "ana", "bo", "cy")  # invitations go as free-form WhatsApp text
    assert (await client.post("/admin/consents", json=GRANT, headers=ADMIN)).status == 201
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    response = await client.post("/hooks/m3", data=body, headers=headers)
    assert response.status == 202, await response.text()
    world = World(client, slack, twilio, sink, (await response.json())["status_url"])
    await client.app[OUTBOX].drain()
    invited = sorted((i["agent"], i["status"]) for i in (await world.loop())["invitations"])
    assert invited == [("ana", "sent"), ("bo", "sent")]
    return world


async def _nothing_recorded(world: World) -> None:
    loop = await world.loop()
    assert (loop["status"], loop["acks"], loop["done"]) == ("invited", [], None)
    assert await world.callbacks() == []


@pytest.mark.parametrize("how", ["deactivated", "removed"])
async def test_an_agent_no_longer_active_cannot_answer(world: World, channel: Channel, how: str) -> None:
    """An agent switched off or removed in the directory acks and closes in vain: nothing is recorded, nothing sent."""
    if how == "deactivated":
        response = await world.client.patch("/admin/agents/ana", json={"active": False}, headers=ADMIN)
        assert response.status == 200
    else:
        assert (await world.client.delete("/admin/agents/ana", headers=ADMIN)).status == 204
    await channel.ack(world, "ana", "ana")
    await channel.done(world, "ana", "ana", "held-space")
    await _nothing_recorded(world)


#: Where a refusal names no loop, the channel keeps it as an audit line only (CONTRACT: "nothing is
#: recorded but an audit line"); elsewhere it is also an audit row on the loop.
LINE_ONLY = {
    ("sms", "stranger"): "a number not in the directory is kept as a verification attempt, not a refusal row",
    ("whatsapp", "stranger"): "a number not in the directory is kept as a verification attempt, not a refusal row",
    ("sms", "cy"): "a code that is not one of the agent's own open invitations leaves an audit line only",
    ("whatsapp", "cy"): "a code that is not one of the agent's own open invitations leaves an audit line only",
}


#: the channels that tell who answers (a link is a bearer capability: whoever holds it answers as its agent)
KNOWS_WHO = [c for c in CHANNELS if c.knows_who_answers]


@pytest.mark.parametrize("channel", KNOWS_WHO, ids=[c.name for c in KNOWS_WHO])
@pytest.mark.parametrize("who", ["stranger", "cy"], ids=["not-in-directory", "not-invited"])
async def test_a_stranger_is_refused_and_audited(
    world: World, channel: Channel, who: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone not in the directory, or in it but not invited, cannot answer ana's invitation; each refusal is audited."""
    capsys.readouterr()
    await channel.ack(world, who, "ana")
    await channel.done(world, who, "ana", "held-space")
    await _nothing_recorded(world)
    expected = None if who == "stranger" else who
    lines = [
        json.loads(line.removeprefix("[CARE_AUDIT] "))
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("[CARE_AUDIT] ")
    ]
    refused = [r for r in lines if r["kind"] in ("refusal", "unknown_sender") and r["via"] == channel.name]
    assert len(refused) >= 2  # the ack and the done (Slack's close is a press and a form), each audited
    assert all(r.get("agent") == expected for r in refused)
    refusals = [a for a in await world.audit() if a["kind"] == "refusal"]
    if (channel.name, who) in LINE_ONLY:
        assert refusals == []
    else:
        assert len(refusals) == len(refused)  # every refusal line has its row on the loop
        assert all(a["agent"] == expected and a["detail"]["via"] == channel.name for a in refusals)


async def test_a_loop_is_closed_once(world: World, channel: Channel) -> None:
    """A second done from another invited agent changes nothing; the sender hears care.done exactly once."""
    await channel.done(world, "ana", "ana", "held-space")
    told = await channel.done(world, "bo", "bo", "talked")
    assert channel.told_when_closed in told  # bo is told nothing more can be answered
    if channel.name == "link":
        assert "already closed" in told
    loop = await world.loop()
    assert loop["status"] == "done"
    assert (loop["done"]["by"]["id"], loop["done"]["outcome"]) == ("ana", "held-space")
    dones = [c for c in await world.callbacks() if c["type"] == "care.done"]
    assert [(d["by"]["id"], d["outcome"]) for d in dones] == [("ana", "held-space")]
    assert json.dumps(loop["done"]).count("talked") == 0
