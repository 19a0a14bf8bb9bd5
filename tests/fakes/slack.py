"""A local fake of Slack, spoken to by the real SDKs (never monkeypatched).

Two halves:

* ``FakeSlack`` -- a real HTTP server (aiohttp, 127.0.0.1, ephemeral port) that
  answers the Web API methods the relay uses, the way slack.com does, and records
  every call.  Point the real client at it: ``AsyncWebClient(token, base_url=fake.api_url)``
  (or the relay's ``SLACK_API_URL`` setting).
* ``block_action`` / ``view_submission`` / ``slash_command`` -- build the signed
  requests Slack sends *to* the relay's ``POST /slack/events``.

What slack_sdk 3.x's ``AsyncWebClient`` actually puts on the wire (read from
``slack_sdk/web/async_client.py`` + ``async_internal_utils.py``; checked by
tests/relay/channels/test_fake_slack.py):

* every call is ``POST {base_url}{method}`` (``urljoin``, so base_url must end in
  "/"), token in ``Authorization: Bearer xoxb-...``; the ``token`` kwarg is
  popped out of the params/json into that header.
* methods built with ``params=`` (``auth.test``, ``conversations.open``, most
  read methods) send their arguments in the **URL query string** with an empty
  body and ``Content-Type: application/x-www-form-urlencoded``; booleans become
  "1"/"0", lists are comma-joined (``users="U1,U2"``).
* ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
  ``views.open``, ``views.update`` send a **JSON body**
  (``Content-Type: application/json;charset=utf-8``); ``blocks``/``view`` stay
  real JSON lists/objects, ``None`` values are dropped.
* a client created with ``team_id=`` (Bolt's per-request client does this) adds
  ``team_id`` to every call's params/body.
* this fake merges query string + form body + JSON body into one ``params``
  dict per call, so tests need not care; ``FakeSlack.requests`` keeps the raw
  query/body for tests about encoding itself.

Retries: ``AsyncWebClient()``'s default ``retry_handlers`` is
``async_default_handlers()`` == ``[AsyncConnectionErrorRetryHandler()]`` -- ONE
retry, only on ``ServerConnectionError`` / ``ServerDisconnectedError`` /
``ClientOSError``.  A 429 is NOT retried by default (``AsyncRateLimitErrorRetryHandler``
is opt-in): it surfaces at once as ``SlackApiError`` with
``e.response.status_code == 429`` and ``e.response.headers["Retry-After"]``.
Same for 5xx (``AsyncServerErrorRetryHandler`` is opt-in too).  A client
timeout (``AsyncWebClient(timeout=...)`` is an aiohttp *total* timeout) raises
``asyncio.TimeoutError`` (builtin ``TimeoutError``), not a retried connection
error -- see ``test_delay_makes_the_client_time_out``.

Socket Mode (https://api.slack.com/apis/socket-mode): ``apps.connections.open`` with the
app-level token (``Authorization: Bearer xapp-...``; a bot token is
``not_allowed_token_type``) answers ``{"ok": true, "url": "ws://127.0.0.1:<port>/link/?ticket=..."}``,
a WebSocket served by a second local server. A connection with a ticket the fake issued
(each ticket works once) first receives ``{"type": "hello", "num_connections", "debug_info",
"connection_info"}``; ``await fake.push(type, payload)`` then sends an envelope
``{"envelope_id", "type", "payload", "accepts_response_payload"}`` and returns the client's
ack ``{"envelope_id", "payload"?}``; ``await fake.disconnect()`` sends
``{"type": "disconnect", "reason": "refresh_requested"}`` (the client asks for a new URL).

Errors the fake answers on its own (HTTP 200, ``{"ok": false, "error": ...}``,
as slack.com does): ``not_authed`` (no token at all), ``invalid_auth`` (a token
other than ``FakeSlack.token``), ``unknown_method``, ``channel_not_found``,
``user_not_found`` (users in ``unknown_users``), ``no_text``,
``message_not_found`` (chat.update of a message this fake never posted, unless
``strict=False``), ``invalid_arguments``, ``not_found`` / ``hash_conflict``
(views.update).  Anything else: ``fail_next``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

__all__ = [
    "APP_ID",
    "APP_TOKEN",
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_TOKEN",
    "FIRST_TS",
    "TEAM_ID",
    "Call",
    "FakeSlack",
    "RawRequest",
    "app_home_opened",
    "block_action",
    "block_action_payload",
    "event_request",
    "plain_text_input",
    "sign",
    "slash_command",
    "slash_command_fields",
    "static_select",
    "view_submission",
    "view_submission_payload",
]

DEFAULT_TOKEN = "xoxb-0000000000-fake-relay-token"
#: the app-level token Socket Mode connects with (connections:write)
APP_TOKEN = "xapp-1-A0FAKEAPP-0000000000-fake-app-level-token"
TEAM_ID = "T0FAKETEAM"
APP_ID = "A0FAKEAPP"
BOT_ID = "B0FAKEBOT"
BOT_USER_ID = "U0FAKEBOT"
#: the first ``ts`` a fresh FakeSlack hands out (chat.postMessage / postEphemeral).
FIRST_TS = "1700000000.000100"
_TS_BASE_US = 1_700_000_000_000_000
_TS_STEP_US = 100

#: Web API methods this fake implements; anything else is ``unknown_method``.
METHODS = (
    "auth.test",
    "conversations.open",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "views.open",
    "views.update",
    "views.publish",
    "users.lookupByEmail",
    "apps.connections.open",
)
#: how long `wait_for`, `push` and `wait_connected` wait by default: a test's deadline, never a sleep,
#: so generous (a loaded CI machine can take seconds to connect or send); they return as soon as it holds
WAIT_TIMEOUT_SEC = 30.0
SOCKET_TIMEOUT_SEC = WAIT_TIMEOUT_SEC


class Call(NamedTuple):
    """One recorded Web API call: method name, merged params, request headers."""

    method: str
    params: dict[str, Any]
    headers: CIMultiDict[str]


class RawRequest(NamedTuple):
    """The same call as it came off the wire (for tests about the encoding itself)."""

    method: str
    query: str
    content_type: str
    body: bytes


@dataclass
class _Failure:
    status: int | None
    retry_after: int | None
    error: str | None
    delay: float | None


class _SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _ts(n: int) -> str:
    us = _TS_BASE_US + _TS_STEP_US * n
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _maybe_json(value: Any) -> Any:
    """Form-encoded callers send blocks/view as JSON strings; JSON callers as objects."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _split_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _is_user_id(value: str) -> bool:
    return value[:1] in ("U", "W")


class FakeSlack:
    """Local Slack Web API: ``async with FakeSlack() as fake: ... fake.api_url``."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        team_id: str = TEAM_ID,
        bot_user_id: str = BOT_USER_ID,
        bot_id: str = BOT_ID,
        app_id: str = APP_ID,
        scopes: str = "chat:write,im:write,commands,users:read,users:read.email",
        strict: bool = True,
        app_token: str = APP_TOKEN,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.scopes = scopes
        #: chat.update of a (channel, ts) this fake never posted -> message_not_found.
        self.strict = strict
        #: users that do not exist: conversations.open -> user_not_found,
        #: chat.postMessage/postEphemeral to them -> channel_not_found / user_not_found.
        self.unknown_users: set[str] = set()
        self.calls: list[Call] = []
        self.requests: list[RawRequest] = []
        #: posted messages by (channel id, ts), kept current by chat.update.
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        #: opened views by view id, kept current by views.update.
        self.views: dict[str, dict[str, Any]] = {}
        #: the Home tab published for each user (views.publish), the latest one.
        self.home_views: dict[str, dict[str, Any]] = {}
        #: workspace members users.lookupByEmail finds, by id (`add_user`).
        self.users: dict[str, dict[str, Any]] = {}
        #: Socket Mode: tickets handed out and not yet used, open sockets, acks received.
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: every message a Socket Mode client sent (acks, anything else), parsed, in order.
        self.socket_received: list[dict[str, Any]] = []
        #: how many WebSocket connections were accepted so far.
        self.connections = 0
        self._socket_changed = asyncio.Event()
        self._socket_runner: web.AppRunner | None = None
        self._socket_port: int | None = None
        self.socket_app = web.Application()
        self.socket_app.router.add_get("/link/", self._handle_socket)
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.app = web.Application()
        self.app.router.add_route("*", "/api/{method}", self._handle_api)
        self.app.router.add_post("/actions/{tail:.*}", self._handle_response_url)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeSlack:
        """Listen on 127.0.0.1 on a free port."""
        self._closing.clear()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._socket_runner = web.AppRunner(self.socket_app, access_log=None, shutdown_timeout=1.0)
        await self._socket_runner.setup()
        await web.TCPSite(self._socket_runner, "127.0.0.1", 0).start()
        self._socket_port = self._socket_runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Wake any delayed answers, close every socket and shut both servers down."""
        self._closing.set()
        for future in self._pending.values():
            future.cancel()
        for ws in list(self._sockets):
            await ws.close()
        if self._socket_runner is not None:
            await self._socket_runner.cleanup()
            self._socket_runner = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Root URL of the server, e.g. ``http://127.0.0.1:54321/``."""
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}/"

    @property
    def api_url(self) -> str:
        """Web API base URL (ends with "/api/"), for ``base_url=`` / SLACK_API_URL."""
        return self.url + "api/"

    # ------------------------------------------------------------------ test helpers

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """Params of every recorded call to ``method`` (failed ones included), in order."""
        return [c.params for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        """Method names of all recorded calls, in order."""
        return [c.method for c in self.calls]

    def clear(self) -> None:
        """Forget recorded calls and requests (state such as messages is kept)."""
        self.calls.clear()
        self.requests.clear()

    async def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        timeout: float = WAIT_TIMEOUT_SEC,  # noqa: ASYNC109 - a test's deadline for the fake, applied with asyncio below
    ) -> list[dict[str, Any]]:
        """Wait until ``method`` has been called ``count`` times; return its params list."""

        async def _wait() -> list[dict[str, Any]]:
            while len(self.calls_to(method)) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.calls_to(method)

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"FakeSlack: expected {count} call(s) to {method} within {timeout}s, got "
                f"{len(self.calls_to(method))}; all calls: {self.methods()}"
            ) from None

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        error: str | None = None,
        delay: float | None = None,
        times: int = 1,
    ) -> None:
        """Program the next ``times`` calls to ``method`` to fail.

        * ``status=429``: HTTP 429, ``Retry-After: retry_after`` (default 1, Slack
          always sends one), body ``{"ok": false, "error": "ratelimited"}``.
        * ``status=5xx`` (or any other): that HTTP status; body
          ``{"ok": false, "error": error}`` if ``error`` is given, else an HTML
          error page (as a load balancer sends; slack_sdk then has ``data == {}``).
        * ``error=...`` alone: HTTP 200 ``{"ok": false, "error": error}`` -- Slack's
          permanent errors (user_not_found, channel_not_found, not_authed, ...).
        * ``delay=...``: sleep that long first (for client timeouts); with no
          status/error the call is then answered normally.
        * nothing at all: HTTP 500.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if status is None and error is None and delay is None:
            status = 500
        for _ in range(times):
            self._failures[method].append(_Failure(status, retry_after, error, delay))

    def add_user(self, user_id: str, email: str, *, name: str | None = None) -> dict[str, Any]:
        """A workspace member users.lookupByEmail finds by ``email`` (case-insensitive, as Slack does)."""
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name or email.split("@", maxsplit=1)[0],
            "deleted": False,
            "is_bot": False,
            "profile": {"email": email, "real_name": name or email.split("@", maxsplit=1)[0]},
        }
        self.users[user_id] = user
        return user

    # ------------------------------------------------------------------ Socket Mode

    @property
    def socket_url(self) -> str:
        """Root of the Socket Mode server, e.g. ``ws://127.0.0.1:54322/``."""
        if self._socket_port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"ws://127.0.0.1:{self._socket_port}/"

    async def wait_connected(self, count: int = 1, *, timeout: float = SOCKET_TIMEOUT_SEC) -> None:  # noqa: ASYNC109 - a test's deadline
        """Wait until ``count`` WebSocket connections were accepted and one is open (hello sent)."""

        async def _wait() -> None:
            while self.connections < count or not self._open_sockets():
                self._socket_changed.clear()
                await self._socket_changed.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"FakeSlack: expected {count} Socket Mode connection(s) within {timeout}s, got {self.connections}"
                f" ({len(self._open_sockets())} open); apps.connections.open calls:"
                f" {len(self.calls_to('apps.connections.open'))}"
            ) from None

    async def push(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        timeout: float = SOCKET_TIMEOUT_SEC,  # noqa: ASYNC109 - a test's deadline
    ) -> dict[str, Any]:
        """Send one envelope over the newest open socket and return the client's ack.

        ``envelope_type`` is ``interactive``, ``events_api`` or ``slash_commands``. Unless
        given, ``accepts_response_payload`` is what Slack sends: true for slash commands
        and view submissions, false for other interactions and for events.
        """
        if envelope_type not in ("interactive", "events_api", "slash_commands"):
            raise ValueError(f"not a Socket Mode envelope type: {envelope_type!r}")
        await self.wait_connected(timeout=timeout)
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type == "slash_commands" or payload.get("type") == "view_submission"
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = acked
        try:
            await self._open_sockets()[-1].send_str(json.dumps(envelope))
            return await asyncio.wait_for(acked, timeout)
        except TimeoutError:
            raise AssertionError(f"FakeSlack: no ack for the {envelope_type} envelope within {timeout}s") from None
        finally:
            self._pending.pop(envelope_id, None)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's notice that the connection is about to end: the client opens a new one."""
        for ws in self._open_sockets():
            await ws.send_str(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}))

    def _open_sockets(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self._sockets if not ws.closed]

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")  # Slack refuses the upgrade
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections += 1
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._open_sockets()),
                    "debug_info": {"host": "fake-applink", "build_number": 1, "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        self._socket_changed.set()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    received = json.loads(message.data)
                except ValueError:
                    continue
                if not isinstance(received, dict):
                    continue
                self.socket_received.append(received)
                pending = self._pending.get(str(received.get("envelope_id")))
                if pending is not None and not pending.done():
                    pending.set_result(received)
        finally:
            self._socket_changed.set()
        return ws

    def new_response_url(self) -> str:
        """A ``response_url`` served by this fake (POSTs recorded as method "response_url")."""
        return f"{self.url}actions/{self.team_id}/{next(self._id_counter)}/fakehook"

    # ------------------------------------------------------------------ HTTP

    def _json(self, body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        hdrs = {"X-OAuth-Scopes": self.scopes}
        hdrs.update(headers or {})
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            charset="utf-8",
            headers=hdrs,
        )

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], bytes]:
        params: dict[str, Any] = {}
        for key, value in request.query.items():
            params.setdefault(key, value)
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else value.file.read()
            return params, b""
        raw = await request.read()
        if raw:
            if ctype == "application/json":
                body = json.loads(raw)
                if isinstance(body, dict):
                    params.update(body)
            else:
                for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
                    params[key] = value
        return params, raw

    def _record(self, call: Call, raw: RawRequest) -> None:
        self.calls.append(call)
        self.requests.append(raw)
        self._changed.set()

    def release(self) -> None:
        """Answer every call held by a `delay` now (and those still to come without waiting)."""
        self._released.set()

    async def _sleep(self, delay: float) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (self._closing, self._released)]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _failed(self, failure: _Failure) -> web.Response | None:
        """What Slack answers for a failure queued with `fail_next` (None: it only delayed)."""
        if failure.status == 429:
            retry_after = 1 if failure.retry_after is None else failure.retry_after
            return self._json(
                {"ok": False, "error": failure.error or "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        if failure.status is not None and failure.status != 200:
            if failure.error is not None:
                return self._json({"ok": False, "error": failure.error}, status=failure.status)
            return web.Response(
                status=failure.status,
                text=f"<html><body><h1>{failure.status}</h1>Slack is having trouble.</body></html>",
                content_type="text/html",
            )
        if failure.error is not None:
            return self._json({"ok": False, "error": failure.error})
        return None

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, raw = await self._read_params(request)
        headers: CIMultiDict[str] = CIMultiDict(request.headers)
        self._record(
            Call(method, params, headers),
            RawRequest(method, request.query_string, request.headers.get("Content-Type", ""), raw),
        )

        queue = self._failures.get(method)
        failure = queue.popleft() if queue else None
        if failure is not None:
            if failure.delay:
                await self._sleep(failure.delay)
            failed = self._failed(failure)
            if failed is not None:
                return failed

        if method == "apps.connections.open":
            return self._json(self._apps_connections_open(headers))

        auth_error = self._check_auth(headers, params)
        if auth_error is not None:
            return self._json({"ok": False, "error": auth_error})

        handler = {
            "auth.test": self._auth_test,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.lookupByEmail": self._users_lookup_by_email,
        }.get(method)
        if handler is None:
            return self._json({"ok": False, "error": "unknown_method", "req_method": method})
        try:
            body = handler(params)
        except _SlackError as e:
            return self._json({"ok": False, "error": e.error})
        return self._json({"ok": True, **body})

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        params, raw = await self._read_params(request)
        self._record(
            Call("response_url", params, CIMultiDict(request.headers)),
            RawRequest("response_url", request.query_string, request.headers.get("Content-Type", ""), raw),
        )
        return self._json({"ok": True})

    def _check_auth(self, headers: CIMultiDict[str], params: dict[str, Any]) -> str | None:
        auth = headers.get("Authorization")
        token: str | None
        if auth is not None:
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        else:
            token = params.get("token")  # Slack also accepts a form/query token
        if not token:
            return "not_authed"
        if not hmac.compare_digest(token, self.token):
            return "invalid_auth"
        return None

    # ------------------------------------------------------------------ methods

    def _apps_connections_open(self, headers: CIMultiDict[str]) -> dict[str, Any]:
        """Only the app-level token opens a connection; a bot token is the wrong kind."""
        auth = headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if not token:
            return {"ok": False, "error": "not_authed"}
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if not hmac.compare_digest(token, self.app_token):
            return {"ok": False, "error": "invalid_auth"}
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"ok": True, "url": f"{self.socket_url}link/?ticket={ticket}&app_id={self.app_id}"}

    def _users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = str(params.get("email") or "").strip().lower()
        if not email:
            raise _SlackError("invalid_arguments")
        for user in self.users.values():
            if str(user["profile"]["email"]).lower() == email:
                return {"user": dict(user)}
        raise _SlackError("users_not_found")

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _maybe_json(params.get("view"))
        user = str(params.get("user_id") or "")
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            raise _SlackError("invalid_arguments")
        if user in self.unknown_users:
            raise _SlackError("user_not_found")
        built = self._build_view(view, view_id=f"V0HOME{next(self._id_counter):04d}")
        self.home_views[user] = built
        return {"view": dict(built)}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake-care.slack.com/",
            "team": "Fake Care Workspace",
            "user": "care-relay",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _dm_channel(self, user: str) -> str:
        return "D" + user

    def _resolve_channel(self, channel: Any) -> str:
        """chat.* accept a user id and post to the DM with that user, as Slack does."""
        if not channel:
            raise _SlackError("channel_not_found")
        channel = str(channel)
        if _is_user_id(channel):
            if channel in self.unknown_users:
                raise _SlackError("channel_not_found")
            return self._dm_channel(channel)
        return channel

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = _split_ids(params.get("users"))
        return_im = str(params.get("return_im", "")).lower() in ("1", "true")
        if not users:
            if params.get("channel"):
                return {"channel": {"id": str(params["channel"])}}
            raise _SlackError("users_list_not_supplied")
        for user in users:
            if user in self.unknown_users:
                raise _SlackError("user_not_found")
        if len(users) == 1:
            channel: dict[str, Any] = {"id": self._dm_channel(users[0])}
            if return_im:
                channel.update(
                    {
                        "created": 1700000000,
                        "is_im": True,
                        "is_org_shared": False,
                        "user": users[0],
                        "is_user_deleted": False,
                        "priority": 0,
                    }
                )
            return {"no_op": True, "already_open": True, "channel": channel}
        digest = hashlib.sha1(",".join(sorted(users)).encode(), usedforsecurity=False).hexdigest()[:9].upper()
        return {"no_op": True, "already_open": True, "channel": {"id": "G" + digest}}

    def _message_fields(self, params: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for key in ("text", "blocks", "attachments", "metadata", "thread_ts"):
            if params.get(key) is not None:
                fields[key] = _maybe_json(params[key])
        return fields

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        fields = self._message_fields(params)
        if not any(fields.get(k) for k in ("text", "blocks", "attachments")):
            raise _SlackError("no_text")
        ts = _ts(next(self._ts_counter))
        message = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": ts,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": fields.get("text", ""),
            "team": self.team_id,
            **{k: v for k, v in fields.items() if k != "text"},
        }
        self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": dict(message)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        ts = params.get("ts")
        if not channel or _is_user_id(str(channel)):
            raise _SlackError("channel_not_found")  # chat.update needs the conversation id
        if not ts:
            raise _SlackError("message_not_found")
        channel, ts = str(channel), str(ts)
        key = (channel, ts)
        if key not in self.messages:
            if self.strict:
                raise _SlackError("message_not_found")
            self.messages[key] = {
                "user": self.bot_user_id,
                "type": "message",
                "ts": ts,
                "bot_id": self.bot_id,
                "app_id": self.app_id,
                "text": "",
                "team": self.team_id,
            }
        fields = self._message_fields(params)
        message = self.messages[key]
        message.update(fields)
        message["edited"] = {"user": self.bot_user_id, "ts": f"{time.time():.6f}"}
        return {"channel": channel, "ts": ts, "text": message.get("text", ""), "message": dict(message)}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self._resolve_channel(params.get("channel"))  # raises channel_not_found
        user = params.get("user")
        if not user or str(user) in self.unknown_users:
            raise _SlackError("user_not_found")
        fields = self._message_fields(params)
        if not any(fields.get(k) for k in ("text", "blocks", "attachments")):
            raise _SlackError("no_text")
        return {"message_ts": _ts(next(self._ts_counter))}

    def _build_view(self, view: dict[str, Any], *, view_id: str, root_view_id: str | None = None) -> dict[str, Any]:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{next(self._id_counter):08d}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": root_view_id or view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _maybe_json(params.get("view"))
        if not (params.get("trigger_id") or params.get("interactivity_pointer")) or not isinstance(view, dict):
            raise _SlackError("invalid_arguments")
        view_id = f"V0FAKE{next(self._id_counter):04d}"
        built = self._build_view(view, view_id=view_id)
        self.views[view_id] = built
        return {"view": dict(built)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _maybe_json(params.get("view"))
        if not isinstance(view, dict):
            raise _SlackError("invalid_arguments")
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = next(
                (vid for vid, v in self.views.items() if v["external_id"] == params["external_id"]),
                None,
            )
        if not view_id or view_id not in self.views:
            raise _SlackError("not_found")
        old = self.views[view_id]
        if params.get("hash") and params["hash"] != old["hash"]:
            raise _SlackError("hash_conflict")
        built = self._build_view(view, view_id=view_id, root_view_id=old["root_view_id"])
        self.views[view_id] = built
        return {"view": dict(built)}


# ---------------------------------------------------------------------- inbound (Slack -> relay)


def sign(signing_secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with ``body``: v0 HMAC-SHA256 signature over ``v0:{ts}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def _signed_payload(
    signing_secret: str, payload: dict[str, Any], timestamp: int | None
) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    return body, sign(signing_secret, body, timestamp=timestamp)


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def block_action(signing_secret: str, *, timestamp: int | None = None, **fields: Any) -> tuple[bytes, dict[str, str]]:
    """A signed ``block_actions`` interaction (the fields of `block_action_payload`)."""
    return _signed_payload(signing_secret, block_action_payload(**fields), timestamp)


def block_action_payload(
    *,
    user_id: str,
    action_id: str,
    value: str,
    block_id: str = "b",
    message_ts: str | None = None,
    channel_id: str | None = None,
    trigger_id: str = "T1",
    response_url: str | None = None,
    message: dict[str, Any] | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``block_actions`` interaction: ``user_id`` pressed button ``action_id``/``value``.

    Defaults describe a button on the first message a fresh FakeSlack posted to
    the user's DM: ``channel_id="D"+user_id``, ``message_ts=FIRST_TS``.  Pass
    ``message`` (e.g. from ``fake.messages``) to carry the real posted message;
    ``response_url`` is omitted unless given (use ``fake.new_response_url()``).
    """
    channel_id = channel_id or "D" + user_id
    message_ts = message_ts or FIRST_TS
    now = time.time()
    button = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": value, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": f"{now:.6f}",
    }
    if message is None:
        message = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": message_ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": "",
            "team": team_id,
            "blocks": [
                {
                    "type": "actions",
                    "block_id": block_id,
                    "elements": [{k: button[k] for k in ("type", "action_id", "text", "value")}],
                }
            ],
        }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": "fakeverificationtoken",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "fake-care"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "directmessage"},
        "message": message,
        "state": {"values": {}},
        "actions": [button],
    }
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


def plain_text_input(value: str | None) -> dict[str, Any]:
    """State of a plain_text_input element, as in ``view.state.values``."""
    return {"type": "plain_text_input", "value": value}


def static_select(value: str | None, text: str | None = None) -> dict[str, Any]:
    """State of a static_select element (``value=None``: nothing selected)."""
    if value is None:
        return {"type": "static_select", "selected_option": None}
    return {
        "type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value},
    }


def _state_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{block_id: {action_id: str | element-state}}``; ``{block_id: str}`` means action_id == block_id."""
    shaped: dict[str, dict[str, Any]] = {}
    for block_id, given in values.items():
        block = {block_id: given} if not isinstance(given, dict) or "type" in given else given
        shaped[block_id] = {
            action_id: (element if isinstance(element, dict) else plain_text_input(element))
            for action_id, element in block.items()
        }
    return shaped


def view_submission(
    signing_secret: str, *, timestamp: int | None = None, **fields: Any
) -> tuple[bytes, dict[str, str]]:
    """A signed ``view_submission`` (the fields of `view_submission_payload`)."""
    return _signed_payload(signing_secret, view_submission_payload(**fields), timestamp)


def view_submission_payload(
    *,
    user_id: str,
    callback_id: str,
    private_metadata: str,
    values: dict[str, Any],
    view_id: str = "V0FAKE0001",
    trigger_id: str = "T1",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``view_submission`` of modal ``callback_id``.

    ``values`` is ``{block_id: {action_id: value}}`` where a value is a str
    (plain_text_input) or an element state (``static_select("x")``,
    ``plain_text_input(None)``, or any dict with "type"); ``{block_id: value}``
    is shorthand for action_id == block_id.
    """
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "fake-care"},
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": "fakeverificationtoken",
        "trigger_id": trigger_id,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": _state_values(values)},
            "hash": "1700000000.fakehash",
            "title": {"type": "plain_text", "text": "Care relay", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def slash_command(signing_secret: str, *, timestamp: int | None = None, **fields: Any) -> tuple[bytes, dict[str, str]]:
    """A signed slash command (form fields, no ``payload=`` wrapper; see `slash_command_fields`)."""
    body = urlencode(slash_command_fields(**fields)).encode()
    return body, sign(signing_secret, body, timestamp=timestamp)


def slash_command_fields(
    *,
    user_id: str,
    command: str = "/care",
    text: str = "",
    channel_id: str | None = None,
    trigger_id: str = "T1",
    response_url: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, str]:
    """A slash command's form fields (Socket Mode's payload as it is), from the user's DM by default."""
    fields = {
        "token": "fakeverificationtoken",
        "team_id": team_id,
        "team_domain": "fake-care",
        "channel_id": channel_id or "D" + user_id,
        "channel_name": "directmessage",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "trigger_id": trigger_id,
    }
    if response_url is not None:
        fields["response_url"] = response_url
    return fields


def app_home_opened(user_id: str, *, tab: str = "home", team_id: str = TEAM_ID) -> dict[str, Any]:
    """The Events API callback Slack sends when ``user_id`` opens the app's Home tab."""
    now = time.time()
    return {
        "token": "fakeverificationtoken",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id,
            "tab": tab,
            "event_ts": f"{now:.6f}",
        },
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(now),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def event_request(
    signing_secret: str, payload: dict[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed Events API request: the callback as a JSON body."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, {**sign(signing_secret, body, timestamp=timestamp), "Content-Type": "application/json"}
