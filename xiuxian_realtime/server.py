"""Runs the app under uvicorn with the picows WebSocket transport, on one port."""

from __future__ import annotations

import gc

import uvicorn

from . import logs
from .app import create_app
from .config import Settings


def tune_gc() -> None:
    """Keep full collections from stalling the loop with tens of thousands of sockets.

    Start-up objects (modules, the app) are frozen out of the collector, and the
    thresholds are raised so collections happen rarely; the hot path allocates no
    reference cycles, so reference counting frees almost everything by itself.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def build_server(settings: Settings) -> uvicorn.Server:
    app = create_app(settings)
    gateway = app.state.runtime.gateway
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=gateway.uvicorn_protocol_factory(),  # type: ignore[arg-type]
        lifespan="on",
        log_config=None,
        access_log=True,
        backlog=4096,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    logs.setup(settings.log_level)
    server = build_server(settings)
    tune_gc()
    server.run()
