"""The web console at `/console` (CONTRACT section 11): pages for the people who run the circle.

Server-rendered pages (Jinja2, no script) in the action-link page's visual language, behind
a signed session cookie (`session`), with a CSRF token on every form and the session check
and CSRF check in one decorator (`base.console_page`). Pages: Loops and a loop (`loops`),
Agents (`agents`), Consent (`consent`), Deliveries and Audit (`work`), sign-in (`signin`).
Every action calls the service the admin API and the CLI call, with the signed-in name as `by`.
"""

from __future__ import annotations

from relay.web.console.base import ONE_TIME, SIGN_IN, install

__all__ = ["ONE_TIME", "SIGN_IN", "install"]
