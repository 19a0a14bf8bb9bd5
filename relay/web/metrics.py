"""`GET /metrics`: the relay's figures in the Prometheus text format (bearer: a metrics or admin token).

The outbox gauges are read from the database at each scrape (one grouped query through the
reader); every other family is counted as things happen (relay/metrics.py).
"""

from __future__ import annotations

from aiohttp import web

from relay.deliveries import OUTBOX_KINDS, OUTBOX_STATUSES
from relay.keys import CLOCK, DELIVERIES, METRICS
from relay.metrics import CONTENT_TYPE
from relay.web.auth import require_metrics


async def handle_metrics(request: web.Request) -> web.Response:
    require_metrics(request)
    app = request.app
    figures = await app[DELIVERIES].outbox_figures()
    metrics = app[METRICS]
    # no await from here to the render: a concurrent scrape cannot see the gauges half set
    metrics.set_outbox(figures, kinds=OUTBOX_KINDS, statuses=OUTBOX_STATUSES, now_ms=int(app[CLOCK]() * 1000))
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})
