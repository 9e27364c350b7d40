"""The original's online-status API. Login, heartbeat and logout go through `Sessions`,
the same code path as WebSocket connects and the heartbeat timeout.

These routes take the player id in the body, as the original's did. When the caller
sends a bearer token it must be that player's; without one the route stays open for
the original's clients.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, Field

from ..auth import TokenError
from .deps import runtime, runtime_of

router = APIRouter(prefix="/api/online")


class PlayerBody(BaseModel):
    playerId: str | int = Field()
    ip: str | None = None


def _player_id(body: PlayerBody, request: Request, authorization: str | None) -> int:
    raw = str(body.playerId).strip()
    if not raw.isdigit():
        raise HTTPException(400, "playerId must be a numeric id")
    player_id = int(raw)
    if authorization and authorization.lower().startswith("bearer "):
        try:
            token_user = runtime_of(request).tokens.verify(authorization[7:].strip())
        except TokenError:
            raise HTTPException(401, "invalid token") from None
        if token_user != player_id:
            raise HTTPException(403, "token does not belong to playerId")
    return player_id


@router.post("/login")
async def login(body: PlayerBody, request: Request, rt=Depends(runtime),
                authorization: str | None = Header(default=None)) -> dict[str, object]:
    player_id = _player_id(body, request, authorization)
    if await rt.db.user_by_id(player_id) is None:
        raise HTTPException(400, "player not found")
    ip = body.ip or (request.client.host if request.client else "")
    login_ms = await rt.sessions.login(player_id, ip)
    return {"message": "login successful", "playerId": str(player_id), "loginTime": login_ms}


@router.post("/heartbeat")
async def heartbeat(body: PlayerBody, request: Request, rt=Depends(runtime),
                    authorization: str | None = Header(default=None)) -> dict[str, object]:
    player_id = _player_id(body, request, authorization)
    last_ms = await rt.sessions.heartbeat(player_id)
    if last_ms is None:
        raise HTTPException(404, "player not online")
    return {"message": "heartbeat received", "playerId": str(player_id), "lastHeartbeat": last_ms}


@router.post("/logout")
async def logout(body: PlayerBody, request: Request, rt=Depends(runtime),
                 authorization: str | None = Header(default=None)) -> dict[str, object]:
    player_id = _player_id(body, request, authorization)
    logout_ms = await rt.sessions.logout(player_id)
    if logout_ms is None:
        raise HTTPException(404, "player not online")
    return {"message": "logout successful", "playerId": str(player_id), "logoutTime": logout_ms}


@router.get("/players")
async def players(rt=Depends(runtime)) -> dict[str, object]:
    return {"players": [{"playerId": str(r.player_id), "loginTime": r.login_time,
                         "lastHeartbeat": r.last_heartbeat, "ip": r.ip} for r in await rt.sessions.online()]}


@router.get("/player/{player_id}")
async def player(player_id: str, rt=Depends(runtime)) -> dict[str, object]:
    if not player_id.isdigit():
        raise HTTPException(400, "player id must be numeric")
    record = await rt.sessions.get(int(player_id))
    if record is None:
        raise HTTPException(404, "player not found")
    return record.to_api()
