// xiuxian_realtime/static/js/websocket.js
//
// The browser's WebSocket connection to xiuxian-realtime (docs/protocol.md).
// A drop-in successor of the original client's `src/services/websocket.js`:
// the same singleton `wsManager` and the same `connect/on/off/send/disconnect/
// getConnectionStatus` API and `subscribe*` helpers, plus
//   - protocol v2: welcome, stream positions (seq/bseq/epoch), resume after a
//     reconnect, duplicate suppression and resync;
//   - a heartbeat that also detects dead (half-open) connections;
//   - reconnects with exponential backoff and full jitter, no retry after a
//     terminal close code (4100-4199), an auth hook for a new token;
//   - everything it touches (WebSocket, timers, clock, random, window,
//     document) injectable, so tests can drive it deterministically.
// No runtime dependencies; an ES module.

/** Close codes 4100-4199: the server refused us; retrying unchanged cannot help. */
export const TERMINAL_CLOSE_MIN = 4100;
export const TERMINAL_CLOSE_MAX = 4199;
/** Close codes after which a new token may help (token invalid / wrong user). */
export const AUTH_CLOSE_CODES = Object.freeze([4100, 4101]);

/** WebSocket.readyState values (the injected constructor may not define them). */
const WS_CONNECTING = 0;
const WS_OPEN = 1;

/** Message types of the protocol itself; never dispatched to `on()` listeners as game events. */
const PROTOCOL_TYPES = new Set(['welcome', 'pong', 'resync']);

/** Default values of the numeric options (see WebSocketManagerOptions in websocket.d.ts). */
export const DEFAULTS = Object.freeze({
  protocolVersion: 2,
  port: 3000,
  path: '/ws',
  heartbeatInterval: 1000,
  heartbeatTimeout: 10000,
  connectTimeout: 10000,
  minReconnectDelay: 250,
  baseReconnectDelay: 1000,
  maxReconnectDelay: 30000,
  stableConnectionTime: 10000,
  maxReconnectAttempts: Infinity,
});

/**
 * @param {number} code
 * @returns {boolean} true for a close code after which the client must not reconnect unchanged.
 */
export function isTerminalCloseCode(code) {
  return code >= TERMINAL_CLOSE_MIN && code <= TERMINAL_CLOSE_MAX;
}

/**
 * The delay before reconnect attempt `attempt` (1, 2, 3, ...): "full jitter" —
 * uniformly random between 0 and an exponentially growing ceiling
 * (base * 2^(attempt-1), capped at max), then kept within [min, max].
 *
 * @param {number} attempt  1-based attempt number
 * @param {{minReconnectDelay: number, baseReconnectDelay: number, maxReconnectDelay: number}} opts
 * @param {() => number} random  returns a number in [0, 1)
 * @returns {number} milliseconds
 */
export function reconnectDelay(attempt, opts, random) {
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(opts.maxReconnectDelay, opts.baseReconnectDelay * 2 ** exponent);
  const jittered = random() * ceiling;
  return Math.round(Math.min(opts.maxReconnectDelay, Math.max(opts.minReconnectDelay, jittered)));
}

/** @returns {import('./websocket').Logger} */
function defaultLogger() {
  const c = globalThis.console;
  return {
    debug: () => {},
    info: () => {},
    warn: (...a) => c && c.warn('[WebSocket]', ...a),
    error: (...a) => c && c.error('[WebSocket]', ...a),
  };
}

/**
 * @param {unknown} p
 * @returns {p is import('./websocket').StreamPosition}
 */
function isPosition(p) {
  return !!p && typeof p === 'object' && typeof (/** @type {any} */ (p).seq) === 'number';
}

export class WebSocketManager {
  /**
   * @param {import('./websocket').WebSocketManagerOptions} [options]
   */
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    /** @private */ this._opts = o;
    /** @private */ this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    const t = options.timers ?? globalThis;
    /** @private */
    this._timers = {
      setTimeout: t.setTimeout.bind(t),
      clearTimeout: t.clearTimeout.bind(t),
      setInterval: t.setInterval.bind(t),
      clearInterval: t.clearInterval.bind(t),
    };
    /** @private */ this._now = options.now ?? (() => Date.now());
    /** @private */ this._random = options.random ?? Math.random;
    /** @private */ this._window = 'window' in options ? options.window : globalThis.window;
    /** @private */ this._document = 'document' in options ? options.document : globalThis.document;
    /** @private */ this._log = options.logger ?? defaultLogger();

    /** Hooks; may also be assigned after construction. */
    /** @type {import('./websocket').ResyncHook | undefined} */
    this.onResync = options.onResync;
    /** @type {import('./websocket').AuthFailureHook | undefined} */
    this.onAuthFailure = options.onAuthFailure;

    /** @type {boolean} true while the socket is open (the original's field). */
    this.isConnected = false;
    /** @type {string | null} the URL of the current/last socket, token redacted. */
    this.url = null;
    /** @type {number} failed attempts since the last stable connection. */
    this.reconnectAttempts = 0;
    /** @type {number} the original's give-up limit, now an option (default Infinity). */
    this.maxReconnectAttempts = o.maxReconnectAttempts;

    /** @private @type {Map<string, Function[]>} */ this._listeners = new Map();
    /** @private @type {any} */ this._ws = null;
    /** @private */ this._generation = 0; // bumps with every socket, so late callbacks of an old one are ignored
    /** @private @type {import('./websocket').ConnectionState} */ this._state = 'idle';
    /** @private @type {string | null} */ this._token = null;
    /** @private @type {string | number | null} */ this._userId = null;
    /** @private @type {string | null} */ this._serverUrl = null;
    /** @private */ this._intentionalClose = false;

    /** @private @type {import('./websocket').StreamPosition} */
    this._position = { epoch: null, seq: null, bseq: null };
    /** @private */ this._resyncing = false;
    /** @private @type {object[]} events that arrived while the resync hook ran */
    this._resyncQueue = [];

    /** @private */ this._heartbeatInterval = o.heartbeatInterval;
    /** @private */ this._heartbeatTimeout = o.heartbeatTimeout;
    /** @private @type {boolean} dead-connection detection is on once the server proved it answers (welcome/pong) */
    this._liveness = false;
    /** @private @type {number | null} */ this._lastMessageAt = null;
    /** @private @type {number | null} */ this._openedAt = null;
    /** @private @type {number | null} */ this._nextRetryAt = null;
    /** @private @type {number | null} */ this._retryDelay = null;
    /** @private @type {{code: number, reason: string} | null} */ this._lastClose = null;
    /** @private @type {string | null} */ this._connectionId = null;
    /** @private whether the current connection received a `welcome` (the server speaks v2) */
    this._welcomed = false;
    /** @private @type {boolean | null} */ this._recovered = null;
    /** @private @type {number | null} */ this._rtt = null;

    /** @private timer handles */
    this._heartbeatTimer = null;
    this._livenessTimer = null;
    this._connectTimer = null;
    this._reconnectTimer = null;

    /** @private @type {{promise: Promise<void>, resolve: () => void, reject: (e: Error) => void} | null} */
    this._pendingConnect = null;
    /** @private */ this._envAttached = false;

    /** @private */ this._onOnline = () => this.reconnectNow('online');
    /** @private */
    this._onVisibility = () => {
      if (this._document && this._document.visibilityState === 'visible') this._checkOnVisible();
    };
  }

  // ---------------------------------------------------------------- public API

  /**
   * Opens the connection (and keeps it open, reconnecting as needed, until
   * `disconnect()`). Like the original, the promise resolves when the socket
   * opens and rejects if this first attempt fails — reconnecting goes on in the
   * background either way.
   *
   * @param {string} token  the JWT from /api/auth/login
   * @param {number | string} userId
   * @param {string | null} [serverUrl]  endpoint such as `ws://host:3000/ws` or `/ws`;
   *   default: option `url`, else `ws(s)://<location.hostname>:<port><path>`
   * @returns {Promise<void>}
   */
  connect(token, userId, serverUrl = null) {
    if (this._userId !== null && String(this._userId) !== String(userId)) {
      // Another user: nothing of the previous stream applies.
      this.disconnect();
      this.resetPosition();
    }
    this._token = token;
    this._userId = userId;
    this._serverUrl = serverUrl ?? this._opts.url ?? null;
    this._intentionalClose = false;

    if (this._state === 'open') return Promise.resolve();
    const promise = this._pendingConnect
      ? this._pendingConnect.promise
      : this._newPendingConnect();
    this._attachEnvironment();
    if (this._state === 'idle' || this._state === 'offline') {
      this.reconnectAttempts = 0;
      this._openSocket();
    } else if (this._state === 'reconnecting') {
      this.reconnectNow('connect');
    }
    return promise;
  }

  /**
   * Closes the connection on purpose: no reconnect, every timer and window
   * listener released. `on()` listeners stay (they belong to their owners).
   * The stream position is kept, so a later `connect()` of the same user resumes.
   */
  disconnect() {
    this._intentionalClose = true;
    this._clearTimer('_reconnectTimer');
    this._nextRetryAt = null;
    this._retryDelay = null;
    const ws = this._ws;
    if (ws) {
      this._detachSocket(ws);
      try { ws.close(1000, 'client disconnect'); } catch { /* already closed */ }
      this._socketGone(1000, 'client disconnect', true);
    }
    this._stopTimers();
    this._detachEnvironment();
    this._resyncing = false;
    this._resyncQueue = [];
    this._failPendingConnect(new Error('disconnected'));
    this._setState('idle');
  }

  /**
   * Subscribes to a message type (`spirit:grow`, ...), to `'*'` (every delivered
   * event whatever its type, after duplicate suppression; `meta.type` tells which),
   * or to a local event (`connection:open|close|error|status|message|resync`).
   * @param {string} type
   * @param {Function} callback  game events: `(data, meta)`; local events: `(detail)`
   * @returns {() => void} unsubscribe
   */
  on(type, callback) {
    if (typeof callback !== 'function') throw new TypeError('callback must be a function');
    const list = this._listeners.get(type);
    if (list) list.push(callback);
    else this._listeners.set(type, [callback]);
    return () => this.off(type, callback);
  }

  /**
   * @param {string} type
   * @param {Function} callback
   */
  off(type, callback) {
    const list = this._listeners.get(type);
    if (!list) return;
    const i = list.indexOf(callback);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(type);
  }

  /**
   * @param {string} [type]  omit for the total over all types
   * @returns {number} how many listeners are registered
   */
  listenerCount(type) {
    if (type !== undefined) return this._listeners.get(type)?.length ?? 0;
    let n = 0;
    for (const list of this._listeners.values()) n += list.length;
    return n;
  }

  /**
   * Sends one JSON message. The server accepts only `ping` today.
   * @param {object} message
   * @returns {boolean} false when not connected or the send failed
   */
  send(message) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WS_OPEN) return false;
    try {
      ws.send(JSON.stringify(message));
      return true;
    } catch (error) {
      this._log.error('send failed:', error);
      return false;
    }
  }

  /** @returns {import('./websocket').ConnectionStatus} */
  getConnectionStatus() {
    const now = this._now();
    return {
      isConnected: this.isConnected,
      status: this._state,
      url: this.url,
      reconnectAttempts: this.reconnectAttempts,
      nextRetryAt: this._nextRetryAt,
      retryInMs: this._nextRetryAt === null ? null : Math.max(0, this._nextRetryAt - now),
      retryDelay: this._retryDelay,
      protocol: this._welcomed ? 'v2' : 'legacy',
      connectionId: this._connectionId,
      recovered: this._recovered,
      position: this.position,
      lastClose: this._lastClose,
      rttMs: this._rtt,
    };
  }

  /** @returns {import('./websocket').StreamPosition} a copy of the last processed position */
  get position() {
    return { ...this._position };
  }

  /**
   * Sets the position to resume from, e.g. the `position` of a REST snapshot
   * fetched before connecting, so the server replays what happened since.
   * @param {Partial<import('./websocket').StreamPosition>} position
   */
  setPosition(position) {
    this._position = {
      epoch: position.epoch ?? null,
      seq: typeof position.seq === 'number' ? position.seq : null,
      bseq: typeof position.bseq === 'number' ? position.bseq : null,
    };
    this._emitStatus();
  }

  /** Forgets the stream position: the next connection starts at the server's current one. */
  resetPosition() {
    this._position = { epoch: null, seq: null, bseq: null };
  }

  /** @param {string} token  a new token for the next (re)connect */
  setToken(token) {
    this._token = token;
  }

  /**
   * Skips the backoff wait and reconnects now (used on the `online` event and
   * when the tab becomes visible). Does nothing unless a reconnect is pending.
   * @param {string} [why]
   * @returns {boolean} whether a reconnect was started
   */
  reconnectNow(why = 'manual') {
    if (this._state !== 'reconnecting' || this._reconnectTimer === null) return false;
    this._log.debug('reconnecting now:', why);
    this._clearTimer('_reconnectTimer');
    this._openSocket();
    return true;
  }

  // ------------------------------------------------------------- connection

  /** @private */
  _newPendingConnect() {
    /** @type {any} */
    const pending = {};
    pending.promise = new Promise((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
    });
    // Callers that do not await connect() must not get an unhandled rejection:
    // failures are also reported through the connection:* events.
    pending.promise.catch(() => {});
    this._pendingConnect = pending;
    return pending.promise;
  }

  /** @private @param {Error} error */
  _failPendingConnect(error) {
    const p = this._pendingConnect;
    this._pendingConnect = null;
    if (p) p.reject(error);
  }

  /**
   * @private
   * @returns {string} the URL for the next socket, with resume parameters
   */
  _buildUrl() {
    const loc = this._window?.location ?? globalThis.location;
    const secure = loc?.protocol === 'https:';
    let base = this._serverUrl;
    if (!base) {
      const host = loc?.hostname || 'localhost';
      const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
      base = `${secure ? 'wss:' : 'ws:'}//${hostPart}:${this._opts.port}${this._opts.path}`;
    }
    const url = new URL(base, loc?.href ?? 'http://localhost/');
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    const q = url.searchParams;
    q.set('userId', String(this._userId));
    q.set('token', String(this._token));
    for (const k of ['v', 'since', 'bsince', 'epoch']) q.delete(k);
    if (this._opts.protocolVersion === 2) {
      q.set('v', '2');
      const p = this._position;
      if (p.epoch !== null && p.seq !== null) {
        q.set('since', String(p.seq));
        q.set('bsince', String(p.bseq ?? 0));
        q.set('epoch', String(p.epoch));
      }
    }
    return url.toString();
  }

  /** @private */
  _openSocket() {
    this._nextRetryAt = null;
    this._retryDelay = null;
    const url = this._buildUrl();
    this.url = url.replace(/([?&]token=)[^&]*/, '$1***');
    this._generation += 1;
    this._liveness = false;
    this._connectionId = null;
    this._welcomed = false;
    this._recovered = null;
    this._resyncing = false;
    this._resyncQueue = [];
    this._setState('connecting');

    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (error) {
      this._emit('connection:error', { error, timestamp: this._now() });
      this._afterClose(1006, 'cannot create WebSocket');
      return;
    }
    this._ws = ws;
    const gen = this._generation;
    const current = () => this._ws === ws && this._generation === gen;

    ws.onopen = () => { if (current()) this._onOpen(); };
    ws.onmessage = (/** @type {{data: unknown}} */ ev) => { if (current()) this._onRawMessage(ev.data); };
    ws.onerror = (/** @type {unknown} */ ev) => {
      if (current()) this._emit('connection:error', { error: ev, timestamp: this._now() });
    };
    ws.onclose = (/** @type {{code?: number, reason?: string}} */ ev) => {
      if (!current()) return;
      this._socketGone(ev?.code ?? 1006, ev?.reason ?? '', false);
      this._afterClose(ev?.code ?? 1006, ev?.reason ?? '');
    };

    this._connectTimer = this._timers.setTimeout(() => {
      this._connectTimer = null;
      if (current() && ws.readyState === WS_CONNECTING) this._abandon(1006, 'connect timeout');
    }, this._opts.connectTimeout);
  }

  /** @private */
  _onOpen() {
    this._clearTimer('_connectTimer');
    this.isConnected = true;
    this._openedAt = this._now();
    this._lastMessageAt = this._openedAt;
    this._heartbeatInterval = this._opts.heartbeatInterval;
    this._heartbeatTimeout = this._opts.heartbeatTimeout;
    this._startHeartbeat();
    this._setState('open');
    this._emit('connection:open', { userId: this._userId, timestamp: this._now() });
    const p = this._pendingConnect;
    this._pendingConnect = null;
    if (p) p.resolve();
  }

  /**
   * Gives up on a socket that does not answer: it is closed without waiting for
   * its close event (a half-open TCP connection may never deliver one).
   * @private
   * @param {number} code
   * @param {string} reason
   */
  _abandon(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    this._log.warn(`abandoning connection: ${reason}`);
    this._detachSocket(ws);
    try { ws.close(code >= 4000 ? code : 4000, reason); } catch { /* ignore */ }
    this._socketGone(code, reason, false);
    this._afterClose(code, reason);
  }

  /**
   * @private
   * @param {any} ws
   */
  _detachSocket(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  }

  /**
   * Bookkeeping common to every way a socket ends.
   * @private
   * @param {number} code
   * @param {string} reason
   * @param {boolean} intentional
   */
  _socketGone(code, reason, intentional) {
    const wasOpen = this.isConnected;
    this._stopTimers();
    this._ws = null;
    this.isConnected = false;
    if (this._openedAt !== null && this._now() - this._openedAt >= this._opts.stableConnectionTime) {
      this.reconnectAttempts = 0; // it was a good connection: start the backoff afresh
    }
    this._openedAt = null;
    this._resyncing = false;
    this._resyncQueue = [];
    this._lastClose = { code, reason };
    this._emit('connection:close', {
      code, reason, wasOpen, intentional, timestamp: this._now(),
    });
  }

  /**
   * Decides what follows an unintended close: reconnect, auth hook or stop.
   * @private
   * @param {number} code
   * @param {string} reason
   */
  _afterClose(code, reason) {
    if (this._intentionalClose) return;
    this._failPendingConnect(Object.assign(new Error(`WebSocket closed (${code}) ${reason}`.trim()), { code }));
    if (isTerminalCloseCode(code)) {
      if (AUTH_CLOSE_CODES.includes(code) && typeof this.onAuthFailure === 'function') {
        this._askForToken(code, reason);
      } else {
        this._stop(`terminal close code ${code}`);
      }
      return;
    }
    this._scheduleReconnect();
  }

  /**
   * @private
   * @param {number} code
   * @param {string} reason
   */
  _askForToken(code, reason) {
    this._setState('offline');
    const gen = this._generation;
    Promise.resolve()
      .then(() => /** @type {Function} */ (this.onAuthFailure)({ code, reason, userId: this._userId }))
      .then((token) => {
        if (gen !== this._generation || this._intentionalClose) return;
        if (typeof token === 'string' && token) {
          this._token = token;
          this._attachEnvironment();
          this._scheduleReconnect();
        } else {
          this._stop(`close code ${code}, no new token`);
        }
      }, (error) => {
        if (gen !== this._generation || this._intentionalClose) return;
        this._emit('connection:error', { error, timestamp: this._now() });
        this._stop(`close code ${code}, auth hook failed`);
      });
  }

  /** @private */
  _scheduleReconnect() {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      this._stop(`gave up after ${this.reconnectAttempts} reconnect attempts`);
      return;
    }
    this.reconnectAttempts += 1;
    const delay = reconnectDelay(this.reconnectAttempts, this._opts, this._random);
    this._retryDelay = delay;
    this._nextRetryAt = this._now() + delay;
    this._reconnectTimer = this._timers.setTimeout(() => {
      this._reconnectTimer = null;
      this._openSocket();
    }, delay);
    this._setState('reconnecting');
  }

  /**
   * Stops for good (until the next `connect()`): terminal code or give-up.
   * @private
   * @param {string} why
   */
  _stop(why) {
    this._log.warn(`not reconnecting: ${why}`);
    this._clearTimer('_reconnectTimer');
    this._nextRetryAt = null;
    this._retryDelay = null;
    this._detachEnvironment();
    this._failPendingConnect(new Error(why));
    this._setState('offline');
  }

  // --------------------------------------------------------------- messages

  /**
   * @private
   * @param {unknown} raw
   */
  _onRawMessage(raw) {
    this._lastMessageAt = this._now();
    if (this._liveness) this._armLiveness();
    if (typeof raw !== 'string') return; // the server sends text frames only
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      this._log.warn('ignoring a frame that is not JSON');
      return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
    this._emit('connection:message', msg);

    switch (msg.type) {
      case 'welcome': this._onWelcome(msg); return;
      case 'pong': this._onPong(msg); return;
      case 'resync': this._onResync(msg); return;
      default:
        if (msg.type.startsWith('connection:')) return; // our local namespace
        if (this._resyncing) this._resyncQueue.push(msg);
        else this._deliver(msg);
    }
  }

  /**
   * Dispatches one event, unless its position shows it was processed already.
   * @private
   * @param {any} msg
   */
  _deliver(msg) {
    const pos = this._position;
    if (typeof msg.seq === 'number') {
      if (pos.seq !== null && msg.seq <= pos.seq) {
        this._emit('connection:duplicate', { type: msg.type, seq: msg.seq, position: this.position });
        return;
      }
      pos.seq = msg.seq;
    }
    if (typeof msg.bseq === 'number') {
      if (pos.bseq !== null && msg.bseq <= pos.bseq) {
        this._emit('connection:duplicate', { type: msg.type, bseq: msg.bseq, position: this.position });
        return;
      }
      pos.bseq = msg.bseq;
    }
    // Listeners of the type, then those of '*' (every delivered event, e.g. types published by other services).
    const list = [...(this._listeners.get(msg.type) ?? []), ...(this._listeners.get('*') ?? [])];
    if (list.length) {
      const meta = { type: msg.type, userId: msg.userId, timestamp: msg.timestamp, seq: msg.seq, bseq: msg.bseq };
      for (const cb of list) {
        try {
          cb(msg.data, meta);
        } catch (error) {
          this._log.error(`listener of ${msg.type} threw:`, error);
        }
      }
    }
    if (typeof msg.seq === 'number' || typeof msg.bseq === 'number') this._emitStatus();
  }

  /**
   * @private
   * @param {any} msg
   */
  _onWelcome(msg) {
    const d = msg.data ?? {};
    this._welcomed = true;
    this._connectionId = d.connectionId ?? null;
    this._recovered = d.recovered === true;
    if (!this._recovered) {
      // No replay follows: continue from the server's current position
      // (a `resync` may follow and move it to a snapshot's position).
      this.setPosition({ epoch: d.epoch ?? null, seq: d.seq, bseq: d.bseq });
    } else if (d.epoch !== undefined) {
      this._position.epoch = d.epoch;
    }
    if (typeof d.heartbeatInterval === 'number' && d.heartbeatInterval > 0
        && d.heartbeatInterval !== this._heartbeatInterval) {
      this._heartbeatInterval = d.heartbeatInterval;
      this._startHeartbeat();
    }
    if (typeof d.heartbeatTimeout === 'number' && d.heartbeatTimeout > 0) {
      this._heartbeatTimeout = d.heartbeatTimeout;
    }
    this._liveness = true;
    this._armLiveness();
    this._emitStatus();
  }

  /**
   * @private
   * @param {any} msg
   */
  _onPong(msg) {
    const sent = msg.data?.clientTime;
    // The server may hold a pong until its next frame to us: heldMs is not network time.
    const held = typeof msg.data?.heldMs === 'number' ? msg.data.heldMs : 0;
    if (typeof sent === 'number') this._rtt = Math.max(0, this._now() - sent - held);
    if (!this._liveness) {
      this._liveness = true; // the server answers pings: we can tell a dead connection
      this._armLiveness();
    }
  }

  /**
   * The gap cannot be replayed: refetch state (hook), adopt its position,
   * then deliver the events that arrived meanwhile, minus those it covers.
   * @private
   * @param {any} msg
   */
  _onResync(msg) {
    const d = msg.data ?? {};
    /** @type {import('./websocket').StreamPosition} */
    const serverPosition = {
      epoch: d.epoch ?? this._position.epoch,
      seq: typeof d.seq === 'number' ? d.seq : this._position.seq,
      bseq: typeof d.bseq === 'number' ? d.bseq : this._position.bseq,
    };
    const info = { reason: String(d.reason ?? 'unknown'), position: serverPosition };
    this._resyncing = true;
    this._resyncQueue = [];
    const gen = this._generation;
    this._emit('connection:resync', info);

    Promise.resolve()
      .then(() => (typeof this.onResync === 'function' ? this.onResync(info) : undefined))
      .then(
        (p) => (isPosition(p) ? p : serverPosition),
        (error) => {
          this._log.error('resync hook failed:', error);
          this._emit('connection:error', { error, timestamp: this._now() });
          return serverPosition;
        },
      )
      .then((position) => {
        if (gen !== this._generation) return; // that connection is gone; the next one resumes on its own
        this.setPosition({
          epoch: position.epoch ?? serverPosition.epoch,
          seq: position.seq,
          bseq: position.bseq ?? serverPosition.bseq,
        });
        this._resyncing = false;
        const queued = this._resyncQueue;
        this._resyncQueue = [];
        for (const m of queued) this._deliver(m);
      });
  }

  // --------------------------------------------------------------- heartbeat

  /** @private */
  _startHeartbeat() {
    this._clearTimer('_heartbeatTimer', true);
    this._heartbeatTimer = this._timers.setInterval(() => this._sendPing(), this._heartbeatInterval);
  }

  /** @private */
  _sendPing() {
    this.send({ type: 'ping', timestamp: this._now() });
  }

  /** @private */
  _armLiveness() {
    this._clearTimer('_livenessTimer');
    this._livenessTimer = this._timers.setTimeout(() => {
      this._livenessTimer = null;
      this._abandon(4000, `no message for ${this._heartbeatTimeout} ms`);
    }, this._heartbeatTimeout);
  }

  /**
   * A tab coming back from the background: timers may have been throttled
   * for minutes. Reconnect now if waiting; if open, check it is still alive.
   * @private
   */
  _checkOnVisible() {
    if (this.reconnectNow('visible')) return;
    if (this._state !== 'open') return;
    const silentFor = this._now() - (this._lastMessageAt ?? 0);
    if (this._liveness && silentFor >= this._heartbeatTimeout) {
      this._abandon(4000, `no message for ${silentFor} ms (tab was hidden)`);
    } else {
      this._sendPing();
    }
  }

  /** @private */
  _stopTimers() {
    this._clearTimer('_heartbeatTimer', true);
    this._clearTimer('_livenessTimer');
    this._clearTimer('_connectTimer');
  }

  /**
   * @private
   * @param {'_heartbeatTimer'|'_livenessTimer'|'_connectTimer'|'_reconnectTimer'} name
   * @param {boolean} [interval]
   */
  _clearTimer(name, interval = false) {
    const handle = this[name];
    if (handle === null) return;
    if (interval) this._timers.clearInterval(handle);
    else this._timers.clearTimeout(handle);
    this[name] = null;
  }

  // ----------------------------------------------------- window and document

  /** @private */
  _attachEnvironment() {
    if (this._envAttached) return;
    this._envAttached = true;
    this._window?.addEventListener?.('online', this._onOnline);
    this._document?.addEventListener?.('visibilitychange', this._onVisibility);
  }

  /** @private */
  _detachEnvironment() {
    if (!this._envAttached) return;
    this._envAttached = false;
    this._window?.removeEventListener?.('online', this._onOnline);
    this._document?.removeEventListener?.('visibilitychange', this._onVisibility);
  }

  // ------------------------------------------------------------------ events

  /**
   * @private
   * @param {import('./websocket').ConnectionState} state
   */
  _setState(state) {
    this._state = state;
    this._emitStatus();
  }

  /** @private */
  _emitStatus() {
    this._emit('connection:status', this.getConnectionStatus());
  }

  /**
   * Calls the listeners of a local event.
   * @private
   * @param {string} type
   * @param {unknown} detail
   */
  _emit(type, detail) {
    const list = this._listeners.get(type);
    if (!list) return;
    for (const cb of [...list]) {
      try {
        cb(detail);
      } catch (error) {
        this._log.error(`listener of ${type} threw:`, error);
      }
    }
  }
}

/** The page's shared connection, as in the original. */
export const wsManager = new WebSocketManager();

/**
 * @param {(data: import('./websocket').SpiritGrowData, meta: import('./websocket').EventMeta) => void} callback
 * @param {WebSocketManager} [manager]
 * @returns {() => void} unsubscribe
 */
export function subscribeSpiritGrowth(callback, manager = wsManager) {
  return manager.on('spirit:grow', callback);
}

/**
 * @param {(data: import('./websocket').DungeonEventData, meta: import('./websocket').EventMeta) => void} callback
 * @param {WebSocketManager} [manager]
 * @returns {() => void} unsubscribe
 */
export function subscribeDungeonEvent(callback, manager = wsManager) {
  return manager.on('dungeon:event', callback);
}

/**
 * @param {(data: import('./websocket').LeaderboardUpdateData, meta: import('./websocket').EventMeta) => void} callback
 * @param {WebSocketManager} [manager]
 * @returns {() => void} unsubscribe
 */
export function subscribeLeaderboardUpdate(callback, manager = wsManager) {
  return manager.on('leaderboard:update', callback);
}

/**
 * @param {(data: import('./websocket').ExplorationEventData, meta: import('./websocket').EventMeta) => void} callback
 * @param {WebSocketManager} [manager]
 * @returns {() => void} unsubscribe
 */
export function subscribeExplorationEvent(callback, manager = wsManager) {
  return manager.on('exploration:event', callback);
}

/**
 * The original's connection-state helper; unlike the original it returns an
 * unsubscribe function that removes all three listeners.
 * @param {(event: {status: 'open'|'close'|'error', data?: unknown, error?: unknown}) => void} callback
 * @param {WebSocketManager} [manager]
 * @returns {() => void} unsubscribe
 */
export function subscribeConnectionEvent(callback, manager = wsManager) {
  const offs = [
    manager.on('connection:open', (/** @type {unknown} */ data) => callback({ status: 'open', data })),
    manager.on('connection:close', (/** @type {unknown} */ data) => callback({ status: 'close', data })),
    manager.on('connection:error', (/** @type {any} */ detail) => callback({ status: 'error', error: detail?.error ?? detail })),
  ];
  return () => offs.forEach((off) => off());
}

export default wsManager;
