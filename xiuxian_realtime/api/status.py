"""Health, stats and metrics; and `/ws` answered over plain HTTP (no upgrade)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from .. import metrics
from ..protocol import BadRequest, parse_ws_query
from .deps import runtime

router = APIRouter()


@router.get("/health")
async def health(rt=Depends(runtime)) -> dict[str, object]:
    """200 while this node serves its connections; `degraded` when Redis is unreachable
    (local connections keep working, cross-node delivery waits)."""
    degraded = rt.broker.degraded or rt.presence.degraded
    return {"status": "degraded" if degraded else "ok",
            "broker": "redis" if rt.settings.redis_url else "local",
            "connections": rt.hub.connection_count(),
            "uptime": round(time.time() - rt.hub.stats.started, 1)}


@router.get("/ws/stats")
async def ws_stats(rt=Depends(runtime)) -> dict[str, object]:
    hub, stats = rt.hub, rt.hub.stats
    return {
        "onlineCount": hub.online_count(),
        "timestamp": int(time.time()),
        "connections": hub.connection_count(),
        "users": hub.online_count(),
        "messagesIn": stats.messages_in,
        "messagesOut": stats.messages_out,
        "badFrames": stats.bad_frames,
        "slowConsumerDisconnects": stats.slow_disconnects,
        "policyDisconnects": stats.policy_disconnects,
        "timeoutDisconnects": stats.timeout_disconnects,
        "replacedConnections": stats.replaced,
        "authFailures": stats.auth_failures,
        "resumes": stats.resumes,
        "resyncs": stats.resyncs,
        "logouts": rt.sessions.logouts,
        "uptime": round(time.time() - stats.started, 1),
    }


@router.get("/metrics")
async def prometheus(rt=Depends(runtime)) -> Response:
    return Response(metrics.render(rt.metrics), media_type=metrics.CONTENT_TYPE)


@router.get("/ws")
async def ws_without_upgrade(request: Request) -> None:
    # A real upgrade never gets here: uvicorn hands it to the WebSocket transport.
    try:
        parse_ws_query(request.url.query)
    except BadRequest as exc:
        raise HTTPException(400, str(exc)) from None
    raise HTTPException(426, "websocket upgrade required")
