"""The composition root: `create_app(settings)` wires storage, intake and routes.

Everything the app owns (engine, writer, HTTP sessions, channel clients) is created in
a `cleanup_ctx` and closed there; nothing is read or opened at import.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from importlib import metadata

import aiohttp
from aiohttp import web

from inbox import open_inbox, signals
from inbox.writer import STORAGE_ERRORS
from receivers import read_signal
from relay import channels, logs
from relay.actors import ActorConsent
from relay.addresses import Addresses
from relay.answers import Answers
from relay.channels.slack import start_socket_mode, stop_socket_mode
from relay.console_sessions import ConsoleSessions
from relay.deliveries import Deliveries
from relay.directory import Directory, confirming
from relay.inbound import Inbound
from relay.instructions import Instructions
from relay.intake import Intake
from relay.invitations import Invitations
from relay.keys import (
    ACTOR_CONSENT,
    ADDRESSES,
    ANSWERS,
    CHANNELS,
    CLOCK,
    CONSOLE_SESSIONS,
    DELIVERIES,
    DIRECTORY,
    DRAINING,
    ENGINE,
    HTTP,
    INBOUND,
    INSTRUCTIONS,
    INTAKE,
    INVITATIONS,
    LEXICON,
    METRICS,
    ON_DRAIN,
    OUTBOX,
    READER,
    RUN_OUTBOX,
    SETTINGS,
    TOKENS,
    VIEWS,
    WRITER,
)
from relay.labels import read_responses
from relay.metrics import Metrics
from relay.outbox import OutboxWorker
from relay.settings import Settings
from relay.tokens import Tokens
from relay.views import Views
from relay.web import console, pages, routes
from relay.web.middleware import errors_middleware
from relay.web.requests import unstorable_middleware
from relay.words import Lexicon

log = logging.getLogger("care_relay")


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    storage = await open_inbox(settings.relay_database_url, busy_timeout_ms=settings.relay_sqlite_busy_timeout_ms)
    app[ENGINE] = storage.engine
    app[WRITER] = storage.writer
    storage.writer.on_checkpoint = app[METRICS].checkpoint_duration.observe
    app[READER] = storage.reader
    try:
        yield
    finally:
        await storage.close()


async def _services(app: web.Application) -> AsyncIterator[None]:
    """HTTP client, the invitation read model, answers, channels, the outbox worker and intake, wired together.

    Every channel is built before the outbox starts and closed after it stopped; nothing
    changes the channel map in between.
    """
    settings = app[SETTINGS]
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    app[HTTP] = session
    outbox: OutboxWorker | None = None

    def wake() -> None:
        if outbox is not None:
            outbox.wake()

    clock = app[CLOCK]
    lexicon = Lexicon(settings.relay_default_locale, read_responses(settings.relay_responses_file))
    app[LEXICON] = lexicon
    invitations = Invitations(app[READER], settings, app[TOKENS], read_signal=read_signal, lexicon=lexicon, clock=clock)
    app[INVITATIONS] = invitations
    app[ANSWERS] = Answers(app[WRITER], invitations, settings, on_queued=wake, clock=clock, metrics=app[METRICS])
    app[INBOUND] = Inbound(app[WRITER], settings, clock=clock)
    app[ADDRESSES] = Addresses(app[WRITER], app[READER], clock=clock, lexicon=lexicon)
    app[DIRECTORY] = Directory(
        app[WRITER],
        app[READER],
        clock=clock,
        region=settings.relay_default_region,
        confirm_on=confirming(settings),
        on_queued=wake,
    )
    app[VIEWS] = Views(app[READER])
    app[CONSOLE_SESSIONS] = ConsoleSessions(app[WRITER], app[READER], clock=clock)
    app[INSTRUCTIONS] = Instructions(
        app[WRITER], settings.routing(), read_signal=read_signal, clock=clock, on_queued=wake
    )
    app[ACTOR_CONSENT] = ActorConsent(
        app[WRITER], app[READER], app[DIRECTORY], settings.routing(), read_signal=read_signal, clock=clock,
        on_queued=wake, coalesce=settings.relay_coalesce,
    )  # fmt: skip
    app[DELIVERIES] = Deliveries(app[WRITER], app[READER], clock=clock, on_queued=wake)
    opened = await channels.open_channels(app, settings, app[ANSWERS], invitations)
    app[CHANNELS] = opened
    outbox = OutboxWorker(
        app[WRITER],
        invitations,
        opened,
        settings,
        session,
        clock=clock,
        metrics=app[METRICS],
        addresses=app[ADDRESSES],
    )
    app[OUTBOX] = outbox
    app[INTAKE] = Intake(
        app[WRITER],
        settings.routing(),
        on_queued=wake,
        on_invited=invitations.remember,  # its sends read the signal as intake parsed it
        clock=lambda: datetime.fromtimestamp(clock(), UTC),
        forward_escalations=bool(
            settings.care_workflow_triggers_enabled
            and settings.care_workflow_escalation_webhook_url
            and settings.relay_sending_enabled
            and not settings.relay_shadow_mode
        ),
        coalesce=settings.relay_coalesce,
    )
    if app[RUN_OUTBOX]:
        outbox.start()
    socket_mode = start_socket_mode(app, settings)  # Slack's answers over a WebSocket, when so configured
    app[ON_DRAIN].append(lambda: stop_socket_mode(socket_mode))  # a draining relay takes no new presses
    retention = asyncio.create_task(_purge_bodies(app), name="retention")
    flusher = asyncio.create_task(_flush_logs(), name="log-flush")
    try:
        yield
    finally:
        await stop_socket_mode(socket_mode)  # no answers arrive while the rest stops
        retention.cancel()
        flusher.cancel()
        await asyncio.gather(retention, flusher, return_exceptions=True)
        await outbox.stop()
        await channels.close_channels(app[CHANNELS].values())
        await session.close()


async def _flush_logs() -> None:
    """Every second: log lines held in the buffer are written out, even when nothing else is logged."""
    while True:
        await asyncio.sleep(logs.FLUSH_AFTER_SEC)
        logs.flush_pending()


async def _purge_bodies(app: web.Application) -> None:
    """Hourly: raw bodies past RELAY_RETENTION_DAYS are dropped (the loop record stays)."""
    days = app[SETTINGS].relay_retention_days
    while True:
        cutoff = int((app[CLOCK]() - days * 86400) * 1000)

        try:
            purged = await app[WRITER].run(partial(signals.purge_bodies, older_than=cutoff))
            if purged:
                log.info("retention: purged %d raw bodies older than %d days", purged, days)
        except Exception as exc:
            log.warning("retention purge failed: %s", type(exc).__name__)
        await asyncio.sleep(3600)


def _version() -> str:
    try:
        return metadata.version("care-relay")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def create_app(
    settings: Settings, *, clock: Callable[[], float] = time.time, run_outbox: bool = True
) -> web.Application:
    """The relay. `run_outbox=False` leaves sending to explicit `app[OUTBOX].drain()` calls (tests)."""
    # aiohttp's own cap sits above ours so that our 413 (with the contract's JSON) answers first.
    app = web.Application(
        middlewares=[errors_middleware(STORAGE_ERRORS), unstorable_middleware],
        client_max_size=settings.relay_max_body_bytes + 1024,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[RUN_OUTBOX] = run_outbox
    app[DRAINING] = asyncio.Event()
    app[ON_DRAIN] = []
    app[METRICS] = Metrics(_version())
    app[TOKENS] = Tokens(settings.relay_link_secrets, settings.relay_link_max_age_sec, clock)
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_services)
    pages.install(app)
    console.install(app)
    routes.add_routes(app)
    channels.add_routes(app, settings)
    return app
