"""The one HTTP client for what the relay POSTs to senders: callbacks and workflow forwards.

`post` makes one attempt and says what it came to as a `Delivery` (the outbox owns the
schedule of further attempts); `send_callback` is one attempt of a queued callback: its
sender's target as configured now, signed afresh, posted, and a 409 after an earlier
attempt taken, for a sender that says so, as that attempt having arrived. `trigger_care_workflow` is the public PR8 workflow
trigger client (CONTRACT.md section 3, "Outbound"): one event, a per-attempt timeout and a
bounded number of retries of its own, built on the same exchange. It never raises: a
failure comes back as a value and is logged as one ``[CARE_AUDIT]`` ``action_skipped``
line, so a workflow engine that is down never breaks ingestion.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from inbox.outbox import Work
from receivers import SENDERS
from receivers.aisha.signature import pr8_headers
from receivers.json_body import dumps
from relay.audit import emit
from relay.delivery import Delivery, parse_retry_after, permanent, retry
from relay.settings import Settings

#: a callback attempt's lines go where the rest of the outbox's do
log = logging.getLogger("care_relay.outbox")

ENABLED_ENV = "CARE_WORKFLOW_TRIGGERS_ENABLED"
_TRUTHY = frozenset({"1", "true", "yes", "on"})
_BACKOFF_BASE_S = 0.2
_BACKOFF_CAP_S = 2.0
# A workflow engine asking for minutes would hold an outbox worker hostage; the outbox
# retries later anyway.
_RETRY_AFTER_CAP_S = 5.0
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class _Answer:
    """What one POST came to: the status and Retry-After, or why there was none."""

    status: int | None = None
    retry_after: str | None = None
    #: no answer: "timeout", "invalid_url" or "connection_error"
    failure: str | None = None
    #: the exception type behind a failure other than a timeout (its text may name a host and a token)
    exception: str = ""


async def _exchange(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str], *, timeout_sec: float
) -> _Answer:
    """One POST; the answer's body is read and dropped. Only cancellation escapes."""
    try:
        async with session.post(
            url, data=body, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout_sec)
        ) as response:
            await response.read()
            return _Answer(status=response.status, retry_after=response.headers.get("Retry-After"))
    except TimeoutError:
        return _Answer(failure="timeout")
    except aiohttp.InvalidURL as exc:
        return _Answer(failure="invalid_url", exception=type(exc).__name__)
    except aiohttp.ClientError as exc:
        return _Answer(failure="connection_error", exception=type(exc).__name__)


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str], *, timeout_sec: float = 10.0
) -> Delivery:
    """POST `body` once: 2xx is sent; 408, 429, 5xx, timeouts and connection errors are retried
    (honouring ``Retry-After``); any other answer is final (a 410 Gone among them: the
    receiver says this endpoint is gone for good, so nothing more is sent to it)."""
    answer = await _exchange(session, url, body, headers, timeout_sec=timeout_sec)
    if answer.status is None:
        if answer.failure == "timeout":
            return retry("timed out")
        return retry(f"connection error ({answer.exception})")
    if 200 <= answer.status < 300:
        return Delivery(ok=True)
    error = f"HTTP {answer.status}"
    if answer.status in (408, 429) or answer.status >= 500:
        return retry(error, parse_retry_after(answer.retry_after))
    return permanent(error)


async def send_callback(
    session: aiohttp.ClientSession, settings: Settings, work: Work, *, now_ms: int, timeout_sec: float
) -> Delivery:
    """One attempt of the callback an outbox row holds, to its sender."""
    source = str(work.payload["source"])
    sender = SENDERS[source]
    url, secret = sender.callback_target(settings)
    if not url:
        return permanent(f"{source} callback URL is no longer configured")
    # Every attempt is signed with a fresh timestamp (CONTRACT section 3).
    body, headers = sender.sign_callback(work.payload["body"], secret, now_ms=now_ms)
    delivery = await post(session, url, body, {**_JSON, **headers}, timeout_sec=timeout_sec)
    if sender.conflict_on_retry_is_arrival and work.attempts > 1 and delivery.error == "HTTP 409":
        log.info("callback %s: 409 on attempt %d, an earlier attempt had arrived", work.id, work.attempts)
        return Delivery(ok=True)
    return delivery


def is_care_workflow_triggers_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CARE_WORKFLOW_TRIGGERS_ENABLED`` is on ("1", "true", "yes", "on"; default off)."""
    env = os.environ if environ is None else environ
    return env.get(ENABLED_ENV, "").strip().lower() in _TRUTHY


@dataclass(frozen=True)
class TriggerResult:
    """What one trigger call did; ``status`` is the last attempt's HTTP status, if it got one."""

    ok: bool
    status: int | None
    attempts: int
    error: str | None
    skipped: bool = False


async def trigger_care_workflow(
    *,
    url: str | None,
    secret: str | None,
    payload: Mapping[str, Any] | bytes,
    timeout_ms: int = 3000,
    retries: int = 2,
    session: aiohttp.ClientSession | None = None,
) -> TriggerResult:
    """POST ``payload`` to the workflow trigger at ``url``; never raises (except on cancellation).

    Bytes are sent as given; a mapping as compact UTF-8 JSON. Headers: ``Content-Type``,
    ``X-AISHA-EVENT-ID`` (the body's ``event_id``) and, with a secret, ``X-AISHA-SIGNATURE``
    (hex HMAC-SHA256 of the raw body). At most ``1 + retries`` attempts of ``timeout_ms``
    each; connection errors, timeouts, 429 and 5xx are retried with a short backoff (or
    ``Retry-After``, capped at a few seconds), other 4xx are final. No ``url``: nothing is sent.
    """
    if not url:
        return TriggerResult(ok=False, status=None, attempts=0, error=None, skipped=True)
    try:
        body, event_id = _encode(payload)
    except (TypeError, ValueError):
        return _failed(None, 0, None, "payload is not JSON-serialisable", "invalid_payload", skipped=True)

    attempts, delay, client = 0, _BACKOFF_BASE_S, session
    status: int | None = None
    error, reason = "no attempt made", "no_attempt"
    try:
        client = client or aiohttp.ClientSession()
        for attempt in range(1 + max(retries, 0)):
            if attempt:
                await asyncio.sleep(delay)
            attempts = attempt + 1
            delay = min(_BACKOFF_BASE_S * 2**attempt, _BACKOFF_CAP_S)
            # re-signed per attempt (CONTRACT.md section 3)
            answer = await _exchange(
                client, url, body, pr8_headers(body, secret, event_id), timeout_sec=max(timeout_ms, 1) / 1000
            )
            status = answer.status
            if answer.failure == "invalid_url":
                error, reason = "invalid url", "invalid_url"
                break
            if answer.failure == "timeout":
                error, reason = f"timed out after {timeout_ms} ms", "timeout"
                continue
            if answer.status is None:
                error, reason = f"connection error ({answer.exception})", "connection_error"
                continue
            if 200 <= answer.status < 300:
                return TriggerResult(ok=True, status=answer.status, attempts=attempts, error=None)
            error, reason = f"HTTP {answer.status}", f"http_{answer.status}"
            if answer.status != 429 and answer.status < 500:
                break
            # a negative delta names no usable wait: the usual backoff, not an immediate retry
            negative = (answer.retry_after or "").strip().startswith("-")
            asked = None if negative else parse_retry_after(answer.retry_after)
            delay = delay if asked is None else min(asked, _RETRY_AFTER_CAP_S)
    except Exception as exc:
        error, reason = f"unexpected error ({type(exc).__name__})", "unexpected_error"
    finally:
        if session is None and client is not None:
            await client.close()
    return _failed(event_id, attempts, status, error, reason)


def _encode(payload: Mapping[str, Any] | bytes) -> tuple[bytes, str]:
    """The raw body and its ``event_id`` ("" when the body has none)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        body = bytes(payload)
        try:
            parsed: object = json.loads(body)
        except ValueError:
            parsed = None
    else:
        body = dumps(dict(payload))
        parsed = payload
    event_id = parsed.get("event_id") if isinstance(parsed, Mapping) else None
    return body, event_id if isinstance(event_id, str) else ""


def _failed(
    event_id: str | None, attempts: int, status: int | None, error: str, reason: str, *, skipped: bool = False
) -> TriggerResult:
    """Log the failure as one ``action_skipped`` audit line (ids and statuses only) and return it."""
    emit(
        {
            "kind": "action_skipped",
            "action": "care_workflow_trigger",
            "event_id": event_id or None,
            "action_origin": "care_autonomous",
            "policy_gate_result": "allowed",
            "reason": reason,
            "attempts": attempts,
            "status": status,
        }
    )
    return TriggerResult(ok=False, status=status, attempts=attempts, error=error, skipped=skipped)
