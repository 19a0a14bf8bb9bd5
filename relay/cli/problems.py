"""Failures as one operator-facing line each: what went wrong and what to check.

Never the SQL, its parameters or a password: a database URL is shown masked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import sqlite3

from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from inbox import db
from relay.config import ConfigError
from relay.errors import RelayError
from relay.text import one_line


class CliError(Exception):
    """A one-line, operator-facing reason a command failed (`main` prints it)."""


#: What opening a database can raise: an unparsable or unsupported URL (ArgumentError,
#: ValueError), a driver that is not installed (ImportError), an unreachable server
#: (OSError), refused credentials or a file that is not a database (DBAPIError,
#: sqlite3.Error), a schema this version does not know (alembic's CommandError).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    ImportError,
    OSError,
    OverflowError,
    ValueError,
    CommandError,
)
URL_FORMS = "sqlite+aiosqlite:///path/to/relay.db or postgresql+asyncpg://user:password@host:port/dbname"


def safe_url(url: str) -> str:
    """The database URL as it may be shown: the password (also one in the query) masked."""
    try:
        parsed = make_url(url)
        hidden = {k: "***" for k in parsed.query if re.search(r"pass|secret|token", k, re.IGNORECASE)}
        return parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):  # unparsable: hide everything that could be credentials
        return re.sub(r"^(.*?//)?.*@", r"\1***@", url, flags=re.DOTALL).replace("\n", " ")


def reason(exc: BaseException) -> str:
    """A short, one-line reason: the driver's own message, never the SQL or its parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, ImportError):
        return f"its driver (Python module {exc.name!r}) is not installed" if exc.name else one_line(str(exc))
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, (ConnectionRefusedError, TimeoutError)):
        return "connection refused" if isinstance(exc, ConnectionRefusedError) else "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    lines = str(exc).strip().splitlines()
    # asyncpg errors come through SQLAlchemy as "<class 'asyncpg.exceptions.X'>: message"
    text = re.sub(r"^<class '[\w.]+'>:\s*", "", lines[0]) if lines else ""
    return one_line(text).rstrip(".") or type(exc).__name__


def database_problem(url: str, exc: BaseException) -> str:
    """Why the database at `url` cannot be used, and what to check (the password masked)."""
    if isinstance(exc, (ArgumentError, ImportError, ValueError, OverflowError)):
        hint = f"check the URL ({URL_FORMS})"
    elif isinstance(exc, socket.gaierror):
        hint = "check the host name in the URL"
    elif isinstance(exc, OSError):
        hint = "is the database server running and reachable at that host and port?"
    elif isinstance(exc, CommandError):
        hint = "is it a care-relay database, migrated by this version or an older one?"
    else:
        try:
            sqlite = db.is_sqlite(url)
        except (ArgumentError, ValueError, TypeError):
            sqlite = False
        hint = (
            "check that the path is a care-relay SQLite database that this user can read and write"
            if sqlite
            else "check the user, password and database name in the URL, and that the database exists"
        )
    why = reason(exc)
    with contextlib.suppress(ArgumentError, ValueError, TypeError):
        password = make_url(url).password
        if password:
            why = why.replace(str(password), "***")
    return f"cannot open the database at RELAY_DATABASE_URL ({safe_url(url)}): {why}; {hint}"


def listen_problem(host: str, port: int, exc: BaseException) -> str:
    """Why the server cannot listen on `host:port`, and which option or setting to change."""
    where = f"cannot listen on {host}:{port}"
    if isinstance(exc, OverflowError):
        return f"{where}: the port must be from 1 to 65535; check --port or RELAY_PORT"
    if isinstance(exc, socket.gaierror):
        return f"{where}: {reason(exc)}; check --host or RELAY_HOST"
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.EADDRINUSE:
        return f"{where}: address already in use; stop what holds it or choose another --port"
    if code == errno.EACCES:
        return f"{where}: permission denied; ports below 1024 need privileges, choose another --port"
    if code == errno.EADDRNOTAVAIL:
        return f"{where}: that address is not on this machine; check --host or RELAY_HOST"
    return f"{where}: {reason(exc)}; check --host and --port (or RELAY_HOST and RELAY_PORT)"


#: What `main` turns into one line rather than a traceback: failures the commands raise on
#: purpose, and backstops (a database that fails after it opened, or anything else of these kinds).
EXPLAINED: tuple[type[Exception], ...] = (
    ConfigError,
    RelayError,
    CliError,
    SQLAlchemyError,
    sqlite3.Error,
    ImportError,
    OSError,
    OverflowError,
)


def explain(exc: Exception) -> str:
    """The line `main` prints for one of `EXPLAINED`."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, RelayError):
        fields = exc.extra.get("fields") or []
        details = "; ".join(f"{'.'.join(map(str, f['loc'])) or 'input'}: {f['msg']}" for f in fields)
        return f"invalid input: {details}" if details else exc.detail
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, (SQLAlchemyError, sqlite3.Error)):
        return f"database error: {reason(exc)}"
    if isinstance(exc, ImportError):
        return f"a module is missing: {reason(exc)}; reinstall care-relay"
    return reason(exc)
