"""The player's own state: snapshot (for resync), leaderboards, inventory."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException

from ..services.leaderboard import CATEGORIES
from .deps import bearer_user, optional_bearer_user, runtime

if TYPE_CHECKING:
    from ..app import Runtime
    from ..services.players import PlayerCard

router = APIRouter(prefix="/api/player")


def build_snapshot(rt: "Runtime", user_id: int, card: "PlayerCard") -> dict[str, Any]:
    """The player's state and the stream position it corresponds to.

    Everything is read from memory in one synchronous stretch — no await between the
    state and `history.position` — so no event can be sent in between: every event with
    a seq up to the position is reflected in the state, none after it is.
    """
    now = time.time()
    live = rt.spirit.current(user_id, now)
    rate = rt.spirit.rate(user_id)
    ranks = {c: rt.leaderboard.user_rank(user_id, c) for c in CATEGORIES}
    pos = rt.history.position(user_id)
    return {
        "id": user_id,
        "username": card.username,
        "level": card.level,
        "realm": card.realm,
        "spirit": round(live if live is not None else card.spirit, 1),
        "spiritRate": rate if rate is not None else card.spirit_rate,
        "power": card.power,
        "avatarUrl": card.avatar_url,
        "online": rt.sessions.is_online(user_id),
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
    # No await from here on: see build_snapshot.
    return build_snapshot(rt, user_id, card)


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
