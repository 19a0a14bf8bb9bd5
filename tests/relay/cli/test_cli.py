"""The CLI against a running server: directory and consent changes take effect live."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.support import FIXTURES, SERVING_ENV, ServerThread, clean_env, cli, run_cli


def test_new_user_walk(running: tuple[ServerThread, dict[str, str]], tmp_path: Path) -> None:
    """agent add + consent grant make the next emit `invited`; revoking makes it pending_consent."""
    _, env = running
    cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--group", "care-circle", "--channels", "console")
    grant_id = cli(
        env, tmp_path, "consent", "grant", "actor:raz", "--scope", "panic.ui", "--group", "care-circle", "--by", "admin"
    ).splitlines()[0]
    assert grant_id.startswith("gr_")

    first = cli(env, tmp_path, "emit", "golden-path")
    assert '"status": "invited"' in first and "status: http://" in first

    inbox = cli(env, tmp_path, "inbox")
    # the running server's outbox may already have printed it
    assert "panic.ui" in inbox and "invited" in inbox and re.search(r"ana/console:(queued|sent)", inbox)
    rows = json.loads(cli(env, tmp_path, "inbox", "--open", "--json"))
    assert len(rows) == 1 and rows[0]["status"] == "invited"

    cli(env, tmp_path, "consent", "revoke", grant_id, "--by", "admin")
    assert '"status": "pending_consent"' in cli(env, tmp_path, "emit", "golden-path")
    grants = json.loads(cli(env, tmp_path, "consent", "list", "--json"))
    assert grants[0]["revoked_by"] == "admin"


def test_agent_list_redacts_numbers_and_errors_are_one_line(
    running: tuple[ServerThread, dict[str, str]], tmp_path: Path
) -> None:
    """Tables never show a full phone number; bad input is one actionable line."""
    _, env = running
    cli(env, tmp_path, "agent", "add", "bob", "--display", "Bob", "--phone", "+40722123456", "--group", "g")
    table = cli(env, tmp_path, "agent", "list")
    assert "+40…3456" in table and "+40722123456" not in table
    full: list[dict[str, Any]] = json.loads(cli(env, tmp_path, "agent", "list", "--json"))
    assert full[0]["phone"] == "+40722123456"
    error = cli(env, tmp_path, "agent", "add", "eve", "--display", "Eve", "--phone", "0722", ok=False)
    assert error.startswith("care-relay: invalid input: phone") and len(error.strip().splitlines()) == 1
    assert "already exists" in cli(env, tmp_path, "agent", "add", "bob", "--display", "B", ok=False)
    assert "No agent" in cli(env, tmp_path, "agent", "remove", "nobody", ok=False)


def test_agent_add_takes_the_language_the_agent_reads(
    running: tuple[ServerThread, dict[str, str]], tmp_path: Path
) -> None:
    """`agent add --locale ro` keeps it (JSON and the table); a language without a catalog is one line naming them."""
    _, env = running
    added = json.loads(cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--locale", "ro", "--json"))
    assert added["locale"] == "ro"
    assert " ro " in cli(env, tmp_path, "agent", "list")
    error = cli(env, tmp_path, "agent", "add", "eve", "--display", "Eve", "--locale", "fr", ok=False)
    assert "'fr' is not a language the relay speaks; use one of en, ro" in error
    assert len(error.strip().splitlines()) == 1


def test_serve_without_secrets_names_the_variable(tmp_path: Path) -> None:
    """Outside --dev, a missing secret stops start-up with one line naming it."""
    done = run_cli(clean_env(), tmp_path, "serve", "--port", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "care-relay: RELAY_LINK_SECRETS is not set; set it in the environment or .env (or run with --dev)"
    )


def test_emit_file_fresh_by_default_and_as_is_for_replays(
    running: tuple[ServerThread, dict[str, str]], tmp_path: Path
) -> None:
    """emit FILE makes each send a new event; --as-is keeps the file's id and nonce, so a resend is a duplicate."""
    _, env = running
    source = FIXTURES / "m3" / "panic.ui__golden.json"
    payload = json.loads(source.read_text("utf-8"))
    first = cli(env, tmp_path, "emit", "m3", str(source))
    assert "-> 202" in first and payload["id"] not in first
    assert "-> 202" in cli(env, tmp_path, "emit", "m3", str(source))
    sent = cli(env, tmp_path, "emit", "m3", str(source), "--as-is")
    assert "-> 202" in sent and f'"id": "{payload["id"]}"' in sent
    again = cli(env, tmp_path, "emit", "m3", str(source), "--as-is")
    assert "-> 200" in again and '"duplicate": true' in again


# failures: one line, never a traceback, never a password ----------------------------------

PASSWORD = "s3cret"
#: serve's own start-up and shut-down log lines at debug or info, as text or as JSON (relay/logs.py)
LOG_LINE = re.compile(r'^(\S+ (DEBUG|INFO) |\{"ts":"[^"]+","level":"(debug|info)")')
FAILURES: dict[str, tuple[dict[str, str], list[str], str]] = {
    # id: (environment, arguments, what the one line must contain); {tmp} and {port} are filled in
    "garbage-url": ({"RELAY_DATABASE_URL": "garbage"}, ["agent", "list"], "check the URL"),
    "unparsable-url-with-password": ({"RELAY_DATABASE_URL": f"pg//u:{PASSWORD}@h"}, ["agent", "list"], "check the URL"),
    "mysql-url": ({"RELAY_DATABASE_URL": f"mysql://u:{PASSWORD}@127.0.0.1:1/x"}, ["agent", "list"], "is not installed"),
    "postgres-without-asyncpg": (
        {"RELAY_DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"},
        ["consent", "list"],
        "'psycopg'",
    ),
    "unreachable-postgres": (
        {"RELAY_DATABASE_URL": f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:1/x"},
        ["inbox"],
        "connection refused",
    ),
    "postgres-bad-port": (
        {"RELAY_DATABASE_URL": f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:99999/x"},
        ["agent", "list"],
        "check the URL",
    ),
    "not-a-database-file": (
        {"RELAY_DATABASE_URL": "sqlite+aiosqlite:///{tmp}/garbage.db"},
        ["agent", "list"],
        "file is not a database",
    ),
    "wrong-postgres-role": (  # the server of TEST_POSTGRES_URL, as a role it does not have
        {"RELAY_DATABASE_URL": f"postgresql+asyncpg://no_such_role:{PASSWORD}@{{pg}}/x"},
        ["agent", "list"],
        "check the user, password and database name",
    ),
    "db-upgrade-garbage-url": ({"RELAY_DATABASE_URL": "garbage"}, ["db", "upgrade"], "check the URL"),
    "db-upgrade-unreachable": (
        {"RELAY_DATABASE_URL": f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:1/x"},
        ["db", "upgrade"],
        "connection refused",
    ),
    "db-upgrade-not-a-database": (
        {"RELAY_DATABASE_URL": "sqlite+aiosqlite:///{tmp}/garbage.db"},
        ["db", "upgrade"],
        "file is not a database",
    ),
    "serve-unreachable-database": (
        {"RELAY_DATABASE_URL": f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:1/x"},
        ["serve", "--dev", "--port", "{port}"],
        "cannot open the database",
    ),
    "serve-port-in-use": ({}, ["serve", "--dev", "--host", "127.0.0.1", "--port", "{port}"], "address already in use"),
    "serve-relay-port-out-of-range": ({"RELAY_PORT": "99999"}, ["serve", "--dev"], "the port must be from 1 to 65535"),
    "serve-unknown-host": ({}, ["serve", "--dev", "--host", "nonexistent.invalid", "--port", "{port}"], "check --host"),
    "serve-short-secret": (
        {**SERVING_ENV, "RELAY_LINK_SECRETS": f"link-secret-0123456789,{PASSWORD}"},
        ["serve", "--port", "{port}"],
        "RELAY_LINK_SECRETS: each secret must be at least 16 characters",
    ),
    "serve-without-public-base-url": (
        {k: v for k, v in SERVING_ENV.items() if k != "RELAY_PUBLIC_BASE_URL"},
        ["serve", "--port", "{port}"],
        "RELAY_PUBLIC_BASE_URL is not set",
    ),
    "serve-unreadable-secret-file": (
        {**SERVING_ENV, "RELAY_ADMIN_TOKENS": "", "RELAY_ADMIN_TOKENS_FILE": "{tmp}/no-such-file"},
        ["serve", "--port", "{port}"],
        "RELAY_ADMIN_TOKENS_FILE: cannot read",
    ),
    # argparse refuses these itself: its usage line, then one error line
    "limit-too-big": ({}, ["inbox", "--limit", "99999999999999999999"], "usage:"),
    "limit-zero": ({}, ["inbox", "--limit", "0"], "usage:"),
    "serve-port-too-big": ({}, ["serve", "--port", "99999"], "usage:"),
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.postgres) if "{pg}" in str(FAILURES[c][0]) else c for c in FAILURES]
)
def test_failures_are_one_line_without_traceback_or_password(case: str, tmp_path: Path) -> None:
    """Each failure exits non-zero with one `care-relay: ` line (or argparse's usage error) naming what to check."""
    extra, args, expected = FAILURES[case]
    pg = ""
    if "{pg}" in str(extra):
        if not PG_URL:
            pytest.skip("TEST_POSTGRES_URL is not set (no PostgreSQL here)")  # as every PostgreSQL test
        server = make_url(PG_URL)
        pg = f"{server.host}:{server.port or 5432}"
    (tmp_path / "garbage.db").write_bytes(b"this is not a SQLite database, not at all" * 4)
    env = clean_env(RELAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/relay.db")
    with socket.socket() as taken:  # held for the whole run: `serve` on it must fail, and exit
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fill = {"tmp": str(tmp_path), "port": str(taken.getsockname()[1]), "pg": pg}
        env.update({k: v.format(**fill) for k, v in extra.items()})
        done = run_cli(env, tmp_path, *(a.format(**fill) for a in args))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    if expected == "usage:":
        assert done.returncode == 2 and len(lines) == 2, done.stderr
        assert lines[0].startswith("usage: care-relay ") and re.match(
            r"care-relay \w+: error: argument --\w+: ", lines[1]
        )
        return
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("care-relay: ") and expected in lines[0], lines[0]
    if "RELAY_DATABASE_URL" in extra:  # names the setting, and shows the URL with its password masked
        assert "cannot open the database at RELAY_DATABASE_URL (" in lines[0]
        assert PASSWORD not in extra["RELAY_DATABASE_URL"] or "***@" in lines[0]
