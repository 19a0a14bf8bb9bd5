"""How the relay logs: one format for its own lines and every library's, set up in one place.

`configure(format, level)` is called by `care-relay serve` (RELAY_LOG_FORMAT, RELAY_LOG_LEVEL)
and gives the root logger one handler on stderr: JSON lines (`ts`, `level`, `logger`, `msg`,
then the request fields that a record carries) or text lines with the same fields as
`key=value`. `auto` is JSON when stderr is not a terminal (a service manager, a container).
Audit lines are not logs: they stay `[CARE_AUDIT] {json}` on stdout (relay/audit.py).

Libraries go through the same handler, and some are held back whatever the level: the
database drivers and the Slack and Twilio SDKs log statement parameters, request bodies
or headers (phone numbers, whispers, tokens) at DEBUG or INFO, so they only ever speak
from WARNING up; Alembic's two INFO lines per readiness probe only show at DEBUG.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any, Final

import orjson

__all__ = ["FIELDS", "LEVELS", "JsonFormatter", "TextFormatter", "configure", "quiet_libraries"]

#: the request fields a record may carry (`extra=`), in the order they are written
FIELDS: Final = ("request_id", "method", "route", "status", "duration_ms", "event_id")
LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
#: loggers that would write care data, tokens or full numbers below WARNING: never below it
CARE_DATA_LOGGERS: Final = (
    "aiosqlite",
    "asyncpg",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "slack_sdk",
    "slack_bolt",
    "twilio",
)
#: loggers that only repeat themselves at INFO: shown from DEBUG
CHATTY_LOGGERS: Final = ("alembic",)
#: aiohttp's access log: the relay writes its own line per request instead
REPLACED_LOGGERS: Final = ("aiohttp.access",)


class _Clock:
    """ISO 8601 UTC timestamps with milliseconds, the date part formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the request fields present, exc."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._clock(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        for name in FIELDS:
            value = fields.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _shown(value: object) -> str:
    """A field's value for a text line: bare when plain, else quoted (nothing can start a new line)."""
    text = str(value)
    if text and text.isascii() and text.isprintable() and " " not in text and '"' not in text:
        return text
    return orjson.dumps(text).decode()


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger msg key=value …`, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        extra = "".join(f" {name}={_shown(fields[name])}" for name in FIELDS if fields.get(name) is not None)
        line = f"{self._clock(record.created)} {record.levelname} {record.name} {record.getMessage()}{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _RelayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure` installs (and replaces when called again)."""


def level_of(name: str) -> int:
    """A RELAY_LOG_LEVEL value as a logging level; ValueError naming the choices."""
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"use one of {', '.join(LEVELS)}") from None


def wants_json(fmt: str, stream: IO[str]) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (callable(isatty) and isatty())
    return fmt == "json"


def configure(fmt: str = "auto", level: str = "info", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's records through one handler on `stream` (stderr), in `fmt`, from `level` up."""
    out = sys.stderr if stream is None else stream
    handler = _RelayHandler(out)
    handler.setFormatter(JsonFormatter() if wants_json(fmt, out) else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RelayHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    threshold = level_of(level)
    root.setLevel(threshold)
    quiet_libraries(threshold)
    return handler


def quiet_libraries(level: int) -> None:
    """Hold back the libraries that would log care data or repeat themselves (see the module's docstring)."""
    for name in CARE_DATA_LOGGERS + REPLACED_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
