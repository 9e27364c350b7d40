"""Exploration: the locations, and starting a timed run for the caller."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from ..services.activities import Busy
from ..services.exploration import LOCATIONS
from .deps import bearer_user, runtime

router = APIRouter(prefix="/api/exploration")


class ExplorationStart(BaseModel):
    location: str


@router.get("/locations")
async def locations(rt=Depends(runtime)) -> dict[str, object]:
    return {"locations": rt.exploration.locations()}


@router.post("/start")
async def start(body: ExplorationStart, user_id: int = Depends(bearer_user),
                rt=Depends(runtime)) -> dict[str, object]:
    if body.location not in LOCATIONS:
        raise HTTPException(400, f"unknown location {body.location!r}")
    if await rt.players.card(user_id) is None:
        raise HTTPException(404, "player not found")
    try:
        run = rt.exploration.start(user_id, body.location)
    except Busy:
        raise HTTPException(409, "an exploration is already running") from None
    return {"message": "exploration started", "exploration": run.public()}
