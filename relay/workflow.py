"""Forward C.A.R.E. events to a workflow engine's Webhook Trigger (the PR8 client).

``trigger_care_workflow`` POSTs one event, signed like the PR8 trigger (CONTRACT.md
section 3, "Outbound"), with a per-attempt timeout and a bounded number of retries. It
never raises: a failure comes back as a value and is logged as one ``[CARE_AUDIT]``
``action_skipped`` line, so a workflow engine that is down never breaks ingestion.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from receivers.signing import AISHA_EVENT_ID_HEADER, AISHA_SIGNATURE_HEADER, sign_aisha
from relay.audit import emit

ENABLED_ENV = "CARE_WORKFLOW_TRIGGERS_ENABLED"
_TRUTHY = frozenset({"1", "true", "yes", "on"})
_BACKOFF_BASE_S = 0.2
_BACKOFF_CAP_S = 2.0
# A workflow engine asking for minutes would hold an outbox worker hostage; the outbox
# retries later anyway.
_RETRY_AFTER_CAP_S = 5.0


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
    each; connection errors, timeouts, 429 and 5xx are retried with a short backoff (or a
    numeric ``Retry-After``), other 4xx are final. No ``url``: nothing is sent.
    """
    if not url:
        return TriggerResult(ok=False, status=None, attempts=0, error=None, skipped=True)
    try:
        body, event_id = _encode(payload)
    except (TypeError, ValueError):
        return _failed(None, 0, None, "payload is not JSON-serialisable", "invalid_payload", skipped=True)

    timeout = aiohttp.ClientTimeout(total=max(timeout_ms, 1) / 1000)
    attempts, delay, client = 0, _BACKOFF_BASE_S, session
    status: int | None = None
    error, reason = "no attempt made", "no_attempt"
    try:
        client = client or aiohttp.ClientSession()
        for attempt in range(1 + max(retries, 0)):
            if attempt:
                await asyncio.sleep(delay)
            attempts, status = attempt + 1, None
            delay = min(_BACKOFF_BASE_S * 2**attempt, _BACKOFF_CAP_S)
            try:
                headers = pr8_headers(body, secret, event_id)  # re-signed per attempt (CONTRACT.md section 3)
                async with client.post(url, data=body, headers=headers, timeout=timeout) as resp:
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
            except TimeoutError:
                error, reason = f"timed out after {timeout_ms} ms", "timeout"
                continue
            except aiohttp.InvalidURL:
                error, reason = "invalid url", "invalid_url"
                break
            except aiohttp.ClientError as exc:
                # The type only: str(exc) names the host and port, which may carry a token.
                error, reason = f"connection error ({type(exc).__name__})", "connection_error"
                continue
            if 200 <= status < 300:
                return TriggerResult(ok=True, status=status, attempts=attempts, error=None)
            error, reason = f"HTTP {status}", f"http_{status}"
            if status != 429 and status < 500:
                break
            delay = _retry_after(retry_after, default=delay)
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
        body = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        parsed = payload
    event_id = parsed.get("event_id") if isinstance(parsed, Mapping) else None
    return body, event_id if isinstance(event_id, str) else ""


def pr8_headers(body: bytes, secret: str | None, event_id: str) -> dict[str, str]:
    """Headers of a PR8-style POST: `X-AISHA-EVENT-ID`, and `X-AISHA-SIGNATURE` when a secret is set."""
    headers = {"Content-Type": "application/json"}
    if event_id:
        headers[AISHA_EVENT_ID_HEADER] = event_id
    if secret:
        headers[AISHA_SIGNATURE_HEADER] = sign_aisha(body, secret, ts=None, event_id=event_id)[AISHA_SIGNATURE_HEADER]
    return headers


def _retry_after(value: str | None, *, default: float) -> float:
    """A numeric ``Retry-After`` in seconds, capped; the backoff when absent or not a number."""
    try:
        seconds = float(value or "nan")
    except ValueError:
        return default
    return min(seconds, _RETRY_AFTER_CAP_S) if math.isfinite(seconds) and seconds >= 0 else default


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
