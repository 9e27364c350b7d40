"""Runs the app under uvicorn with the picows WebSocket transport, on one port."""

from __future__ import annotations

import uvicorn

from . import gcpolicy, logs
from .app import create_app
from .config import Settings


def build_server(settings: Settings) -> uvicorn.Server:
    app = create_app(settings)
    gateway = app.state.runtime.gateway
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=gateway.uvicorn_front_factory(),  # type: ignore[arg-type]
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
    gcpolicy.configure()
    server.run()
