"""The protocol rules, without sockets."""

from __future__ import annotations

import orjson
import pytest

from xiuxian_realtime import protocol
from xiuxian_realtime.protocol import BadRequest, CloseCode


def test_query_legacy_and_v2() -> None:
    p = protocol.parse_ws_query("userId=42&token=abc")
    assert (p.user_id, p.token, p.v2, p.since, p.epoch) == (42, "abc", False, None, None)
    p = protocol.parse_ws_query("userId=7&token=t&v=2&since=10&bsince=3&epoch=e.1")
    assert (p.v2, p.since, p.bsince, p.epoch) == (True, 10, 3, "e.1")


@pytest.mark.parametrize("query", [
    "", "userId=1", "token=x", "userId=&token=x", "userId=abc&token=x", "userId=-1&token=x",
    "userId=1.5&token=x", "userId=١&token=x", "userId=1&token=x&v=3", "userId=1&token=x&v=2&since=-2",
])
def test_query_rejects(query: str) -> None:
    with pytest.raises(BadRequest):
        protocol.parse_ws_query(query)


def test_origin_rules() -> None:
    allowed = protocol.origin_allowed
    assert allowed(None, "game:3000", [])
    assert allowed("http://localhost:5173", "game:3000", [])
    assert allowed("http://127.0.0.1:3000", "127.0.0.1:3000", [])
    assert allowed("https://game.example:3000", "game.example:3000", [])
    assert not allowed("https://evil.example", "game.example:3000", [])
    assert not allowed("null", "game.example:3000", [])
    assert allowed("https://a.example", "x", ["https://a.example"])
    assert not allowed("http://localhost:1", "x", ["https://a.example"])
    assert allowed("https://b.example", "x", ["*"])


def test_position_spliced_into_encoded_envelope() -> None:
    payload = protocol.encode_event("spirit:grow", 3, 100, {"a": 1})
    assert orjson.loads(payload) == {"type": "spirit:grow", "userId": 3, "timestamp": 100, "data": {"a": 1}}
    v2 = protocol.with_position(payload, b"seq", 17)
    assert orjson.loads(v2) == {"type": "spirit:grow", "userId": 3, "timestamp": 100, "data": {"a": 1}, "seq": 17}


def test_inbound_classification() -> None:
    ping = protocol.parse_client_text(b'{"type":"ping","timestamp":5}')
    assert isinstance(ping, protocol.Ping) and ping.client_time == 5
    for junk in (b"not json", b"[1,2]", b'{"type":"dance"}', b'"ping"', b"{}"):
        assert protocol.parse_client_text(junk) is protocol.IGNORED


def test_close_code_ranges() -> None:
    reconnect = [CloseCode.HEARTBEAT_TIMEOUT, CloseCode.SLOW_CONSUMER, CloseCode.GOING_AWAY]
    terminal = [CloseCode.INVALID_TOKEN, CloseCode.USER_MISMATCH, CloseCode.ORIGIN_NOT_ALLOWED,
                CloseCode.REPLACED, CloseCode.MESSAGE_TOO_BIG, CloseCode.BINARY_NOT_ACCEPTED,
                CloseCode.RATE_LIMITED]
    assert not any(protocol.is_terminal(c) for c in reconnect)
    assert all(protocol.is_terminal(c) for c in terminal)


def test_event_types() -> None:
    assert protocol.valid_event_type("spirit:grow")
    assert protocol.valid_event_type("guild_war:round_2")
    for bad in ("Spirit:grow", "spirit", "a:b:c", "a :b", "", "welcome"):
        assert not protocol.valid_event_type(bad)


def test_front_recognises_websocket_upgrades_as_uvicorn_does() -> None:
    from xiuxian_realtime.protocol import is_ws_upgrade

    line = b"GET /ws?userId=1&token=x HTTP/1.1\r\nHost: h\r\n"
    assert is_ws_upgrade(line + b"Upgrade: websocket\r\nConnection: Upgrade")
    assert is_ws_upgrade(line + b"connection: keep-alive, upgrade\r\nUPGRADE:WebSocket ")
    assert not is_ws_upgrade(line + b"Upgrade: websocket")  # Connection must ask for it
    assert not is_ws_upgrade(line + b"Connection: Upgrade\r\nUpgrade: h2c")
    assert not is_ws_upgrade(line + b"Connection: Upgrade\r\nX-Upgrade: websocket")


def test_connection_lists_are_made_plain_for_picows() -> None:
    from xiuxian_realtime.protocol import with_plain_connection_upgrade as plain

    firefox = b"GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert plain(firefox) == b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    other = b"GET /ws HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
    assert plain(other) == other
    assert plain(b"GET /ws HTTP/1.1\r\nConnection: Upgrade") == b"GET /ws HTTP/1.1\r\nConnection: Upgrade"
