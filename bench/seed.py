"""Seeded inboxes: the bench directory and a history of stored signals, written through the project's code.

Everything the bench knows about the schema is here, so it follows storage changes in one place:

- the directory (50 agents, one grant) goes through `relay.directory.Directory` on an
  inbox opened with `inbox.open_inbox`, which applies the migrations first;
- the history goes through `inbox` write functions (`insert_signals`, `insert_nonces`,
  `insert_audits`, `insert_reply_codes`) on a `SqliteTx`, and plain INSERTs of the `invitation`,
  `outbox`, `ack` and `done` tables where no bulk function exists.

A seeded history looks like production's: every signal invited its group's 1-3 agents on
Slack (sent), most loops are done (an ack and a done), a share is still open (acked or
only invited). Loops never close by themselves, so each agent holds thousands of open
invitations in a large inbox. Times spread over `HISTORY_DAYS`, ending two hours ago (so
the hourly throttle's window holds none of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.payloads import body
from bench.team import BENCH_ACTOR, GROUPS, SUBJECT, agents, grant, slack_user
from inbox import open_inbox
from inbox.audit import AuditValues, insert_audits
from inbox.reply_codes import ReplyCodeValues, insert_reply_codes
from inbox.rows import dumps, marks
from inbox.signals import SignalValues, insert_nonces, insert_signals
from inbox.tx import SqliteTx
from relay.directory import Directory

HISTORY_DAYS = 60
#: shares of seeded loops by status; the rest are done.
INVITED_SHARE = 0.10
ACKED_SHARE = 0.08
CHUNK = 20_000
#: bump when what a seeded history holds changes, so cached inboxes are rebuilt.
SEED_VERSION = 2
_REASON = "explicit consent, within care window"
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_INVITATION = (
    "INSERT INTO invitation (id, signal_id, agent_id, channel, code, status, provider_id, created_at, updated_at)"
    " VALUES (?, ?, ?, 'slack', ?, 'sent', ?, ?, ?)"
)
_OUTBOX = (
    "INSERT INTO outbox (kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
    " VALUES ('invite', ?, ?, 'sent', 1, ?, ?, ?)"
)
_ACK = "INSERT INTO ack (signal_id, agent_id, action, via, at) VALUES (?, ?, 'soft-checkin', 'slack', ?)"
_DONE = "INSERT INTO done (signal_id, agent_id, outcome, note, via, at) VALUES (?, ?, 'talked', '', 'slack', ?)"


@dataclass(frozen=True)
class Seeded:
    """One seeded loop, as the history was planned."""

    index: int
    event_id: str
    group: str
    #: invited, acked or done
    status: str
    received_at: int

    @property
    def agents(self) -> tuple[str, ...]:
        return GROUPS[self.group]


def plan(size: int, *, seed: int = 1, end_ms: int | None = None) -> Iterator[Seeded]:
    """The loops a history of `size` signals holds, oldest first (the same for the same arguments)."""
    rng = random.Random(seed)
    end = (end_ms if end_ms is not None else int(time.time() * 1000)) - 2 * 3_600_000
    step = HISTORY_DAYS * 86_400_000 // max(size, 1)
    groups = sorted(GROUPS)
    for index in range(size):
        draw = rng.random()
        status = "invited" if draw < INVITED_SHARE else "acked" if draw < INVITED_SHARE + ACKED_SHARE else "done"
        yield Seeded(index, f"evt_{rng.getrandbits(128):032x}", rng.choice(groups), status, end - (size - index) * step)


async def seed_directory(database: Path) -> None:
    """The bench directory and its grant, through the relay's own directory service (migrates first)."""
    await seed_directory_at(f"sqlite+aiosqlite:///{database}")


async def seed_directory_at(url: str) -> None:
    """The bench directory and its grant in the database at `url` (SQLite or PostgreSQL)."""
    inbox = await open_inbox(url)
    try:
        directory = Directory(inbox.writer, inbox.reader, clock=time.time)
        for agent in agents():
            await directory.add_agent(agent)
        # the bench's agents confirmed their addresses long ago (a deployment's steady state)
        await inbox.writer.run(lambda tx: tx.execute('UPDATE agent SET verified = \'["slack", "sms", "whatsapp"]\''))
        await directory.grant_consent(grant())
    finally:
        await inbox.close()


def _connect(database: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # a bench file: rebuilt, never recovered
    conn.execute("PRAGMA cache_size=-512000")
    return conn


def seed_history(database: Path, size: int, *, seed: int = 1, end_ms: int | None = None) -> None:
    """Append a history of `size` loops to a migrated inbox holding the bench directory."""
    conn = _connect(database)
    try:
        open_codes: dict[str, set[str]] = defaultdict(set)
        rng = random.Random(seed + 1)
        loops = plan(size, seed=seed, end_ms=end_ms)
        while chunk := [loop for _, loop in zip(range(CHUNK), loops, strict=False)]:
            conn.execute("BEGIN")
            _write_chunk(SqliteTx(conn, 0), conn, chunk, open_codes, rng)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _write_chunk(
    tx: SqliteTx, conn: sqlite3.Connection, chunk: Sequence[Seeded], codes: dict[str, set[str]], rng: random.Random
) -> None:
    first_signal = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM signal").fetchone()[0]) + 1
    next_invitation = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM invitation").fetchone()[0]) + 1
    template = body("@ID@", actor=BENCH_ACTOR, group="@GROUP@", stamp="@TS@", nonce="@NONCE@")
    signal_rows: list[SignalValues] = []
    nonces, audits, invitations, outbox, acks, dones = [], [], [], [], [], []
    held: list[ReplyCodeValues] = []
    for signal_id, loop in enumerate(chunk, start=first_signal):
        nonce = f"{rng.getrandbits(64):016x}"
        raw = (
            template.replace(b"@ID@", loop.event_id.encode())
            .replace(b"@GROUP@", loop.group.encode())
            .replace(b"@NONCE@", nonce.encode())
            .replace(b"@TS@", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(loop.received_at / 1000)).encode())
        )
        at = loop.received_at
        signal_rows.append(
            SignalValues("m3", loop.event_id, "panic.ui", SUBJECT, loop.status, raw, hashlib.sha256(raw).hexdigest(),
                         _REASON, "care_autonomous", 0, "allowed", "[]", at, at + 60_000)
        )  # fmt: skip
        nonces.append(("m3", nonce, loop.event_id, at))
        invited = [[agent, "slack"] for agent in loop.agents]
        audits.append(_audit(at, "decision", loop, None, {"grant": "bench", "invited": invited, "skipped": []}))
        for agent in loop.agents:
            code = "".join(rng.choices(_CODE_ALPHABET, k=4))
            if loop.status != "done":  # unique among the agent's open loops, held in reply_code, as intake makes them
                while code in codes[agent]:
                    code = "".join(rng.choices(_CODE_ALPHABET, k=4))
                codes[agent].add(code)
                held.append(ReplyCodeValues(agent, code, signal_id, next_invitation))
            provider = f"D{slack_user(agent)}:{at // 1000}.{next_invitation % 1_000_000:06d}"
            invitations.append((next_invitation, signal_id, agent, code, provider, at, at + 1000))
            outbox.append((next_invitation, dumps({"invitation_id": next_invitation}), at, at, at + 1000))
            next_invitation += 1
        if loop.status != "invited":
            acks.append((signal_id, loop.agents[0], at + 30_000))
            audits.append(_audit(at + 30_000, "ack", loop, loop.agents[0], {"via": "slack", "action": "soft-checkin"}))
        if loop.status == "done":
            dones.append((signal_id, loop.agents[0], at + 60_000))
            audits.append(_audit(at + 60_000, "done", loop, loop.agents[0], {"via": "slack", "outcome": "talked"}))
    insert_signals(tx, signal_rows)
    last = int(conn.execute("SELECT MAX(id) FROM signal").fetchone()[0])
    if last != first_signal + len(chunk) - 1:
        raise RuntimeError("seeded signal ids are not contiguous; is another writer on this file?")
    insert_nonces(tx, nonces)
    insert_audits(tx, audits)
    tx.executemany(_INVITATION, invitations)
    tx.executemany(_OUTBOX, outbox)
    insert_reply_codes(tx, held)
    tx.executemany(_ACK, acks)
    tx.executemany(_DONE, dones)


def _audit(at: int, kind: str, loop: Seeded, agent: str | None, detail: dict[str, object]) -> AuditValues:
    origin, reason = ("care_autonomous", _REASON) if kind == "decision" else ("user_directed", f"{kind} by an agent")
    return AuditValues(at, kind, "m3", loop.event_id, agent, origin, "allowed", reason, "[]", dumps(detail))


def build_inbox(database: Path, size: int, *, seed: int = 1) -> None:
    """A fresh inbox file: migrated, the bench directory, and `size` seeded loops."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    asyncio.run(seed_directory(database))
    if size:
        seed_history(database, size, seed=seed)


def _schema_key() -> str:
    """Changes with the migrations and SEED_VERSION: a cached inbox is then rebuilt."""
    digest = hashlib.sha256(str(SEED_VERSION).encode())
    for path in sorted((Path(__file__).parents[1] / "inbox" / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def inbox_copy(cache: Path, size: int, target: Path) -> float:
    """A copy of the cached inbox of `size` loops at `target` (built first when missing); seconds spent seeding."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"inbox-{size}-{_schema_key()}.db"
    spent = 0.0
    if not cached.exists():
        for stale in cache.glob(f"inbox-{size}-*.db"):
            stale.unlink()
        started = time.monotonic()
        building = cached.with_suffix(".building")
        build_inbox(building, size)
        building.rename(cached)
        spent = time.monotonic() - started
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(cached, target)
    return spent


# Reads after a run -----------------------------------------------------------------------


def _read(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True)


def loops_of(database: Path, event_ids: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
    """event id → (its signal's status, its invitations' statuses), for the ids stored."""
    found: dict[str, tuple[str, list[str]]] = {}
    with contextlib.closing(_read(database)) as conn:
        for start in range(0, len(event_ids), 500):
            part = list(event_ids[start : start + 500])
            where = f"s.source = 'm3' AND s.event_id IN ({marks(len(part))})"
            sql = "SELECT s.event_id, s.status, i.status FROM signal s LEFT JOIN invitation i ON i.signal_id = s.id"
            sql += " WHERE " + where
            for event_id, status, invitation in conn.execute(sql, part):
                found.setdefault(event_id, (status, []))[1].extend([invitation] if invitation else [])
    return found


def unsettled_invites(database: Path) -> int:
    """Invitations the outbox has not settled yet."""
    with contextlib.closing(_read(database)) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'invite' AND status IN ('pending', 'sending')")
            .fetchone()[0]
        )  # fmt: skip


def signal_count(database: Path) -> int:
    with contextlib.closing(_read(database)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM signal").fetchone()[0])


def sample_event_ids(database: Path, count: int, *, seed: int = 7) -> list[str]:
    """`count` event ids of stored signals, drawn at random across the inbox."""
    rng = random.Random(seed)
    with contextlib.closing(_read(database)) as conn:
        last = int(conn.execute("SELECT MAX(id) FROM signal").fetchone()[0])
        ids = [rng.randint(1, last) for _ in range(count)]
        sql = f"SELECT event_id FROM signal WHERE id IN ({marks(len(ids))})"  # noqa: S608 (placeholders only)
        rows = conn.execute(sql, ids).fetchall()
    return [str(r[0]) for r in rows]
