"""An open-loop paced client: `python -m bench.latency URL REQUESTS RATE SECONDS WARMUP OUT`.

Sends the signed requests of a request file (bench.payloads) to `URL/hooks/m3` at a fixed
rate, each at its own scheduled instant whether or not earlier ones were answered (so a
slow server meets the load it would meet, not a politely waiting client). The first
`WARMUP` seconds' requests are a warm-up and are not reported. Writes to OUT a JSON list
of `[event id, scheduled, sent, answered, status]` (at most 60 connections at once, like a sender's pool), times from time.monotonic
(CLOCK_MONOTONIC, the clock bench.fake_slack stamps arrivals with).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

Record = tuple[str, float, float, float, int]
CONNECTIONS = 60


async def _send(
    session: aiohttp.ClientSession, url: str, line: str, scheduled: float, out: list[Record] | None
) -> None:
    sig, event, body = line.rstrip("\n").split("\t", 2)
    headers = {"Content-Type": "application/json", "X-M3-Signature": sig, "X-M3-Event": event}
    sent = time.monotonic()
    try:
        async with session.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    if out is not None:
        out.append((json.loads(body)["id"], scheduled, sent, time.monotonic(), status))


async def pace(url: str, lines: list[str], rate: float, seconds: float, warmup: float) -> list[Record]:
    """Send `rate` requests a second for `warmup` + `seconds`; the records of the measured ones."""
    records: list[Record] = []
    warm = int(rate * warmup)
    total = min(len(lines), warm + int(rate * seconds))
    # a sender's pool: the relay refuses a client's 65th connection (RELAY_MAX_CONNECTIONS_PER_CLIENT);
    # past 60 in flight, requests wait in the client, and their 202 latency (from the schedule) shows it
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks = []
        start = time.monotonic() + 0.1
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            out = records if i >= warm else None
            tasks.append(asyncio.create_task(_send(session, url, lines[i], scheduled, out)))
        await asyncio.gather(*tasks)
    return records


def main() -> None:
    url, requests, rate, seconds, warmup, out = sys.argv[1:7]
    lines = Path(requests).read_text(encoding="utf-8").splitlines()
    records = asyncio.run(pace(url + "/hooks/m3", lines, float(rate), float(seconds), float(warmup)))
    Path(out).write_text(json.dumps(records), encoding="utf-8")


if __name__ == "__main__":
    main()
