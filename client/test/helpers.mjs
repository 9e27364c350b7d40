// Deterministic fakes for the client's unit tests: a clock with timers, a
// WebSocket whose "server side" the test drives, and window/document stand-ins.

/** A manual clock: timers fire only inside `advance()`, in time order. */
export class FakeClock {
  constructor(start = 1_000_000) {
    this.time = start;
    this._nextId = 1;
    /** @type {Map<number, {at: number, fn: Function, every: number | null}>} */
    this.timers = new Map();
    this.now = () => this.time;
    // Bound so they can be handed over as `timers`.
    this.setTimeout = (fn, ms) => this._add(fn, ms, null);
    this.setInterval = (fn, ms) => this._add(fn, ms, ms);
    this.clearTimeout = (id) => { this.timers.delete(id); };
    this.clearInterval = (id) => { this.timers.delete(id); };
  }

  _add(fn, ms, every) {
    const id = this._nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn, every });
    return id;
  }

  /** Number of pending timers (timeouts and intervals). */
  get pending() {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next[1].at || (t.at === next[1].at && id < next[0]))) next = [id, t];
      }
      if (next === null) break;
      const [id, t] = next;
      this.time = t.at;
      if (t.every !== null) t.at += t.every;
      else this.timers.delete(id);
      t.fn();
    }
    this.time = end;
  }
}

/** A WebSocket stand-in. Every instance is recorded in `FakeWebSocket.instances`. */
export class FakeWebSocket {
  /** @type {FakeWebSocket[]} */
  static instances = [];

  static reset() {
    FakeWebSocket.instances = [];
  }

  /** @returns {FakeWebSocket} the most recently created socket */
  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {object[]} parsed messages the client sent */
    this.sent = [];
    /** @type {{code?: number, reason?: string} | null} */
    this.closedByClient = null;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    FakeWebSocket.instances.push(this);
  }

  /** The query parameters of the URL the client connected to. */
  get params() {
    return Object.fromEntries(new URL(this.url).searchParams);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data));
  }

  close(code, reason) {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  // ---- driven by the test, as the server/network would
  serverOpen() {
    this.readyState = 1;
    this.onopen?.({});
  }

  serverSend(obj) {
    this.onmessage?.({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) });
  }

  serverClose(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  serverError() {
    this.onerror?.({ type: 'error' });
  }

  /** Pings the client sent. */
  get pings() {
    return this.sent.filter((m) => m.type === 'ping');
  }
}

/** An EventTarget-like object that counts its listeners. */
export class FakeTarget {
  constructor(extra = {}) {
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    Object.assign(this, extra);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
  }

  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
    if (this.listeners.get(type)?.size === 0) this.listeners.delete(type);
  }

  dispatch(type) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn({ type });
  }

  get count() {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }
}

export const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A manager wired to fakes.
 * @param {typeof import('../../xiuxian_realtime/static/js/websocket.js').WebSocketManager} WebSocketManager
 * @param {object} [options]
 */
export function makeManager(WebSocketManager, options = {}) {
  const clock = new FakeClock();
  const window = new FakeTarget({ location: { protocol: 'http:', hostname: 'game.test', href: 'http://game.test:8080/' } });
  const document = new FakeTarget({ visibilityState: 'visible' });
  const manager = new WebSocketManager({
    WebSocket: FakeWebSocket,
    timers: clock,
    now: clock.now,
    random: () => 0.5,
    window,
    document,
    logger: silentLogger,
    ...options,
  });
  return { manager, clock, window, document };
}

/** Lets pending promise callbacks run. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A v2 welcome envelope. */
export function welcome(data = {}) {
  return {
    type: 'welcome', userId: 42, timestamp: 1733300000,
    data: {
      connectionId: 'c1', serverTime: 1733300000123, heartbeatInterval: 1000, heartbeatTimeout: 10000,
      epoch: 'e1', seq: 0, bseq: 0, recovered: false, ...data,
    },
  };
}

/** A user event envelope. */
export function event(type, data, extra = {}) {
  return { type, userId: 42, timestamp: 1733300000, data, ...extra };
}
