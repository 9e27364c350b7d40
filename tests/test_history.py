"""History and positions without sockets: bounds, coalescing, replay, persistence."""

from __future__ import annotations

from pathlib import Path

import orjson

from xiuxian_realtime import protocol
from xiuxian_realtime.history import Coalesce, MemoryHistory


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def merge_spirit(old: dict, new: dict) -> dict:
    return {**new, "oldSpirit": old["oldSpirit"], "gainAmount": old["gainAmount"] + new["gainAmount"]}


SPIRIT = Coalesce("spirit", merge_spirit)


def send(h: MemoryHistory, uid: int, type_: str, data: dict, coalesce: Coalesce | None = None) -> int:
    return h.append_user(uid, type_, 1, data, protocol.encode_event(type_, uid, 1, data), coalesce)


def frames(replay) -> list[dict]:
    return [orjson.loads(f) for f in replay.frames]


def test_no_stream_no_seq() -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    assert send(h, 1, "a:b", {}) == 0  # a legacy-only user pays nothing
    h.ensure_stream(1)
    assert [send(h, 1, "a:b", {"i": i}) for i in range(3)] == [1, 2, 3]


def test_replay_exact_gap_in_order() -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    epoch = h.ensure_stream(7).epoch
    for i in range(10):
        send(h, 7, "a:b", {"i": i})
    replay = h.replay(7, epoch, 6, None)
    assert replay.recovered
    assert [(m["seq"], m["data"]["i"]) for m in frames(replay)] == [(7, 6), (8, 7), (9, 8), (10, 9)]
    assert h.replay(7, epoch, 10, None).frames == []
    assert h.replay(7, epoch, 11, None).reason == "ahead"
    assert h.replay(7, "other", 3, None).reason == "epoch_mismatch"


def test_count_bound_and_expired_gap() -> None:
    h = MemoryHistory(5, 600, 1 << 20)
    epoch = h.ensure_stream(1).epoch
    for i in range(12):
        send(h, 1, "a:b", {"i": i})
    assert h.replay(1, epoch, 6, None).reason == "history_expired"
    assert [m["seq"] for m in frames(h.replay(1, epoch, 7, None))] == [8, 9, 10, 11, 12]


def test_age_bound() -> None:
    clock = Clock()
    h = MemoryHistory(100, 60, 1 << 20, clock=clock)
    epoch = h.ensure_stream(1).epoch
    send(h, 1, "a:b", {})
    clock.t += 61
    send(h, 1, "a:b", {})
    h.expire(lambda uid: True)
    assert h.replay(1, epoch, 0, None).reason == "history_expired"
    assert [m["seq"] for m in frames(h.replay(1, epoch, 1, None))] == [2]


def test_expiry_spreads_over_calls() -> None:
    clock = Clock()
    h = MemoryHistory(100, 60, 1 << 20, clock=clock)
    for uid in range(1, 11):
        h.ensure_stream(uid)
        send(h, uid, "a:b", {})
    clock.t += 61
    h.expire(lambda uid: uid == 3, share=0.5)
    assert h.stream_count == 5
    h.expire(lambda uid: uid == 3, share=0.5)
    assert h.stream_count == 1 and h.has_stream(3) and h.total_bytes == 0


def test_state_events_coalesce_around_discrete_ones() -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    epoch = h.ensure_stream(1).epoch
    for i in range(300):
        send(h, 1, "spirit:grow", {"oldSpirit": i, "newSpirit": i + 1, "gainAmount": 1}, SPIRIT)
    send(h, 1, "dungeon:event", {"eventType": "start"})
    for i in range(300, 310):
        send(h, 1, "spirit:grow", {"oldSpirit": i, "newSpirit": i + 1, "gainAmount": 1}, SPIRIT)
    got = frames(h.replay(1, epoch, 0, None))
    # The discrete event keeps its place; the state is one cumulative update at the end.
    assert [m["type"] for m in got] == ["dungeon:event", "spirit:grow"]
    assert got[0]["seq"] == 301
    assert got[1]["data"] == {"oldSpirit": 0, "newSpirit": 310, "gainAmount": 310} and got[1]["seq"] == 311


def test_state_entries_keep_their_data_and_are_encoded_on_replay() -> None:
    """A leaderboard message per player per category sits in history: it must not cost a
    copy of its JSON each. The newest message of a category supersedes the previous one."""
    rank = Coalesce("rank:spirit", lambda old, new: new, local=True)
    top10 = [{"rank": 1, "userId": 9, "username": "lin"}]
    h = MemoryHistory(100, 600, 1 << 20)
    for uid in (1, 2):
        h.ensure_stream(uid)
        send(h, uid, "leaderboard:update", {"type": "full_refresh", "top10": top10, "userRank": {"rank": uid}}, rank)
    for uid in (1, 2):
        entry = h.ensure_stream(uid).entries[0]
        assert entry.payload is None and entry.data["top10"] is top10
    epoch = h.ensure_stream(1).epoch
    assert frames(h.replay(1, epoch, 0, None)) == [
        {"type": "leaderboard:update", "userId": 1, "timestamp": 1, "seq": 1,
         "data": {"type": "full_refresh", "top10": top10, "userRank": {"rank": 1}}}]
    send(h, 1, "dungeon:event", {"eventType": "start"})
    send(h, 1, "leaderboard:update", {"type": "rank_up", "top10": top10, "userRank": {"rank": 0}}, rank)
    got = frames(h.replay(1, epoch, 0, None))
    assert [(m["seq"], m["data"].get("type")) for m in got] == [(2, None), (3, "rank_up")]


def test_broadcasts_interleave_in_send_order() -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    epoch = h.ensure_stream(1).epoch
    send(h, 1, "a:b", {"n": 1})
    h.append_broadcast("w:x", 1, {"n": 2}, protocol.encode_event("w:x", 0, 1, {"n": 2}))
    send(h, 1, "a:b", {"n": 3})
    got = frames(h.replay(1, epoch, 0, 0))
    assert [m["data"]["n"] for m in got] == [1, 2, 3]
    assert got[1]["bseq"] == 1 and "seq" not in got[1]


def test_memory_bound_evicts_idle_histories_but_keeps_positions() -> None:
    h = MemoryHistory(1000, 600, 200_000)
    epochs = {uid: h.ensure_stream(uid).epoch for uid in range(100)}
    for round_ in range(20):
        for uid in range(100):
            send(h, uid, "a:b", {"pad": "x" * 100, "r": round_})
    assert h.total_bytes <= 200_000
    for uid in range(100):
        pos = h.position(uid)
        assert pos.seq == 20 and pos.epoch == epochs[uid]
    # The most recently written user can still resume a little; the first cannot.
    assert h.replay(99, epochs[99], 19, None).recovered
    assert h.replay(0, epochs[0], 10, None).reason == "history_expired"


def test_save_and_load_keep_epochs_and_events(tmp_path: Path) -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    epoch = h.ensure_stream(3).epoch
    for i in range(4):
        send(h, 3, "spirit:grow", {"oldSpirit": i, "newSpirit": i + 1, "gainAmount": 1}, SPIRIT)
    send(h, 3, "a:b", {"k": 1})
    h.save(tmp_path / "h.json")
    restored = MemoryHistory(100, 600, 1 << 20)
    assert restored.load(tmp_path / "h.json")
    assert not (tmp_path / "h.json").exists()
    assert restored.position(3).epoch == epoch and restored.position(3).seq == 5
    got = frames(restored.replay(3, epoch, 0, None))
    assert [m["seq"] for m in got] == [4, 5] and got[0]["data"]["newSpirit"] == 4
    assert restored.ensure_stream(4).epoch not in (epoch,)


def test_state_merges_across_discrete_events_and_keeps_them() -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    epoch = h.ensure_stream(1).epoch
    for i in range(10):
        send(h, 1, "spirit:grow", {"oldSpirit": i, "newSpirit": i + 1, "gainAmount": 1}, SPIRIT)
        if i % 3 == 0:
            send(h, 1, "leaderboard:update", {"n": i})
    got = frames(h.replay(1, epoch, 0, None))
    assert [m["type"] for m in got].count("spirit:grow") == 1
    assert [m["data"]["n"] for m in got if m["type"] == "leaderboard:update"] == [0, 3, 6, 9]
    spirit = next(m for m in got if m["type"] == "spirit:grow")
    assert spirit["data"] == {"oldSpirit": 0, "newSpirit": 10, "gainAmount": 10}
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs) and seqs[-1] == h.position(1).seq


def test_seal_stops_merging_into_what_was_delivered() -> None:
    h = MemoryHistory(100, 600, 1 << 20)
    epoch = h.ensure_stream(1).epoch
    send(h, 1, "spirit:grow", {"oldSpirit": 0, "newSpirit": 1, "gainAmount": 1}, SPIRIT)
    h.seal(1)  # the client disconnects having seen seq 1
    send(h, 1, "spirit:grow", {"oldSpirit": 1, "newSpirit": 2, "gainAmount": 1}, SPIRIT)
    send(h, 1, "spirit:grow", {"oldSpirit": 2, "newSpirit": 3, "gainAmount": 1}, SPIRIT)
    got = frames(h.replay(1, epoch, 1, None))
    assert [m["data"] for m in got] == [{"oldSpirit": 1, "newSpirit": 3, "gainAmount": 2}]


def test_evicted_state_entry_is_not_merged_into() -> None:
    h = MemoryHistory(3, 600, 1 << 20)
    epoch = h.ensure_stream(1).epoch
    send(h, 1, "spirit:grow", {"oldSpirit": 0, "newSpirit": 1, "gainAmount": 1}, SPIRIT)
    for n in range(3):
        send(h, 1, "leaderboard:update", {"n": n})
    send(h, 1, "spirit:grow", {"oldSpirit": 1, "newSpirit": 2, "gainAmount": 1}, SPIRIT)
    # seq 1 (spirit) and seq 2 (n=0) were evicted: resuming from 0 cannot be covered.
    assert h.replay(1, epoch, 0, None).reason == "history_expired"
