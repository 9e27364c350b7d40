"""The wire protocol's rules, free of I/O.

Everything a connection decides about bytes lives here as plain functions: parsing the
`/ws` query, checking an Origin, encoding envelopes, classifying inbound frames. The
transport and the hub call them; tests call them directly. `docs/protocol.md` is the
prose version of this module and must say the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


class CloseCode(IntEnum):
    """Close codes. 4000-4099: reconnect. 4100-4199: terminal, don't retry as is."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL_ERROR = 1011
    HEARTBEAT_TIMEOUT = 4000
    SLOW_CONSUMER = 4001
    INVALID_TOKEN = 4100
    USER_MISMATCH = 4101
    ORIGIN_NOT_ALLOWED = 4102
    REPLACED = 4103
    MESSAGE_TOO_BIG = 4104
    BINARY_NOT_ACCEPTED = 4105
    RATE_LIMITED = 4106


def is_terminal(code: int) -> bool:
    return 4100 <= code <= 4199


EVENT_TYPE_RE = re.compile(r"^[a-z0-9_]+:[a-z0-9_]+$")
PROTOCOL_TYPES = frozenset({"welcome", "pong", "resync"})


def valid_event_type(value: str) -> bool:
    return bool(EVENT_TYPE_RE.fullmatch(value))


class BadRequest(Exception):
    """The upgrade request is malformed: answered with HTTP 400 before the upgrade."""


@dataclass(frozen=True, slots=True)
class WsParams:
    user_id: int
    token: str
    v2: bool
    since: int | None
    bsince: int | None
    epoch: str | None


def _uint(name: str, raw: str) -> int:
    if not raw.isdigit() or not raw.isascii():
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw)


def parse_ws_query(query: str) -> WsParams:
    """Validate `/ws?userId=&token=[&v=2&since=&bsince=&epoch=]` as the original does."""
    q = parse_qs(query, keep_blank_values=True)

    def one(name: str) -> str | None:
        values = q.get(name)
        return values[0] if values else None

    user_raw, token = one("userId"), one("token")
    if not user_raw or not token:
        raise BadRequest("userId and token are required")
    user_id = _uint("userId", user_raw)
    v = one("v")
    if v not in (None, "", "1", "2"):
        raise BadRequest("v must be 2 (or absent for the legacy protocol)")
    v2 = v == "2"
    since_raw, bsince_raw = one("since"), one("bsince")
    since = _uint("since", since_raw) if since_raw not in (None, "") else None
    bsince = _uint("bsince", bsince_raw) if bsince_raw not in (None, "") else None
    epoch = one("epoch") or None
    return WsParams(user_id, token, v2, since, bsince, epoch)


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def origin_allowed(origin: str | None, host_header: str | None, allow_list: list[str]) -> bool:
    """Browsers always send Origin; a missing one is a non-browser client and passes.

    With an explicit allow-list only those origins (or "*") pass. Without one, the
    server's own host (the demo page) and localhost pass, so a dev setup just works
    while a page on another site cannot ride a player's token.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if allow_list:
        return "*" in allow_list or origin in allow_list
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    hostname = parts.hostname
    if hostname in _LOCAL_HOSTS or f"[{hostname}]" in _LOCAL_HOSTS:
        return True
    return host_header is not None and parts.netloc.lower() == host_header.lower()


# -- The upgrade request ---------------------------------------------------------------

_CONNECTION_HEADER = re.compile(rb"^connection:([^\r\n]*)", re.MULTILINE | re.IGNORECASE)
_UPGRADE_WEBSOCKET = re.compile(rb"^upgrade:[ \t]*websocket[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)


def _lists_upgrade(value: bytes) -> bool:
    return any(token.strip().lower() == b"upgrade" for token in value.split(b","))


def is_ws_upgrade(head: bytes) -> bool:
    """Whether a request head asks for WebSocket by uvicorn's rule: `Connection` lists
    `upgrade` and `Upgrade` is `websocket`."""
    if _UPGRADE_WEBSOCKET.search(head) is None:
        return False
    return any(_lists_upgrade(m.group(1)) for m in _CONNECTION_HEADER.finditer(head))


def with_plain_connection_upgrade(head: bytes) -> bytes:
    """Rewrite `Connection: keep-alive, Upgrade` to `Connection: Upgrade`.

    RFC 6455 lets the header be a list and Firefox sends one, but picows accepts only
    the single token. Only a list that contains `upgrade` is rewritten.
    """
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return head

    def plain(m: re.Match[bytes]) -> bytes:
        return b"Connection: Upgrade" if _lists_upgrade(m.group(1)) else m.group(0)

    return _CONNECTION_HEADER.sub(plain, head[:end]) + head[end:]


# -- Encoding -------------------------------------------------------------------------

_dumps = orjson.dumps


def encode_event(type_: str, user_id: int, timestamp: int, data: Any) -> bytes:
    """The original envelope, exactly as a legacy client expects it."""
    return _dumps({"type": type_, "userId": user_id, "timestamp": timestamp, "data": data})


def compact(payload: bytes) -> bytes:
    """The same bytes in an allocation of their own length, for payloads that are kept.

    orjson returns bytes that keep its whole output buffer: at least 4 KiB each, 16 KiB
    for a 1 KiB leaderboard (measured with orjson 3.13). Harmless for a frame that is sent
    and dropped; in history it was most of the memory a v2 player cost.
    """
    return bytes(memoryview(payload))


def with_position(payload: bytes, field: bytes, position: int) -> bytes:
    """Add `"seq":N` (or `"bseq":N`) to an encoded envelope without re-encoding it.

    The legacy payload is encoded once per message; a v2 connection gets the same
    bytes with the position spliced before the closing brace.
    """
    return b"%b,\"%b\":%d}" % (payload[:-1], field, position)


def encode_pong(user_id: int, client_time: Any, held_ms: int, now: float) -> bytes:
    """A v2 `pong`: echoes the ping's timestamp and says how long the server held it.

    A pong may wait for the next frame to the same connection (see `Hub.ping`), so the
    round-trip time a client can compute is `now - clientTime - heldMs`.
    """
    return _dumps({"type": "pong", "userId": user_id, "timestamp": int(now),
                   "data": {"serverTime": int(now * 1000), "clientTime": client_time,
                            "heldMs": held_ms}})


def text_frames(first: bytes, second: bytes) -> bytes:
    """Two unmasked server-to-client text frames (RFC 6455, 5.2) as one buffer.

    For writing a held pong together with the frame it rides on, in one send call.
    """
    return frame_header(len(first)) + first + frame_header(len(second)) + second


def frame_header(size: int) -> bytes:
    """The header of an unmasked, unfragmented server-to-client text frame of `size` bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


# -- Inbound --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    client_time: Any


class Ignored:
    """A frame that is well-formed WebSocket but means nothing to us (counted)."""


IGNORED = Ignored()


def parse_client_text(payload: bytes) -> Ping | Ignored:
    """Classify one inbound text frame.

    Only `ping` has a meaning today. Anything else is ignored and counted rather than
    closing the connection, so a newer client talking to an older server stays connected.
    """
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return IGNORED
    if type(msg) is not dict or msg.get("type") != "ping":
        return IGNORED
    return Ping(msg.get("timestamp"))
