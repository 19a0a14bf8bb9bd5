"""One test driver: the relay as its users reach it, one step of the design per method.

A `Relay` wraps a started app's test client. It seeds agents and grants through the admin
API, sends fixture signals signed with the real signer, opens and answers action links,
drains the outbox, and reads what came of it the way an operator would: the loop (the
status document), the audit trail, the outbox rows, and raw SQL on the app's own writer.
The pytest fixture that starts one (`start`) lives in conftest.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from relay.keys import OUTBOX, TOKENS
from tests.support import ADMIN_TOKEN, fixture, fresh, invitation_of, query, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TENANT = "a11dfb63-4b18-4eb8-872e-747af2e37c46"
ANA = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]}
#: Raz's panics and statuses reach the care circle.
GRANT = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "admin"}
#: The tenant's escalations reach the care circle.
AISHA_GRANT = {
    "subject": f"tenant:{TENANT}",
    "scope": ["care.escalation_detected"],
    "groups": ["care-circle"],
    "by": "admin",
}
#: A care circle of two (Ana and Bo) and Cy elsewhere, all on the console.
TEAM = [
    ANA,
    {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["console"]},
    {"id": "cy", "display": "Cy", "groups": ["elsewhere"], "channels": ["console"]},
]
#: Raz's panics and the tenant's escalations reach the care circle.
TEAM_GRANTS = (
    {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"},
    AISHA_GRANT,
)
OUTBOX_COLUMNS = ("id", "kind", "ref_id", "status", "attempts", "last_error")


def signal(source: str, name: str, **changes: Any) -> dict[str, Any]:
    """The fixture `tests/fixtures/<source>/<name>.json` as a new event stamped now, with `changes`."""
    return fresh(source, fixture(source, name), **changes)


def panic(**changes: Any) -> dict[str, Any]:
    """Raz's golden panic.ui as a new event."""
    return signal("m3", "panic.ui__golden", **changes)


def escalation(**changes: Any) -> dict[str, Any]:
    """The tenant's golden care.escalation_detected as a new event."""
    return signal("aisha", "care.escalation_detected__golden", **changes)


class Relay:
    """A started relay, driven through its HTTP interface."""

    def __init__(self, client: TestClient[Request, Application]) -> None:
        self.client = client
        self.request = client.request
        self.get = client.get
        self.head = client.head
        self.post = client.post
        self.patch = client.patch
        self.delete = client.delete

    @property
    def app(self) -> Application:
        app = self.client.app
        assert app is not None
        return app

    # the directory, through the admin API ------------------------------------------------

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """An admin API call with the bearer: its status and its JSON (None for a 204)."""
        response = await self.request(method, path, json=body, headers=ADMIN)
        return response.status, None if response.status == 204 else await response.json()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the admin API, which must answer 201 Created; the created item."""
        response = await self.client.post(path, json=body, headers=ADMIN)
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created

    async def seed(self, *grants: dict[str, Any], agents: list[dict[str, Any]] | None = None) -> list[str]:
        """Add the agents (Ana by default) and the grants (GRANT by default); the grants' ids."""
        for agent in [ANA] if agents is None else agents:
            await self.create("/admin/agents", agent)
        return [(await self.create("/admin/consents", grant))["id"] for grant in grants or (GRANT,)]

    # senders ---------------------------------------------------------------------------

    async def hook(self, source: str, payload: Any, **signing: Any) -> ClientResponse:
        """POST a payload (or bytes) to `/hooks/<source>`, signed as the sender signs it (`signing`: see `signed`)."""
        body, headers = signed(source, payload, **signing)
        return await self.client.post(f"/hooks/{source}", data=body, headers=headers)

    async def deliver(self, source: str, payload: Any, **signing: Any) -> tuple[int, dict[str, Any]]:
        """`hook`: the status and the JSON answer."""
        response = await self.hook(source, payload, **signing)
        return response.status, await response.json()

    async def send(self, source: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a signed payload the relay must accept (202); its answer."""
        response = await self.hook(source, payload)
        assert response.status == 202, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def emit(self, source: str, name: str, **changes: Any) -> dict[str, Any]:
        """Send the fixture `name` as a new event (202); its answer, with the `payload` and `body` sent."""
        payload = signal(source, name, **changes)
        body, _ = signed(source, payload)
        return {"payload": payload, "body": body, **(await self.send(source, payload))}

    async def invited(self, payload: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
        """Seed Ana and GRANT, send a panic.ui that invites her; the 202's answer and her invitation's id."""
        await self.seed()
        answer = await self.send("m3", payload or panic())
        assert answer["status"] == "invited", answer
        return answer, await self.invitation_id(answer["id"])

    # agents, through their action links ------------------------------------------------

    def link(self, invitation: int) -> str:
        """The path of the invitation's action link, signed with the relay's current key."""
        return f"/a/{self.app[TOKENS].action_token(invitation)}"

    async def press(self, path: str, **fields: str) -> tuple[int, str]:
        """Submit the link page's form; the status and the page."""
        response = await self.client.post(path, data=fields)
        return response.status, await response.text()

    # what came of it -------------------------------------------------------------------

    async def loop(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The loop's status document, read with the status token of the intake's answer."""
        response = await self.client.get(answer["status_url"])
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def audit(self) -> list[dict[str, Any]]:
        """The audit trail (its last 200 rows), from the admin API."""
        response = await self.client.get("/admin/audit?limit=200", headers=ADMIN)
        assert response.status == 200, await response.text()
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items

    async def drain(self) -> None:
        """Let the outbox send everything due now and wait for it."""
        await self.app[OUTBOX].drain()

    async def settled(self, seconds: float = 30.0) -> None:
        """Wait (generously: `seconds`) until a running outbox worker has settled every row: none pending or sending."""
        deadline = time.monotonic() + seconds
        query = "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"
        while (left := (await self.sql(query))[0][0]) > 0:
            assert time.monotonic() < deadline, f"{left} outbox row(s) still unsettled after {seconds} s"
            await asyncio.sleep(0.05)

    async def make_due(self) -> None:
        """Skip the backoff wait: every pending outbox row is due now."""
        await self.sql("UPDATE outbox SET next_attempt_at = 0 WHERE status = 'pending'")

    async def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the app's writer; a SELECT's rows as tuples, else []."""
        return await query(self.app, statement, *params)

    async def counts(self, *tables: str) -> dict[str, int]:
        """How many rows each table holds."""
        return {table: (await self.sql(f"SELECT COUNT(*) FROM {table}"))[0][0] for table in tables}  # noqa: S608 (names)

    async def outbox(self) -> list[dict[str, Any]]:
        """Every outbox row, oldest first."""
        rows = await self.sql(f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox ORDER BY id")  # noqa: S608 (constants)
        return [dict(zip(OUTBOX_COLUMNS, row, strict=True)) for row in rows]

    async def signal_id(self, event_id: str) -> int:
        """The stored id of the one signal with this event id."""
        ((found,),) = await self.sql("SELECT id FROM signal WHERE event_id = ?", event_id)
        return int(found)

    async def invitation_id(self, event_id: str) -> int:
        """The id of the one invitation of the one signal with this event id."""
        return await invitation_of(self.app, event_id)


#: The `start` fixture: `await start(run_outbox=..., **settings)` starts a relay to drive.
Start = Callable[..., Awaitable[Relay]]
