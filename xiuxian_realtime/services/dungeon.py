"""Dungeons: a turn-based combat run in the background, one per player at a time.

Events (`dungeon:event`): `start`, one `combat_round` per round, then `victory` (with
loot) or `defeat`, and after some victories a `treasure` (extra loot). Successive events
are at least `DUNGEON_EVENT_INTERVAL_MS` apart (never less than 100 ms, the original's
spacing). The outcome depends on the player's level and power and a random source seeded
from `GAME_SEED`, the player and their run number. Loot, the run and the power gained are
persisted in one transaction before `victory` is sent.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..hub import Hub
from ..storage.db import Database
from .activities import Activities, Busy, Pacer
from .players import PlayerCard, Players

log = logging.getLogger("xiuxian.dungeon")

MIN_EVENT_GAP_S = 0.1
MAX_ROUNDS = 30


@dataclass(frozen=True)
class Dungeon:
    id: str
    name: str
    enemy: str
    enemy_hp: int
    enemy_attack: int
    min_level: int
    power_gain: int
    loot: tuple[tuple[str, int, int, float], ...]  # (item, min qty, max qty, chance)
    treasure_chance: float
    treasure: tuple[tuple[str, int, int], ...]  # (item, min qty, max qty), one is picked

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "enemy": self.enemy, "enemyHp": self.enemy_hp,
                "enemyAttack": self.enemy_attack, "minLevel": self.min_level}


DUNGEONS: dict[str, Dungeon] = {d.id: d for d in (
    Dungeon("bamboo_forest", "青竹林", "青鳞狼妖", 60, 6, 1, 1,
            (("灵草", 1, 3, 0.9), ("狼牙", 1, 2, 0.6), ("下品灵石", 1, 5, 0.8)),
            0.35, (("聚气丹", 1, 2), ("青竹剑", 1, 1))),
    Dungeon("blood_cave", "血煞洞窟", "血煞魔将", 160, 12, 1, 3,
            (("血煞晶", 1, 2, 0.8), ("中品灵石", 1, 3, 0.7), ("妖丹", 1, 1, 0.4)),
            0.3, (("筑基丹", 1, 1), ("血玉护符", 1, 1))),
    Dungeon("dragon_abyss", "龙渊秘境", "蛟龙残魂", 600, 30, 1, 10,
            (("龙鳞", 1, 2, 0.9), ("上品灵石", 1, 2, 0.8)),
            0.5, (("龙元果", 1, 1),)),
)}
DEFAULT_DUNGEON = "bamboo_forest"


@dataclass
class DungeonRun:
    """The state of a running dungeon, as the snapshot shows it."""

    dungeon: Dungeon
    started_at: float
    player_hp: int
    enemy_hp: int
    round: int = 0
    status: str = "start"
    loot: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"dungeon": self.dungeon.id, "name": self.dungeon.name, "status": self.status,
                "roundNum": self.round, "playerHp": self.player_hp, "enemyHp": self.enemy_hp,
                "startedAt": int(self.started_at * 1000)}


def player_stats(card: PlayerCard) -> tuple[int, int]:
    """(max HP, attack) from level and power."""
    return 80 + 20 * card.level, max(1, card.power)


@dataclass
class Round:
    num: int
    dealt: int
    taken: int
    player_hp: int
    enemy_hp: int
    crit: bool
    dodged: bool


def fight(rng: random.Random, card: PlayerCard, dungeon: Dungeon) -> list[Round]:
    """The whole combat, decided up front from the random source."""
    hp, attack = player_stats(card)
    enemy_hp = dungeon.enemy_hp
    rounds: list[Round] = []
    for num in range(1, MAX_ROUNDS + 1):
        crit = rng.random() < 0.15
        dealt = max(1, round(attack * rng.uniform(0.8, 1.2) * (2 if crit else 1)))
        enemy_hp = max(0, enemy_hp - dealt)
        dodged = False
        taken = 0
        if enemy_hp > 0:
            dodged = rng.random() < 0.1
            taken = 0 if dodged else max(1, round(dungeon.enemy_attack * rng.uniform(0.7, 1.3)))
            hp = max(0, hp - taken)
        rounds.append(Round(num, dealt, taken, hp, enemy_hp, crit, dodged))
        if enemy_hp == 0 or hp == 0:
            break
    return rounds


def roll_loot(rng: random.Random, dungeon: Dungeon) -> list[dict[str, Any]]:
    loot = []
    for item, low, high, chance in dungeon.loot:
        if rng.random() < chance:
            loot.append({"name": item, "quantity": rng.randint(low, high)})
    return loot


class DungeonService:
    def __init__(self, db: Database, hub: Hub, players: Players, *, seed: int | None,
                 event_interval_s: float = 0.5) -> None:
        self.db = db
        self.hub = hub
        self.players = players
        self.event_interval_s = max(MIN_EVENT_GAP_S, event_interval_s)
        self.activities = Activities("dungeon", seed)

    def describe(self, user_id: int) -> dict[str, Any] | None:
        run = self.activities.get(user_id)
        return None if run is None else run.public()

    def start(self, user_id: int, card: PlayerCard, dungeon_id: str | None = None) -> DungeonRun:
        """Start a run (raises `Busy` when one is running, KeyError for an unknown dungeon)."""
        dungeon = DUNGEONS[dungeon_id or DEFAULT_DUNGEON]
        if self.activities.is_running(user_id):
            raise Busy("dungeon")
        hp, _ = player_stats(card)
        run = DungeonRun(dungeon, time.time(), hp, dungeon.enemy_hp)
        rng = self.activities.rng(user_id)
        self.activities.launch(user_id, run, lambda: self._run(user_id, card, run, rng))
        return run

    def _event(self, user_id: int, run: DungeonRun, event_type: str, message: str, *,
               round_: Round | None = None, loot: list[dict[str, Any]] | None = None) -> None:
        self.hub.send_to_user(user_id, "dungeon:event", {
            "userId": user_id, "eventType": event_type, "dungeon": run.dungeon.name,
            "message": message, "roundNum": round_.num if round_ else run.round,
            "playerHp": run.player_hp, "enemyHp": run.enemy_hp,
            "damageDealt": round_.dealt if round_ else 0, "damageTaken": round_.taken if round_ else 0,
            "loot": loot, "timestamp": int(time.time())})

    async def _run(self, user_id: int, card: PlayerCard, run: DungeonRun, rng: random.Random) -> None:
        dungeon = run.dungeon
        pacer = Pacer(self.event_interval_s)
        rounds = fight(rng, card, dungeon)
        self._event(user_id, run, "start", f"你踏入{dungeon.name}，{dungeon.enemy}拦住了去路")
        pacer.sent()
        for r in rounds:
            await pacer.wait()
            run.round, run.player_hp, run.enemy_hp, run.status = r.num, r.player_hp, r.enemy_hp, "combat"
            text = f"第{r.num}回合：你{'暴击' if r.crit else '攻击'}造成{r.dealt}点伤害"
            text += "，闪避了反击" if r.dodged else (f"，受到{r.taken}点伤害" if r.taken else "")
            self._event(user_id, run, "combat_round", text, round_=r)
            pacer.sent()
        victory = rounds[-1].enemy_hp == 0
        loot = roll_loot(rng, dungeon) if victory else []
        treasure: list[dict[str, Any]] = []
        if victory and rng.random() < dungeon.treasure_chance:
            item, low, high = rng.choice(dungeon.treasure)
            treasure = [{"name": item, "quantity": rng.randint(low, high)}]
        power_gain = dungeon.power_gain if victory else 0
        await pacer.wait()
        power = await self.db.record_dungeon(user_id, dungeon.id, victory, len(rounds), loot + treasure,
                                             power_gain, run.started_at, time.time())
        if power is not None and power_gain:
            live = self.players.get(user_id)
            if live is not None:
                live.power = power
                self.players.changed(live)
        await pacer.wait()
        if victory:
            run.status, run.loot = "victory", loot
            self._event(user_id, run, "victory", f"你击败了{dungeon.enemy}，战力+{power_gain}", loot=loot)
        else:
            run.status = "defeat"
            reason = "你力竭倒下" if run.player_hp == 0 else "久战不下，你被迫撤退"
            self._event(user_id, run, "defeat", f"{reason}，{dungeon.enemy}仍盘踞在{dungeon.name}")
        pacer.sent()
        if treasure:
            await pacer.wait()
            run.status = "treasure"
            self._event(user_id, run, "treasure", f"你在{dungeon.name}深处发现了宝箱", loot=treasure)
            pacer.sent()
