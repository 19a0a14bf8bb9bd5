"""The PR8 workflow trigger client against a real local workflow-engine sink."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from receivers.aisha import signature as aisha_signature
from relay.callbacks import TriggerResult, is_care_workflow_triggers_enabled, trigger_care_workflow
from tests.support import AISHA_SECRETS, fixture, refused_port

SECRET = AISHA_SECRETS[0]
GOLDEN = fixture("aisha", "care.escalation_detected__golden")
HANG = -1  # an Answer status: hold the request until the test ends


@dataclass(frozen=True)
class Answer:
    """One scripted reply of the sink."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Sink:
    """A workflow engine's Webhook Trigger that records every request and answers as scripted."""

    def __init__(self) -> None:
        self.received: list[tuple[CIMultiDictProxy[str], bytes]] = []
        self.script: list[Answer] = []
        self.default = Answer()
        self.released = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.headers, await request.read()))
        answer = self.script.pop(0) if self.script else self.default
        if answer.status == HANG:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), 5)
            return web.Response(status=200)
        return web.Response(status=answer.status, headers=answer.headers)


@pytest.fixture
async def sink(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> AsyncIterator[Sink]:
    """A running sink at ``sink.url``; hanging requests are released before it stops."""
    recorder = Sink()
    app = web.Application()
    app.router.add_post("/hooks/care", recorder.handle)
    server = await aiohttp_server(app)
    recorder.url = str(server.make_url("/hooks/care"))
    yield recorder
    recorder.released.set()


async def send(url: str | None, payload: Any = GOLDEN, **kwargs: Any) -> TriggerResult:
    return await trigger_care_workflow(url=url, secret=kwargs.pop("secret", SECRET), payload=payload, **kwargs)


def audit_lines(out: str) -> list[dict[str, Any]]:
    prefix = "[CARE_AUDIT] "
    return [json.loads(line[len(prefix) :]) for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"CARE_WORKFLOW_TRIGGERS_ENABLED": "true"}, True),
        ({"CARE_WORKFLOW_TRIGGERS_ENABLED": "0"}, False),
        ({"CARE_WORKFLOW_TRIGGERS_ENABLED": " ON "}, True),
        ({"CARE_WORKFLOW_TRIGGERS_ENABLED": "enabled"}, False),
    ],
)
def test_gate_reads_the_flag_and_is_off_by_default(environ: dict[str, str], expected: bool) -> None:
    """The gate is off unless CARE_WORKFLOW_TRIGGERS_ENABLED is a truthy word."""
    assert is_care_workflow_triggers_enabled(environ) is expected


async def test_signed_with_the_pr8_form_when_a_secret_exists(sink: Sink) -> None:
    """With a secret the body arrives signed with the bare hex HMAC of its raw bytes."""
    result = await send(sink.url)

    assert result == TriggerResult(ok=True, status=200, attempts=1, error=None, skipped=False)
    [(headers, body)] = sink.received
    assert json.loads(body) == GOLDEN
    assert headers["Content-Type"] == "application/json"
    assert headers["X-AISHA-EVENT-ID"] == GOLDEN["event_id"]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-AISHA-SIGNATURE"], expected)
    assert aisha_signature.verify(headers, body, [SECRET], now=int(time.time()), max_window_sec=300) is None


async def test_no_signature_header_without_a_secret(sink: Sink) -> None:
    """Without a secret the event id is still sent but no signature is."""
    result = await send(sink.url, secret=None)

    assert result.ok
    [(headers, _)] = sink.received
    assert "X-AISHA-SIGNATURE" not in headers
    assert headers["X-AISHA-EVENT-ID"] == GOLDEN["event_id"]


async def test_bytes_payload_arrives_byte_for_byte(sink: Sink) -> None:
    """A bytes payload is forwarded exactly as given and signed over those bytes."""
    raw = json.dumps(GOLDEN | {"reason": "Apelantul a cerut un om — ș"}, indent=2, ensure_ascii=False).encode()

    result = await send(sink.url, payload=raw)

    assert result.ok
    [(headers, body)] = sink.received
    assert body == raw
    assert headers["X-AISHA-EVENT-ID"] == GOLDEN["event_id"]
    assert headers["X-AISHA-SIGNATURE"] == hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


async def test_mapping_payload_is_compact_utf8_json(sink: Sink) -> None:
    """A mapping is sent as compact JSON with non-ASCII characters left as UTF-8."""
    payload = GOLDEN | {"reason": "Apelantul a cerut un om — ș"}

    await send(sink.url, payload=payload)

    [(_, body)] = sink.received
    assert body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def test_timeout_returns_gracefully_within_bounds(sink: Sink) -> None:
    """A sink slower than the timeout ends in a failed result after every attempt, never a raise."""
    sink.default = Answer(HANG)

    started = time.monotonic()
    result = await send(sink.url, timeout_ms=200, retries=2)
    elapsed = time.monotonic() - started

    assert result.ok is False and result.skipped is False
    assert result.attempts == 3 and result.status is None
    assert result.error is not None and "timed out" in result.error
    assert len(sink.received) == 3
    assert elapsed < 10.0  # each attempt was cut at 200 ms: without the timeout one attempt alone would hang 30 s


async def test_retries_are_bounded(sink: Sink) -> None:
    """A sink that always answers 500 sees exactly 1 + retries requests."""
    sink.default = Answer(500)

    result = await send(sink.url, retries=2)

    assert (result.ok, result.status, result.attempts, result.error) == (False, 500, 3, "HTTP 500")
    assert len(sink.received) == 3


async def test_429_honours_retry_after_then_succeeds(sink: Sink) -> None:
    """A 429 with Retry-After is retried after that many seconds and the next 2xx wins."""
    sink.script = [Answer(429, {"Retry-After": "1"})]

    started = time.monotonic()
    result = await send(sink.url, retries=2)

    assert time.monotonic() - started >= 0.9
    assert (result.ok, result.status, result.attempts) == (True, 200, 2)
    assert len(sink.received) == 2
    assert sink.received[0][1] == sink.received[1][1]
    assert sink.received[0][0]["X-AISHA-SIGNATURE"] == sink.received[1][0]["X-AISHA-SIGNATURE"]


async def test_400_is_not_retried(sink: Sink) -> None:
    """A 4xx other than 429 is final: one request, no retry."""
    sink.default = Answer(400)

    result = await send(sink.url, retries=2)

    assert (result.ok, result.status, result.attempts, result.error) == (False, 400, 1, "HTTP 400")
    assert len(sink.received) == 1


async def test_unreachable_url_returns_gracefully() -> None:
    """A closed port on 127.0.0.1 ends in a failed result with a short, host-free error."""
    with refused_port() as port:  # held for the whole call: nobody can start listening on it meanwhile
        result = await send(f"http://127.0.0.1:{port}/hooks/care?token=s3cr3t", retries=1)

    assert (result.ok, result.status, result.attempts, result.skipped) == (False, None, 2, False)
    assert result.error is not None and "connection error" in result.error
    assert "127.0.0.1" not in result.error and "s3cr3t" not in result.error


async def test_failure_prints_one_action_skipped_audit_line(sink: Sink, capsys: pytest.CaptureFixture[str]) -> None:
    """A failed trigger prints one [CARE_AUDIT] action_skipped line with ids, never the URL or body."""
    sink.default = Answer(503)

    await send(sink.url + "?token=s3cr3t", retries=1)

    out = capsys.readouterr().out
    assert audit_lines(out) == [
        {
            "kind": "action_skipped",
            "action": "care_workflow_trigger",
            "event_id": GOLDEN["event_id"],
            "action_origin": "care_autonomous",
            "policy_gate_result": "allowed",
            "reason": "http_503",
            "attempts": 2,
            "status": 503,
        }
    ]
    assert "s3cr3t" not in out and "127.0.0.1" not in out and GOLDEN["reason"] not in out


async def test_success_prints_no_audit_line(sink: Sink, capsys: pytest.CaptureFixture[str]) -> None:
    """A delivered trigger logs nothing."""
    assert (await send(sink.url)).ok
    assert audit_lines(capsys.readouterr().out) == []


@pytest.mark.parametrize("url", [None, ""])
async def test_no_url_skips_without_any_request(
    sink: Sink, url: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a URL nothing is sent and nothing is logged."""
    result = await send(url)

    assert result == TriggerResult(ok=False, status=None, attempts=0, error=None, skipped=True)
    assert sink.received == []
    assert audit_lines(capsys.readouterr().out) == []


async def test_a_given_session_is_used_and_left_open(sink: Sink) -> None:
    """A caller's session carries the request and is not closed by the client."""
    async with aiohttp.ClientSession() as session:
        result = await send(sink.url, session=session)
        assert result.ok and not session.closed
    assert len(sink.received) == 1
