"""Stream positions and bounded history, for resume after a reconnect (protocol v2).

Each user has a stream: an epoch, a sequence counter and the recent events. Broadcasts
have one stream of their own. A client that reconnects with its last position gets what
it missed, or is told to resync when the gap is no longer covered.

A user's stream is created when they first connect with v2: legacy clients cannot resume,
so a server full of them pays nothing for history. This module is the in-memory
implementation; a Redis one (several nodes) implements the same methods.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import orjson

from . import protocol

# Rough per-entry overhead (entry object, list slot, dict refs) added to the payload
# length, so the byte budget tracks real memory rather than JSON length alone.
ENTRY_OVERHEAD = 160


class Coalesce(NamedTuple):
    """How a state-like event merges into the one before it in history.

    `key` identifies what the state is about (e.g. "spirit" or "exploration:<name>");
    `merge(older, newer)` returns the cumulative data. Live delivery is never merged.

    `local` marks state pushed by the node that holds the user's connections, for those
    connections (spirit ticks, leaderboard ranks): in a cluster it is sent by that node
    only, unsequenced, and never crosses Redis. State produced wherever an API call
    landed (an exploration's progress) must not be local, or a player connected to
    another node would never see it.
    """

    key: str
    merge: Callable[[dict, dict], dict]
    local: bool = False


class Entry:
    """One event in a stream.

    A discrete event keeps its encoded `payload`. A state event keeps its `data` instead
    and is encoded only if it is ever replayed: most never are, and the data is smaller
    than the JSON (a leaderboard message shares its top-10 list with every other player's).
    """

    __slots__ = ("seq", "first_seq", "order", "t", "ts", "type", "data", "payload", "coalesce", "size",
                 "dead")

    def __init__(self, seq: int, order: int, t: float, ts: int, type_: str, data: Any,
                 payload: bytes | None, coalesce: Coalesce | None, size: int) -> None:
        self.seq = seq
        self.first_seq = seq
        self.order = order
        self.t = t
        self.ts = ts
        self.type = type_
        self.data = data
        self.payload = protocol.compact(payload) if payload is not None else None
        self.coalesce = coalesce
        self.size = size + ENTRY_OVERHEAD
        # Superseded by a later merged entry: kept as a placeholder, never replayed.
        self.dead = False


class Stream:
    __slots__ = ("epoch", "seq", "entries", "bytes", "open_state")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.seq = 0
        # A list rather than a deque: an empty deque costs 600 bytes, a few entries in a
        # list about 100, and streams hold a few entries each. Dropping from the head is
        # a short memmove (at most HISTORY_MAX_EVENTS pointers).
        self.entries: list[Entry] = []
        self.bytes = 0
        # The latest state entry per coalesce key that later ones may still merge into.
        self.open_state: dict[str, Entry] = {}


@dataclass(frozen=True, slots=True)
class Position:
    epoch: str
    seq: int
    bseq: int


@dataclass(frozen=True, slots=True)
class Replay:
    """The outcome of a resume request: events to send, or the reason to resync."""

    recovered: bool
    frames: list[bytes]
    reason: str | None = None


class MemoryHistory:
    def __init__(self, max_events: int, max_age_s: float, max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._clock = clock
        # Changes on every start: positions from a previous process are refused.
        self.node_epoch = os.urandom(4).hex()
        self._generation = itertools.count(1)
        self._order = itertools.count(1)
        # Least recently written first, so the byte budget evicts the idlest histories.
        self._streams: OrderedDict[int, Stream] = OrderedDict()
        self._broadcast = Stream(f"{self.node_epoch}.b")
        self.total_bytes = 0
        # Users whose streams the current expiry pass has still to visit, so many per call.
        self._to_expire: list[int] = []
        self._expire_step = 1

    # -- positions ---------------------------------------------------------------------

    def ensure_stream(self, user_id: int) -> Stream:
        stream = self._streams.get(user_id)
        if stream is None:
            stream = Stream(f"{self.node_epoch}.{next(self._generation)}")
            self._streams[user_id] = stream
        return stream

    def has_stream(self, user_id: int) -> bool:
        return user_id in self._streams

    def position(self, user_id: int) -> Position:
        stream = self.ensure_stream(user_id)
        return Position(stream.epoch, stream.seq, self._broadcast.seq)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    # -- appending ---------------------------------------------------------------------

    def append_user(self, user_id: int, type_: str, ts: int, data: Any, payload: bytes,
                    coalesce: Coalesce | None = None) -> int:
        """Record an event for a user; return its seq, or 0 if the user has no stream."""
        stream = self._streams.get(user_id)
        if stream is None:
            return 0
        self._streams.move_to_end(user_id)
        return self._append(stream, type_, ts, data, payload, coalesce)

    def seal(self, user_id: int) -> None:
        """Stop later events from merging into the user's last entry.

        Called when one of the user's connections comes or goes: what was delivered live
        up to here must not be folded into what the client is about to miss, or a resume
        from the last seq it saw would replay part of what it already has.
        """
        stream = self._streams.get(user_id)
        if stream is not None:
            stream.open_state.clear()

    def append_broadcast(self, type_: str, ts: int, data: Any, payload: bytes) -> int:
        return self._append(self._broadcast, type_, ts, data, payload, None)

    def _append(self, stream: Stream, type_: str, ts: int, data: Any, payload: bytes,
                coalesce: Coalesce | None) -> int:
        stream.seq += 1
        seq = stream.seq
        now = self._clock()
        entries = stream.entries
        if coalesce is not None:
            previous = stream.open_state.get(coalesce.key)
            if previous is not None and previous.type == type_ and not previous.dead:
                merged = coalesce.merge(previous.data, data)
                if previous is entries[-1]:
                    # Merge in place: the common case, a state event following its own kind.
                    previous.data, previous.payload = merged, None
                    previous.seq, previous.order, previous.t, previous.ts = seq, next(self._order), now, ts
                    return seq
                # Discrete events came in between: they keep their place, the state moves
                # to the end as one cumulative entry, and the old one becomes a placeholder.
                previous.dead, previous.data, previous.payload = True, None, None
                entry = Entry(seq, next(self._order), now, ts, type_, merged, None, coalesce, len(payload))
                entry.first_seq = previous.first_seq
            else:
                entry = Entry(seq, next(self._order), now, ts, type_, data, None, coalesce, len(payload))
            stream.open_state[coalesce.key] = entry
        else:
            entry = Entry(seq, next(self._order), now, ts, type_, None, payload, None, len(payload))
        entries.append(entry)
        stream.bytes += entry.size
        self.total_bytes += entry.size
        if len(entries) > self.max_events:
            self._drop_head(stream)
        if self.total_bytes > self.max_bytes:
            self._enforce_budget(stream)
        return seq

    def _drop_head(self, stream: Stream, count: int = 1) -> None:
        entries = stream.entries
        for entry in entries[:count]:
            stream.bytes -= entry.size
            self.total_bytes -= entry.size
            if entry.coalesce is not None and stream.open_state.get(entry.coalesce.key) is entry:
                # Gone from history: nothing may merge into it and claim its range.
                del stream.open_state[entry.coalesce.key]
        del entries[:count]

    def _enforce_budget(self, keep: Stream) -> None:
        # Clear whole histories, least recently written first. The stream header (epoch,
        # seq) stays, so a connected client's positions remain valid; a resume into the
        # cleared range gets a resync.
        cleared: list[int] = []
        for user_id, stream in self._streams.items():
            if self.total_bytes <= self.max_bytes:
                break
            if stream is keep or not stream.entries:
                continue
            self.total_bytes -= stream.bytes
            stream.entries.clear()
            stream.open_state.clear()
            stream.bytes = 0
            cleared.append(user_id)
        # Emptied streams go to the back: the next eviction starts at one that has entries.
        for user_id in cleared:
            self._streams.move_to_end(user_id)
        while self.total_bytes > self.max_bytes and keep.entries:
            self._drop_head(keep)

    def expire(self, is_connected: Callable[[int], bool], share: float = 1.0) -> None:
        """Drop events older than the age limit; forget idle streams of absent users.

        Each call handles `share` of the streams, continuing where the previous call
        stopped: the hub's sweeper calls it every second with a tenth, because one pass
        over 10,000 streams is a ~20 ms stall that every message would wait behind.
        """
        horizon = self._clock() - self.max_age_s
        if not self._to_expire:
            self._to_expire = list(self._streams)
            self._expire_step = max(1, math.ceil(len(self._to_expire) * share))
            self._drop_older(self._broadcast, horizon)
        batch = self._to_expire[-self._expire_step:]
        del self._to_expire[-self._expire_step:]
        streams = self._streams
        for user_id in batch:
            stream = streams.get(user_id)
            if stream is None:
                continue
            self._drop_older(stream, horizon)
            # A stream whose last write is older than the age limit and whose user is
            # gone holds nothing replayable: forget it. Its next stream gets a new epoch.
            if not stream.entries and not is_connected(user_id):
                del streams[user_id]

    def _drop_older(self, stream: Stream, horizon: float) -> None:
        entries = stream.entries
        old = 0
        while old < len(entries) and entries[old].t < horizon:
            old += 1
        if old:
            self._drop_head(stream, old)

    # -- replay ------------------------------------------------------------------------

    def replay(self, user_id: int, epoch: str | None, since: int, bsince: int | None) -> Replay:
        stream = self.ensure_stream(user_id)
        if epoch != stream.epoch:
            return Replay(False, [], "epoch_mismatch")
        user_entries = self._missed(stream, since)
        if isinstance(user_entries, str):
            return Replay(False, [], user_entries)
        broadcast_entries: list[Entry] = []
        if bsince is not None:
            missed = self._missed(self._broadcast, bsince)
            if isinstance(missed, str):
                return Replay(False, [], missed)
            broadcast_entries = missed
        frames: list[tuple[int, bytes]] = []
        for entry in user_entries:
            frames.append((entry.order, self._frame(entry, user_id, b"seq")))
        for entry in broadcast_entries:
            frames.append((entry.order, self._frame(entry, 0, b"bseq")))
        frames.sort(key=lambda pair: pair[0])
        return Replay(True, [frame for _, frame in frames])

    def _missed(self, stream: Stream, since: int) -> list[Entry] | str:
        if since > stream.seq:
            return "ahead"
        if since == stream.seq:
            return []
        entries = stream.entries
        if not entries or entries[0].first_seq > since + 1:
            return "history_expired"
        return [e for e in entries if e.seq > since and not e.dead]

    @classmethod
    def _frame(cls, entry: Entry, user_id: int, field: bytes) -> bytes:
        return protocol.with_position(cls._payload(entry, user_id), field, entry.seq)

    @staticmethod
    def _payload(entry: Entry, user_id: int) -> bytes:
        """The legacy envelope of an entry; merged entries are encoded on first need."""
        if entry.payload is None:
            entry.payload = protocol.compact(protocol.encode_event(entry.type, user_id, entry.ts, entry.data))
        return entry.payload

    # -- surviving a graceful restart -------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write every stream to `path` (on graceful shutdown).

        A restart that reloads it keeps the epochs, so clients resume instead of
        resyncing. Merged entries are written encoded; they no longer merge after load.
        """
        now = self._clock()

        def dump(stream: Stream, user_id: int) -> dict[str, Any]:
            return {"epoch": stream.epoch, "seq": stream.seq, "entries": [
                [e.seq, e.first_seq, e.order, now - e.t, e.ts, e.type,
                 self._payload(e, user_id).decode()] for e in stream.entries if not e.dead]}

        state = {
            "node_epoch": self.node_epoch,
            "generation": next(self._generation),
            "order": next(self._order),
            "broadcast": dump(self._broadcast, 0),
            "users": {str(uid): dump(stream, uid) for uid, stream in self._streams.items()},
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(state))
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        """Restore what `save` wrote, then delete the file.

        Deleting it means a later crash (which cannot save) starts with a new epoch
        instead of an outdated history.
        """
        if not path.exists():
            return False
        try:
            state = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            path.unlink(missing_ok=True)
            return False
        path.unlink()
        now = self._clock()

        def restore(raw: dict[str, Any]) -> Stream:
            stream = Stream(raw["epoch"])
            stream.seq = raw["seq"]
            for seq, first_seq, order, age, ts, type_, payload in raw["entries"]:
                encoded = payload.encode()
                entry = Entry(seq, order, now - age, ts, type_, None, encoded, None, len(encoded))
                entry.first_seq = first_seq
                stream.entries.append(entry)
                stream.bytes += entry.size
            self.total_bytes += stream.bytes
            return stream

        self.node_epoch = state["node_epoch"]
        self._generation = itertools.count(state["generation"])
        self._order = itertools.count(state["order"])
        self._broadcast = restore(state["broadcast"])
        self._streams = OrderedDict((int(uid), restore(raw)) for uid, raw in state["users"].items())
        return True
