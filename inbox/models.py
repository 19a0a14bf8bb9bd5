"""The inbox schema as SQLModel tables (the source for Alembic migrations and reads).

Times are integer Unix milliseconds (`*_at`), JSON lists and objects are text: both
store the same way on SQLite and PostgreSQL, so the hot write path can use plain
driver SQL (see `inbox.writer`). Change the schema only through a migration.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class SignalRow(SQLModel, table=True):
    __tablename__ = "signal"
    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_signal_source_event"),
        Index("ix_signal_status_id", "status", "id"),
        Index("ix_signal_event_id", "event_id"),
        # the open loop about a subject (coalescing): only open loops enter this index
        Index(
            "ix_signal_open_subject",
            "subject_key",
            "id",
            sqlite_where=text("status IN ('invited', 'acked')"),
            postgresql_where=text("status IN ('invited', 'acked')"),
        ),
        # the signals joined to a loop (its status document)
        Index(
            "ix_signal_joined_to",
            "joined_to",
            "id",
            sqlite_where=text("joined_to IS NOT NULL"),
            postgresql_where=text("joined_to IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)
    event_id: str = Field(max_length=200)
    type: str = Field(max_length=64)
    subject: str = Field(max_length=240)
    status: str = Field(max_length=32)
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    body_sha256: str = Field(max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    action_origin: str = Field(max_length=32)
    origin_uncertain: int = 0
    policy_gate_result: str = Field(max_length=16)
    gate_failures: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: a hash of what the signal is about (`relay.router.coalescing_key`); NULL before 0006
    subject_key: str | None = Field(default=None, max_length=64)
    #: status `joined`: the id of the open loop this signal joined
    joined_to: int | None = Field(default=None)


class SeenNonceRow(SQLModel, table=True):
    __tablename__ = "seen_nonce"

    source: str = Field(max_length=16, primary_key=True)
    nonce: str = Field(max_length=200, primary_key=True)
    event_id: str = Field(max_length=200)
    seen_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditRow(SQLModel, table=True):
    """Append-only: every decision, answer, refusal and failure the relay records."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    kind: str = Field(max_length=40)
    source: str | None = Field(default=None, max_length=16)
    event_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=100)
    action_origin: str = Field(max_length=32)
    policy_gate_result: str = Field(max_length=16)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    gate_failures: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))


class InvitationRow(SQLModel, table=True):
    __tablename__ = "invitation"
    __table_args__ = (
        # its index serves every look-up by signal (migration 0011 dropped a second one)
        UniqueConstraint("signal_id", "agent_id", name="uq_invitation_signal_agent"),
        # the hourly throttle counts an agent's invitations that were not skipped: skipped rows
        # (one per signal while an agent is throttled) never enter this index
        Index(
            "ix_invitation_agent_invited",
            "agent_id",
            "created_at",
            sqlite_where=text("status <> 'skipped'"),
            postgresql_where=text("status <> 'skipped'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    signal_id: int = Field(foreign_key="signal.id")
    agent_id: str = Field(max_length=100)
    channel: str = Field(max_length=16)
    code: str | None = Field(default=None, max_length=8)
    status: str = Field(max_length=16)
    provider_id: str | None = Field(default=None, max_length=200, index=True)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: who asked for it, when a person did ("admin:NAME", invite now); NULL when the relay decided
    invited_by: str | None = Field(default=None, max_length=120)


class ReplyCodeRow(SQLModel, table=True):
    """A reply code in use: one row per coded invitation of a loop that is still open.

    Intake adds the row with the invitation and the done that closes the loop removes it,
    so picking a free code is a point look-up on the key, however long the agent's history.
    """

    __tablename__ = "reply_code"

    agent_id: str = Field(max_length=100, primary_key=True)
    code: str = Field(max_length=8, primary_key=True)
    signal_id: int = Field(foreign_key="signal.id", index=True)
    invitation_id: int = Field(foreign_key="invitation.id")


class OutboxRow(SQLModel, table=True):
    """Work the relay owes the world: invitations, message updates, callbacks, forwards, join codes."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # a join code's message, found by the id Twilio's status callback names
        Index(
            "ix_outbox_provider_id",
            "provider_id",
            sqlite_where=text("provider_id IS NOT NULL"),
            postgresql_where=text("provider_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=24)
    ref_id: int | None = Field(default=None, index=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    lease_until: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: the provider's id of the message a join code (`verify`) went out as; an invitation's is on the invitation
    provider_id: str | None = Field(default=None, max_length=200)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AckRow(SQLModel, table=True):
    __tablename__ = "ack"
    __table_args__ = (UniqueConstraint("signal_id", "agent_id", name="uq_ack_signal_agent"),)

    id: int | None = Field(default=None, primary_key=True)
    signal_id: int = Field(foreign_key="signal.id", index=True)
    agent_id: str = Field(max_length=100)
    action: str = Field(max_length=100)
    via: str = Field(max_length=16)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))


class PassRow(SQLModel, table=True):
    """An agent's "not now" on one loop (CONTRACT section 10): kept once per agent; the loop does not move."""

    __tablename__ = "loop_pass"

    signal_id: int = Field(foreign_key="signal.id", primary_key=True)
    agent_id: str = Field(max_length=100, primary_key=True)
    via: str = Field(max_length=16)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))


class DoneRow(SQLModel, table=True):
    __tablename__ = "done"

    signal_id: int = Field(foreign_key="signal.id", primary_key=True)
    agent_id: str = Field(max_length=100)
    outcome: str = Field(max_length=100)
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    via: str = Field(max_length=16)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))


class DirectoryStateRow(SQLModel, table=True):
    """One row whose version moves on every directory or consent change."""

    __tablename__ = "directory_state"

    id: int = Field(default=1, primary_key=True)
    version: int = 0


class AgentRow(SQLModel, table=True):
    """A directory agent; a removed one stays as a tombstone (`removed_at`), addresses cleared."""

    __tablename__ = "agent"

    id: str = Field(max_length=100, primary_key=True)
    display: str = Field(max_length=200)
    group_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    slack_user: str | None = Field(default=None, max_length=64, unique=True, index=True)
    phone: str | None = Field(default=None, max_length=20, unique=True, index=True)
    whatsapp: str | None = Field(default=None, max_length=20, unique=True, index=True)
    channels: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    quiet_hours: str | None = Field(default=None, max_length=11)
    tz: str | None = Field(default=None, max_length=64)
    active: int = 1
    opted_out: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: set when the agent was removed: the row stays as a tombstone, so the id is never reused
    removed_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    #: the channels whose current address its owner confirmed (JOIN, the Join button)
    verified: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    #: the agent's last WhatsApp message in: their 24-hour session runs from it
    whatsapp_seen_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    #: the language the agent reads (en, ro); NULL: RELAY_DEFAULT_LOCALE
    locale: str | None = Field(default=None, max_length=16)
    #: the agent said they are away (CONTRACT section 10): routing passes them over until they are back
    away: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class JoinCodeRow(SQLModel, table=True):
    """The code an unconfirmed address was sent, one per agent and channel (CONTRACT section 8).

    Apart from the agent row, so that no read of the directory carries it; `address` is the
    address it was sent to, so a code never confirms a number the agent has since changed.
    """

    __tablename__ = "join_code"

    agent_id: str = Field(max_length=100, primary_key=True)
    channel: str = Field(max_length=16, primary_key=True)
    code: str = Field(max_length=16)
    address: str = Field(max_length=64)
    sent_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class ConsentGrantRow(SQLModel, table=True):
    """A consent grant; revocation is recorded on the row, never erased."""

    __tablename__ = "consent_grant"

    id: str = Field(max_length=64, primary_key=True)
    subject: str = Field(max_length=240, index=True)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    group_ids: str = Field(sa_column=Column(Text, nullable=False))
    channels: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    min_confidence: str | None = Field(default=None, max_length=8)
    expires_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    granted_by: str = Field(max_length=100)
    granted_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_by: str | None = Field(default=None, max_length=100)


class InboundMessageRow(SQLModel, table=True):
    """One inbound SMS / WhatsApp message, kept once per Twilio MessageSid (replays are no-ops).

    Holds no body and no full number: the sender is redacted (`+40…1234`).
    """

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("message_sid", name="uq_inbound_message_sid"),)

    id: int | None = Field(default=None, primary_key=True)
    message_sid: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    from_redacted: str = Field(max_length=32)
    at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    #: "received" while being answered, then what it was (ack, done, list, menu, opt_out, …).
    outcome: str = Field(max_length=32)


class VerificationAttemptRow(SQLModel, table=True):
    """A message from a number that is not in the directory (RELAY_UNKNOWN_SENDER_MAX_PER_HOUR).

    `number_hash` is a keyed HMAC of the full number, so the per-number hourly limit works
    without keeping the number itself; `number_redacted` is what an operator may read.
    """

    __tablename__ = "verification_attempt"
    __table_args__ = (Index("ix_verification_attempt_number_at", "number_hash", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    number_redacted: str = Field(max_length=32)
    number_hash: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    outcome: str = Field(max_length=32)


class ConsoleSessionEndRow(SQLModel, table=True):
    """A console session its admin signed out of (CONTRACT section 11): its cookie opens nothing
    any more, on any replica, though it is still signed and not yet 8 hours old.

    Kept until `until`, when the cookie would have expired anyway (then purged).
    """

    __tablename__ = "console_session_end"

    session_id: str = Field(max_length=64, primary_key=True)
    admin: str = Field(max_length=100)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))
    until: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
