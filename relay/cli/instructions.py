"""`care-relay invite`: a person's instruction to invite named agents for a loop now (CONTRACT section 10)."""

from __future__ import annotations

import argparse
import json
import time

from inbox import Inbox
from receivers import read_signal
from relay import config
from relay.cli.db import run
from relay.instructions import Instructions


def _instructions(inbox: Inbox, *, dev: bool) -> Instructions:
    """The one invite-now service over the CLI's own connection; the running relay's outbox sends what it
    queues. Channels are chosen among those these settings configure (with `dev`, the console too)."""
    settings = config.load(serving=False)
    if dev:
        settings = settings.model_copy(update={"dev": True})
    return Instructions(inbox.writer, settings.routing(), read_signal=read_signal, clock=time.time)


def cmd_invite(args: argparse.Namespace) -> int:
    data = {"agents": [a.strip() for item in args.agent for a in item.split(",") if a.strip()], "by": args.by}
    result = run(lambda inbox: _instructions(inbox, dev=args.dev).invite_now(args.event_id, data, source=args.source))
    if args.json:
        print(json.dumps(result))
        return 0
    invited = ", ".join(f"{i['agent']} ({i['channel']})" for i in result["invited"])
    print(f"{result['id']} is {result['status']}: invited {invited or 'nobody new'}")
    if result["already_invited"]:
        print(f"already invited on this loop: {', '.join(result['already_invited'])}")
    return 0
