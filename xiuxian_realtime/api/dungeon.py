"""Dungeons: start a combat run for the caller; it runs in the background."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from ..services.activities import Busy
from ..services.dungeon import DUNGEONS
from .deps import bearer_user, runtime

router = APIRouter(prefix="/api/dungeon")


class DungeonStart(BaseModel):
    dungeon: str | None = None


@router.get("/list")
async def dungeons() -> dict[str, object]:
    return {"dungeons": [d.public() for d in DUNGEONS.values()]}


@router.post("/start")
async def start(body: DungeonStart | None = None, user_id: int = Depends(bearer_user),
                rt=Depends(runtime)) -> dict[str, object]:
    dungeon_id = body.dungeon if body is not None else None
    if dungeon_id is not None and dungeon_id not in DUNGEONS:
        raise HTTPException(400, f"unknown dungeon {dungeon_id!r}")
    card = await rt.players.card(user_id)
    if card is None:
        raise HTTPException(404, "player not found")
    try:
        run = rt.dungeon.start(user_id, card, dungeon_id)
    except Busy:
        raise HTTPException(409, "a dungeon is already running") from None
    return {"message": "dungeon started", "dungeon": run.dungeon.public()}
