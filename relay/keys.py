"""Typed application state keys (`web.AppKey`): what the edges may reach, wired by `relay.app`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.reader import Reader
from inbox.writer import Writer
from relay.actors import ActorConsent
from relay.addresses import Addresses
from relay.answers import Answers
from relay.console_sessions import ConsoleSessions
from relay.deliveries import Deliveries
from relay.delivery import Channel
from relay.directory import Directory
from relay.inbound import Inbound
from relay.instructions import Instructions
from relay.intake import Intake
from relay.invitations import Invitations
from relay.metrics import Metrics
from relay.outbox import OutboxWorker
from relay.settings import Settings
from relay.tokens import Tokens
from relay.views import Views
from relay.words import Lexicon

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
WRITER = web.AppKey("writer", Writer)
#: runs read jobs (plain SQL, one thread hop each).
READER = web.AppKey("reader", Reader)
INTAKE = web.AppKey("intake", Intake)
TOKENS = web.AppKey("tokens", Tokens)
ANSWERS = web.AppKey("answers", Answers)
INVITATIONS = web.AppKey("invitations", Invitations)
#: inbound-message bookkeeping for the Twilio channels.
INBOUND = web.AppKey("inbound", Inbound)
#: confirming addresses (JOIN, the Join button) and the WhatsApp session
ADDRESSES = web.AppKey("addresses", Addresses)
#: every language the relay speaks, with the operator's response words (CONTRACT section 9)
LEXICON = web.AppKey("lexicon", Lexicon)
#: the agent directory and consent grants.
DIRECTORY = web.AppKey("directory", Directory)
#: people's instructions about a loop: invite now (the admin API's and the CLI's one service).
INSTRUCTIONS = web.AppKey("instructions", Instructions)
#: the actor's own consent page (CONTRACT section 10)
ACTOR_CONSENT = web.AppKey("actor_consent", ActorConsent)
#: console sessions their admins signed out of (CONTRACT section 11), kept in storage for every replica
CONSOLE_SESSIONS = web.AppKey("console_sessions", ConsoleSessions)
#: read-only views of loops and the audit trail.
VIEWS = web.AppKey("views", Views)
OUTBOX = web.AppKey("outbox", OutboxWorker)
#: failed work, listed and retried (the admin API's and the CLI's one service).
DELIVERIES = web.AppKey("deliveries", Deliveries)
#: the channels this configuration sends on, by name, built once before the outbox starts.
CHANNELS = web.AppKey("channels", dict[str, Channel])
HTTP = web.AppKey("http", aiohttp.ClientSession)
#: aggregate operational figures, this app's own registry (never per person): GET /metrics.
METRICS = web.AppKey("metrics", Metrics)
#: this request's id (X-Request-Id, given or made), on its log line and echoed on its answer.
REQUEST_ID = web.RequestKey("request_id", str)
#: the event a request concerns (a hook's signal, a status lookup), for its log line.
EVENT_ID = web.RequestKey("event_id", str)
#: the wall clock, Unix seconds (a seam for tests that replay fixed-time vectors).
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
#: False in tests that drive the outbox by hand.
RUN_OUTBOX = web.AppKey("run_outbox", bool)
#: set once a shutdown began: /readyz answers 503 while requests and sends finish.
DRAINING = web.AppKey("draining", asyncio.Event)
#: what stops taking new work when a shutdown starts (Slack's Socket Mode connection), run by `drain`
ON_DRAIN = web.AppKey("on_drain", list[Callable[[], Awaitable[None]]])
