"""A local fake of the Twilio REST API (Messages) and helpers that play Twilio calling us.

The real twilio SDK is pointed at :class:`FakeTwilio` through
``relay.channels.twilio.client.make_client(sid, token, fake.base_url)``; nothing
in the SDK is patched. The fake speaks Twilio's wire format:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` -- HTTP Basic auth
  (account SID + auth token), form-encoded body, ``201`` with Twilio's message
  JSON; errors as Twilio's ``{"code", "message", "more_info", "status"}`` JSON.
  It validates like Twilio: no ``To`` 21604, neither ``From`` nor ``MessagingServiceSid``
  21603, neither ``Body``, ``MediaUrl`` nor ``ContentSid`` 21602, a ``Body`` over 1,600
  characters 21617, a ``ContentSid`` that is not ``HX`` + 32 hex digits 21655,
  ``ContentVariables`` without ``ContentSid`` 21654, ``ContentVariables`` that are not a
  JSON object of non-empty strings 21656 (all ``400``). A message sent with a
  ``MessagingServiceSid`` and no ``From`` is recorded with ``From`` ``None`` (Twilio picks
  the sender from the service's pool).
* Numbers programmed with :meth:`FakeTwilio.fail_number` are refused as Twilio refuses
  them: 21211 (not a valid phone number) or 21614 (not a mobile number).
* WhatsApp's 24-hour session, when ``enforce_whatsapp_sessions`` is on: a free-form
  ``Body`` to a ``whatsapp:`` number whose session is not open is refused at once with
  ``400`` / 63016; a ``ContentSid`` (an approved template) goes anyway. Real Twilio often
  accepts such a message and reports 63016 later, in a status callback
  (:func:`status_callback` with ``error_code=63016`` plays that); this fake answers in the
  synchronous form. Sessions open with :meth:`FakeTwilio.open_session` or when the fake
  builds an inbound WhatsApp message (:meth:`FakeTwilio.inbound`).
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`` -- fetch one.

:func:`inbound_sms` and :func:`status_callback` build the form and the
``X-Twilio-Signature`` header Twilio would send to the relay's webhooks,
signed with the SDK's own ``RequestValidator``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "ERROR_MESSAGES",
    "MAX_BODY_CHARS",
    "FakeTwilio",
    "body_chars",
    "inbound_quick_reply",
    "inbound_sms",
    "new_sid",
    "status_callback",
]

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0123456789"

#: Twilio's wording for the errors tests usually program (used when ``message`` is not given).
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21654: "A ContentSid must be specified if ContentVariables are provided in the request.",
    21655: "The ContentSid is Invalid.",
    21656: "The ContentVariables Parameter is invalid.",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}

_GENERIC_MESSAGES: dict[int, str] = {
    400: "Bad Request",
    401: "Authenticate",
    404: "The requested resource was not found",
    429: "Too Many Requests",
    500: "An internal server error has occurred",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


#: Twilio refuses a longer ``Body`` with 400 / 21617.
MAX_BODY_CHARS = 1600
#: what a Content Template's sid looks like (else 21655).
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
#: the refusals a number can be programmed with (:meth:`FakeTwilio.fail_number`).
NUMBER_FAILURES = frozenset({21211, 21614})


def _bare(address: str) -> str:
    return address.removeprefix("whatsapp:")


def _content_variables_ok(raw: str) -> bool:
    """A JSON object whose values are non-empty strings (Twilio's 21656 otherwise)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return isinstance(value, dict) and all(isinstance(v, str) and v for v in value.values())


def body_chars(body: str) -> int:
    """A body's length as this fake counts it against ``MAX_BODY_CHARS``: UTF-16 code units.

    Twilio documents 1,600 characters and warns that emoji and other wide characters
    count for more; counting UTF-16 units (an emoji is two) is the strict reading.
    """
    return len(body.encode("utf-16-le")) // 2


def new_sid(prefix: str = "SM") -> str:
    """A Twilio-shaped SID: two-letter prefix + 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def _rfc2822(when: datetime) -> str:
    """Twilio's date format in the 2010-04-01 API, e.g. ``Thu, 24 Aug 2023 05:01:45 +0000``."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0))


def _error_body(status: int, code: int | None, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "status": status}
    if code is not None:
        body["code"] = code
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return body


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str | None
    retry_after: int | None
    remaining: int


class FakeTwilio:
    """An aiohttp server on 127.0.0.1 (random port) that behaves like api.twilio.com for Messages.

    Use as ``async with FakeTwilio() as fake:``; point the SDK at ``fake.base_url``.

    Recorded state:

    * ``messages`` -- accepted messages, in order: the posted form fields
      (``To``, ``From``, ``Body``, ``StatusCallback`` always present, ``None``
      when not sent) plus ``Sid`` and ``AccountSid``.
    * ``requests`` -- every authenticated create attempt, accepted or failed:
      ``{"form": {...}, "status": int, "code": int | None}``.
    * ``sessions`` -- the numbers (E.164, no prefix) whose WhatsApp session is open.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        enforce_whatsapp_sessions: bool = False,
    ) -> None:
        """Accept Basic auth ``account_sid:auth_token``; nothing is started until ``start()``.

        ``enforce_whatsapp_sessions``: refuse free-form WhatsApp outside an open session (63016).
        """
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.enforce_whatsapp_sessions = enforce_whatsapp_sessions
        self.sessions: set[str] = set()
        self._number_failures: dict[str, int] = {}
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._resources: dict[str, dict[str, Any]] = {}
        self._failures: deque[_Failure] = deque()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:{port}`` once started."""
        if self._port is None:
            raise RuntimeError("FakeTwilio is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve."""
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._create_message)
        app.router.add_get("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json", self._fetch_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp exposes no public accessor for the bound port
        assert server is not None and server.sockets
        self._port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeTwilio:
        await self.start()
        return self

    async def __aexit__(self, *excinfo: object) -> None:
        await self.close()

    # -- programming -----------------------------------------------------------------------

    def fail_next(
        self,
        *,
        status: int,
        code: int | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` authenticated create requests fail like Twilio would.

        ``message`` defaults to Twilio's text for ``code`` (see ``ERROR_MESSAGES``; ``{to}``
        is filled with the posted ``To``) or a generic one for ``status``. With ``code=None``
        the JSON has no ``code`` (the SDK then reports ``exc.code == status``).
        ``retry_after`` adds a ``Retry-After`` header (seconds). Calls queue up in order.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        self._failures.append(_Failure(status, code, message, retry_after, times))

    def fail_number(self, number: str, code: int = 21211) -> None:
        """Refuse every message to ``number`` (with or without ``whatsapp:``) with ``code``: 21211 or 21614."""
        if code not in NUMBER_FAILURES:
            raise ValueError(f"a number fails with one of {sorted(NUMBER_FAILURES)}")
        self._number_failures[_bare(number)] = code

    def open_session(self, number: str) -> None:
        """The agent at ``number`` wrote in on WhatsApp: free-form messages may go for 24 hours."""
        self.sessions.add(_bare(number))

    def close_session(self, number: str) -> None:
        """The 24 hours since ``number`` last wrote in are over."""
        self.sessions.discard(_bare(number))

    def inbound(
        self, url: str, *, from_: str, to: str, body: str, whatsapp: bool = False, **fields: Any
    ) -> tuple[dict[str, str], dict[str, str]]:
        """:func:`inbound_sms` signed with this fake's token; a WhatsApp message opens its sender's session."""
        if whatsapp:
            self.open_session(from_)
        return inbound_sms(self.auth_token, url, from_=from_, to=to, body=body, whatsapp=whatsapp, **fields)

    def clear_failures(self) -> None:
        """Forget any programmed failures not yet used."""
        self._failures.clear()

    @property
    def pending_failures(self) -> int:
        """How many programmed failing responses are still to come."""
        return sum(f.remaining for f in self._failures)

    # -- handlers --------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        login, sep, password = decoded.partition(":")
        return bool(sep) and login == self.account_sid and password == self.auth_token

    @staticmethod
    def _error(status: int, code: int | None, message: str, retry_after: int | None = None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        response = web.json_response(_error_body(status, code, message), status=status, headers=headers)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response

    def _not_found(self, request: web.Request) -> web.Response:
        return self._error(404, 20404, f"The requested resource {request.path} was not found")

    def _take_failure(self) -> _Failure | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            self._failures.popleft()
        return failure

    async def _create_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        if request.match_info["account_sid"] != self.account_sid:
            return self._not_found(request)

        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        attempt: dict[str, Any] = {"form": form, "status": 201, "code": None}
        self.requests.append(attempt)

        to = form.get("To")
        failure = self._take_failure()
        if failure is not None:
            template = failure.message
            if template is None:
                template = ERROR_MESSAGES.get(failure.code or 0) or _GENERIC_MESSAGES.get(failure.status, "Error")
            message = template.replace("{to}", to or "")
            attempt.update(status=failure.status, code=failure.code)
            return self._error(failure.status, failure.code, message, failure.retry_after)

        problem = self._problem(form)
        if problem is not None:
            attempt.update(status=400, code=problem)
            return self._error(400, problem, ERROR_MESSAGES[problem].replace("{to}", to or ""))

        sid = new_sid("SM")
        now = _rfc2822(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        body = form.get("Body", "")
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(max(1, -(-len(body) // 160))),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to,
            "uri": uri,
        }
        self._resources[sid] = resource
        record = dict(form)
        for key in ("To", "From", "Body", "StatusCallback", "MessagingServiceSid", "ContentSid", "ContentVariables"):
            record.setdefault(key, None)
        record.update(Sid=sid, AccountSid=self.account_sid)
        self.messages.append(record)
        return web.json_response(resource, status=201)

    def _problem(self, form: dict[str, str]) -> int | None:  # noqa: PLR0911 - one return per Twilio error
        """Twilio's error code for a create request it would refuse, in Twilio's order; None to accept."""
        to, content_sid = form.get("To"), form.get("ContentSid")
        if not to:
            return 21604
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 21603
        if "ContentVariables" in form and not content_sid:
            return 21654
        if content_sid is not None and not _CONTENT_SID.match(content_sid):
            return 21655
        if content_sid and not _content_variables_ok(form.get("ContentVariables", "{}")):
            return 21656
        if not form.get("Body") and not form.get("MediaUrl") and not content_sid:
            return 21602
        if body_chars(form.get("Body", "")) > MAX_BODY_CHARS:
            return 21617
        if _bare(to) in self._number_failures:
            return self._number_failures[_bare(to)]
        whatsapp = to.startswith("whatsapp:")
        if whatsapp and self.enforce_whatsapp_sessions and not content_sid and _bare(to) not in self.sessions:
            return 63016
        return None

    async def _fetch_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        resource = self._resources.get(request.match_info["sid"])
        if request.match_info["account_sid"] != self.account_sid or resource is None:
            return self._not_found(request)
        return web.json_response(resource)


# -- Twilio calling the relay -----------------------------------------------------------------


def _whatsapp(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def _signed(auth_token: str, url: str, params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    signature = RequestValidator(auth_token).compute_signature(url, params)
    headers = {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "TwilioProxy/1.1",
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
    }
    return params, headers


def inbound_sms(
    auth_token: str,
    url: str,
    *,
    from_: str,
    to: str,
    body: str,
    message_sid: str | None = None,
    whatsapp: bool = False,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    profile_name: str = "Test User",
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers Twilio POSTs to an incoming-message webhook at ``url``.

    ``url`` must be the exact public URL the relay validates against (scheme, host,
    port, path and query). With ``whatsapp=True`` the numbers get ``whatsapp:``
    prefixes (unless already there) and the WhatsApp-only fields are added.
    """
    sid = message_sid or new_sid("SM")
    if whatsapp:
        from_, to = _whatsapp(from_), _whatsapp(to)
    params: dict[str, str] = {
        "ToCountry": "US",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "US",
        "To": to,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if whatsapp:
        for geo in ("ToCountry", "ToState", "ToCity", "ToZip", "FromCountry", "FromState", "FromCity", "FromZip"):
            del params[geo]
        params.update(
            ProfileName=profile_name,
            WaId=from_.removeprefix("whatsapp:").lstrip("+"),
            MessageType="text",
            ReferralNumMedia="0",
        )
    return _signed(auth_token, url, params)


def inbound_quick_reply(
    auth_token: str,
    url: str,
    *,
    from_: str,
    to: str,
    payload: str,
    text: str,
    message_sid: str | None = None,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers Twilio POSTs when a WhatsApp quick-reply button is tapped.

    The tap arrives as an inbound WhatsApp message whose ``Body`` and ``ButtonText`` are the
    button's title and whose ``ButtonPayload`` is the id the template gave the button.
    """
    form, _ = inbound_sms(
        auth_token, url, from_=from_, to=to, body=text, message_sid=message_sid, whatsapp=True, account_sid=account_sid
    )
    form.update(MessageType="button", ButtonText=text, ButtonPayload=payload)
    return _signed(auth_token, url, form)


def status_callback(
    auth_token: str,
    url: str,
    *,
    message_sid: str,
    status: str,
    error_code: int | str | None = None,
    from_: str | None = None,
    to: str | None = None,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers Twilio POSTs to a message's ``StatusCallback`` URL.

    ``status`` is Twilio's ``MessageStatus`` (queued, sent, delivered, undelivered,
    failed, read, ...). ``ErrorCode`` is included only when ``error_code`` is given,
    as Twilio does for failed/undelivered messages.
    """
    params: dict[str, str] = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
    }
    if to is not None:
        params["To"] = to
    if from_ is not None:
        params["From"] = from_
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return _signed(auth_token, url, params)
