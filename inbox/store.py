"""The two verbs `inbox.inbound` still names here; they live in `inbox.directory` and
`inbox.audit`. Nothing else imports this module: it goes once `inbox.inbound` imports
those two modules itself."""

from __future__ import annotations

from inbox.audit import insert_audit
from inbox.directory import set_opted_out

__all__ = ["insert_audit", "set_opted_out"]
