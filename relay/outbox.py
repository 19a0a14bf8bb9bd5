"""The outbox worker: claims due rows under a lease, runs their sends in lanes, settles each.

Started with the app. It wakes as soon as a commit adds rows (and polls once a second
for retries that come due), claims due rows under a lease, has what a batch of
invitations needs read in one read job (rows, agents, live grants; the signal as intake
parsed it), runs each row's attempt (`relay.dispatch`) concurrently (at most
LANE_CONCURRENCY at once per channel or kind, and MAX_IN_FLIGHT in all) with a per-attempt
timeout, and settles each one (`relay.settlement`): sent; retried on its kind's schedule
(`relay.retries`); or failed after the last attempt, visible in /admin/outbox, where a
person can retry it. Nothing is dropped, and nothing here changes a loop's state: only
delivery.

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
import time
from collections.abc import Callable, Mapping
from functools import partial

import aiohttp

from inbox import outbox as rows
from inbox.writer import Writer
from relay import audit, retries
from relay.addresses import Addresses
from relay.delivery import Channel, Delivery, retry
from relay.dispatch import Dispatcher, invitation_id
from relay.invitations import Invitations, ToSend
from relay.metrics import Metrics
from relay.model import millis
from relay.settings import Settings
from relay.settlement import store_settlement

log = logging.getLogger("care_relay.outbox")

#: a claim's lease: a dead process's work is taken back this long after its last renewal
LEASE_MS = 12_000
RENEW_SEC = 4.0
ATTEMPT_TIMEOUT_SEC = 20.0
#: sends in flight at once, in all and per lane (one channel's invitations, or one kind of work)
MAX_IN_FLIGHT = 64
LANE_CONCURRENCY = 16
BATCH = 64
#: a send that waited longer than this for its lane reads its send-time facts again
FRESH_SEC = 1.0
POLL_SEC = 1.0


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
        self._metrics = metrics or Metrics()
        self._writer = writer
        self._settings = settings
        self._dispatch = Dispatcher(invitations, channels, settings, session, clock=clock, addresses=addresses)
        self._wake = asyncio.Event()
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._task: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        #: rows claimed and not yet settled, by id: renewed while sending, released at stop
        self._claimed: dict[int, rows.Work] = {}

    @property
    def callback_timeout_sec(self) -> float:
        """Per callback attempt (tests shorten it rather than wait ten seconds for a timeout)."""
        return self._dispatch.callback_timeout_sec

    @callback_timeout_sec.setter
    def callback_timeout_sec(self, seconds: float) -> None:
        self._dispatch.callback_timeout_sec = seconds

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
        prepared = asyncio.ensure_future(self._dispatch.prepare([w for w in batch if w.kind in rows.INVITE_KINDS]))
        for work in batch:
            self._claimed[work.id] = work
            task = asyncio.create_task(self._process(work, prepared))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(batch)

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
        # the wait is read on the app's clock (a test drives it past FRESH_SEC) and on the monotonic
        # one (a wall clock set back meanwhile must not make a long wait look short)
        started, started_monotonic = self._clock(), time.monotonic()
        prepared = (await batch).get(work.id)
        async with self._lane(work, prepared):
            # after a wait for its lane, the send-time checks read the loop and grants again
            waited = max(self._clock() - started, time.monotonic() - started_monotonic)
            fresh = prepared if waited <= FRESH_SEC else None
            try:
                async with asyncio.timeout(ATTEMPT_TIMEOUT_SEC):
                    delivery = await self._dispatch.attempt(work, fresh)
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

    def _count(self, work: rows.Work, prepared: ToSend | None, delivery: Delivery) -> None:
        """The attempt's result by kind, and an invitation's end (sent, skipped, failed) by channel."""
        if delivery.skipped is not None:
            result = "skipped"
        elif delivery.next_channel is not None:
            result = "moved"
        elif delivery.ok:
            result = "sent"
        elif retries.is_final(work.kind, work.attempts, delivery, self._settings):
            result = "failed"
        else:
            result = "retry"
        self._metrics.outbox_attempts.labels(work.kind, result).inc()
        if work.kind in rows.INVITE_KINDS and result != "retry":
            invite = prepared.invite if prepared is not None else None
            self._metrics.invitations.labels(invite.channel if invite is not None else "unknown", result).inc()

    async def _settle(self, work: rows.Work, delivery: Delivery) -> bool:
        """Store the outcome; False when this claim had lapsed and was taken over (nothing stored)."""
        now = millis(self._clock)
        invitation = invitation_id(work) if work.kind in rows.INVITE_KINDS else None
        # an invitation moved to the agent's next channel has not failed: it goes on there
        final_failure = (
            retries.is_final(work.kind, work.attempts, delivery, self._settings) and delivery.next_channel is None
        )

        settled = final_failure or delivery.ok or delivery.skipped is not None or delivery.next_channel is not None
        retry_at: int | None = None
        if not settled:
            retry_at = now + int(retries.wait(work.kind, work.attempts, delivery, self._settings) * 1000)
        if not await self._writer.run(
            lambda tx: store_settlement(tx, work, invitation, delivery, now=now, retry_at=retry_at)
        ):
            log.warning(
                "outbox row %s: its claim (attempt %d) lapsed and was taken over; not settled here",
                work.id,
                work.attempts,
            )
            return False
        if delivery.skipped is not None and invitation is not None:
            audit.emit(
                {
                    "kind": "invitation_skipped",
                    "outbox": work.id,
                    "invitation": invitation,
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
