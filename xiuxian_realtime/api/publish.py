"""The publish API: other services push events to players without a server change.

Any type of the form `namespace:name` is accepted. The body size is bounded so one
publisher cannot fill every connection's queue with a single call.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from ..broker import BrokerUnavailable
from ..protocol import PROTOCOL_TYPES, valid_event_type
from .deps import api_key, runtime_of

router = APIRouter(prefix="/api", dependencies=[Depends(api_key)])


class PublishBody(BaseModel):
    userId: int = Field(ge=0)
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


class BroadcastBody(BaseModel):
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


async def _read(request: Request, model: type[BaseModel]) -> Any:
    limit = runtime_of(request).settings.publish_max_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    try:
        body = model.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise HTTPException(400, f"invalid body: {str(exc).splitlines()[0]}") from None
    if not valid_event_type(body.type) or body.type in PROTOCOL_TYPES:
        raise HTTPException(400, "type must look like namespace:name (lowercase letters, digits, _)")
    return body


@router.post("/publish")
async def publish(request: Request) -> dict[str, object]:
    body = await _read(request, PublishBody)
    rt = runtime_of(request)
    try:
        seq = await rt.hub.send_to_user_confirmed(body.userId, body.type, body.data)
    except BrokerUnavailable as exc:
        # Never silently lost: the publisher learns that it must retry.
        raise HTTPException(503, f"event not recorded: {exc}") from None
    return {"seq": seq}


@router.post("/broadcast")
async def broadcast(request: Request) -> dict[str, object]:
    body = await _read(request, BroadcastBody)
    rt = runtime_of(request)
    try:
        bseq = await rt.hub.broadcast_confirmed(body.type, body.data)
    except BrokerUnavailable as exc:
        raise HTTPException(503, f"event not recorded: {exc}") from None
    return {"bseq": bseq}
