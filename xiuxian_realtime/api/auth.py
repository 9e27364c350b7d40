"""Register and log in: JWT tokens the original backend would accept too."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..auth import check_password, hash_password
from ..storage.db import PlayerRow, UsernameTaken
from .deps import runtime

router = APIRouter(prefix="/api/auth")


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/register", status_code=201)
async def register(body: Credentials, rt=Depends(runtime)) -> JSONResponse:
    # bcrypt is deliberately slow (~0.2 s): keep it off the event loop.
    hashed = await asyncio.to_thread(hash_password, body.password)
    try:
        user = await rt.db.create_user(body.username, hashed)
    except UsernameTaken:
        raise HTTPException(400, "username already exists") from None
    # The leaderboards rank every player, new ones too.
    rt.players.upsert(PlayerRow(user.id, user.username, user.level, user.realm, user.power,
                                user.spirit, user.spirit_rate, user.avatar_url, user.last_spirit_gain_time))
    token = rt.tokens.issue(user.id, user.username)
    return JSONResponse({"id": user.id, "username": user.username, "token": token}, status_code=201)


@router.post("/login")
async def login(body: Credentials, rt=Depends(runtime)) -> dict[str, object]:
    user = await rt.db.user_by_name(body.username)
    ok = user is not None and await asyncio.to_thread(check_password, body.password, user.password_hash)
    if not ok or user is None:
        raise HTTPException(400, "invalid username or password")
    return {"id": user.id, "username": user.username, "token": rt.tokens.issue(user.id, user.username)}
