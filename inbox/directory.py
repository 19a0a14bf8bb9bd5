"""The directory: agents, consent grants, and the version intake's cache is keyed on.

Every read and write is plain SQL over one column list per table, so a row read inside a
writer job (`Tx`) and one read over the read engine become the same record through the
same builder. Writes that change what routing sees bump the directory version, so the
next signal sees them.

Reading never raises on one odd stored row (a row written by hand, or by an older version):
an unreadable list reads as empty, and an unreadable grant reads as revoked at the epoch,
so consent is never widened by a value the relay cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from inbox.rows import dumps, marks, strings, strings_or_none
from inbox.tx import Tx
from relay.model import EARLIEST, Agent, Grant, from_ms

#: the columns one agent is looked up by (each unique, or the id).
LOOKUP_COLUMNS = ("id", "slack_user", "phone", "whatsapp")


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent as stored; a removed one's tombstone reads inactive, with `removed_at` set."""

    id: str
    display: str
    group_ids: tuple[str, ...] = ()
    slack_user: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    channels: tuple[str, ...] = ()
    quiet_hours: str | None = None
    tz: str | None = None
    active: bool = True
    opted_out: tuple[str, ...] = ()
    removed_at: int | None = None
    #: the channels whose current address its owner confirmed
    verified: tuple[str, ...] = ()
    #: the agent's last WhatsApp message in (Unix ms): their 24-hour session runs from it
    whatsapp_seen_at: int | None = None
    #: the language the agent reads; None: RELAY_DEFAULT_LOCALE
    locale: str | None = None
    #: the agent said they are away (AWAY, `/care away`, the CLI, PATCH): routing passes them over
    away: bool = False

    def as_agent(self) -> Agent:
        """The agent as routing and the channels read it."""
        return Agent(
            id=self.id,
            display=self.display,
            groups=self.group_ids,
            slack_user=self.slack_user,
            phone=self.phone,
            whatsapp=self.whatsapp,
            channels=self.channels,
            quiet_hours=self.quiet_hours,
            tz=self.tz,
            active=self.active,
            opted_out=frozenset(self.opted_out),
            verified=frozenset(self.verified),
            locale=self.locale,
            away=self.away,
        )


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A consent grant as stored, instants in Unix milliseconds; revocation stays on the row."""

    id: str
    subject: str
    scope: tuple[str, ...]
    group_ids: tuple[str, ...]
    #: empty means every channel.
    channels: tuple[str, ...]
    min_confidence: str | None
    expires_at: int | None
    granted_by: str
    #: None only in a row written by hand (the column is NOT NULL); it reads as the epoch.
    granted_at: int | None
    revoked_at: int | None
    revoked_by: str | None

    def as_grant(self) -> Grant:
        """The grant as routing reads it, instants as datetimes."""
        return Grant(
            id=self.id,
            subject=self.subject,
            scope=self.scope,
            groups=self.group_ids,
            channels=self.channels,
            min_confidence=self.min_confidence,
            expires_at=None if self.expires_at is None else from_ms(self.expires_at),
            by=self.granted_by,
            granted_at=EARLIEST if self.granted_at is None else from_ms(self.granted_at),
            revoked_at=None if self.revoked_at is None else from_ms(self.revoked_at),
            revoked_by=self.revoked_by,
        )


#: the columns selected for a record, in its fields' order.
AGENT_COLUMNS = ", ".join(f.name for f in fields(AgentRecord))
GRANT_COLUMNS = ", ".join(f.name for f in fields(GrantRecord))


def agent_record(row: Sequence[Any]) -> AgentRecord:
    """An agent row selected by AGENT_COLUMNS; never raises for one odd row."""
    (
        id_, display, groups, slack_user, phone, whatsapp, channels, quiet_hours, tz, active, opted_out, removed_at,
        verified, whatsapp_seen_at, locale, away,
    ) = row  # fmt: skip
    active = bool(active) and removed_at is None
    seen = whatsapp_seen_at if isinstance(whatsapp_seen_at, int) else None
    return AgentRecord(
        id_, display, strings(groups), slack_user, phone, whatsapp, strings(channels), quiet_hours, tz, active,
        strings(opted_out), removed_at, strings(verified), seen, locale if isinstance(locale, str) else None,
        away is not None and bool(away),
    )  # fmt: skip


def grant_record(row: Sequence[Any]) -> GrantRecord:
    """A grant row selected by GRANT_COLUMNS; never raises for one odd row, and fails closed."""
    (id_, subject, scope, groups, channels, min_confidence, expires_at, by, granted_at, revoked_at, revoked_by) = row
    lists = [strings_or_none(value) for value in (scope, groups, channels)]
    odd = [value is not None and not isinstance(value, int) for value in (expires_at, granted_at, revoked_at)]
    expires, granted, revoked = (
        0 if bad else v for bad, v in zip(odd, (expires_at, granted_at, revoked_at), strict=True)
    )
    if revoked is None and (None in lists or any(odd)):
        revoked = 0
    scope, groups, channels = (value or () for value in lists)
    return GrantRecord(id_, subject, scope, groups, channels, min_confidence, expires, by, granted, revoked, revoked_by)


# Inside a writer job ------------------------------------------------------------------


def directory_version(tx: Tx) -> int:
    row = tx.execute("SELECT version FROM directory_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def bump_directory(tx: Tx) -> None:
    tx.execute("UPDATE directory_state SET version = version + 1 WHERE id = 1")


def load_directory(tx: Tx) -> tuple[list[AgentRecord], list[GrantRecord]]:
    """The agents in the directory (not removed), and the grants not revoked (expiry is the router's to judge)."""
    agents = tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE removed_at IS NULL ORDER BY id").fetchall()
    grants = tx.execute(
        f"SELECT {GRANT_COLUMNS} FROM consent_grant WHERE revoked_at IS NULL ORDER BY granted_at"
    ).fetchall()
    return [agent_record(r) for r in agents], [grant_record(r) for r in grants]


def _agent_values(agent: AgentRecord) -> tuple[Any, ...]:
    return (
        agent.id,
        agent.display,
        dumps(list(agent.group_ids)),
        agent.slack_user,
        agent.phone,
        agent.whatsapp,
        dumps(list(agent.channels)),
        agent.quiet_hours,
        agent.tz,
        int(agent.active),
        dumps(list(agent.opted_out)),
        dumps(list(agent.verified)),
        agent.locale,
        int(agent.away),
    )


def insert_agent(tx: Tx, agent: AgentRecord, at: int) -> bool:
    """Add an agent; False when the id is taken (by an agent, or by a removed one's tombstone)."""
    cur = tx.execute(
        "INSERT INTO agent (id, display, group_ids, slack_user, phone, whatsapp, channels, quiet_hours, tz, active,"
        " opted_out, verified, locale, away, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (*_agent_values(agent), at, at),
    )
    if cur.rowcount == 1:
        bump_directory(tx)
    return cur.rowcount == 1


def replace_agent(tx: Tx, agent: AgentRecord, at: int) -> bool:
    """Store every changeable field of an agent in the directory; False when it is not (or no longer) there."""
    cur = tx.execute(
        "UPDATE agent SET display = ?, group_ids = ?, slack_user = ?, phone = ?, whatsapp = ?, channels = ?,"
        " quiet_hours = ?, tz = ?, active = ?, opted_out = ?, verified = ?, locale = ?, away = ?, updated_at = ?"
        " WHERE id = ? AND removed_at IS NULL",
        (*_agent_values(agent)[1:], at, agent.id),
    )
    if cur.rowcount == 1:
        bump_directory(tx)
    return cur.rowcount == 1


def get_agent_tx(tx: Tx, agent_id: str, *, for_update: bool = False) -> AgentRecord | None:
    """An agent by id, a removed one's tombstone included (`removed_at` set, inactive).

    `for_update` locks the row on PostgreSQL until the transaction ends (a read-change-write
    that another replica's change must wait for); SQLite's one writer needs no lock.
    """
    lock = " FOR UPDATE" if for_update and tx.dialect == "postgresql" else ""
    row = tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE id = ?{lock}", (agent_id,)).fetchone()
    return None if row is None else agent_record(row)


def address_taken(tx: Tx, agent: AgentRecord) -> str | None:
    """The first of slack_user / phone / whatsapp that another agent already has."""
    for column in ("slack_user", "phone", "whatsapp"):
        value = getattr(agent, column)
        if value and tx.execute(f"SELECT 1 FROM agent WHERE {column} = ? AND id <> ?", (value, agent.id)).fetchone():
            return column
    return None


def remove_agent(tx: Tx, agent_id: str, at: int) -> bool:
    """Leave a tombstone: the id and display stay (the id is never reused), the addresses go
    (a number or Slack user may later belong to someone else). False when no such agent."""
    cur = tx.execute(
        "UPDATE agent SET removed_at = ?, active = 0, slack_user = NULL, phone = NULL, whatsapp = NULL, verified = '[]',"
        " updated_at = ? WHERE id = ? AND removed_at IS NULL",
        (at, at, agent_id),
    )
    if cur.rowcount == 1:
        tx.execute("DELETE FROM join_code WHERE agent_id = ?", (agent_id,))
        bump_directory(tx)
    return cur.rowcount == 1


def set_opted_out(tx: Tx, agent_id: str, channel: str, opted_out: bool, at: int) -> bool:
    """Add or drop one channel from an agent's opt-outs (SMS STOP/START, a provider's refusal)."""
    current = get_agent_tx(tx, agent_id, for_update=True)
    if current is None:
        return False
    channels = set(current.opted_out)
    channels.add(channel) if opted_out else channels.discard(channel)
    return replace_agent(tx, replace(current, opted_out=tuple(sorted(channels))), at)


def insert_grant(tx: Tx, grant: GrantRecord) -> None:
    """Record a new grant (never revoked yet); the id is the caller's to keep unique."""
    tx.execute(
        f"INSERT INTO consent_grant ({GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        (
            grant.id,
            grant.subject,
            dumps(list(grant.scope)),
            dumps(list(grant.group_ids)),
            dumps(list(grant.channels)),
            grant.min_confidence,
            grant.expires_at,
            grant.granted_by,
            grant.granted_at,
        ),
    )
    bump_directory(tx)


def get_grant_tx(tx: Tx, grant_id: str) -> GrantRecord | None:
    row = tx.execute(f"SELECT {GRANT_COLUMNS} FROM consent_grant WHERE id = ?", (grant_id,)).fetchone()
    return None if row is None else grant_record(row)


def revoke_grant(tx: Tx, grant_id: str, by: str, at: int) -> GrantRecord | None:
    """Record a revocation (once; the row stays). None when no such grant."""
    tx.execute(
        "UPDATE consent_grant SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
        (at, by, grant_id),
    )
    bump_directory(tx)
    return get_grant_tx(tx, grant_id)


# Reads (a reader's or a writer's job) -------------------------------------------------


def list_agents(tx: Tx) -> list[AgentRecord]:
    """The directory: every agent not removed."""
    rows = tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE removed_at IS NULL ORDER BY id").fetchall()
    return [agent_record(r) for r in rows]


def directory_ever_used(tx: Tx) -> bool:
    """Whether any agent was ever added (tombstones count): dev mode seeds only a new directory."""
    return tx.execute("SELECT 1 FROM agent LIMIT 1").fetchone() is not None


def list_grants(tx: Tx, subject: str | None = None) -> list[GrantRecord]:
    """Every grant (of one subject, when given), revoked ones included, oldest first."""
    where, params = (" WHERE subject = ?", (subject,)) if subject else ("", ())
    rows = tx.execute(f"SELECT {GRANT_COLUMNS} FROM consent_grant{where} ORDER BY granted_at, id", params).fetchall()
    return [grant_record(r) for r in rows]


def live_grants(tx: Tx, subjects: Sequence[str]) -> dict[str, list[GrantRecord]]:
    """The grants not revoked of each of these subjects, oldest first (expiry is the router's to judge)."""
    found: dict[str, list[GrantRecord]] = {s: [] for s in subjects}
    if not found:
        return found
    rows = tx.execute(
        f"SELECT {GRANT_COLUMNS} FROM consent_grant WHERE revoked_at IS NULL AND subject IN ({marks(len(found))})"
        " ORDER BY granted_at, id",
        tuple(found),
    ).fetchall()
    for grant in map(grant_record, rows):
        if grant.revoked_at is None:  # a row the relay cannot read reads revoked
            found[grant.subject].append(grant)
    return found


def agent_by(tx: Tx, /, **where: str) -> AgentRecord | None:
    """One agent by a single unique-ish field: id, slack_user, phone or whatsapp."""
    ((column, value),) = where.items()
    if column not in LOOKUP_COLUMNS:
        raise ValueError(column)
    row = tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else agent_record(row)


def agents_by_id(tx: Tx, ids: Sequence[str]) -> dict[str, AgentRecord]:
    """These agents by id (removed ones read inactive); ids not found are left out."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE id IN ({marks(len(wanted))})", wanted).fetchall()
    return {agent.id: agent for agent in map(agent_record, rows)}
