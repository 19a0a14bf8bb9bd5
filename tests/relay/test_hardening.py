"""What an audit of the running relay found (issue 9), each through the real interface.

Every value stored is one the relay can read back, one odd row never stops intake or a
list, a removed agent's id is never reused, and consent is checked again at send time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import BOTH_DATABASES
from tests.driver import ADMIN, AISHA_GRANT, GRANT, Start, escalation, panic
from tests.support import aisha_headers, clean_env, m3_headers, run_cli

BOB = {"id": "bob", "display": "Bob", "groups": ["care-circle"], "channels": ["console"]}


# 1. Dates at the ends of the calendar ------------------------------------------------


@BOTH_DATABASES
@pytest.mark.parametrize(
    "expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"]
)
async def test_grant_expiry_outside_the_calendar_is_refused_and_intake_goes_on(start: Start, expires_at: str) -> None:
    """An expiry the relay cannot store and read back is a 422 at `expires_at`; nothing is stored; intake goes on."""
    relay = await start()
    await relay.seed(agents=[BOB])
    status, body = await relay.admin("POST", "/admin/consents", {**GRANT, "expires_at": expires_at})
    assert status == 422 and body["error"] == "invalid_payload"
    assert [f["loc"] for f in body["fields"]] == [["expires_at"]]
    _, listed = await relay.admin("GET", "/admin/consents")
    assert len(listed["items"]) == 1
    for source, payload in (("m3", panic()), ("aisha", escalation())):
        status, answer = await relay.deliver(source, payload)
        assert status == 202, answer


@BOTH_DATABASES
async def test_an_odd_stored_row_stops_no_read(start: Start) -> None:
    """Rows written by hand or an older version (dates past the calendar, broken JSON) break no list, signal or status."""
    relay = await start()
    await relay.seed(agents=[BOB])
    await relay.sql(
        "INSERT INTO consent_grant (id, subject, scope, group_ids, channels, expires_at, granted_by, granted_at)"
        " VALUES ('gr_odd', 'actor:raz', 'not json', '{\"a\": 1}', '[', ?, 'sql', ?)",
        10**17,
        -(10**17),
    )
    await relay.sql(
        "INSERT INTO agent (id, display, group_ids, channels, active, opted_out, created_at, updated_at)"
        " VALUES ('odd', 'Odd', '[1, null', 'null', 1, '7', 0, 0)",
    )
    await relay.sql("UPDATE directory_state SET version = version + 1")
    consents = await relay.get("/admin/consents", headers=ADMIN)
    assert consents.status == 200
    odd = next(g for g in (await consents.json())["items"] if g["id"] == "gr_odd")
    assert odd["expires_at"] == "9999-12-31T23:59:59Z" and odd["granted_at"] == "1970-01-01T00:00:00Z"
    # unreadable lists never widen consent: the grant reads as revoked
    assert odd["scope"] == [] and odd["groups"] == [] and odd["revoked_at"] == "1970-01-01T00:00:00Z"
    agents = await relay.get("/admin/agents", headers=ADMIN)
    assert agents.status == 200 and {a["id"] for a in (await agents.json())["items"]} == {"bob", "odd"}
    status, answer = await relay.deliver("m3", panic())
    assert status == 202 and answer["status"] == "invited"
    assert (await relay.loop(answer))["invitations"] == [{"agent": "bob", "channel": "console", "status": "queued"}]


async def test_cli_refuses_an_expiry_outside_the_calendar(start: Start, database_url: str, tmp_path: Any) -> None:
    """`consent grant --expires` past the calendar is one line naming the field; `consent list` still reads."""
    env = clean_env(RELAY_DATABASE_URL=database_url)
    refused = run_cli(
        env,
        tmp_path,
        "consent",
        "grant",
        "actor:raz",
        "--scope",
        "panic.ui",
        "--group",
        "g",
        "--by",
        "a",
        "--expires",
        "9999-12-31T23:59:59-14:00",
    )
    assert refused.returncode != 0 and "expires_at" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    listed = run_cli(env, tmp_path, "consent", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


# 2. An agent id is never reused ------------------------------------------------------


@BOTH_DATABASES
async def test_a_removed_agents_id_is_never_reused(start: Start) -> None:
    """Remove bob: the id stays taken (400 saying why), his old link answers for nobody, his loop still names him."""
    relay = await start()
    await relay.seed(agents=[BOB])
    status, answer = await relay.deliver("m3", panic())
    assert answer["status"] == "invited"
    ((invitation_id,),) = await relay.sql("SELECT id FROM invitation WHERE agent_id = 'bob'")
    link = relay.link(invitation_id)

    assert (await relay.delete("/admin/agents/bob", headers=ADMIN)).status == 204
    status, refused = await relay.admin("POST", "/admin/agents", {**BOB, "display": "Another Bob"})
    assert status == 400 and "never reused" in refused["detail"]
    assert (await relay.get("/admin/agents/bob", headers=ADMIN)).status == 404
    assert (await relay.patch("/admin/agents/bob", json={"display": "B"}, headers=ADMIN)).status == 404
    assert (await relay.delete("/admin/agents/bob", headers=ADMIN)).status == 404
    assert (await (await relay.get("/admin/agents", headers=ADMIN)).json())["items"] == []

    pressed = await relay.post(
        link, data={"action": "ack", "response": "soft-checkin"}, headers={"Accept": "application/json"}
    )
    assert pressed.status == 403
    document = await relay.loop(answer)
    assert document["acks"] == [] and document["invitations"][0]["agent"] == "bob"

    # a new person may take bob's address under an id of their own; the old loop is not theirs
    status, _ = await relay.admin("POST", "/admin/agents", {**BOB, "id": "bob2", "display": "Robert"})
    assert status == 201
    assert (await relay.post(link, data={"action": "ack", "response": "soft-checkin"})).status == 403


@BOTH_DATABASES
async def test_a_removed_agent_is_not_invited_and_a_signal_after_is_unroutable(start: Start) -> None:
    """Tombstones are not in the directory: routing passes them over."""
    relay = await start()
    await relay.seed(agents=[BOB])
    assert (await relay.delete("/admin/agents/bob", headers=ADMIN)).status == 204
    status, answer = await relay.deliver("m3", panic())
    assert status == 202 and answer["status"] == "unroutable"


async def test_upgrade_keeps_the_ids_of_agents_deleted_before_tombstones(tmp_path: Any) -> None:
    """Agents deleted outright by an older version leave ids that invitations name: the upgrade makes them tombstones."""
    import time

    from alembic import command
    from sqlalchemy import text

    from inbox import db
    from inbox.writer import Writer
    from relay.directory import Directory
    from relay.errors import BadRequestError

    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0002"))
        await conn.execute(
            text(
                "INSERT INTO signal (source, event_id, type, subject, status, body_sha256, reason, action_origin,"
                " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at)"
                " VALUES ('m3', 'e1', 'panic.ui', 'actor:raz', 'invited', '', 'r', 'care_autonomous', 0, 'allowed', '[]', 0, 0)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
                " VALUES (1, 'carol', 'console', 'ABCD', 'sent', 0, 0)"
            )
        )
    await db.upgrade(engine)
    writer = Writer(url, engine)
    await writer.start()
    try:
        with pytest.raises(BadRequestError, match="never reused"):
            await Directory(writer, engine, clock=time.time).add_agent({"id": "carol", "display": "Carol"})
    finally:
        await writer.close()
        await engine.dispose()


# 3. Consent is checked again at send time --------------------------------------------


@BOTH_DATABASES
async def test_invitations_queued_before_a_revocation_are_skipped_not_sent(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    """Queued, then the grant is revoked: at send time each invitation is `skipped` (consent_revoked), audited, never sent."""
    relay = await start()
    (grant_id,) = await relay.seed(agents=[BOB])
    answers = [(await relay.deliver("m3", panic()))[1] for _ in range(3)]
    assert {a["status"] for a in answers} == {"invited"}
    assert (await relay.delete(f"/admin/consents/{grant_id}?by=admin", headers=ADMIN)).status == 204
    capsys.readouterr()
    await relay.drain()
    assert "invitation for Bob" not in capsys.readouterr().out
    for answer in answers:
        assert (await relay.loop(answer))["invitations"] == [
            {"agent": "bob", "channel": "console", "status": "skipped"}
        ]
    audit = await relay.audit()
    skipped = [a for a in audit if a["kind"] == "invitation_skipped"]
    assert len(skipped) == 3 and {a["gate_failures"][0] for a in skipped} == {"consent_revoked"}
    assert {a["agent"] for a in skipped} == {"bob"} and {a["event_id"] for a in skipped} == {a["id"] for a in answers}
    rows = await relay.sql("SELECT status, last_error FROM outbox WHERE kind = 'invite'")
    assert set(rows) == {("skipped", "consent_revoked")}
    # a new grant does not bring them back: skipped is final
    await relay.admin("POST", "/admin/consents", GRANT)
    await relay.drain()
    assert "invitation for Bob" not in capsys.readouterr().out


@BOTH_DATABASES
async def test_an_agent_switched_off_before_the_send_is_skipped(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deactivated between decision and send: `skipped` with agent_inactive."""
    relay = await start()
    await relay.seed(agents=[BOB])
    _, answer = await relay.deliver("m3", panic())
    assert (await relay.patch("/admin/agents/bob", json={"active": False}, headers=ADMIN)).status == 200
    await relay.drain()
    assert "invitation for Bob" not in capsys.readouterr().out
    assert (await relay.loop(answer))["invitations"][0]["status"] == "skipped"
    assert await relay.sql("SELECT last_error FROM outbox WHERE kind = 'invite'") == [("agent_inactive",)]


async def test_an_invitation_still_covered_goes_out(start: Start, capsys: pytest.CaptureFixture[str]) -> None:
    """The send-time check lets a covered invitation through (and revoking another subject's grant changes nothing)."""
    relay = await start()
    _, other = await relay.seed(GRANT, AISHA_GRANT, agents=[BOB])
    _, answer = await relay.deliver("m3", panic())
    assert (await relay.delete(f"/admin/consents/{other}?by=admin", headers=ADMIN)).status == 204
    await relay.drain()
    assert "invitation for Bob" in capsys.readouterr().out
    assert (await relay.loop(answer))["invitations"][0]["status"] == "sent"


# 6. A sender's ts at the end of the calendar -----------------------------------------


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00Z"])
async def test_a_ts_at_the_end_of_the_calendar_with_a_care_window_is_not_a_500(start: Start, ts: str) -> None:
    """The router's window arithmetic never overflows: the far future is within the window, the far past is not."""
    relay = await start()
    await relay.seed(GRANT, AISHA_GRANT, agents=[BOB])
    payload = panic(ts=ts)
    payload["intent"]["care_window_minutes"] = 30
    status, answer = await relay.deliver("m3", payload)
    assert status == 202 and answer["status"] == ("window_passed" if ts.startswith("0001") else "invited")
    status, answer = await relay.deliver("aisha", escalation(ts=ts))
    assert status == 202 and answer["status"] in ("invited", "window_passed", "unroutable"), answer


# 7. What cannot be stored is refused at the door -------------------------------------


@BOTH_DATABASES
@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(id="evt_\x00nul"),
        lambda p: p["actor"].update(id="raz\x00"),
        lambda p: p["security"].update(nonce="n\x00"),
        lambda p: p.update(id="evt_\x1b]0;title\x07"),
        lambda p: p["intent"].update(whisper="lone \ud800 surrogate"),
        lambda p: p["audience"].update(groups=["care\x00circle"]),
    ],
    ids=["nul-event-id", "nul-actor", "nul-nonce", "escape-codes-in-id", "lone-surrogate", "nul-group"],
)
async def test_m3_text_that_cannot_be_stored_is_a_422(start: Start, change: Callable[[dict[str, Any]], None]) -> None:
    """NUL, control characters in ids and lone surrogates are refused before anything is stored."""
    relay = await start()
    payload = panic()
    change(payload)
    body = json.dumps(payload, ensure_ascii=True).encode()  # \u escapes: a lone surrogate travels as JSON allows
    response = await relay.post("/hooks/m3", data=body, headers=m3_headers(body, "panic.ui"))
    assert response.status == 422, await response.text()
    assert (await response.json())["error"] == "invalid_payload"
    assert await relay.sql("SELECT COUNT(*) FROM signal") == [(0,)]


@BOTH_DATABASES
@pytest.mark.parametrize(
    "path",
    [
        "/v1/events/evt%00x",
        "/admin/agents/b%00b",
        "/admin/consents?subject=actor:r%00z",
        "/admin/inbox?cursor=%00",
    ],
)
async def test_a_url_holding_nul_is_a_400(start: Start, path: str) -> None:
    """No stored id or name holds NUL, so a URL that does is refused before any look-up."""
    relay = await start()
    response = await relay.get(path, headers=ADMIN)
    assert response.status == 400 and (await response.json())["error"] == "bad_request"


@BOTH_DATABASES
async def test_admin_values_at_their_column_sizes(start: Start) -> None:
    """A 64-character grant id is stored; a `by` over 100 characters or holding NUL is a 400/422, not a 500."""
    relay = await start()
    await relay.seed(agents=[BOB])
    long_id = "g" * 64
    status, created = await relay.admin("POST", "/admin/consents", {**GRANT, "id": long_id})
    assert status == 201 and created["id"] == long_id
    status, _ = await relay.admin("POST", "/admin/consents", {**GRANT, "id": "g" * 65})
    assert status == 422
    status, _ = await relay.admin("POST", "/admin/consents", {**GRANT, "by": "b" * 101})
    assert status == 422
    status, _ = await relay.admin("POST", "/admin/consents", {**GRANT, "subject": "actor:r\x01z"})
    assert status == 422
    status, _ = await relay.admin("POST", "/admin/agents", {**BOB, "id": "ann", "display": "A\x00nn"})
    assert status == 422
    too_long = await relay.delete(f"/admin/consents/{long_id}?by={'b' * 101}", headers=ADMIN)
    assert too_long.status == 400 and "100" in (await too_long.json())["detail"]
    controls = await relay.delete(f"/admin/consents/{long_id}?by=a%1bb", headers=ADMIN)
    assert controls.status == 400
    assert (await relay.delete(f"/admin/consents/{long_id}?by={'b' * 100}", headers=ADMIN)).status == 204


# Also seen: numbers that overflow to infinity ----------------------------------------


@pytest.mark.parametrize("number", ["1e999999", "-1e400", "1" + "0" * 400 + ".0"])
async def test_json_numbers_that_overflow_are_malformed(start: Start, number: str) -> None:
    """`1e999999` is Infinity in disguise: refused like `Infinity` (400 malformed_json) on both hooks and the admin API."""
    relay = await start()
    payload = panic()
    text = json.dumps(payload)[:-1] + f', "extra": {number}}}'
    body = text.encode()
    response = await relay.post("/hooks/m3", data=body, headers=m3_headers(body, "panic.ui"))
    assert response.status == 400 and (await response.json())["error"] == "malformed_json"
    aisha = escalation()
    body = (json.dumps(aisha)[:-1] + f', "extra": {number}}}').encode()
    response = await relay.post("/hooks/aisha", data=body, headers=aisha_headers(body, aisha["event_id"]))
    assert response.status == 400 and (await response.json())["error"] == "malformed_json"
    response = await relay.post(
        "/admin/agents",
        data=f'{{"id": "x", "display": "X", "n": {number}}}',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status == 400 and (await response.json())["error"] == "malformed_json"


async def test_the_fast_path_declines_every_number_that_overflows() -> None:
    """299 nines with an exponent of 10 is infinity too: the fast path leaves it to the ordinary path's 400."""
    from receivers import m3
    from receivers.json_body import parse_json
    from relay.errors import MalformedJsonError

    body = json.dumps(panic()).encode()[:-1] + b', "extra": ' + b"9" * 299 + b"e10}"
    assert m3.parse_fast(body) is None
    with pytest.raises(MalformedJsonError):
        parse_json(body)


@pytest.mark.parametrize(
    ("path", "header", "value"),
    [
        ("/admin/agents", b"Authorization", b"Bearer \xff\xfe"),
        ("/v1/events/evt_x", b"Authorization", b"Bearer \xc3\x28"),
        ("/slack/events", b"X-Slack-Signature", b"v0=\xff\xfe"),
        ("/slack/events", b"X-Slack-Request-Timestamp", b"\xff"),
    ],
)
async def test_header_bytes_that_are_not_utf8_are_a_4xx(start: Start, path: str, header: bytes, value: bytes) -> None:
    """A bearer or Slack header holding bytes that are not UTF-8 is refused (401/403), never a 500."""
    from tests import raw_http

    relay = await start(
        dev=False,
        slack_bot_token="xoxb-test",
        slack_signing_secret="slack-signing-secret-16",
        slack_api_url="http://127.0.0.1:9/api/",
    )
    method = b"POST" if path.startswith("/slack") else b"GET"
    request = (
        method
        + b" "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + b"Content-Length: 2\r\n"
        + header
        + b": "
        + value
        + b"\r\n\r\nx="
    )
    answer = await raw_http.exchange(relay.client.host, relay.client.port, request)
    assert 400 <= answer.status < 500, answer.body


@pytest.mark.parametrize(
    ("database_url", "column", "value"),
    [
        *[
            pytest.param(db, column, value, marks=marks)
            for db, marks in (("sqlite", ()), ("postgres", pytest.mark.postgres))
            for column, value in (("channels", "["), ("channels", '{"sms": 1}'), ("scope", "panic.ui"))
        ],
        # text in a BIGINT column: only SQLite stores such a row, so only SQLite can hold one to read
        ("sqlite", "expires_at", "soon"),
    ],
    indirect=["database_url"],
)
async def test_an_unreadable_grant_never_widens_consent(start: Start, column: str, value: str) -> None:
    """A grant row the relay cannot read covers nothing (it reads as revoked): the signal is pending_consent."""
    relay = await start()
    status, _ = await relay.admin("POST", "/admin/agents", BOB)
    assert status == 201
    await relay.sql(
        "INSERT INTO consent_grant (id, subject, scope, group_ids, channels, granted_by, granted_at)"
        " VALUES ('gr_odd', 'actor:raz', '[\"panic.ui\"]', '[\"care-circle\"]', '[]', 'sql', 0)",
    )
    await relay.sql(f"UPDATE consent_grant SET {column} = ?", value)  # noqa: S608 (a parametrised column name)
    await relay.sql("UPDATE directory_state SET version = version + 1")
    status, answer = await relay.deliver("m3", panic())
    assert status == 202 and answer["status"] == "pending_consent"
