"""A person at the console, driven over HTTP: sign in, open pages, send forms (with or without the CSRF token)."""

from __future__ import annotations

import re
from typing import Any

from tests.driver import Relay
from tests.support import ADMIN_TOKEN

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    """The console in one browser session (the test client's cookie jar)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.csrf = ""

    async def open(self, path: str) -> tuple[int, str, str | None]:
        """GET a page without following a redirect: its status, its HTML and where it redirects."""
        response = await self.relay.get(path, allow_redirects=False)
        html = await response.text()
        found = CSRF.search(html)
        if found:
            self.csrf = found.group(1)
        return response.status, html, response.headers.get("Location")

    async def page(self, path: str) -> str:
        """A page that must open (200); its HTML."""
        status, html, _ = await self.open(path)
        assert status == 200, (status, html)
        return html

    async def send(self, path: str, *, csrf: bool = True, **fields: str) -> tuple[int, str, str | None]:
        """POST a form as its page sends it (with this session's CSRF token unless told otherwise)."""
        data: dict[str, Any] = ({"csrf": self.csrf} if csrf else {}) | fields
        response = await self.relay.post(path, data=data, allow_redirects=False)
        return response.status, await response.text(), response.headers.get("Location")

    async def sign_in(self, token: str = ADMIN_TOKEN, next_path: str = "/console") -> str | None:
        """Open the sign-in page and sign in with `token`; where it sends the browser."""
        await self.page("/console/sign-in")
        status, html, location = await self.send("/console/sign-in", token=token, next=next_path)
        assert status == 303, (status, html)
        return location
