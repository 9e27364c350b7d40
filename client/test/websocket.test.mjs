// Unit tests of xiuxian_realtime/static/js/websocket.js with a fake WebSocket,
// a fake clock and fake window/document: every timer fires only when a test
// advances the clock.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import {
  WebSocketManager, wsManager, reconnectDelay, isTerminalCloseCode, DEFAULTS,
  subscribeSpiritGrowth, subscribeDungeonEvent, subscribeLeaderboardUpdate,
  subscribeExplorationEvent, subscribeConnectionEvent,
} from '../../xiuxian_realtime/static/js/websocket.js';
import {
  FakeWebSocket, FakeClock, makeManager, flush, welcome, event,
} from './helpers.mjs';

beforeEach(() => FakeWebSocket.reset());

/** Advances the clock exactly to the pending reconnect. */
function untilRetry(manager, clock) {
  const { retryDelay } = manager.getConnectionStatus();
  assert.equal(typeof retryDelay, 'number', 'a reconnect is pending');
  clock.advance(retryDelay);
}

/** Connects and opens; returns the socket. */
async function connected(manager, { v2 = true, welcomeData = {} } = {}) {
  const p = manager.connect('tok', 42);
  const ws = FakeWebSocket.last;
  ws.serverOpen();
  await p;
  if (v2) ws.serverSend(welcome(welcomeData));
  return ws;
}

// ------------------------------------------------------------------ URL

test('default URL is ws://<location.hostname>:3000/ws with userId, token and v=2', () => {
  const { manager } = makeManager(WebSocketManager);
  manager.connect('a.b.c', 42);
  const url = new URL(FakeWebSocket.last.url);
  assert.equal(url.origin, 'ws://game.test:3000');
  assert.equal(url.pathname, '/ws');
  assert.deepEqual(FakeWebSocket.last.params, { userId: '42', token: 'a.b.c', v: '2' });
  assert.match(manager.url, /token=\*\*\*/, 'the token is redacted in the status URL');
  manager.disconnect();
});

test('serverUrl overrides; a relative one resolves against the page; legacy sends no v', () => {
  const a = makeManager(WebSocketManager);
  a.manager.connect('t', 7, 'wss://other.example/ws');
  assert.equal(new URL(FakeWebSocket.last.url).origin, 'wss://other.example');
  a.manager.disconnect();

  const b = makeManager(WebSocketManager, { url: '/ws' });
  b.manager.connect('t', 7);
  assert.equal(new URL(FakeWebSocket.last.url).origin, 'ws://game.test:8080', 'same host and port as the page');
  b.manager.disconnect();

  const c = makeManager(WebSocketManager, { protocolVersion: 1 });
  c.manager.connect('t', 7);
  assert.deepEqual(FakeWebSocket.last.params, { userId: '7', token: 't' });
  c.manager.disconnect();
});

// ------------------------------------------------------- connect / events

test('connect resolves on open, emits connection:open, and dispatches events with meta', async () => {
  const { manager } = makeManager(WebSocketManager);
  const opened = [];
  manager.on('connection:open', (d) => opened.push(d));
  const ws = await connected(manager, { v2: false });
  assert.equal(opened.length, 1);
  assert.equal(manager.isConnected, true);
  assert.equal(manager.getConnectionStatus().status, 'open');

  const got = [];
  const off = manager.on('spirit:grow', (data, meta) => got.push([data, meta]));
  ws.serverSend(event('spirit:grow', { newSpirit: 3 }));
  assert.equal(got.length, 1);
  assert.deepEqual(got[0][0], { newSpirit: 3 });
  assert.equal(got[0][1].userId, 42);
  off();
  ws.serverSend(event('spirit:grow', { newSpirit: 4 }));
  assert.equal(got.length, 1, 'unsubscribed');
  assert.equal(manager.listenerCount('spirit:grow'), 0);
  manager.disconnect();
});

test('a throwing listener does not stop the others; unknown types and bad frames are ignored', async () => {
  const { manager } = makeManager(WebSocketManager);
  const ws = await connected(manager);
  const got = [];
  manager.on('dungeon:event', () => { throw new Error('boom'); });
  manager.on('dungeon:event', (d) => got.push(d));
  ws.serverSend('not json');
  ws.serverSend(event('other:thing', {}, { seq: 1 }));
  ws.serverSend(event('dungeon:event', { eventType: 'start' }, { seq: 2 }));
  assert.deepEqual(got, [{ eventType: 'start' }]);
  manager.disconnect();
});

test('the first attempt failing rejects connect() but reconnecting goes on', async () => {
  const { manager, clock } = makeManager(WebSocketManager);
  const p = manager.connect('t', 42);
  FakeWebSocket.last.serverClose(1006);
  await assert.rejects(p, /1006/);
  assert.equal(manager.getConnectionStatus().status, 'reconnecting');
  untilRetry(manager, clock);
  assert.equal(FakeWebSocket.instances.length, 2);
  manager.disconnect();
});

// ------------------------------------------------------------- heartbeat

test('pings {"type":"ping","timestamp":now} every heartbeatInterval; welcome may change it', async () => {
  const { manager, clock } = makeManager(WebSocketManager);
  const ws = await connected(manager, { v2: false });
  clock.advance(3000);
  assert.equal(ws.pings.length, 3);
  assert.deepEqual(ws.pings[2], { type: 'ping', timestamp: clock.time });
  ws.serverSend(welcome({ heartbeatInterval: 500 }));
  const before = ws.pings.length;
  clock.advance(2000);
  assert.equal(ws.pings.length - before, 4);
  manager.disconnect();
});

test('a v2 connection without pongs or messages for heartbeatTimeout is closed and reconnected', async () => {
  const { manager, clock } = makeManager(WebSocketManager);
  const closes = [];
  manager.on('connection:close', (d) => closes.push(d));
  const ws = await connected(manager, { welcomeData: { heartbeatTimeout: 5000 } });

  // Pongs keep it alive.
  for (let i = 0; i < 20; i++) {
    clock.advance(1000);
    ws.serverSend({ type: 'pong', userId: 42, timestamp: 0, data: { serverTime: 0, clientTime: clock.time - 20 } });
  }
  assert.equal(manager.isConnected, true);
  assert.equal(manager.getConnectionStatus().rttMs, 20);
  // A pong the server held for a while: only the network part counts.
  ws.serverSend({ type: 'pong', userId: 42, timestamp: 0, data: { serverTime: 0, clientTime: clock.time - 700, heldMs: 690 } });
  assert.equal(manager.getConnectionStatus().rttMs, 10);

  // Half-open: the socket reports nothing at all, not even a close.
  clock.advance(5000);
  assert.equal(manager.isConnected, false, 'declared dead without waiting for a close event');
  assert.equal(ws.closedByClient.code, 4000);
  assert.equal(closes.at(-1).code, 4000);
  assert.equal(manager.getConnectionStatus().status, 'reconnecting');
  untilRetry(manager, clock);
  assert.equal(FakeWebSocket.instances.length, 2);
  manager.disconnect();
});

test('legacy server (no welcome, no pong): pings go on and silence never closes the connection', async () => {
  const { manager, clock } = makeManager(WebSocketManager); // asks for v=2, server ignores it
  const ws = await connected(manager, { v2: false });
  const got = [];
  manager.on('spirit:grow', (d) => got.push(d));
  clock.advance(60_000);
  assert.equal(manager.isConnected, true);
  assert.equal(ws.pings.length, 60);
  ws.serverSend(event('spirit:grow', { newSpirit: 1 }));
  ws.serverSend(event('spirit:grow', { newSpirit: 1 })); // no seq: nothing to deduplicate on
  assert.equal(got.length, 2);
  assert.equal(manager.getConnectionStatus().protocol, 'legacy');
  assert.deepEqual(manager.position, { epoch: null, seq: null, bseq: null });
  manager.disconnect();
});

test('a socket that never opens is abandoned after connectTimeout', () => {
  const { manager, clock } = makeManager(WebSocketManager, { connectTimeout: 3000 });
  manager.connect('t', 42).catch(() => {});
  clock.advance(3000);
  assert.ok(FakeWebSocket.instances[0].closedByClient);
  assert.equal(manager.getConnectionStatus().status, 'reconnecting');
  manager.disconnect();
});

// --------------------------------------------------------------- backoff

test('reconnectDelay: full jitter between min and an exponential ceiling capped at max', () => {
  const o = { minReconnectDelay: 250, baseReconnectDelay: 1000, maxReconnectDelay: 30000 };
  assert.equal(reconnectDelay(1, o, () => 0), 250, 'never below min');
  assert.equal(reconnectDelay(1, o, () => 0.999999), 1000);
  assert.equal(reconnectDelay(2, o, () => 0.999999), 2000);
  assert.equal(reconnectDelay(4, o, () => 0.999999), 8000);
  assert.equal(reconnectDelay(5, o, () => 0.5), 8000);
  assert.equal(reconnectDelay(30, o, () => 0.999999), 30000, 'capped');
  assert.equal(reconnectDelay(1000, o, () => 0.999999), 30000, 'no overflow');
  for (let attempt = 1; attempt < 40; attempt++) {
    for (const r of [0, 0.1, 0.37, 0.5, 0.9, 0.999]) {
      const d = reconnectDelay(attempt, o, () => r);
      assert.ok(d >= 250 && d <= Math.min(30000, 1000 * 2 ** (attempt - 1)), `attempt ${attempt} r ${r}: ${d}`);
    }
  }
});

test('the manager waits the jittered delay from its injected random source, growing per failure', () => {
  const randoms = [0.5, 0.5, 0.5, 0.25];
  const { manager, clock } = makeManager(WebSocketManager, { random: () => randoms.shift() ?? 0.5 });
  manager.connect('t', 42).catch(() => {});
  const delays = [];
  for (let i = 0; i < 4; i++) {
    FakeWebSocket.last.serverClose(1006);
    const s = manager.getConnectionStatus();
    delays.push(s.retryDelay);
    assert.equal(s.nextRetryAt, clock.time + s.retryDelay);
    const n = FakeWebSocket.instances.length;
    clock.advance(s.retryDelay - 1);
    assert.equal(FakeWebSocket.instances.length, n, 'not before the delay');
    clock.advance(1);
    assert.equal(FakeWebSocket.instances.length, n + 1, 'right at the delay');
  }
  assert.deepEqual(delays, [500, 1000, 2000, 2000]);
  assert.equal(manager.reconnectAttempts, 4);
  manager.disconnect();
});

test('a stable connection resets the backoff; a short one does not', async () => {
  const { manager, clock } = makeManager(WebSocketManager, { random: () => 0.999999, stableConnectionTime: 10_000 });
  manager.connect('t', 42).catch(() => {});
  FakeWebSocket.last.serverClose(1006); // attempt 1
  clock.advance(1000);
  FakeWebSocket.last.serverClose(1006); // attempt 2
  clock.advance(2000);
  FakeWebSocket.last.serverOpen();
  clock.advance(3000); // open, but not for long
  FakeWebSocket.last.serverClose(1001);
  assert.equal(manager.reconnectAttempts, 3);
  assert.equal(manager.getConnectionStatus().retryDelay, 4000);
  clock.advance(4000);
  FakeWebSocket.last.serverOpen();
  clock.advance(10_000); // stable
  FakeWebSocket.last.serverClose(1001);
  assert.equal(manager.reconnectAttempts, 1, 'counting starts afresh');
  assert.equal(manager.getConnectionStatus().retryDelay, 1000);
  manager.disconnect();
});

test('maxReconnectAttempts (the original gave up after 5) is an option, default Infinity', () => {
  assert.equal(new WebSocketManager({ window: null, document: null }).maxReconnectAttempts, Infinity);
  const { manager, clock } = makeManager(WebSocketManager, { maxReconnectAttempts: 3 });
  manager.connect('t', 42).catch(() => {});
  for (let i = 0; i < 10 && manager.getConnectionStatus().status !== 'offline'; i++) {
    FakeWebSocket.last.serverClose(1006);
    if (manager.getConnectionStatus().status === 'reconnecting') untilRetry(manager, clock);
  }
  assert.equal(FakeWebSocket.instances.length, 4, 'first try + 3 retries');
  assert.equal(manager.getConnectionStatus().status, 'offline');
  assert.equal(clock.pending, 0);
});

test('the browser going online or the tab becoming visible skips the wait', () => {
  const { manager, clock, window, document } = makeManager(WebSocketManager);
  manager.connect('t', 42).catch(() => {});
  FakeWebSocket.last.serverClose(1006);
  window.dispatch('online');
  assert.equal(FakeWebSocket.instances.length, 2);
  FakeWebSocket.last.serverClose(1006);
  document.visibilityState = 'hidden';
  document.dispatch('visibilitychange');
  assert.equal(FakeWebSocket.instances.length, 2, 'hidden: keep waiting');
  document.visibilityState = 'visible';
  document.dispatch('visibilitychange');
  assert.equal(FakeWebSocket.instances.length, 3);
  assert.equal(clock.timers.size > 0, true);
  manager.disconnect();
});

test('a tab coming back after a long throttled sleep detects the dead connection at once', async () => {
  const { manager, clock, document } = makeManager(WebSocketManager);
  const ws = await connected(manager);
  clock.time += 60_000; // timers did not run meanwhile (background throttling)
  document.dispatch('visibilitychange');
  assert.equal(manager.isConnected, false);
  assert.equal(ws.closedByClient.code, 4000);
  manager.disconnect();
});

// --------------------------------------------------------- close codes

test('close code ranges', () => {
  for (const c of [4100, 4101, 4102, 4103, 4104, 4105, 4106, 4199]) assert.ok(isTerminalCloseCode(c), c);
  for (const c of [1000, 1001, 1006, 1011, 1012, 1013, 4000, 4001, 4099, 4200]) assert.ok(!isTerminalCloseCode(c), c);
});

test('terminal close codes are never retried', async () => {
  for (const code of [4102, 4103, 4104, 4105, 4106]) {
    FakeWebSocket.reset();
    const { manager, clock, window } = makeManager(WebSocketManager);
    await connected(manager);
    FakeWebSocket.last.serverClose(code, 'no');
    clock.advance(10 * DEFAULTS.maxReconnectDelay);
    window.dispatch('online');
    assert.equal(FakeWebSocket.instances.length, 1, `code ${code}`);
    assert.equal(manager.getConnectionStatus().status, 'offline');
    assert.equal(clock.pending, 0);
    assert.equal(window.count, 0);
  }
});

test('4100/4101 without an auth hook stop; with one, its new token is used to reconnect', async () => {
  const a = makeManager(WebSocketManager);
  await connected(a.manager);
  FakeWebSocket.last.serverClose(4100, 'token invalid');
  await flush();
  a.clock.advance(DEFAULTS.maxReconnectDelay);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(a.manager.getConnectionStatus().status, 'offline');

  FakeWebSocket.reset();
  const calls = [];
  const b = makeManager(WebSocketManager, {
    onAuthFailure: async (info) => { calls.push(info); return calls.length === 1 ? 'fresh-token' : null; },
  });
  await connected(b.manager);
  FakeWebSocket.last.serverClose(4101, 'wrong user');
  await flush();
  assert.deepEqual(calls[0], { code: 4101, reason: 'wrong user', userId: 42 });
  untilRetry(b.manager, b.clock);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(FakeWebSocket.last.params.token, 'fresh-token');

  FakeWebSocket.last.serverOpen();
  FakeWebSocket.last.serverClose(4100); // the hook has no token this time
  await flush();
  b.clock.advance(DEFAULTS.maxReconnectDelay);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(b.manager.getConnectionStatus().status, 'offline');
  assert.equal(b.clock.pending, 0);
});

// ---------------------------------------------------- positions / resume

test('positions: welcome sets them, events advance them, a reconnect resumes with since/bsince/epoch', async () => {
  const { manager, clock } = makeManager(WebSocketManager);
  const statuses = [];
  manager.on('connection:status', (s) => statuses.push(s));
  const ws = await connected(manager, { welcomeData: { epoch: 'k2x9f1.3', seq: 5, bseq: 2 } });
  assert.deepEqual(manager.position, { epoch: 'k2x9f1.3', seq: 5, bseq: 2 });

  ws.serverSend(event('spirit:grow', { n: 6 }, { seq: 6 }));
  ws.serverSend(event('leaderboard:update', { category: 'spirit' }, { userId: 0, bseq: 3 }));
  ws.serverSend(event('dungeon:event', { n: 7 }, { seq: 7 }));
  assert.deepEqual(manager.position, { epoch: 'k2x9f1.3', seq: 7, bseq: 3 });
  assert.deepEqual(statuses.at(-1).position, { epoch: 'k2x9f1.3', seq: 7, bseq: 3 }, 'status event carries the position');

  ws.serverClose(1001);
  untilRetry(manager, clock);
  const ws2 = FakeWebSocket.last;
  assert.deepEqual(ws2.params, { userId: '42', token: 'tok', v: '2', since: '7', bsince: '3', epoch: 'k2x9f1.3' });

  const got = [];
  manager.on('dungeon:event', (d, meta) => got.push(meta.seq));
  ws2.serverOpen();
  ws2.serverSend(welcome({ epoch: 'k2x9f1.3', seq: 9, bseq: 3, recovered: true }));
  ws2.serverSend(event('dungeon:event', {}, { seq: 8 }));
  ws2.serverSend(event('dungeon:event', {}, { seq: 9 }));
  assert.deepEqual(got, [8, 9]);
  assert.equal(manager.getConnectionStatus().recovered, true);
  manager.disconnect();
});

test('duplicate or old seq/bseq are dropped (resume is idempotent)', async () => {
  const { manager } = makeManager(WebSocketManager);
  const ws = await connected(manager, { welcomeData: { seq: 10, bseq: 4 } });
  const got = [];
  const dups = [];
  manager.on('spirit:grow', (d, m) => got.push(m.seq));
  manager.on('leaderboard:update', (d, m) => got.push(`b${m.bseq}`));
  manager.on('connection:duplicate', (d) => dups.push(d.seq ?? `b${d.bseq}`));
  for (const seq of [9, 10, 11, 11, 13, 12]) ws.serverSend(event('spirit:grow', {}, { seq }));
  for (const bseq of [4, 5, 5]) ws.serverSend(event('leaderboard:update', {}, { bseq, userId: 0 }));
  assert.deepEqual(got, [11, 13, 'b5']);
  assert.deepEqual(dups, [9, 10, 11, 12, 'b4', 'b5']);
  manager.disconnect();
});

test("'*' receives every delivered event of any type once, after its own listeners, not protocol messages", async () => {
  const { manager } = makeManager(WebSocketManager);
  const ws = await connected(manager, { welcomeData: { seq: 3 } });
  const got = [];
  manager.on('demo:note', (d, m) => got.push(`note ${m.seq}`));
  const off = manager.on('*', (d, m) => got.push(`* ${m.type} ${m.seq ?? 'b' + m.bseq} ${d.x}`));
  ws.serverSend(event('demo:note', { x: 1 }, { seq: 4 }));
  ws.serverSend(event('demo:note', { x: 1 }, { seq: 4 })); // duplicate: dropped
  ws.serverSend(event('dungeon:event', { x: 2 }, { seq: 5 }));
  ws.serverSend(event('news:flash', { x: 3 }, { bseq: 1, userId: 0 }));
  ws.serverSend({ type: 'pong', userId: 42, timestamp: 1, data: { clientTime: null } });
  assert.deepEqual(got, ['note 4', '* demo:note 4 1', '* dungeon:event 5 2', '* news:flash b1 3']);
  off();
  ws.serverSend(event('demo:note', { x: 4 }, { seq: 6 }));
  assert.deepEqual(got.at(-1), 'note 6');
  manager.disconnect();
});

test('setPosition before connecting (a snapshot) makes the first connection resume from it', () => {
  const { manager } = makeManager(WebSocketManager);
  manager.setPosition({ epoch: 'e9', seq: 33, bseq: 4 });
  manager.connect('t', 42);
  assert.deepEqual(FakeWebSocket.last.params, { userId: '42', token: 't', v: '2', since: '33', bsince: '4', epoch: 'e9' });
  manager.disconnect();
});

test('resync: the hook refetches, its position is adopted, and live events it covers are dropped', async () => {
  const { manager, clock } = makeManager(WebSocketManager);
  let release;
  const hookCalls = [];
  manager.onResync = (info) => {
    hookCalls.push(info);
    return new Promise((resolve) => { release = resolve; });
  };
  const resyncEvents = [];
  manager.on('connection:resync', (i) => resyncEvents.push(i));
  const got = [];
  manager.on('spirit:grow', (d, m) => got.push(m.seq));

  const ws = await connected(manager, { welcomeData: { epoch: 'old', seq: 3, bseq: 1 } });
  ws.serverClose(1006);
  untilRetry(manager, clock);
  const ws2 = FakeWebSocket.last;
  assert.equal(ws2.params.epoch, 'old');
  ws2.serverOpen();
  ws2.serverSend(welcome({ epoch: 'new', seq: 50, bseq: 7, recovered: false }));
  ws2.serverSend({ type: 'resync', userId: 42, timestamp: 0, data: { reason: 'epoch_mismatch', epoch: 'new', seq: 50, bseq: 7 } });
  await flush();
  assert.deepEqual(hookCalls, [{ reason: 'epoch_mismatch', position: { epoch: 'new', seq: 50, bseq: 7 } }]);
  assert.equal(resyncEvents.length, 1);

  // Live events while the snapshot is being fetched wait...
  for (const seq of [51, 52, 53]) ws2.serverSend(event('spirit:grow', {}, { seq }));
  assert.deepEqual(got, []);
  // ...and the snapshot covers up to 52.
  release({ epoch: 'new', seq: 52, bseq: 7 });
  await flush();
  assert.deepEqual(got, [53]);
  assert.deepEqual(manager.position, { epoch: 'new', seq: 53, bseq: 7 });
  manager.disconnect();
});

test('resync without a hook, or with a failing one, continues from the server position', async () => {
  const { manager } = makeManager(WebSocketManager);
  const errors = [];
  manager.on('connection:error', (e) => errors.push(e));
  const ws = await connected(manager, { welcomeData: { seq: 1 } });
  ws.serverSend({ type: 'resync', userId: 42, timestamp: 0, data: { reason: 'history_expired', epoch: 'e1', seq: 20, bseq: 2 } });
  await flush();
  assert.deepEqual(manager.position, { epoch: 'e1', seq: 20, bseq: 2 });

  manager.onResync = () => { throw new Error('snapshot failed'); };
  ws.serverSend({ type: 'resync', userId: 42, timestamp: 0, data: { reason: 'ahead', epoch: 'e1', seq: 30, bseq: 3 } });
  await flush();
  assert.deepEqual(manager.position, { epoch: 'e1', seq: 30, bseq: 3 });
  assert.equal(errors.length, 1);
  manager.disconnect();
});

test('connecting as another user forgets the previous position', async () => {
  const { manager } = makeManager(WebSocketManager);
  await connected(manager, { welcomeData: { seq: 8 } });
  manager.connect('t2', 43);
  assert.deepEqual(FakeWebSocket.last.params, { userId: '43', token: 't2', v: '2' });
  manager.disconnect();
});

// ------------------------------------------------------------- hygiene

test('disconnect releases every timer and window/document listener and stops reconnecting', async () => {
  const { manager, clock, window, document } = makeManager(WebSocketManager);
  const ws = await connected(manager);
  assert.ok(clock.pending > 0);
  assert.equal(window.count, 1);
  assert.equal(document.count, 1);
  const closes = [];
  manager.on('connection:close', (c) => closes.push(c));
  manager.disconnect();
  assert.equal(clock.pending, 0);
  assert.equal(window.count, 0);
  assert.equal(document.count, 0);
  assert.equal(ws.closedByClient.code, 1000);
  assert.equal(closes[0].intentional, true);
  ws.serverClose(1000); // a late close event of the old socket changes nothing
  clock.advance(10 * DEFAULTS.maxReconnectDelay);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(manager.getConnectionStatus().status, 'idle');

  // Also while waiting to reconnect.
  const p = manager.connect('tok', 42);
  FakeWebSocket.last.serverClose(1006);
  await assert.rejects(p);
  assert.ok(clock.pending > 0);
  manager.disconnect();
  assert.equal(clock.pending, 0);
  assert.equal(window.count + document.count, 0);
  clock.advance(10 * DEFAULTS.maxReconnectDelay);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('disconnect before the socket opens rejects connect()', async () => {
  const { manager } = makeManager(WebSocketManager);
  const p = manager.connect('t', 42);
  manager.disconnect();
  await assert.rejects(p, /disconnected/);
});

test('two instances coexist without sharing sockets, listeners, positions or timers', async () => {
  const clock = new FakeClock();
  const common = { WebSocket: FakeWebSocket, timers: clock, now: clock.now, random: () => 0.5, window: null, document: null };
  const a = new WebSocketManager(common);
  const b = new WebSocketManager(common);
  const gotA = [];
  const gotB = [];
  a.on('spirit:grow', (d) => gotA.push(d.n));
  b.on('spirit:grow', (d) => gotB.push(d.n));
  a.connect('ta', 1);
  const wsA = FakeWebSocket.last;
  b.connect('tb', 2);
  const wsB = FakeWebSocket.last;
  wsA.serverOpen();
  wsB.serverOpen();
  wsA.serverSend(welcome({ seq: 100 }));
  wsB.serverSend(welcome({ seq: 0 }));
  wsA.serverSend(event('spirit:grow', { n: 'a' }, { seq: 101 }));
  wsB.serverSend(event('spirit:grow', { n: 'b' }, { seq: 1 }));
  assert.deepEqual(gotA, ['a']);
  assert.deepEqual(gotB, ['b']);
  a.disconnect();
  assert.equal(b.isConnected, true);
  clock.advance(2000);
  assert.equal(wsB.pings.length, 2);
  assert.equal(wsA.pings.length, 0);
  b.disconnect();
  assert.equal(clock.pending, 0);
});

test('the original subscribe helpers and the default singleton', async () => {
  assert.ok(wsManager instanceof WebSocketManager);
  const { manager } = makeManager(WebSocketManager);
  const got = [];
  const offs = [
    subscribeSpiritGrowth((d) => got.push(['spirit', d.x]), manager),
    subscribeDungeonEvent((d) => got.push(['dungeon', d.x]), manager),
    subscribeLeaderboardUpdate((d) => got.push(['leaderboard', d.x]), manager),
    subscribeExplorationEvent((d) => got.push(['exploration', d.x]), manager),
    subscribeConnectionEvent((e) => got.push(['conn', e.status]), manager),
  ];
  const ws = await connected(manager, { v2: false });
  ws.serverSend(event('spirit:grow', { x: 1 }));
  ws.serverSend(event('dungeon:event', { x: 2 }));
  ws.serverSend(event('leaderboard:update', { x: 3 }));
  ws.serverSend(event('exploration:event', { x: 4 }));
  assert.deepEqual(got, [['conn', 'open'], ['spirit', 1], ['dungeon', 2], ['leaderboard', 3], ['exploration', 4]]);
  offs.forEach((off) => off());
  assert.equal(manager.listenerCount(), 0, 'every helper unsubscribes completely');
  manager.disconnect();
});
