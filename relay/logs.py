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
from collections.abc import Mapping
from typing import IO, Any, Final

import orjson

__all__ = [
    "FIELDS",
    "LEVELS",
    "JsonFormatter",
    "TextFormatter",
    "configure",
    "flush_pending",
    "log_line",
    "quiet_libraries",
]

#: the request fields a record may carry (`extra=`), in the order they are written
FIELDS: Final = ("request_id", "method", "route", "status", "duration_ms", "event_id")
LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LEVEL_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
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
#: the longest a line below WARNING waits in the buffer before it is written out
FLUSH_AFTER_SEC = 1.0


def _level_name(level: int) -> str:
    return _LEVEL_NAMES.get(level) or logging.getLevelName(level).lower()


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
        line = self.line(record.created, record.levelno, record.name, record.getMessage(), record.__dict__)
        if record.exc_info:
            line = line[:-1] + ',"exc":' + orjson.dumps(self.formatException(record.exc_info)).decode() + "}"
        return line

    def line(self, created: float, level: int, name: str, msg: str, fields: Mapping[str, Any]) -> str:
        out: dict[str, Any] = {"ts": self._clock(created), "level": _level_name(level), "logger": name, "msg": msg}
        for field in FIELDS:
            value = fields.get(field)
            if value is not None:
                out[field] = value
        return orjson.dumps(out, default=str).decode()


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
        line = self.line(record.created, record.levelno, record.name, record.getMessage(), record.__dict__)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def line(self, created: float, level: int, name: str, msg: str, fields: Mapping[str, Any]) -> str:
        extra = "".join(f" {field}={_shown(fields[field])}" for field in FIELDS if fields.get(field) is not None)
        return f"{self._clock(created)} {_level_name(level).upper()} {name} {msg}{extra}"


class _RelayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure` installs (and replaces when called again).

    `buffered`: lines are written into the stream's buffer and reach the file at the latest
    FLUSH_AFTER_SEC later (on the next line, or by `flush_pending`), at once from WARNING up
    and at exit. A system call per line would cost intake's hot path more than the rest of
    the line (measured with `python -m bench --only pending`).
    """

    def __init__(self, stream: IO[str], formatter: JsonFormatter | TextFormatter, *, buffered: bool = False) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self._lines = formatter
        self._buffered = buffered
        self._flushed = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        if not self._buffered:
            super().emit(record)
            return
        try:
            self.stream.write(self.format(record) + self.terminator)
            now = time.monotonic()
            if record.levelno >= logging.WARNING or now - self._flushed >= FLUSH_AFTER_SEC:
                self.flush()
                self._flushed = now
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_line(self, level: int, name: str, msg: str, fields: Mapping[str, Any]) -> None:
        """What `emit` writes for a record of these values, without making the record (see `log_line`)."""
        line = self._lines.line(time.time(), level, name, msg, fields) + self.terminator
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(line)
            now = time.monotonic()
            if not self._buffered or level >= logging.WARNING or now - self._flushed >= FLUSH_AFTER_SEC:
                self.flush()
                self._flushed = now


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


def _buffered_stderr() -> IO[str] | None:
    """stderr's file, behind a buffer of our own (Python's stderr writes each line at once)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by something with no file (a test runner)
        return None
    return open(fd, "w", buffering=1 << 16, encoding="utf-8", errors="backslashreplace", closefd=False)


def configure(fmt: str = "auto", level: str = "info", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's records through one handler on `stream` (stderr, buffered), in `fmt`, from `level` up."""
    buffered = _buffered_stderr() if stream is None else None
    out = buffered or (sys.stderr if stream is None else stream)
    handler = _RelayHandler(
        out, JsonFormatter() if wants_json(fmt, out) else TextFormatter(), buffered=buffered is not None
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RelayHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    threshold = level_of(level)
    root.setLevel(threshold)
    quiet_libraries(threshold)
    # No line shows the caller's file, thread or process: logging need not look them up for
    # every record (the request line is on intake's hot path). See "Optimization" in logging's docs.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return handler


def log_line(logger: logging.Logger, level: int, msg: str, fields: Mapping[str, Any]) -> None:
    """`logger.log(level, msg, extra=fields)`, written straight by the relay's handler when that
    handler is the only one the record would reach (as under `care-relay serve`): the request
    line skips making a LogRecord and logging's dispatch, the costliest part of it on intake's
    hot path. With any other handler or filter on the way (a test's log capture), the record
    goes through logging as usual."""
    if not logger.isEnabledFor(level):
        return
    handler = _sole_handler(logger, level)
    if handler is None:
        logger.log(level, msg, extra=fields)
    else:
        handler.write_line(level, logger.name, msg, fields)


def _sole_handler(logger: logging.Logger, level: int) -> _RelayHandler | None:
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        if current.parent is None:  # the root
            handlers = current.handlers
            only = handlers[0] if len(handlers) == 1 else None
            if isinstance(only, _RelayHandler) and not only.filters and only.level <= level:
                return only
            return None
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    return None


def flush_pending() -> None:
    """Write out what the relay's handler holds (called every second while serving)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _RelayHandler):
            handler.flush()


def quiet_libraries(level: int) -> None:
    """Hold back the libraries that would log care data or repeat themselves (see the module's docstring)."""
    for name in CARE_DATA_LOGGERS + REPLACED_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
