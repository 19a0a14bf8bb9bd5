"""The outbox worker: sends what intake and answers queued, and never drops it.

Started with the app. It wakes as soon as a commit adds rows (and polls once a second
for retries that come due), claims due rows under a lease, reads what a batch of
invitations needs in one read job (rows, agents, live grants; the signal as intake parsed
it), sends them concurrently (at most LANE_CONCURRENCY at once per channel or kind, and
MAX_IN_FLIGHT in all) with a per-attempt timeout, and settles each one: sent; retried on
its kind's schedule; or failed after the last attempt, visible in /admin/outbox, where a
person can retry it. The schedules (CONTRACT section 6): invitations and message updates
back off from 1 s doubling to 60 s (±20 % jitter, `Retry-After` honoured) for
RELAY_OUTBOX_MAX_ATTEMPTS attempts; callbacks to senders wait RELAY_CALLBACK_SCHEDULE's
steps (±20 %, a `Retry-After` only ever lengthening one); forwards back off like
invitations for 1 + CARE_WORKFLOW_WEBHOOK_MAX_RETRIES attempts. Nothing here changes a
loop's state: only delivery.

Leases are short (LEASE_MS) and renewed every RENEW_SEC while a send runs, so a live
replica's long send is never taken by another, and a dead one's work is taken within a
lease. On SQLite (one process) the claims an earlier process left are released at start.
`stop(grace)` stops claiming, gives the sends in flight `grace` seconds, and releases what
was claimed and not sent, for the next process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import aiohttp

from inbox import addresses, directory, invitations
from inbox import outbox as rows
from inbox.audit import insert_audit
from inbox.tx import Tx
from inbox.writer import Writer
from receivers import SENDERS
from receivers.aisha.signature import pr8_headers
from relay import audit, callbacks
from relay.addresses import Addresses
from relay.delivery import Channel, Delivery, Invite, permanent, retry, skip
from relay.invitations import Invitations, ToSend
from relay.metrics import Metrics
from relay.model import millis
from relay.send_time import next_channel, send_time_refusal
from relay.settings import Settings

log = logging.getLogger("care_relay.outbox")

#: a claim's lease: a dead process's work is taken back this long after its last renewal
LEASE_MS = 12_000
RENEW_SEC = 4.0
ATTEMPT_TIMEOUT_SEC = 20.0
#: how long one callback attempt waits for the sender's answer before it counts as timed out
CALLBACK_TIMEOUT_SEC = 10.0
#: sends in flight at once, in all and per lane (one channel's invitations, or one kind of work)
MAX_IN_FLIGHT = 64
LANE_CONCURRENCY = 16
BATCH = 64
#: a send that waited longer than this for its lane reads its send-time facts again
FRESH_SEC = 1.0
POLL_SEC = 1.0
_JSON = {"Content-Type": "application/json"}


def backoff(attempts: int, *, jitter: float | None = None) -> float:
    """Seconds before the next attempt: 1 s doubling to 60 s, ±20 %."""
    base = min(60.0, 2.0 ** max(0, attempts - 1))
    # jitter only spreads retries apart; nothing secret depends on it
    return base * (1 + (random.uniform(-0.2, 0.2) if jitter is None else jitter))  # noqa: S311


def scheduled(attempts: int, schedule: Sequence[int], *, jitter: float | None = None) -> float:
    """Seconds before the retry that follows attempt number `attempts`: that step of the schedule, ±20 %."""
    base = float(schedule[min(max(attempts, 1), len(schedule)) - 1])
    return base * (1 + (random.uniform(-0.2, 0.2) if jitter is None else jitter))  # noqa: S311


class OutboxWorker:
    def __init__(
        self,
        writer: Writer,
        invitations: Invitations,
        channels: Mapping[str, Channel],
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        addresses: Addresses | None = None,
    ) -> None:
        self._clock = clock
        self._addresses = addresses
        self._metrics = metrics or Metrics()
        self._writer = writer
        self._invitations = invitations
        self._channels = channels
        self._settings = settings
        self._routing = settings.routing()
        self._session = session
        #: per callback attempt (tests shorten it rather than wait ten seconds for a timeout)
        self.callback_timeout_sec = CALLBACK_TIMEOUT_SEC
        self._wake = asyncio.Event()
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._task: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        #: rows claimed and not yet settled, by id: renewed while sending, released at stop
        self._claimed: dict[int, rows.Work] = {}

    def wake(self) -> None:
        """Called after a commit that queued work: send it now, not at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")
        self._renewing = asyncio.create_task(self._renew(), name="outbox-leases")

    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming; let the sends in flight finish within `grace` seconds; cancel the rest
        and release every claim not settled (pending again, the attempt not counted). Safe to call twice."""
        started = self._task is not None
        # the loop ends at its next turn, never inside a claim (whose rows would be left
        # claimed by nobody); cancelled only if that turn outlasts the grace
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=max(grace, 1.0))
        for task in (self._task, self._renewing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._renewing = None
        running = len(self._inflight)
        if self._inflight and grace > 0:
            await asyncio.wait(list(self._inflight), timeout=grace)
        finished = running - len(self._inflight)
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        released = await self._release()
        if started or released:
            log.info(
                "outbox stopped: %d of %d sends in flight finished within %gs; %d claimed rows released for the next process",
                finished,
                running,
                grace,
                released,
            )

    async def _release(self) -> int:
        claims = [(w.id, w.attempts) for w in self._claimed.values()]
        self._claimed.clear()
        if not claims:
            return 0
        try:
            await self._writer.run(lambda tx: rows.release(tx, claims, now=millis(self._clock)))
        except Exception as exc:  # the leases lapse instead: the next process takes them within LEASE_MS
            log.warning("outbox release failed: %s", type(exc).__name__)
        return len(claims)

    async def _renew(self) -> None:
        """Every RENEW_SEC, extend the leases of the rows being sent."""
        while True:
            await asyncio.sleep(RENEW_SEC)
            claims = [(w.id, w.attempts) for w in self._claimed.values()]
            if not claims:
                continue
            until = millis(self._clock) + LEASE_MS
            try:
                await self._writer.run(partial(rows.renew, claims=claims, until=until))
            except Exception as exc:  # storage hiccup: the next renewal tries again
                log.warning("outbox lease renewal failed: %s", type(exc).__name__)

    def _kinds(self) -> tuple[str, ...]:
        kinds = ["update", "callback", rows.DIRECTED_INVITE]  # a person's instruction: never held back
        if self._settings.relay_sending_enabled and not self._settings.relay_shadow_mode:
            kinds += ["invite", "forward", "verify"]
        return tuple(kinds)

    async def _run(self) -> None:
        if self._writer.sqlite:
            try:
                left = await self._writer.run(lambda tx: rows.release_left(tx, now=millis(self._clock)))
                if left:
                    log.info("outbox: %d rows claimed by an earlier process released, to be sent now", left)
            except Exception as exc:  # the claim below meets the same storage and says so
                log.warning("outbox release at start failed: %s", type(exc).__name__)
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage hiccup: wait and try again, never die
                log.warning("outbox claim failed: %s", type(exc).__name__)
                claimed = 0
            if claimed or self._stopping:
                continue
            self._wake.clear()
            # the poll: retries come due without a wake (asyncio.timeout, not wait_for: on 3.11
            # wait_for can swallow a cancel that lands as its timeout fires, and stop would hang)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SEC):
                    await self._wake.wait()

    async def run_once(self) -> int:
        """Claim one batch and start sending it; returns how many rows were claimed."""
        free = MAX_IN_FLIGHT - len(self._inflight)
        if free <= 0:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        kinds = self._kinds()
        batch = await self._writer.run(
            lambda tx: rows.claim(tx, now=millis(self._clock), lease_ms=LEASE_MS, limit=min(BATCH, free), kinds=kinds)
        )
        # one read for the batch's invitations, awaited by their sends (started now, so a
        # drain that looks right after this claim sees them in flight)
        prepared = asyncio.ensure_future(self._prepare([w for w in batch if w.kind in rows.INVITE_KINDS]))
        for work in batch:
            self._claimed[work.id] = work
            task = asyncio.create_task(self._process(work, prepared))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(batch)

    async def _prepare(self, invites: list[rows.Work]) -> dict[int, ToSend | None]:
        """What the claimed invitations need, read in one job, by outbox row id (None: not found).

        Should the read fail, each send reads its own and meets the failure there.
        """
        if not invites:
            return {}
        try:
            found = await self._invitations.to_send([_invitation_id(w) for w in invites])
        except Exception as exc:
            log.warning("outbox batch read failed: %s", type(exc).__name__)
            return {}
        return {w.id: found.get(_invitation_id(w)) for w in invites}

    async def drain(self, within: float = 10.0) -> None:
        """Send everything due now and wait for it, for at most `within` seconds (tests and shutdown)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            claimed = await self.run_once()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if not claimed and not self._inflight:
                return

    def _lane(self, work: rows.Work, prepared: ToSend | None) -> asyncio.Semaphore:
        name = prepared.invite.channel if prepared is not None and prepared.invite is not None else work.kind
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = asyncio.Semaphore(LANE_CONCURRENCY)
        return lane

    async def _process(self, work: rows.Work, batch: asyncio.Future[dict[int, ToSend | None]]) -> None:
        started = time.monotonic()
        prepared = (await batch).get(work.id)
        async with self._lane(work, prepared):
            # after a wait for its lane, the send-time checks read the loop and grants again
            fresh = prepared if time.monotonic() - started <= FRESH_SEC else None
            try:
                async with asyncio.timeout(ATTEMPT_TIMEOUT_SEC):
                    delivery = await self._attempt(work, fresh)
            except TimeoutError:
                delivery = retry("timed out")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # the type only: a provider's exception text can quote the message it was sending
                log.error("outbox row %s (%s) failed unexpectedly: %s", work.id, work.kind, type(exc).__name__)
                delivery = retry(f"unexpected {type(exc).__name__}")
        try:
            settled = await self._settle(work, delivery)
        except asyncio.CancelledError:
            raise  # still claimed: `stop` releases it
        except Exception:
            self._forget(work)  # not settled: its lease lapses and a claim takes it back
            raise
        self._forget(work)
        if settled:
            self._count(work, prepared, delivery)

    def _forget(self, work: rows.Work) -> None:
        """This claim is over; a later claim of the same row (after a lapsed lease) stays."""
        if self._claimed.get(work.id) is work:
            del self._claimed[work.id]

    async def _attempt(self, work: rows.Work, prepared: ToSend | None) -> Delivery:
        if work.kind in rows.INVITE_KINDS:
            return await self._send_invite(work, prepared)
        if work.kind == "update":
            return await self._send_update(work)
        if work.kind == "callback":
            return await self._send_callback(work)
        if work.kind == "forward":
            return await self._send_forward(work)
        if work.kind == "verify":
            return await self._send_join(work)
        return permanent(f"unknown outbox kind {work.kind}")

    async def _send_invite(self, work: rows.Work, prepared: ToSend | None) -> Delivery:
        if prepared is None:
            prepared = (await self._invitations.to_send([_invitation_id(work)])).get(_invitation_id(work))
        invite = None if prepared is None else prepared.invite
        if prepared is None or invite is None:
            return permanent("invitation not found")
        now = datetime.fromtimestamp(self._clock(), UTC)
        delivery = await self._deliver(work, prepared, invite, now)
        if delivery.outside_session:
            # never dropped unseen: the same signal goes to the agent's next channel (CONTRACT section 8)
            moved_to = next_channel(
                invite.signal, invite.agent, prepared.grants, now=now, settings=self._routing, tried=invite.channel
            )
            return replace(delivery, retryable=False, next_channel=moved_to)
        return delivery

    async def _deliver(self, work: rows.Work, prepared: ToSend, invite: Invite, now: datetime) -> Delivery:
        """The send-time checks, then the channel's send (or, for a late 63016, no send at all)."""
        if work.payload.get("outside_session") and prepared.status == "failed":
            # Twilio said so after the send (a late 63016): nothing is sent here; `_send_invite` moves
            # it on (a person's retry queued the invitation again, and it is then sent as usual)
            if not prepared.loop_open:
                return skip("loop_closed")
            return permanent("outside_session (reported after the send)", outside_session=True)
        refusal = send_time_refusal(
            invite.signal,
            invite.agent,
            invite.channel,
            prepared.grants,
            now=now,
            loop_open=prepared.loop_open,
            verify_addresses=self._settings.relay_verify_addresses,
        )
        if refusal is not None:
            return skip(refusal)
        if invite.channel in invite.agent.opted_out:
            return permanent(f"agent opted out of {invite.channel}", opted_out=True)
        if (channel := self._channels.get(invite.channel)) is None:
            return permanent(f"channel {invite.channel} is not configured")
        return await channel.send(invite)

    async def _send_join(self, work: rows.Work) -> Delivery:
        """A join code to an address its owner has not confirmed; skipped once confirmed or changed."""
        channel_name = str(work.payload["channel"])
        join = (
            None
            if self._addresses is None
            else await self._addresses.to_ask(str(work.payload["agent_id"]), channel_name)
        )
        if join is None:
            return skip("address confirmed, changed or removed since")
        channel = self._channels.get(channel_name)
        if channel is None:
            return permanent(f"channel {channel_name} is not configured")
        return await channel.ask_to_join(join)

    async def _send_update(self, work: rows.Work) -> Delivery:
        found = await self._invitations.delivered(int(work.payload["invitation_id"]))
        if found is None:
            return permanent("nothing delivered to update")
        channel = self._channels.get(found.invite.channel)
        if channel is None:
            return permanent(f"channel {found.invite.channel} is not configured")
        # the loop as it stands now, with the words of the answer that queued this update
        loop = replace(found.loop, latest=str(work.payload["text"]))
        return await channel.update(found.invite, found.provider_id, loop)

    async def _send_callback(self, work: rows.Work) -> Delivery:
        source = str(work.payload["source"])
        sender = SENDERS[source]
        url, secret = sender.callback_target(self._settings)
        if not url:
            return permanent(f"{source} callback URL is no longer configured")
        # Every attempt is signed with a fresh timestamp (CONTRACT section 3).
        body, headers = sender.sign_callback(work.payload["body"], secret, now_ms=millis(self._clock))
        delivery = await callbacks.post(
            self._session, url, body, {**_JSON, **headers}, timeout_sec=self.callback_timeout_sec
        )
        if sender.conflict_on_retry_is_arrival and work.attempts > 1 and delivery.error == "HTTP 409":
            log.info("callback %s: 409 on attempt %d, an earlier attempt had arrived", work.id, work.attempts)
            return Delivery(ok=True)
        return delivery

    async def _send_forward(self, work: rows.Work) -> Delivery:
        url = self._settings.care_workflow_escalation_webhook_url
        if not (self._settings.care_workflow_triggers_enabled and url):
            return permanent("workflow forwarding is disabled")
        body = await self._invitations.raw_body(int(work.ref_id or 0))
        if body is None:
            return permanent("signal body no longer stored")
        headers = pr8_headers(body, self._settings.care_workflow_webhook_secret, str(work.payload.get("event_id", "")))
        timeout_sec = self._settings.care_workflow_webhook_timeout_ms / 1000
        return await callbacks.post(self._session, url, body, headers, timeout_sec=timeout_sec)

    def _count(self, work: rows.Work, prepared: ToSend | None, delivery: Delivery) -> None:
        """The attempt's result by kind, and an invitation's end (sent, skipped, failed) by channel."""
        if delivery.skipped is not None:
            result = "skipped"
        elif delivery.next_channel is not None:
            result = "moved"
        elif delivery.ok:
            result = "sent"
        elif self._final(work, delivery):
            result = "failed"
        else:
            result = "retry"
        self._metrics.outbox_attempts.labels(work.kind, result).inc()
        if work.kind in rows.INVITE_KINDS and result != "retry":
            invite = prepared.invite if prepared is not None else None
            self._metrics.invitations.labels(invite.channel if invite is not None else "unknown", result).inc()

    def _final(self, work: rows.Work, delivery: Delivery) -> bool:
        """A failure that ends the row: not retryable, or its last attempt."""
        return (
            not delivery.ok
            and delivery.skipped is None
            and (not delivery.retryable or work.attempts >= self._max_attempts(work.kind))
        )

    def _max_attempts(self, kind: str) -> int:
        if kind == "forward":
            return 1 + self._settings.care_workflow_webhook_max_retries
        if kind == "callback":
            return 1 + len(self._settings.relay_callback_schedule)
        return self._settings.relay_outbox_max_attempts

    def _wait(self, work: rows.Work, delivery: Delivery) -> float:
        """Seconds before the next attempt of a row whose attempt number `work.attempts` failed."""
        if work.kind == "callback":
            # a sender's Retry-After may push a step later, never earlier: the schedule is the promise
            step = scheduled(work.attempts, self._settings.relay_callback_schedule)
            return max(step, delivery.retry_after or 0.0)
        return delivery.retry_after if delivery.retry_after is not None else backoff(work.attempts)

    async def _settle(self, work: rows.Work, delivery: Delivery) -> bool:
        """Store the outcome; False when this claim had lapsed and was taken over (nothing stored)."""
        now = millis(self._clock)
        invitation_id = _invitation_id(work) if work.kind in rows.INVITE_KINDS else None
        # an invitation moved to the agent's next channel has not failed: it goes on there
        final_failure = self._final(work, delivery) and delivery.next_channel is None

        settled = final_failure or delivery.ok or delivery.skipped is not None or delivery.next_channel is not None
        retry_at = None if settled else now + int(self._wait(work, delivery) * 1000)
        if not await self._writer.run(lambda tx: _store_settlement(tx, work, delivery, now=now, retry_at=retry_at)):
            log.warning(
                "outbox row %s: its claim (attempt %d) lapsed and was taken over; not settled here",
                work.id,
                work.attempts,
            )
            return False
        if delivery.skipped is not None and invitation_id is not None:
            audit.emit(
                {
                    "kind": "invitation_skipped",
                    "outbox": work.id,
                    "invitation": invitation_id,
                    "reason": delivery.skipped,
                    "action_origin": "care_autonomous",
                    "policy_gate_result": "blocked",
                }
            )
        if final_failure:
            audit.emit(
                {
                    "kind": "action_skipped" if work.kind == "forward" else "delivery_failed",
                    "outbox": work.id,
                    "what": work.kind,
                    "attempts": work.attempts,
                    "error": delivery.error,
                    "action_origin": "care_autonomous" if work.kind in rows.AUTONOMOUS_KINDS else "user_directed",
                    "policy_gate_result": "allowed",
                    "reason": "delivery failed after its last attempt",
                }
            )
        return True


def _store_settlement(tx: Tx, work: rows.Work, delivery: Delivery, *, now: int, retry_at: int | None) -> bool:
    """Settle a claimed row, and its invitation: sent, skipped, retried at `retry_at`, or failed
    (no `retry_at`). False when the claim was no longer this process's; then nothing changes."""
    invitation_id = _invitation_id(work) if work.kind in rows.INVITE_KINDS else None
    if invitation_id is not None and delivery.next_channel is not None:
        # the attempt on this channel is over; the invitation itself goes on, on the next channel
        if not rows.skip(tx, work, reason=f"{delivery.error}; invited on {delivery.next_channel}", now=now):
            return False
        _move(tx, work.kind, invitation_id, delivery, now)
    elif delivery.skipped is not None:
        if not rows.skip(tx, work, reason=delivery.skipped, now=now):
            return False
        if invitation_id is not None:
            rows.set_invitation(tx, invitation_id, status="skipped", error=delivery.skipped, now=now)
            _audit_skip(tx, invitation_id, delivery.skipped, now)
    elif delivery.ok:
        if not rows.finish(tx, work, now):
            return False
        if invitation_id is not None:
            rows.set_invitation(tx, invitation_id, status="sent", provider_id=delivery.provider_id, now=now)
    elif retry_at is not None:
        return rows.reschedule(tx, work, at=retry_at, error=delivery.error or "retry", now=now)
    else:
        return _fail(tx, work, invitation_id, delivery, now)
    return True


def _fail(tx: Tx, work: rows.Work, invitation_id: int | None, delivery: Delivery, now: int) -> bool:
    """The row failed for good; its invitation too, and what the provider said of the address is kept."""
    if not rows.fail(tx, work, error=delivery.error or "failed", now=now):
        return False
    if invitation_id is None:
        return True
    rows.set_invitation(tx, invitation_id, status="failed", error=delivery.error, now=now)
    held = invitations.holder_and_channel(tx, invitation_id)
    if held is not None and delivery.opted_out:
        directory.set_opted_out(tx, held[0], held[1], True, now)
    if held is not None and delivery.unverified:  # not a number, or not a mobile one: ask its owner again
        addresses.unconfirm(tx, held[0], held[1], delivery.error or "refused", now)
    return True


def _move(tx: Tx, kind: str, invitation_id: int, delivery: Delivery, now: int) -> None:
    """The invitation goes to the agent's next channel for the same signal, queued now, and audited."""
    to = str(delivery.next_channel)
    row = invitations.loop_of(tx, invitation_id)
    tx.execute(
        "UPDATE invitation SET channel = ?, status = 'queued', error = NULL, provider_id = NULL, updated_at = ?"
        " WHERE id = ?",
        (to, now, invitation_id),
    )
    # the same kind: a person's invitation stays one (never held back by the kill switch)
    rows.enqueue(tx, kind=kind, payload={"invitation_id": invitation_id}, at=now, ref_id=invitation_id)
    if row is not None:
        insert_audit(
            tx,
            kind="invitation_moved",
            at=now,
            source=str(row[0]),
            event_id=str(row[1]),
            agent_id=str(row[2]),
            action_origin="care_autonomous",
            policy_gate_result="allowed",
            reason=f"{row[3]} could not reach the agent ({delivery.error}); invited on {to} instead",
            detail={"from": str(row[3]), "to": to},
        )


def _invitation_id(work: rows.Work) -> int:
    return int(work.payload["invitation_id"])


def _audit_skip(tx: Tx, invitation_id: int, reason: str, now: int) -> None:
    """The audit row of an invitation a send-time check stopped, on its loop."""
    row = invitations.loop_of(tx, invitation_id)
    if row is None:
        return
    insert_audit(
        tx,
        kind="invitation_skipped",
        at=now,
        source=str(row[0]),
        event_id=str(row[1]),
        agent_id=str(row[2]),
        action_origin="care_autonomous",
        policy_gate_result="blocked",
        reason=f"checked again at send time: {reason}",
        gate_failures=(reason,),
        detail={"channel": str(row[3])},
    )
