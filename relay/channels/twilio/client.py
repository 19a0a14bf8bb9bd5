"""An async HTTP client for the twilio SDK that can be pointed at another host.

Why this exists: the twilio SDK has no base-URL option. Every domain object
hard-codes its production host (``twilio/rest/api/ApiBase.py`` passes
``"https://api.twilio.com"`` to ``Domain``), and the only supported knobs are
``edge``/``region``, which still produce ``*.twilio.com`` hosts. What the SDK
*does* let us replace is the HTTP client, and every request goes through
``http_client.request(method, url, ...)`` with a fully qualified URL. So the
relay honours ``TWILIO_API_BASE_URL`` by rewriting scheme and host there (and
nowhere else), which is what lets tests aim the real SDK at a local fake.

With the default base URL (``https://api.twilio.com``, or any ``*.twilio.com``
base) nothing is rewritten, so production traffic is untouched.

Two other things this subclass does that the stock ``AsyncTwilioHttpClient``
does not:

* The aiohttp session is created lazily, on the first request. The stock
  client builds its ``ClientSession`` in ``__init__``, which raises
  ``RuntimeError: no running event loop`` under aiohttp 3.10+ if the client is
  made from synchronous code (an app factory, a CLI). :func:`close_client`
  closes it; a closed client opens a fresh session if it is used again.
* The ``timeout`` given to the constructor is applied. The stock client
  ignores its own ``timeout`` and passes the per-request one (always ``None``
  from the generated resources) to aiohttp, where ``None`` means *no timeout
  at all* -- not even aiohttp's default.

Reading ``Retry-After``: ``TwilioRestException`` carries only ``status``,
``code``, ``msg``, ``uri``, ``method`` and ``details`` -- no response headers.
The rewriting client therefore records each response in a context variable;
after a failed ``await client.messages.create_async(...)`` the same task can
call :func:`last_response` or :func:`retry_after_seconds`. This holds as long
as the SDK call is awaited in the calling task (use ``asyncio.timeout()``, not
``asyncio.wait_for`` or ``create_task``, which run it in a copied context on
Python 3.11).
"""

from __future__ import annotations

import base64
import contextvars
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientSession
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from relay.delivery import parse_retry_after
from relay.headers import header

__all__ = [
    "DEFAULT_BASE_URL",
    "RewritingAsyncHttpClient",
    "close_client",
    "last_response",
    "make_client",
    "parse_retry_after",
    "retry_after_seconds",
    "rewrite_url",
]

DEFAULT_BASE_URL = "https://api.twilio.com"
DEFAULT_TIMEOUT = 15.0

# the SDK logs every request (URL, headers) at INFO, eight lines per message: named under
# "twilio" so that it is held back with the SDK's own loggers (relay/logs.py), and held at
# WARNING here too, so a send costs no log line whatever the logging set-up
_logger = logging.getLogger("twilio.relay_http_client")
_logger.setLevel(logging.WARNING)

_last_response: contextvars.ContextVar[Response | None] = contextvars.ContextVar(
    "relay_twilio_last_response", default=None
)


def _is_twilio_host(host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    return host == "twilio.com" or host.endswith(".twilio.com")


def rewrite_url(url: str, base_url: str) -> str:
    """Return ``url`` with scheme and host replaced by those of ``base_url``.

    Only ``https://twilio.com`` and ``https://*.twilio.com`` URLs are
    rewritten; the path and query are kept, and a path in ``base_url`` (e.g.
    ``http://127.0.0.1:5678/twilio``) is put in front of the original path.
    When ``base_url`` is itself a Twilio host (the production default),
    ``url`` is returned unchanged.
    """
    base = urlsplit(base_url)
    if _is_twilio_host(base.hostname):
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not _is_twilio_host(parts.hostname):
        return url
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


def _basic_auth_header(login: str, password: str) -> str:
    """``Authorization`` value for HTTP Basic auth (what aiohttp.BasicAuth would send)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode("latin1")).decode("ascii")


class RewritingAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type information
    """``AsyncTwilioHttpClient`` that sends ``*.twilio.com`` requests to ``base_url``.

    See the module docstring for why. The aiohttp session is created on first
    use and closed by :meth:`close` (or :func:`close_client`).
    """

    session: ClientSession | None

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        logger: logging.Logger = _logger,
        trace_configs: Any = None,
    ) -> None:
        """Build the client; ``timeout`` (seconds, total per request) may be ``None`` for none."""
        super().__init__(
            pool_connections=False,  # no session yet: we may not be inside a running loop
            trace_configs=trace_configs,
            timeout=timeout,
            logger=logger,
        )
        self.base_url = base_url.rstrip("/")

    def rewrite(self, url: str) -> str:
        """Apply :func:`rewrite_url` with this client's ``base_url``."""
        return rewrite_url(url, self.base_url)

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's HttpClient.request names it so
        allow_redirects: bool = False,
    ) -> Response:
        """Rewrite the URL, make sure a session exists, then delegate to the SDK client."""
        if self.session is None or self.session.closed:
            # No await between the check and the assignment, so concurrent
            # first requests share one session.
            self.session = ClientSession(trace_configs=self.trace_configs)
        if auth is not None:
            # Send Basic auth as a header ourselves: the stock client wraps it in
            # aiohttp.BasicAuth / auth=, both deprecated since aiohttp 3.14.
            headers = {**(headers or {}), "Authorization": _basic_auth_header(*auth)}
            auth = None
        _last_response.set(None)
        response = await super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        _last_response.set(response)
        return response

    async def close(self) -> None:
        """Close the aiohttp session, if one was opened (idempotent)."""
        session, self.session = self.session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aexit__(self, *excinfo: object) -> None:
        """Close the session on leaving ``async with``."""
        await self.close()


def make_client(
    account_sid: str,
    auth_token: str,
    base_url: str = DEFAULT_BASE_URL,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Client:
    """A real ``twilio.rest.Client`` whose requests go to ``base_url``.

    Safe to call outside a running event loop. Use the ``*_async`` methods
    (e.g. ``await client.messages.create_async(...)``) and finish with
    :func:`close_client`.
    """
    return Client(
        account_sid,
        auth_token,
        http_client=RewritingAsyncHttpClient(base_url, timeout=timeout),
    )


async def close_client(client: Client) -> None:
    """Close the aiohttp session held by ``client``'s async HTTP client.

    Needed to avoid ``Unclosed client session`` warnings; a no-op for clients
    that never made a request or have no async HTTP client.
    """
    http_client = getattr(client, "http_client", None)
    close = getattr(http_client, "close", None)
    if close is not None and getattr(http_client, "is_async", False):
        await close()


def last_response() -> Response | None:
    """The last Twilio HTTP response seen by a rewriting client in this task/context.

    ``.status_code``, ``.text`` and ``.headers`` (case-insensitive). ``None``
    if no request completed in this context (e.g. a connection error).
    """
    return _last_response.get()


def retry_after_seconds(response: Response | None = None) -> float | None:
    """``Retry-After`` of ``response`` (default: :func:`last_response`), in seconds, or ``None``."""
    response = response if response is not None else last_response()
    if response is None or response.headers is None:
        return None
    headers: Mapping[str, str] = response.headers
    return parse_retry_after(header(headers, "Retry-After"))
