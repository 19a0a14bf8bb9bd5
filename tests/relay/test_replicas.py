"""Deliveries you can rely on, seen from outside: real `care-relay serve` processes, fake providers
over HTTP, kills and SIGTERMs (CONTRACT.md section 6: crash, shutdown, replicas)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.driver import panic
from tests.fakes.sink import Sink
from tests.fakes.slack import FakeSlack
from tests.processes import (
    Database,
    RelayProcess,
    ack,
    invitation_ids,
    post_signal,
    relay_env,
    seed,
    until,
    until_async,
)
from tests.support import SERVING_ENV, clean_env

POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
BOTH = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
#: the care circle of the golden panic.ui, both on Slack
CIRCLE = [
    {"id": "ana", "display": "Ana", "groups": ["care-circle"], "slack_user": "U0ANA", "channels": ["slack"]},
    {"id": "bo", "display": "Bo", "groups": ["care-circle"], "slack_user": "U0BO", "channels": ["slack"]},
]
GRANT = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
#: how soon work a killed process had claimed is sent after the next start (CONTRACT.md section 6)
CRASH_BOUND_SEC = 15.0


class World:
    """Fake Slack, a callback sink, the shared database and the relays started on it."""

    def __init__(self, database_url: str, tmp_path: Path, slack: FakeSlack, sink: Sink) -> None:
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.slack = slack
        self.sink = sink
        self.db = Database(database_url)
        self.relays: list[RelayProcess] = []

    def relay(self, name: str, **settings: str) -> RelayProcess:
        env = relay_env(
            self.database_url, slack_api_url=self.slack.api_url, callback_url=self.sink.url + "/m3", **settings
        )
        process = RelayProcess(env, self.tmp_path, name)
        self.relays.append(process)
        return process

    def posted(self) -> list[int]:
        """Invitation ids of every chat.postMessage Slack received, repeats included."""
        return invitation_ids(self.slack.calls_to("chat.postMessage"))

    def callbacks(self) -> list[str]:
        """The `id` of every callback the sender received, repeats included."""
        return [json.loads(r.body)["id"] for r in self.sink.received]

    async def invitations(self) -> list[int]:
        return [int(r[0]) for r in await self.db.rows("SELECT id FROM invitation WHERE status <> 'skipped'")]

    async def unsettled(self) -> int:
        rows = await self.db.rows("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")
        return int(rows[0][0])


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeSlack() as slack, Sink() as sink:
        made = World(database_url, tmp_path, slack, sink)
        try:
            yield made
        finally:
            # off the loop: the fakes serve on it, and a relay draining may still be calling them
            await asyncio.gather(*(asyncio.to_thread(process.stop) for process in made.relays))
            await made.db.close()


async def settled(world: World, within: float = 20.0) -> None:
    await until_async(lambda: _none_left(world), within, what="the outbox settles everything queued")


async def _none_left(world: World) -> bool:
    return await world.unsettled() == 0


@POSTGRES
async def test_two_replicas_store_each_signal_once_and_deliver_each_invitation_and_callback_once(
    world: World,
) -> None:
    """A burst sent alternately to two replicas, each signal also sent to the other at once: one
    signal per event id, and Slack and the sender receive every invitation and callback exactly once."""
    a, b = world.relay("a"), world.relay("b")
    await asyncio.gather(a.start(), b.start())  # both migrate an empty database at once
    urls = [a.url, b.url]
    async with aiohttp.ClientSession() as http:
        await seed(http, a.url, CIRCLE, GRANT)
        payloads = [panic() for _ in range(40)]
        sends = [post_signal(http, urls[i % 2], p) for i, p in enumerate(payloads)]
        sends += [post_signal(http, urls[(i + 1) % 2], p) for i, p in enumerate(payloads)]
        answers = await asyncio.gather(*sends)
        assert {status for status, _ in answers} <= {200, 202}, answers
        first = Counter(answer["id"] for _, answer in answers if not answer["duplicate"])
        assert set(first.values()) == {1} and len(first) == len(payloads)
        stored = await world.db.rows("SELECT source, event_id, COUNT(*) FROM signal GROUP BY source, event_id")
        assert len(stored) == len(payloads) and {r[2] for r in stored} == {1}

        invited = await world.invitations()
        assert len(invited) == 2 * len(payloads)
        await until(lambda: len(world.posted()) >= len(invited), 20, what="every invitation reaches Slack")
        for i, invitation in enumerate(invited):
            await ack(http, urls[i % 2], invitation)
        await until(lambda: len(world.callbacks()) >= len(invited), 20, what="every ack reaches the sender")
        await settled(world)
    assert sorted(world.posted()) == sorted(invited)  # each exactly once
    assert len(set(world.callbacks())) == len(world.callbacks()) == len(invited)


@POSTGRES
async def test_the_hourly_limit_holds_across_replicas(world: World) -> None:
    """Signals decided at once on two replicas never invite an agent past RELAY_AGENT_MAX_INVITES_PER_HOUR."""
    a = world.relay("a", RELAY_AGENT_MAX_INVITES_PER_HOUR="3")
    b = world.relay("b", RELAY_AGENT_MAX_INVITES_PER_HOUR="3")
    await asyncio.gather(a.start(), b.start())
    async with aiohttp.ClientSession() as http:
        await seed(http, a.url, CIRCLE, GRANT)
        answers = await asyncio.gather(*(post_signal(http, (a.url, b.url)[i % 2], panic()) for i in range(16)))
    assert {status for status, _ in answers} == {202}
    counts = await world.db.rows(
        "SELECT agent_id, COUNT(*) FROM invitation WHERE status <> 'skipped' GROUP BY agent_id ORDER BY agent_id"
    )
    assert counts == [("ana", 3), ("bo", 3)]


async def one_moment_through_two_replicas(
    world: World, agents: list[dict[str, Any]], grant: dict[str, Any], panics: list[dict[str, Any]]
) -> list[int]:
    """Sixteen panics from Raz sent at once, alternately to two relays with coalescing on: one opens
    the loop, the fifteen others are `joined` to it (answered and stored so). What reached Slack."""
    a = world.relay("a", RELAY_COALESCE="true")
    b = world.relay("b", RELAY_COALESCE="true")
    await asyncio.gather(a.start(), b.start())
    async with aiohttp.ClientSession() as http:
        await seed(http, a.url, agents, grant)
        answers = await asyncio.gather(*(post_signal(http, (a.url, b.url)[i % 2], panics[i]) for i in range(16)))
        assert {status for status, _ in answers} == {202}
        opened = [answer for _, answer in answers if answer["status"] == "invited"]
        assert len(opened) == 1, [answer["status"] for _, answer in answers]
        joined = [answer for _, answer in answers if answer["status"] == "joined"]
        assert len(joined) == 15 and {answer["joined_to"] for answer in joined} == {opened[0]["id"]}
        stored = await world.db.rows("SELECT status, COUNT(*) FROM signal GROUP BY status ORDER BY status")
        assert stored == [("invited", 1), ("joined", 15)]
        await until(lambda: len(world.posted()) >= 1, 20, what="the open loop's invitations reach Slack")
        await settled(world)
    return world.posted()


@POSTGRES
async def test_signals_about_one_subject_sent_together_to_two_replicas_make_one_open_loop(world: World) -> None:
    """Coalescing holds across replicas (CONTRACT section 10): panics from Raz sent at once to both
    relays open one loop; every other one is `joined` to it, and only its invitations reach Slack."""
    posted = await one_moment_through_two_replicas(world, CIRCLE, GRANT, [panic() for _ in range(16)])
    assert len(posted) == 2  # Ana and Bo, once each: nobody was invited for the joined ones


@POSTGRES
async def test_one_open_loop_across_replicas_even_when_its_signals_reach_different_people(world: World) -> None:
    """The subject lock, on its own: Raz's panics go alternately to the care circle of Ana (through
    one relay) and to Bo's (through the other), so no agent is shared and no agent's lock orders
    them; still one loop opens, every other panic joins it, and only its one invitation is sent."""
    circles = [{**CIRCLE[0], "groups": ["circle-a"]}, {**CIRCLE[1], "groups": ["circle-b"]}]
    grant = {**GRANT, "groups": ["circle-a", "circle-b"]}
    panics = [panic(audience={"groups": [f"circle-{'ab'[i % 2]}"], "targets": []}) for i in range(16)]
    posted = await one_moment_through_two_replicas(world, circles, grant, panics)
    assert len(posted) == 1  # Ana or Bo, whoever the opening panic reached; nobody for the joined ones


@BOTH
async def test_work_a_killed_process_claimed_is_sent_soon_after_the_next_start(world: World) -> None:
    """kill -9 in the middle of a burst, with sends and callbacks in flight: after a restart every
    signal that got a 202 is there, and every invitation and callback arrives within 15 s."""
    relay = world.relay("relay")
    await relay.start()
    async with aiohttp.ClientSession() as http:
        await seed(http, relay.url, CIRCLE, GRANT)
        # acks whose callbacks are still being answered when the process dies
        early = [answer["id"] for _, answer in [await post_signal(http, relay.url, panic()) for _ in range(3)]]
        await until(lambda: len(world.posted()) >= 2 * len(early), 30, what="the first invitations reach Slack")
        world.sink.answer(200, times=3, delay=5.0)
        for invitation in world.posted()[:3]:
            await ack(http, relay.url, invitation)
        await until(lambda: len(world.sink.received) >= 3, 30, what="the callbacks are under way")
        world.slack.fail_next("chat.postMessage", delay=5.0, times=4)  # slow sends, in flight at the kill

        async def send(payload: dict[str, Any]) -> tuple[str, int]:
            try:
                status, _ = await post_signal(http, relay.url, payload)
            except aiohttp.ClientError:
                return payload["id"], 0
            return payload["id"], status

        burst = [asyncio.ensure_future(send(panic())) for _ in range(40)]
        await until(lambda: sum(1 for t in burst if t.done()) >= 10, 30, what="part of the burst answered")
        await until(lambda: len(world.posted()) >= 2 * len(early) + 2, 30, what="burst sends under way")
        relay.kill()
        killed_ms = int(time.time() * 1000)
        results = await asyncio.gather(*burst)
    accepted = {event for event, status in results if status == 202} | set(early)
    assert len(accepted) > len(early)
    # what bounds the wait for the dead process's claims, exactly rather than by a stopwatch on a
    # shared machine: on PostgreSQL its leases, which lapse at most CRASH_BOUND_SEC after the kill
    ((leased_until,),) = await world.db.rows("SELECT MAX(lease_until) FROM outbox WHERE status = 'sending'")
    assert leased_until is not None, "nothing was in flight at the kill"
    assert leased_until - killed_ms <= CRASH_BOUND_SEC * 1000

    sqlite = world.database_url.startswith("sqlite")
    if not sqlite:
        # PostgreSQL: another replica could still be sending, so the leases lapse by themselves (at most
        # CRASH_BOUND_SEC after the kill, above); the stopwatch starts when they have
        await asyncio.sleep(max(0.0, leased_until / 1000 - time.time()) + 0.1)
    restarted = time.monotonic()
    await relay.start()
    stored = {str(r[0]) for r in await world.db.rows("SELECT event_id FROM signal")}
    assert accepted <= stored
    if sqlite:  # one process: its claims are released at the next start, without waiting for the leases
        released = await until(lambda: "claimed by an earlier process released" in relay.log_text(), 30, what="release")
        assert released
    # every invitation and callback answered by its provider: all settled, all sent, within the bound
    # of the restart (the polling deadline is wider, so a miss reads as a figure, not as a timeout)
    await settled(world, within=2 * CRASH_BOUND_SEC)
    assert time.monotonic() - restarted <= CRASH_BOUND_SEC
    assert {r[0] for r in await world.db.rows("SELECT status FROM outbox")} == {"sent"}
    assert set(await world.invitations()) <= set(world.posted())
    callbacks = await world.db.rows("SELECT COUNT(*) FROM outbox WHERE kind = 'callback'")
    assert callbacks == [(3,)] and len(set(world.callbacks())) == 3


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[int, bytes]:
    """One HTTP/1.1 GET on an open connection; the status and the body."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


async def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sigterm_lets_the_send_in_flight_finish_and_answers_readyz_503_meanwhile(world: World) -> None:
    """SIGTERM while Slack is slow: the listener closes, /readyz answers 503 on an open connection,
    the send in flight completes, nothing is left unsent, and the exit status is 0."""
    # the send is held until the test has seen the draining relay: no race between the test and a 3 s send
    relay = world.relay("relay", RELAY_SHUTDOWN_GRACE_SEC="60")
    await relay.start()
    async with aiohttp.ClientSession() as http:
        await seed(http, relay.url, CIRCLE[:1], GRANT)
        world.slack.fail_next("chat.postMessage", delay=600)
        status, _ = await post_signal(http, relay.url, panic())
        assert status == 202
    await until(world.posted, 30, what="the slow send is under way")
    reader, writer = await asyncio.open_connection(*relay.url.removeprefix("http://").split(":"))
    assert (await _get(reader, writer, "/healthz"))[0] == 200
    relay.signal(signal.SIGTERM)
    await until_async(lambda: _refused(relay.url), 30, what="the listener stops accepting")
    status, body = await _get(reader, writer, "/readyz")
    writer.close()
    assert status == 503 and json.loads(body)["error"] == "unavailable"
    world.slack.release()  # Slack answers the send in flight
    assert await asyncio.to_thread(relay.wait, 30) == 0
    assert await world.db.rows("SELECT status, attempts FROM outbox") == [("sent", 1)]
    assert "1 of 1 sends in flight finished" in relay.log_text()
    assert "0 claimed rows released" in relay.log_text()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_claimed_work_not_sent_within_the_grace_is_released_for_the_next_process(world: World) -> None:
    """A send slower than RELAY_SHUTDOWN_GRACE_SEC is given back (pending, the attempt not counted)
    and sent by the next process."""
    relay = world.relay("relay", RELAY_SHUTDOWN_GRACE_SEC="0.5")
    await relay.start()
    async with aiohttp.ClientSession() as http:
        await seed(http, relay.url, CIRCLE[:1], GRANT)
        world.slack.fail_next("chat.postMessage", delay=30.0)
        status, _ = await post_signal(http, relay.url, panic())
        assert status == 202
    await until(world.posted, 30, what="the slow send is under way")
    relay.signal(signal.SIGTERM)
    assert await asyncio.to_thread(relay.wait, 10) == 0
    assert await world.db.rows("SELECT status, attempts, lease_until FROM outbox") == [("pending", 0, None)]
    assert "1 claimed rows released for the next process" in relay.log_text()
    await relay.start()
    await until(lambda: len(world.posted()) == 2, 30, what="the next process sends it")
    await settled(world)
    assert await world.db.rows("SELECT status, attempts FROM outbox") == [("sent", 1)]


@POSTGRES
def test_two_db_upgrades_at_once_on_an_empty_database_both_succeed(database_url: str, tmp_path: Path) -> None:
    """`care-relay db upgrade` started twice at once on an empty PostgreSQL database: both succeed."""
    env = clean_env(**SERVING_ENV, RELAY_DATABASE_URL=database_url)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "db", "upgrade"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    assert all("database is up to date" in out for out, _ in outcomes)
