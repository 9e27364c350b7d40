"""Exploration: a timed run to a location, one per player at a time.

Events (`exploration:event`): `start`, `progress` every tenth of the duration (percent,
elapsed, duration), `discovery` events found on the way, then `complete` with a reward
(persisted before it is sent) or `failure` with `errorMsg`. Successive events are at
least 50 ms apart (the original's spacing for discoveries). `progress` events are
state-like: in resume history consecutive ones merge into the latest.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..history import Coalesce
from ..hub import Hub
from ..storage.db import Database
from .activities import Activities, Busy, Pacer

log = logging.getLogger("xiuxian.exploration")

MIN_EVENT_GAP_S = 0.05
STEPS = 10  # progress events at every 10 %


@dataclass(frozen=True)
class Location:
    id: str
    name: str
    duration_s: float
    failure_chance: float
    description: str
    discoveries: tuple[str, ...]
    rewards: tuple[tuple[str, int, int], ...]  # (item, min qty, max qty)


LOCATIONS: dict[str, Location] = {loc.id: loc for loc in (
    Location("misty_valley", "迷雾山谷", 10, 0.1, "山谷终年云雾缭绕，常有灵草生长。",
             ("一株百年灵草", "一汪清澈灵泉", "一只受伤的灵狐", "一块刻着古篆的石碑"),
             (("灵草", 1, 4), ("下品灵石", 2, 6))),
    Location("spirit_spring", "灵泉秘地", 30, 0.2, "灵气充沛的泉眼，也引来了守护的妖兽。",
             ("泉底的灵髓结晶", "前人遗留的蒲团", "一群栖息的灵鹤"),
             (("灵髓", 1, 2), ("中品灵石", 1, 3))),
    Location("ancient_ruins", "上古遗迹", 60, 0.35, "上古宗门的废墟，阵法残存，危机四伏。",
             ("残破的阵盘", "一卷功法残篇", "一具上古修士的遗骸", "尘封的丹炉"),
             (("功法残篇", 1, 1), ("上品灵石", 1, 2), ("古丹", 1, 1))),
)}

FAILURES = ("遭遇强大妖兽，被迫撤退", "误入迷阵，无功而返", "灵力紊乱，不得不中止探索")


def _progress_merge(_older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    return newer


@dataclass
class ExplorationRun:
    location: Location
    duration_s: float
    started_at: float
    coalesce: Coalesce
    progress: int = 0
    elapsed_s: float = 0.0
    discoveries: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"location": self.location.id, "name": self.location.name, "progress": self.progress,
                "elapsedSecs": round(self.elapsed_s, 1), "durationSecs": _num(self.duration_s),
                "discoveries": list(self.discoveries), "startedAt": int(self.started_at * 1000)}


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)


@dataclass
class Plan:
    discoveries: dict[int, list[str]]  # step -> discoveries found at that step
    fail_at: int | None  # step at which the run fails, or None
    error: str
    reward: dict[str, Any] | None


def plan(rng: random.Random, loc: Location) -> Plan:
    found: dict[int, list[str]] = {}
    for name in rng.sample(loc.discoveries, rng.randint(1, min(3, len(loc.discoveries)))):
        found.setdefault(rng.randint(1, STEPS - 1), []).append(name)
    fail_at = rng.randint(3, STEPS - 1) if rng.random() < loc.failure_chance else None
    items = [{"name": item, "quantity": rng.randint(low, high)}
             for item, low, high in loc.rewards if rng.random() < 0.85] or \
            [{"name": loc.rewards[0][0], "quantity": loc.rewards[0][1]}]
    return Plan(found, fail_at, rng.choice(FAILURES), None if fail_at else {"items": items})


class ExplorationService:
    def __init__(self, db: Database, hub: Hub, *, seed: int | None, time_scale: float = 1.0) -> None:
        self.db = db
        self.hub = hub
        self.time_scale = time_scale
        self.activities = Activities("exploration", seed)
        self._runs = 0

    def duration_of(self, loc: Location) -> float:
        return loc.duration_s * self.time_scale

    def locations(self) -> list[dict[str, Any]]:
        return [{"id": loc.id, "name": loc.name, "durationSecs": _num(self.duration_of(loc)),
                 "description": loc.description, "failureChance": loc.failure_chance}
                for loc in LOCATIONS.values()]

    def describe(self, user_id: int) -> dict[str, Any] | None:
        run = self.activities.get(user_id)
        return None if run is None else run.public()

    def start(self, user_id: int, location_id: str) -> ExplorationRun:
        """Start a run (raises `Busy` when one is running, KeyError for an unknown location)."""
        loc = LOCATIONS[location_id]
        if self.activities.is_running(user_id):
            raise Busy("exploration")
        self._runs += 1
        run = ExplorationRun(loc, self.duration_of(loc), time.time(),
                             Coalesce(f"exploration:{self._runs}", _progress_merge))
        rng = self.activities.rng(user_id)
        self.activities.launch(user_id, run, lambda: self._run(user_id, run, rng))
        return run

    def _event(self, user_id: int, run: ExplorationRun, event_type: str, message: str, *,
               discovery: str | None = None, reward: dict[str, Any] | None = None,
               error: str = "", coalesce: Coalesce | None = None) -> None:
        self.hub.send_to_user(user_id, "exploration:event", {
            "userId": user_id, "eventType": event_type, "exploreName": run.location.name,
            "message": message, "progress": run.progress, "durationSecs": _num(run.duration_s),
            "elapsedSecs": round(run.elapsed_s, 1), "discovery": discovery, "reward": reward,
            "errorMsg": error, "timestamp": int(time.time())}, coalesce)

    async def _run(self, user_id: int, run: ExplorationRun, rng: random.Random) -> None:
        loc = run.location
        p = plan(rng, loc)
        pacer = Pacer(MIN_EVENT_GAP_S)
        t0 = time.monotonic()
        self._event(user_id, run, "start", f"你开始探索{loc.name}")
        pacer.sent()
        for step in range(1, STEPS + 1):
            await pacer.wait(t0 + run.duration_s * step / STEPS)
            run.elapsed_s = min(time.monotonic() - t0, run.duration_s)
            run.progress = step * 100 // STEPS
            if p.fail_at == step:
                await self._finish(user_id, run, False, p, pacer)
                return
            if step == STEPS:
                break
            self._event(user_id, run, "progress", f"探索进度 {run.progress}%", coalesce=run.coalesce)
            pacer.sent()
            for name in p.discoveries.get(step, ()):
                await pacer.wait()
                run.discoveries.append(name)
                self._event(user_id, run, "discovery", f"你发现了{name}", discovery=name)
                pacer.sent()
        run.elapsed_s = run.duration_s
        await self._finish(user_id, run, True, p, pacer)

    async def _finish(self, user_id: int, run: ExplorationRun, success: bool, p: Plan,
                      pacer: Pacer) -> None:
        loc = run.location
        await self.db.record_exploration(user_id, loc.id, success, list(run.discoveries),
                                         p.reward if success else None, "" if success else p.error,
                                         run.started_at, time.time())
        await pacer.wait()
        if success:
            items = "、".join(f"{i['name']}x{i['quantity']}" for i in p.reward["items"]) if p.reward else ""
            self._event(user_id, run, "complete", f"探索{loc.name}完成，获得{items}", reward=p.reward)
        else:
            self._event(user_id, run, "failure", f"探索{loc.name}失败", error=p.error)
        pacer.sent()
