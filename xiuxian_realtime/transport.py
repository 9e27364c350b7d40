"""WebSocket transport: picows speaks WebSocket, uvicorn serves HTTP, on one port.

The original's clients use port 3000 for the REST API and `/ws` alike. Each accepted
socket starts with `FrontProtocol`, which reads the request head: a WebSocket upgrade of
`/ws` goes straight to picows' protocol, the fastest WebSocket framing available to
Python (frames parsed in C, sends written straight to the transport), and anything else
to uvicorn's HTTP protocol. uvicorn still hands over any other upgrade it sees (its `ws`
setting), so every path ends in the same picows protocol.

`picows.picows.WSProtocol` is not public API; picows is pinned exactly in pyproject and
`tests/test_gateway.py` exercises this bridge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from picows import WSAutoPingStrategy, WSMsgType, WSUpgradeRequest, WSUpgradeResponse
from picows.common import WSUpgradeResponseWithListener
from picows.picows import WSListener, WSProtocol, WSTransport
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import protocol
from .auth import Tokens, TokenError
from .hub import Hub
from .protocol import BadRequest, CloseCode, Ping

log = logging.getLogger("xiuxian.ws")
# picows logs every accepted connection at INFO; we log our own events instead. An
# adapter (not a Logger) also stops picows creating a child Logger per connection.
_picows_logger = logging.LoggerAdapter(logging.getLogger("picows.server"), {})
logging.getLogger("picows").setLevel(logging.WARNING)

_monotonic = time.monotonic
_TEXT = WSMsgType.TEXT
_PING = WSMsgType.PING
_CLOSE = WSMsgType.CLOSE
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION

# Socket buffer beyond which the transport pauses us; past it the connection counts as
# slow and queued messages are bounded by count and bytes.
WRITE_HIGH_WATER = 64 * 1024
# A closing connection that does not drain its last bytes in this time is aborted.
CLOSE_GRACE_S = 5.0
# picows copies each frame into a per-connection buffer that starts at 1 KiB and grows
# to the largest frame ever sent, never shrinking. Frames above this size (leaderboards,
# a few per player) go out as header + payload in one writev instead, so that buffer
# stays at 1 KiB on every connection.
PICOWS_COPY_MAX = 1000
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class WsConnection(WSListener):
    """One accepted WebSocket: feeds frames to the hub, takes payloads from it."""

    __slots__ = ("hub", "gateway", "conn_id", "user_id", "v2", "ip", "transport", "last_ping",
                 "last_seen", "frames", "closed", "paused", "backlog", "held", "pong_at",
                 "pong_client_time", "_resume")

    def __init__(self, gateway: "WsGateway", user_id: int, v2: bool, ip: str | None,
                 resume: tuple[int | None, int | None, str | None]) -> None:
        self.gateway = gateway
        self.hub = gateway.hub
        self.conn_id = self.hub.new_connection_id()
        self.user_id = user_id
        self.v2 = v2
        self.ip = ip
        self.transport: WSTransport | None = None
        now = _monotonic()
        self.last_ping = now
        self.last_seen = now
        self.frames = 0
        self.closed = False
        self.paused = False
        self.backlog = 0
        # A v2 connection holds back what it is sent until its welcome has gone out.
        self.held: list[tuple[int, bytes]] | None = [] if v2 else None
        self.pong_at = 0.0
        self.pong_client_time: Any = None
        self._resume = resume

    # -- picows callbacks ------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        _forget_handshake(transport)
        since, bsince, epoch = self._resume
        self._resume = None  # type: ignore[assignment]
        log.debug("connected", extra={"user_id": self.user_id, "conn_id": self.conn_id,
                                      "v2": self.v2})
        self.hub.attach(self, self.ip, since, bsince, epoch)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if self.closed:
            # We sent our close frame; the peer's answer completes the handshake.
            # Anything else it still sends is read and dropped, so the socket is not
            # reset with our close frame unread.
            if frame.msg_type is _CLOSE:
                transport.disconnect()
            return
        self.frames += 1
        gateway = self.gateway
        if self.frames > gateway.rate_limit:
            self.hub.stats.policy_disconnects += 1
            self.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
            return
        now = _monotonic()
        self.last_seen = now
        msg_type = frame.msg_type
        if msg_type is _TEXT and frame.fin:
            if frame.payload_size > gateway.max_inbound_bytes:
                self.hub.stats.policy_disconnects += 1
                self.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            self.hub.stats.messages_in += 1
            msg = protocol.parse_client_text(frame.get_payload_as_bytes())
            if type(msg) is Ping:
                self.last_ping = now
                if self.v2:
                    self.hub.ping(self, msg.client_time, now)
            else:
                self.hub.stats.bad_frames += 1
        elif msg_type is _PING:
            # picows answers with a PONG frame by itself (enable_auto_pong).
            self.last_ping = now
        elif msg_type is _CLOSE:
            self.closed = True
            self.hub.detach(self)
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif msg_type is _BINARY or msg_type is _CONTINUATION or msg_type is _TEXT:
            # Binary data, or a fragmented text message: our clients never send either.
            self.hub.stats.policy_disconnects += 1
            self.close(CloseCode.BINARY_NOT_ACCEPTED, "only unfragmented text frames are accepted")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.hub.detach(self)
        log.debug("disconnected", extra={"user_id": self.user_id, "conn_id": self.conn_id})

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.backlog = 0

    # -- what the hub calls ----------------------------------------------------------

    def send(self, payload: bytes, seq: int = 0) -> None:
        if self.closed:
            return
        if self.held is not None:
            self.held.append((seq, payload))
            return
        transport = self.transport
        if self.pong_at:
            # A held pong rides on this frame: both in one write, so one send call.
            pong = self.hub.take_pong(self, _monotonic())
            transport.underlying_transport.write(protocol.text_frames(payload, pong))  # type: ignore[union-attr]
        elif len(payload) > PICOWS_COPY_MAX:
            transport.underlying_transport.writelines(  # type: ignore[union-attr]
                (protocol.frame_header(len(payload)), payload))
        else:
            transport.send(_TEXT, payload)  # type: ignore[union-attr]
        if self.paused:
            self.backlog += 1
            gateway = self.gateway
            if (self.backlog > gateway.queue_max_messages
                    or transport.underlying_transport.get_write_buffer_size() > gateway.queue_max_bytes):  # type: ignore[union-attr]
                self.hub.stats.slow_disconnects += 1
                log.info("slow consumer", extra={"user_id": self.user_id, "conn_id": self.conn_id})
                self.close(CloseCode.SLOW_CONSUMER, "slow consumer, resume from your last seq")

    def start_stream(self, frames: list[bytes], seq: int) -> None:
        held, self.held = self.held, None
        for frame in frames:
            self.send(frame)
        for held_seq, payload in held or ():
            if held_seq == 0 or held_seq > seq:
                self.send(payload)

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.hub.detach(self)
        if self.transport is not None:
            _start_close(self.transport, code, reason)


def _forget_handshake(transport: WSTransport) -> None:
    """Drop what picows keeps of the upgrade once it is done.

    picows holds the request and the response for the connection's life and never reads
    them again: their headers cost about 1.7 KB per connection, and the request's path
    holds the player's token.
    """
    request, response = transport.request, transport.response
    if request is not None:
        request.path = b"/ws"
        request.headers = _NO_HEADERS
    if response is not None:
        response.headers = _NO_HEADERS


def _start_close(transport: WSTransport, code: int, reason: str) -> None:
    """Send a close frame and wait for the peer's, at most CLOSE_GRACE_S.

    Closing the socket at once would reset it while the peer's frames are still in
    flight, and a reset can destroy our close frame before the peer reads it: the
    close code is how a client knows whether to reconnect.
    """
    transport.send_close(code, reason.encode())
    asyncio.get_running_loop().call_later(CLOSE_GRACE_S, _force_disconnect, transport)


def _force_disconnect(transport: WSTransport) -> None:
    if not transport.is_disconnected:
        transport.disconnect(graceful=False)


class Refusal(WSListener):
    """Accepts the upgrade only to close with a code a browser can read."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def on_ws_connected(self, transport: WSTransport) -> None:
        _start_close(transport, self.code, self.reason)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type is _CLOSE:
            transport.disconnect()


def _http_error(status: int, message: str) -> WSUpgradeResponseWithListener:
    body = orjson.dumps({"error": message})
    response = WSUpgradeResponse.create_error_response(
        status, body, {"Content-Type": "application/json"})
    return WSUpgradeResponseWithListener(response, None)


class WsGateway:
    """Decides, per upgrade request, who is connecting and whether they may."""

    def __init__(self, hub: Hub, tokens: Tokens, *, allowed_origins: list[str],
                 max_inbound_bytes: int, rate_limit: int, queue_max_messages: int,
                 queue_max_bytes: int) -> None:
        self.hub = hub
        self.tokens = tokens
        self.allowed_origins = allowed_origins
        self.max_inbound_bytes = max_inbound_bytes
        self.rate_limit = rate_limit
        self.queue_max_messages = queue_max_messages
        self.queue_max_bytes = queue_max_bytes
        self.accepting = True

    def listener_for(self, request: WSUpgradeRequest, peer: str | None) -> Any:
        target = request.path.decode("latin-1")
        parts = urlsplit(target)
        if parts.path != "/ws":
            return None  # picows answers 404
        if not self.accepting:
            return _http_error(503, "server is shutting down")
        try:
            params = protocol.parse_ws_query(parts.query)
        except BadRequest as exc:
            return _http_error(400, str(exc))
        stats = self.hub.stats
        headers = request.headers
        if not protocol.origin_allowed(headers.get("Origin"), headers.get("Host"), self.allowed_origins):
            stats.auth_failures += 1
            log.info("origin refused", extra={"user_id": params.user_id})
            return Refusal(CloseCode.ORIGIN_NOT_ALLOWED, "origin not allowed")
        try:
            token_user = self.tokens.verify(params.token)
        except TokenError as exc:
            stats.auth_failures += 1
            log.info("token refused", extra={"user_id": params.user_id, "reason": str(exc)})
            return Refusal(CloseCode.INVALID_TOKEN, "invalid token")
        if token_user != params.user_id:
            stats.auth_failures += 1
            log.info("token user mismatch", extra={"user_id": params.user_id})
            return Refusal(CloseCode.USER_MISMATCH, "token does not match userId")
        return WsConnection(self, params.user_id, params.v2, peer,
                            (params.since, params.bsince, params.epoch))

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Refuse new upgrades, close every connection with 1001 and wait for the
        close handshakes (bounded), so clients learn to reconnect elsewhere."""
        self.accepting = False
        conns = [c for uid in self.hub.online_user_ids() for c in self.hub.connections_of(uid)]
        self.hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
                c.transport is not None and not c.transport.is_disconnected for c in conns):  # type: ignore[attr-defined]
            await asyncio.sleep(0.02)

    def uvicorn_protocol_factory(self) -> Callable[..., asyncio.BaseProtocol]:
        """The callable uvicorn instantiates for each upgrade it sees (its `ws` setting)."""
        gateway = self

        def make(config: Any = None, server_state: Any = None, app_state: Any = None,
                 **_: Any) -> asyncio.BaseProtocol:
            return _UpgradedProtocol(gateway)

        return make

    def uvicorn_front_factory(self) -> Callable[..., asyncio.BaseProtocol]:
        """The callable uvicorn instantiates for each accepted socket (its `http` setting)."""
        gateway = self

        def make(config: Any, server_state: Any, app_state: Any, _loop: Any = None,
                 **_: Any) -> asyncio.BaseProtocol:
            def make_http() -> asyncio.Protocol:
                return HttpToolsProtocol(config=config, server_state=server_state, app_state=app_state,
                                         _loop=_loop)

            return FrontProtocol(gateway, make_http)

        return make


def _client_ip(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


# The longest request head the front reads before passing the socket to uvicorn, which
# answers an oversized head itself.
MAX_HEAD_BYTES = 16 * 1024


class FrontProtocol(asyncio.Protocol):
    """The first protocol of every accepted socket: routes it by its request head.

    Letting uvicorn parse a WebSocket handshake first cost about a fifth of the CPU of a
    connect (an HTTP protocol object, its address lookups, the parse, and the request
    re-serialised for picows): the weak spot of a reconnect storm. The front looks only
    for `GET /ws` with the upgrade headers; it never answers anything itself.
    """

    def __init__(self, gateway: "WsGateway", make_http: Callable[[], asyncio.Protocol]) -> None:
        self._gateway = gateway
        self._make_http = make_http
        self._transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        head = self._head + data if self._head else data
        if len(head) < 8:
            if b"GET /ws ".startswith(head):
                self._head = head
                return
        elif head.startswith(b"GET /ws") and head[7] in b"? ":
            end = head.find(b"\r\n\r\n")
            if end < 0 and len(head) <= MAX_HEAD_BYTES:
                self._head = head
                return
            if end >= 0 and protocol.is_ws_upgrade(head[:end]):
                self._hand_over(_UpgradedProtocol(self._gateway), head)
                return
        self._hand_over(self._make_http(), head)

    def _hand_over(self, protocol: asyncio.Protocol, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._head = b""
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return None  # closes the socket: the peer left before finishing a request

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class _UpgradedProtocol(WSProtocol):
    """picows' server protocol, fed the request uvicorn already read.

    uvicorn calls connection_made, switches the transport to us, then passes the
    re-serialised request head to data_received; picows parses it and upgrades.
    """

    def __init__(self, gateway: WsGateway) -> None:
        self._peer: str | None = None

        def factory(request: WSUpgradeRequest) -> Any:
            return gateway.listener_for(request, self._peer)

        super().__init__(None, None, False, factory, _picows_logger,
                         True,   # disconnect_on_exception
                         5,      # handshake timeout, s
                         False, 20, 20, WSAutoPingStrategy.PING_WHEN_IDLE,
                         True,   # enable_auto_pong
                         max(gateway.max_inbound_bytes * 4, 64 * 1024),  # hard frame cap
                         None,   # extra headers
                         2048)   # read buffer start size: pings are tiny

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = _client_ip(transport)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        # Called once, with the request head (uvloop feeds picows through get_buffer and
        # buffer_updated afterwards).
        view = memoryview(protocol.with_plain_connection_upgrade(data))
        while view:
            buf = self.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            self.buffer_updated(n)
