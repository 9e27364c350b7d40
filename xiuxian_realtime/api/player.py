"""The player's own state: snapshot (for resync), leaderboards, inventory."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException

from ..history import Position
from ..services.leaderboard import CATEGORIES
from .deps import bearer_user, optional_bearer_user, runtime

if TYPE_CHECKING:
    from ..app import Runtime
    from ..services.players import PlayerCard

router = APIRouter(prefix="/api/player")


def build_snapshot(rt: "Runtime", user_id: int, card: "PlayerCard", pos: Position,
                   online: bool) -> dict[str, Any]:
    """The player's state and the stream position it corresponds to.

    In one process the position is read without yielding to the loop (the local
    broker's `position` never suspends) and the state right after, in one synchronous
    stretch: no event can be sent in between, so every event up to the position is
    reflected in the state and none after it is. With Redis the position is read first;
    an event landing in the round trip may be reflected in the state and replayed too.
    """
    now = time.time()
    live = rt.spirit.current(user_id, now)
    rate = rt.spirit.rate(user_id)
    ranks = {c: rt.leaderboard.user_rank(user_id, c) for c in CATEGORIES}
    return {
        "id": user_id,
        "username": card.username,
        "level": card.level,
        "realm": card.realm,
        "spirit": round(live if live is not None else card.spirit, 1),
        "spiritRate": rate if rate is not None else card.spirit_rate,
        "power": card.power,
        "avatarUrl": card.avatar_url,
        "online": online,
        "dungeon": rt.dungeon.describe(user_id),
        "exploration": rt.exploration.describe(user_id),
        "ranks": ranks,
        "serverTime": int(now * 1000),
        "position": {"epoch": pos.epoch, "seq": pos.seq, "bseq": pos.bseq},
    }


@router.get("/snapshot")
async def snapshot(user_id: int = Depends(bearer_user), rt=Depends(runtime)) -> dict[str, Any]:
    card = await rt.players.card(user_id)
    if card is None:
        raise HTTPException(404, "player not found")
    record = await rt.sessions.get(user_id)
    pos = await rt.broker.position(user_id)
    # No await from here on: see build_snapshot.
    return build_snapshot(rt, user_id, card, pos, record is not None and record.status == "online")


@router.get("/leaderboard")
async def leaderboard(category: str = "spirit", user_id: int | None = Depends(optional_bearer_user),
                      rt=Depends(runtime)) -> dict[str, Any]:
    if category not in CATEGORIES:
        raise HTTPException(400, f"category must be one of {', '.join(CATEGORIES)}")
    board = rt.leaderboard
    return {"category": category, "top10": board.top10(category),
            "userRank": board.user_rank(user_id, category) if user_id is not None else None,
            "total": len(board.indexes[category]), "updateTime": int(time.time())}


@router.get("/inventory")
async def inventory(user_id: int = Depends(bearer_user), rt=Depends(runtime)) -> dict[str, Any]:
    return {"items": await rt.db.inventory(user_id)}


@router.get("/records")
async def records(user_id: int = Depends(bearer_user), rt=Depends(runtime)) -> dict[str, Any]:
    """Finished dungeon runs and explorations, oldest first."""
    return {"dungeonRuns": await rt.db.dungeon_runs(user_id),
            "explorations": await rt.db.exploration_results(user_id)}
