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
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from . import protocol

# Rough per-entry overhead (entry object, deque slot, dict refs) added to the payload
# length, so the byte budget tracks real memory rather than JSON length alone.
ENTRY_OVERHEAD = 160


class Coalesce(NamedTuple):
    """How a state-like event merges into the one before it in history.

    `key` identifies what the state is about (e.g. "spirit" or "exploration:<name>");
    `merge(older, newer)` returns the cumulative data. Live delivery is never merged.
    """

    key: str
    merge: Callable[[dict, dict], dict]


class Entry:
    __slots__ = ("seq", "first_seq", "order", "t", "ts", "type", "data", "payload", "coalesce", "size")

    def __init__(self, seq: int, order: int, t: float, ts: int, type_: str, data: Any,
                 payload: bytes | None, coalesce: Coalesce | None) -> None:
        self.seq = seq
        self.first_seq = seq
        self.order = order
        self.t = t
        self.ts = ts
        self.type = type_
        self.data = data
        self.payload = payload
        self.coalesce = coalesce
        self.size = (len(payload) if payload else 256) + ENTRY_OVERHEAD


class Stream:
    __slots__ = ("epoch", "seq", "entries", "bytes")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.seq = 0
        self.entries: deque[Entry] = deque()
        self.bytes = 0


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
        if stream is not None and stream.entries:
            stream.entries[-1].coalesce = None

    def append_broadcast(self, type_: str, ts: int, data: Any, payload: bytes) -> int:
        return self._append(self._broadcast, type_, ts, data, payload, None)

    def _append(self, stream: Stream, type_: str, ts: int, data: Any, payload: bytes,
                coalesce: Coalesce | None) -> int:
        stream.seq += 1
        seq = stream.seq
        now = self._clock()
        entries = stream.entries
        if coalesce is not None and entries:
            last = entries[-1]
            if last.coalesce is not None and last.coalesce.key == coalesce.key and last.type == type_:
                # Merge into the previous state event instead of growing history.
                last.data = coalesce.merge(last.data, data)
                last.payload = None
                last.seq = seq
                last.order = next(self._order)
                last.t = now
                last.ts = ts
                return seq
        entry = Entry(seq, next(self._order), now, ts, type_, data if coalesce else None,
                      payload, coalesce)
        entries.append(entry)
        stream.bytes += entry.size
        self.total_bytes += entry.size
        if len(entries) > self.max_events:
            self._drop_head(stream)
        if self.total_bytes > self.max_bytes:
            self._enforce_budget(stream)
        return seq

    def _drop_head(self, stream: Stream) -> None:
        entry = stream.entries.popleft()
        stream.bytes -= entry.size
        self.total_bytes -= entry.size

    def _enforce_budget(self, keep: Stream) -> None:
        # Clear whole histories, least recently written first. The stream header (epoch,
        # seq) stays, so a connected client's positions remain valid; a resume into the
        # cleared range gets a resync.
        for stream in list(self._streams.values()):
            if self.total_bytes <= self.max_bytes:
                return
            if stream is keep or not stream.entries:
                continue
            self.total_bytes -= stream.bytes
            stream.entries.clear()
            stream.bytes = 0
        while self.total_bytes > self.max_bytes and keep.entries:
            self._drop_head(keep)

    def expire(self, is_connected: Callable[[int], bool]) -> None:
        """Drop events older than the age limit; forget idle streams of absent users.

        Called by the hub's sweeper about once a second.
        """
        horizon = self._clock() - self.max_age_s
        for stream in (self._broadcast, *self._streams.values()):
            entries = stream.entries
            while entries and entries[0].t < horizon:
                self._drop_head(stream)
        # A stream whose last write is older than the age limit and whose user is gone
        # holds nothing replayable: forget it. Its next stream gets a new epoch.
        for user_id, stream in list(self._streams.items()):
            if stream.entries or is_connected(user_id):
                continue
            del self._streams[user_id]

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
        return [e for e in entries if e.seq > since]

    @staticmethod
    def _frame(entry: Entry, user_id: int, field: bytes) -> bytes:
        payload = entry.payload
        if payload is None:
            payload = protocol.encode_event(entry.type, user_id, entry.ts, entry.data)
            entry.payload = payload
        return protocol.with_position(payload, field, entry.seq)
