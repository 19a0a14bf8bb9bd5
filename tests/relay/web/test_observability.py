"""GET /metrics and the request log: what an operator sees, and that it never names a person.

The golden path runs on the real app with Slack and Twilio pointed at their fakes (the
answer contract's world, one run per channel); the figures are read from `/metrics` as a
Prometheus server reads them.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from relay import logs
from relay.app import create_app
from relay.keys import OUTBOX, WRITER
from tests.driver import TENANT, Relay, panic
from tests.relay.channels import test_answer_contract as contract
from tests.relay.channels.test_answer_contract import ADMIN, PEOPLE, Channel, World
from tests.support import fixture, make_settings

#: the answer contract's world: the relay on Slack's and Twilio's fakes, a panic.ui sent to ana and bo
sink, channel, world = contract.sink, contract.channel, contract.world  # slack and twilio: tests/conftest.py

METRICS_TOKEN = "metrics-token-for-tests"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient, headers: dict[str, str] = ADMIN) -> Samples:
    """Every sample of GET /metrics, by name and sorted labels."""
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def people_of(world: World, event_id: str) -> set[str]:
    """Every id that names a person or a loop in this run: none may be a label value (rule 5)."""
    names = {"raz", "actor:raz", TENANT, event_id}
    for who, ids in PEOPLE.items():
        names |= {who, *(str(v) for k, v in ids.items() if k != "groups")}
        names |= {str(v).lstrip("+") for k, v in ids.items() if k in ("phone", "whatsapp")}
    escalation = fixture("aisha", "care.escalation_detected__golden")
    names |= {escalation["entity_id"], escalation["signal_entity_id"]}
    return names


def assert_no_person_in_labels(samples: Samples, forbidden: set[str]) -> None:
    for name, labels in samples:
        for label, shown in labels:
            parts = set(re.split(r"[/{}:._-]+", shown)) | {shown}
            assert not parts & forbidden, f"{name}{{{label}={shown!r}}} names a person or an event"


async def test_metrics_follow_a_golden_path(world: World, channel: Channel) -> None:
    """signal → invitations sent → ack → done → callbacks: each family moves by what happened, and no label names anyone."""
    client = world.client
    before = await scrape(client)
    assert value(before, "care_relay_signals_total", source="m3", status="invited") == 1
    assert value(before, "care_relay_invitations_total", channel=channel.sends_on, status="queued") == 2
    assert value(before, "care_relay_invitations_total", channel=channel.sends_on, status="sent") == 2
    assert value(before, "care_relay_http_requests_total", method="POST", route="/hooks/m3", status="202") == 1
    assert value(before, "care_relay_http_request_duration_seconds_count", route="/hooks/m3") == 1

    await channel.ack(world, "ana", "ana")
    await channel.done(world, "ana", "ana", "held-space")
    callbacks = await world.callbacks()
    assert [c["type"] for c in callbacks] == ["care.ack", "care.done"]

    after = await scrape(client)
    via = channel.name
    assert value(after, "care_relay_answers_total", channel=via, kind="ack") == 1
    assert value(after, "care_relay_answers_total", channel=via, kind="done") == 1
    assert value(after, "care_relay_answers_total", channel=via, kind="refused") == 0
    assert value(after, "care_relay_outbox_attempts_total", kind="callback", result="sent") == 2
    assert value(after, "care_relay_outbox_attempts_total", kind="invite", result="sent") == 2
    assert value(after, "care_relay_signals_total", source="m3", status="invited") == 1  # nothing new came in
    for kind in ("invite", "update", "callback", "forward"):
        for status in ("pending", "sending", "failed"):
            assert value(after, "care_relay_outbox_rows", kind=kind, status=status) == 0
        assert value(after, "care_relay_outbox_oldest_due_seconds", kind=kind) == 0
    assert value(after, "care_relay_http_requests_total", method="GET", route="/metrics", status="200") == 1
    assert next(k for k in after if k[0] == "care_relay_build_info")[1][0][0] == "version"
    assert_no_person_in_labels(after, people_of(world, (await world.loop())["id"]))


async def test_unknown_senders_and_refusals_are_counted_by_channel(world: World, channel: Channel) -> None:
    """A stranger's answer counts as refused on its channel, and as an unknown sender where the channel knows who it is."""
    if not channel.knows_who_answers:
        pytest.skip("a link is a bearer capability: whoever holds it answers as its agent")
    await channel.ack(world, "stranger", "ana")
    samples = await scrape(world.client)
    assert value(samples, "care_relay_unknown_senders_total", channel=channel.name) >= 1
    if channel.name == "slack":
        assert value(samples, "care_relay_answers_total", channel="slack", kind="refused") == 1
    assert value(samples, "care_relay_answers_total", channel=channel.name, kind="ack") == 0


async def test_outbox_gauges_are_read_at_scrape_time(relay: Relay) -> None:
    """Queued work shows as pending rows, and its wait as the oldest due age; failed work as failed rows."""
    await relay.invited()
    samples = await scrape(relay.client)
    assert value(samples, "care_relay_outbox_rows", kind="invite", status="pending") == 1
    await relay.sql("UPDATE outbox SET next_attempt_at = next_attempt_at - 90000")
    samples = await scrape(relay.client)
    assert value(samples, "care_relay_outbox_oldest_due_seconds", kind="invite") >= 90
    await relay.sql("UPDATE outbox SET status = 'failed'")
    samples = await scrape(relay.client)
    assert value(samples, "care_relay_outbox_rows", kind="invite", status="failed") == 1
    assert value(samples, "care_relay_outbox_rows", kind="invite", status="pending") == 0
    assert value(samples, "care_relay_outbox_oldest_due_seconds", kind="invite") == 0


async def test_checkpoints_are_timed_for_the_operator(relay: Relay) -> None:
    """SQLite: every checkpoint's hold on the writer is observed, so a slow disk shows on /metrics."""
    await relay.invited()
    before = await scrape(relay.client)
    assert value(before, "care_relay_sqlite_checkpoint_duration_seconds_bucket", le="+Inf") == value(
        before, "care_relay_sqlite_checkpoint_duration_seconds_count"
    )
    await relay.app[WRITER].checkpoint()
    await relay.app[WRITER].checkpoint()
    after = await scrape(relay.client)
    count = "care_relay_sqlite_checkpoint_duration_seconds_count"
    assert value(after, count) - value(before, count) >= 2
    assert value(after, "care_relay_sqlite_checkpoint_duration_seconds_sum") > 0


async def test_metrics_need_a_token(aiohttp_client: Any, database_url: str) -> None:
    """No bearer: 401; a wrong one: 403, both in the contract's JSON; a metrics token and an admin token both read."""
    settings = make_settings(database_url, relay_metrics_tokens=(METRICS_TOKEN,))
    client = await aiohttp_client(create_app(settings, run_outbox=False))
    response = await client.get("/metrics")
    assert response.status == 401 and (await response.json())["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert response.status == 403 and (await response.json())["error"] == "forbidden"
    response = await client.get("/metrics", headers={"Authorization": "Basic abc"})
    assert response.status == 401
    assert value(await scrape(client, SCRAPE), "care_relay_rejections_total", code="forbidden") == 1
    assert value(await scrape(client, ADMIN), "care_relay_rejections_total", code="unauthorized") == 2
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_route_is_the_template_never_the_path(relay: Relay) -> None:
    """A status lookup counts under its route's template; an unknown path under one fixed label, and neither path shows."""
    answer, _ = await relay.invited()
    await relay.loop(answer)
    await relay.get("/no/such/place-ana-40722000111")
    assert (await relay.request("PUT", "/healthz")).status == 405
    malformed = await relay.request("BREW", "/healthz")  # aiohttp refuses it before the app: the server's 400
    assert malformed.status == 400 and re.fullmatch(r"[0-9a-f]{16}", malformed.headers["X-Request-Id"])
    text = await (await relay.get("/metrics", headers=ADMIN)).text()
    samples = await scrape(relay.client)
    assert value(samples, "care_relay_http_requests_total", method="GET", route="/v1/events/{event_id}", status="200")
    assert value(samples, "care_relay_http_requests_total", method="GET", route="(unmatched)", status="404") == 1
    assert value(samples, "care_relay_http_requests_total", method="PUT", route="(unmatched)", status="405") == 1
    assert answer["id"] not in text and "no/such" not in text and "40722000111" not in text


async def test_each_app_counts_for_itself(start: Any) -> None:
    """Two relays in one process keep their own figures (a registry per app)."""
    first, second = await start(), await start()
    await first.invited()
    assert value(await scrape(first.client), "care_relay_signals_total", source="m3", status="invited") == 1
    assert value(await scrape(second.client), "care_relay_signals_total", source="m3", status="invited") == 0


# The request log --------------------------------------------------------------------------


@pytest.fixture
def relay_log() -> Iterator[io.StringIO]:
    """The relay's logging as `care-relay serve` sets it up (JSON, info), into a buffer."""
    out = io.StringIO()
    handler = logs.configure("json", "info", stream=out)
    try:
        yield out
    finally:
        logging.getLogger().removeHandler(handler)


def lines_of(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def request_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines_of(out) if line["logger"] == "care_relay.request"]


async def test_one_json_line_per_request(relay: Relay, relay_log: io.StringIO) -> None:
    """A hook's line carries ts, level, msg, request_id, method, route, status, duration_ms and its event_id."""
    await relay.seed()
    payload = panic()
    response = await relay.hook("m3", payload)
    assert response.status == 202
    (line,) = [line for line in request_lines(relay_log) if line["route"] == "/hooks/m3"]
    assert set(line) >= {"ts", "level", "msg", "request_id", "method", "route", "status", "duration_ms", "event_id"}
    assert (line["level"], line["method"], line["status"], line["event_id"]) == ("info", "POST", 202, payload["id"])
    assert line["request_id"] == response.headers["X-Request-Id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert isinstance(line["duration_ms"], float)
    answer = await response.json()
    await relay.loop(answer)
    lookup = request_lines(relay_log)[-1]
    assert (lookup["route"], lookup["event_id"]) == ("/v1/events/{event_id}", payload["id"])
    assert "token=" not in relay_log.getvalue()  # the status token stays out of the log


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("req-42.abc_XYZ", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("evil id", False),
        ("<script>", False),
        ("x\u00e9", False),
        ("", False),
    ],
)
async def test_request_id_is_echoed_or_made(relay: Relay, relay_log: io.StringIO, given: str, kept: bool) -> None:
    """X-Request-Id is kept when it is 1-64 of [A-Za-z0-9._-], else replaced; echoed on answers and errors alike."""
    for path, status in (("/healthz", 200), ("/admin/agents", 401), ("/nowhere", 404)):
        response = await relay.get(path, headers={"X-Request-Id": given})
        assert response.status == status
        echoed = response.headers["X-Request-Id"]
        if kept:
            assert echoed == given
        else:
            assert echoed != given and re.fullmatch(r"[0-9a-f]{16}", echoed)
    ids = [line["request_id"] for line in request_lines(relay_log)]
    assert len(ids) == 2  # the probe is quiet at info
    assert all((i == given) is kept for i in ids)


async def test_made_request_ids_differ(relay: Relay) -> None:
    """Without an X-Request-Id, each request gets its own."""
    made = {(await relay.get("/healthz")).headers["X-Request-Id"] for _ in range(5)}
    assert len(made) == 5


async def test_probes_and_scrapes_are_quiet_at_info(relay: Relay, relay_log: io.StringIO) -> None:
    """/healthz, /readyz and /metrics leave no line at info, nor does Alembic's check behind /readyz; at debug they show."""
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await relay.get(path, headers=ADMIN)).status == 200
    assert lines_of(relay_log) == []
    logs.configure("json", "debug", stream=relay_log)
    try:
        assert (await relay.get("/readyz")).status == 200
    finally:
        logs.configure("json", "info", stream=relay_log)
    shown = lines_of(relay_log)
    assert [line["route"] for line in shown if line["logger"] == "care_relay.request"] == ["/readyz"]
    assert any(line["logger"].startswith("alembic") for line in shown)


async def test_text_lines_carry_the_same_fields(relay: Relay) -> None:
    """RELAY_LOG_FORMAT=text: one line per request, `key=value` after the message; a made-up value cannot break the line."""
    out = io.StringIO()
    handler = logs.configure("text", "info", stream=out)
    try:
        await relay.get("/v1/events/evt%0Aforged%20line?token=x")
        await relay.get("/admin/agents", headers={"X-Request-Id": "text-1"})
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = out.getvalue().splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z INFO care_relay.request GET /v1/events/\{event_id\} 403 ", first)
    assert 'event_id="evt\\nforged line"' in first
    assert "request_id=text-1" in second and "status=401" in second and "duration_ms=" in second


def test_auto_is_json_unless_stderr_is_a_terminal() -> None:
    """RELAY_LOG_FORMAT=auto: JSON into a pipe or file, text at a terminal."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.wants_json("auto", io.StringIO())
    assert not logs.wants_json("auto", Terminal())
    assert logs.wants_json("json", Terminal()) and not logs.wants_json("text", io.StringIO())


def test_log_settings_are_checked() -> None:
    """RELAY_LOG_LEVEL and RELAY_LOG_FORMAT accept their choices in any case, and refuse others."""
    settings = make_settings("sqlite+aiosqlite:///:memory:", relay_log_level="DEBUG", relay_log_format="JSON")
    assert (settings.relay_log_level, settings.relay_log_format) == ("debug", "json")
    with pytest.raises(ValueError, match="debug, info, warning, error"):
        make_settings("sqlite+aiosqlite:///:memory:", relay_log_level="loud")
    with pytest.raises(ValueError, match="json"):
        make_settings("sqlite+aiosqlite:///:memory:", relay_log_format="xml")


async def test_drained_outbox_counts_invitations_by_channel(relay: Relay) -> None:
    """The console channel's invitation counts as queued, then sent."""
    await relay.invited()
    await relay.app[OUTBOX].drain()
    samples = await scrape(relay.client)
    assert value(samples, "care_relay_invitations_total", channel="console", status="queued") == 1
    assert value(samples, "care_relay_invitations_total", channel="console", status="sent") == 1


def test_the_direct_request_line_is_the_records_line() -> None:
    """Under `serve` (the relay's handler alone) the request line skips the LogRecord; it reads exactly as the record's."""
    out = io.StringIO()
    handler = logs._RelayHandler(out, logs.JsonFormatter())
    alone = logging.Logger("care_relay.request")  # noqa: LOG001  (its own hierarchy: its handler is the only one)
    alone.addHandler(handler)
    alone.setLevel(logging.INFO)
    fields = {"request_id": "r1", "method": "GET", "route": "/x", "status": 200, "duration_ms": 1.5, "event_id": None}
    logs.log_line(alone, logging.INFO, "GET /x 200", fields)
    logs.log_line(alone, logging.DEBUG, "GET /healthz 200", fields)  # below the level: nothing
    alone.log(logging.INFO, "GET /x 200", extra=fields)
    direct, recorded = (json.loads(line) for line in out.getvalue().splitlines())
    assert {k: v for k, v in direct.items() if k != "ts"} == {k: v for k, v in recorded.items() if k != "ts"}
    assert direct["level"] == "info" and "event_id" not in direct
