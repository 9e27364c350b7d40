"""The publish API: other services push events to players without a server change.

`POST /api/publish` (one user) and `POST /api/broadcast` (everyone), authenticated with
`X-API-Key`. Any type of the form `namespace:name` is accepted. The body size is bounded so
one publisher cannot fill every connection's queue with a single call.

These two routes are plain ASGI, served by a middleware in front of FastAPI's routing.
Publishers call them at hundreds per second, and FastAPI's per-request machinery
(exception and body-limit middleware, routing, dependency resolution) cost about 400 µs of
the one core per call on the bench machine, more than recording and delivering the event.
Here a call is one header scan, one JSON parse with pydantic's Rust validator and one
broker call. Errors keep the shape of every other route: `{"error": "..."}`.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from ..broker import BrokerUnavailable
from ..protocol import PROTOCOL_TYPES, valid_event_type

if TYPE_CHECKING:
    from ..app import Runtime


class PublishBody(BaseModel):
    userId: int = Field(ge=0)
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


class BroadcastBody(BaseModel):
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


class PublishError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_JSON_HEADERS = [(b"content-type", b"application/json")]


class PublishRoutes:
    """ASGI middleware: answers the two publish routes itself, passes everything else on."""

    def __init__(self, app: ASGIApp, runtime: "Runtime") -> None:
        self.app = app
        self.runtime = runtime
        self._routes = {"/api/publish": self._publish, "/api/broadcast": self._broadcast}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] != "POST":
                raise PublishError(405, "method not allowed, use POST")
            raw = await self._read(scope, receive)
            status, body = 200, await handler(raw)
        except PublishError as exc:
            status, body = exc.status, {"error": exc.message}
        payload = orjson.dumps(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        """Check the key, then read the body, refusing it as soon as it is over the limit."""
        settings = self.runtime.settings
        limit = settings.publish_max_bytes
        key: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                key = value
            elif name == b"content-length" and value.isdigit() and int(value) > limit:
                raise PublishError(413, f"body larger than {limit} bytes")
        if not key or not hmac.compare_digest(key, settings.api_key.get_secret_value().encode()):
            raise PublishError(401, "missing or invalid X-API-Key")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise PublishError(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PublishError(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _publish(self, raw: bytes) -> dict[str, object]:
        body = _parse(raw, PublishBody)
        try:
            seq = await self.runtime.hub.send_to_user_confirmed(body.userId, body.type, body.data)
        except BrokerUnavailable as exc:
            # Never silently lost: the publisher learns that it must retry.
            raise PublishError(503, f"event not recorded: {exc}") from None
        return {"seq": seq}

    async def _broadcast(self, raw: bytes) -> dict[str, object]:
        body = _parse(raw, BroadcastBody)
        try:
            bseq = await self.runtime.hub.broadcast_confirmed(body.type, body.data)
        except BrokerUnavailable as exc:
            raise PublishError(503, f"event not recorded: {exc}") from None
        return {"bseq": bseq}


def _parse(raw: bytes, model: type[Any]) -> Any:
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise PublishError(400, f"invalid body: {_first_problem(exc)}") from None
    if not valid_event_type(body.type) or body.type in PROTOCOL_TYPES:
        raise PublishError(400, "type must look like namespace:name (lowercase letters, digits, _)")
    return body


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err['msg']}" if where else str(err["msg"])
