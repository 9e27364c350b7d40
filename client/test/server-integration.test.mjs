// websocket.js in node (the `ws` package as its WebSocket) against the real
// Python server of this checkout (see python-server.mjs): welcome, pongs, a
// published event, resume without gap or duplicate after a dropped connection
// and after a graceful server restart, and the terminal close codes.
//
// "Away" is made deterministic with a gate in front of the WebSocket
// constructor: while it is closed, every connection attempt goes to a port
// nobody listens on and fails, as it would while the network is down, so the
// events made meanwhile are certainly missed, then replayed on resume.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import WebSocket from 'ws';
import { WebSocketManager } from '../../xiuxian_realtime/static/js/websocket.js';
import { silentLogger } from './helpers.mjs';
import { ARTIFACTS, findPython, freePort, pythonServer } from './python-server.mjs';

const { python, skip } = findPython();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @type {Awaited<ReturnType<typeof pythonServer>>} */
let server;
let deadPort = 0;

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  deadPort = await freePort();
  server = await pythonServer({ python: /** @type {string} */ (python), logFile: join(ARTIFACTS, 'server-integration.log') });
  await server.start();
});
after(async () => { await server?.cleanup(); });

/** Polls `cond` until true or fails after `ms`. */
async function until(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let n = 0;
const uniqueName = (p) => `${p}${Date.now().toString(36)}${n++}`;

/**
 * A manager over `ws`, with a gate: `gate.away = true` makes new connections
 * fail (a closed port); `gate.drop()` cuts the current one without a close frame.
 */
function gatedManager(extra = {}) {
  const gate = { away: false, /** @type {WebSocket | null} */ socket: null, drop() { this.socket?.terminate(); } };
  class GatedWebSocket extends WebSocket {
    constructor(url, ...rest) {
      super(gate.away ? String(url).replace(/:\d+\//, `:${deadPort}/`) : url, ...rest);
      gate.socket = this;
    }
  }
  const m = new WebSocketManager({
    WebSocket: GatedWebSocket, window: null, document: null, logger: silentLogger,
    minReconnectDelay: 20, baseReconnectDelay: 100, maxReconnectDelay: 300, ...extra,
  });
  return { m, gate };
}

/**
 * Records every delivered user event, and checks the stream: seqs strictly
 * increasing (no duplicate) and a skipped seq only where history merged
 * `spirit:grow` events into the one that follows (docs/protocol.md, "Coalescing").
 */
function recorder(m) {
  /** @type {Array<{type: string, seq: number, data: any}>} */
  const events = [];
  m.on('*', (data, meta) => { if (typeof meta.seq === 'number') events.push({ type: meta.type, seq: meta.seq, data }); });
  return {
    events,
    seqs: () => events.map((e) => e.seq),
    of: (type) => events.filter((e) => e.type === type),
    assertNoGapNoDuplicate() {
      for (let i = 1; i < events.length; i++) {
        const [a, b] = [events[i - 1], events[i]];
        assert.ok(b.seq > a.seq, `seq strictly increasing: ${a.seq} then ${b.seq} (${b.type})`);
        if (b.seq !== a.seq + 1) {
          assert.equal(b.type, 'spirit:grow', `seqs ${a.seq + 1}..${b.seq - 1} missing before a ${b.type}`);
        }
      }
    },
  };
}

/** One dungeon run in the order received: start, rounds 1..n, victory/defeat, maybe treasure. */
function assertCompleteRun(dungeonEvents) {
  const kinds = dungeonEvents.map((e) => e.data.eventType);
  assert.equal(kinds[0], 'start', `starts with start: ${kinds}`);
  const rounds = dungeonEvents.filter((e) => e.data.eventType === 'combat_round').map((e) => e.data.roundNum);
  assert.ok(rounds.length > 0, 'at least one round');
  assert.deepEqual(rounds, rounds.map((_, i) => i + 1), `rounds without gap or duplicate: ${rounds}`);
  assert.ok(kinds.includes('victory') || kinds.includes('defeat'), `ends: ${kinds}`);
}

/** Starts a dungeon and waits (over REST) until the server has finished it. */
async function runDungeonToEnd(token) {
  await server.startDungeon(token);
  await until(async () => (await server.snapshot(token)).dungeon === null, 20_000, 'the dungeon run to end');
}

test('v2: welcome, pongs, and a published event with its seq', { skip }, async () => {
  const me = await server.register(uniqueName('welcome'));
  const { m } = gatedManager();
  const messages = [];
  m.on('connection:message', (msg) => messages.push(msg));
  const notes = [];
  m.on('demo:note', (data, meta) => notes.push({ data, seq: meta.seq, userId: meta.userId }));
  await m.connect(me.token, me.id, server.wsUrl);
  await until(() => m.getConnectionStatus().protocol === 'v2', 3000, 'welcome');

  const welcome = messages[0];
  assert.equal(welcome.type, 'welcome', 'the first message is welcome');
  assert.equal(welcome.userId, me.id);
  assert.equal(typeof welcome.data.connectionId, 'string');
  assert.equal(typeof welcome.data.epoch, 'string');
  assert.equal(welcome.data.recovered, false, 'a first connection has nothing to recover');
  assert.equal(m.getConnectionStatus().connectionId, welcome.data.connectionId);
  assert.equal(m.position.epoch, welcome.data.epoch);

  await until(() => messages.filter((x) => x.type === 'pong').length >= 2, 4000, 'two pongs (one ping a second)');
  const pong = messages.find((x) => x.type === 'pong');
  assert.equal(typeof pong.data.clientTime, 'number', 'the pong echoes the ping timestamp');
  assert.equal(typeof m.getConnectionStatus().rttMs, 'number');

  const seq = await server.publish(me.id, 'demo:note', { text: '你好', n: 1 });
  await until(() => notes.length === 1, 3000, 'the published event');
  assert.deepEqual(notes[0], { data: { text: '你好', n: 1 }, seq, userId: me.id });
  assert.ok(m.position.seq >= seq);
  m.disconnect();
  assert.equal(m.getConnectionStatus().status, 'idle');
});

test('a dropped connection (no close frame) resumes: missed events replayed, none twice', { skip }, async () => {
  const me = await server.register(uniqueName('drop'));
  const { m, gate } = gatedManager();
  const rec = recorder(m);
  const welcomes = [];
  m.on('connection:message', (msg) => { if (msg.type === 'welcome') welcomes.push(msg.data); });
  let resyncs = 0;
  m.on('connection:resync', () => { resyncs++; });
  await m.connect(me.token, me.id, server.wsUrl);
  await until(() => rec.of('spirit:grow').length >= 2, 5000, 'live spirit events');
  const before = await server.publish(me.id, 'demo:note', { n: 'before' });
  await until(() => m.position.seq >= before, 3000, 'the first note');

  gate.away = true;
  gate.drop(); // 1006: the client cannot tell a dead network from a dead server
  await until(() => m.getConnectionStatus().status === 'reconnecting', 2000, 'reconnecting');
  const missed = [await server.publish(me.id, 'demo:note', { n: 'away 1' })];
  await runDungeonToEnd(me.token);
  missed.push(await server.publish(me.id, 'demo:note', { n: 'away 2' }));
  const target = (await server.snapshot(me.token)).position.seq;
  assert.ok(m.position.seq < missed[0], 'the client really missed them');

  gate.away = false;
  await until(() => m.isConnected && m.position.seq >= target, 5000, 'resume up to the position of the snapshot');
  assert.equal(welcomes.at(-1).recovered, true, 'the welcome of the resume says recovered');
  assert.equal(resyncs, 0, 'no resync');
  const noteSeqs = rec.of('demo:note').map((e) => e.seq);
  assert.deepEqual(noteSeqs, [before, ...missed]);
  assertCompleteRun(rec.of('dungeon:event'));
  rec.assertNoGapNoDuplicate();
  m.disconnect();
});

test('a graceful server restart (SIGTERM, 1001) keeps the epoch: missed events replayed', { skip }, async () => {
  const me = await server.register(uniqueName('restart'));
  const { m, gate } = gatedManager();
  const rec = recorder(m);
  const closes = [];
  m.on('connection:close', (c) => closes.push(c.code));
  const welcomes = [];
  m.on('connection:message', (msg) => { if (msg.type === 'welcome') welcomes.push(msg.data); });
  let resyncs = 0;
  m.on('connection:resync', () => { resyncs++; });
  await m.connect(me.token, me.id, server.wsUrl);
  await runDungeonToEnd(me.token);
  await until(() => rec.of('dungeon:event').some((e) => /victory|defeat/.test(e.data.eventType)), 3000, 'the live run');
  const epoch = m.position.epoch;

  gate.away = true; // as if the network stayed down until after the restart
  await server.stop();
  await until(() => closes.length > 0, 2000, 'the close');
  assert.equal(closes[0], 1001, 'the server closes with 1001 on SIGTERM');
  await server.start();
  const missed = [await server.publish(me.id, 'demo:note', { n: 'after restart' })];
  await runDungeonToEnd(me.token);
  missed.push(await server.publish(me.id, 'demo:note', { n: 'after the run' }));
  const snap = await server.snapshot(me.token);
  assert.equal(snap.position.epoch, epoch, 'the history survived the restart');
  assert.ok(m.position.seq < missed[0], 'the client really missed them');

  gate.away = false;
  await until(() => m.isConnected && m.position.seq >= snap.position.seq, 5000, 'resume');
  assert.equal(welcomes.at(-1).recovered, true);
  assert.equal(resyncs, 0, 'no resync');
  assert.equal(m.position.epoch, epoch);
  assert.deepEqual(rec.of('demo:note').map((e) => e.seq), missed);
  const runs = rec.of('dungeon:event');
  const second = runs.findIndex((e, i) => i > 0 && e.data.eventType === 'start');
  assert.ok(second > 0, 'two runs');
  assertCompleteRun(runs.slice(0, second));
  assertCompleteRun(runs.slice(second));
  rec.assertNoGapNoDuplicate();
  m.disconnect();
});

test('a bad token is refused with 4100: auth hook called, no reconnect', { skip }, async () => {
  const me = await server.register(uniqueName('badtoken'));
  const hook = [];
  const { m } = gatedManager({ onAuthFailure: (info) => { hook.push(info); return null; } });
  const closes = [];
  m.on('connection:close', (c) => closes.push(c.code));
  let opens = 0;
  m.on('connection:open', () => { opens++; });
  await m.connect(`${me.token}x`, me.id, server.wsUrl); // resolves on open; the refusal follows
  await until(() => m.getConnectionStatus().status === 'offline', 3000, 'offline');
  await sleep(700); // several backoff periods: nothing happens
  assert.deepEqual(closes, [4100]);
  assert.equal(opens, 1, 'one attempt only');
  assert.equal(hook.length, 1);
  assert.equal(hook[0].code, 4100);
  assert.equal(String(hook[0].userId), String(me.id));
  assert.equal(m.getConnectionStatus().status, 'offline');
  m.disconnect();
});

test("another user's token is refused with 4101; the hook's new token reconnects", { skip }, async () => {
  const me = await server.register(uniqueName('owner'));
  const other = await server.register(uniqueName('other'));
  const hook = [];
  const { m } = gatedManager({ onAuthFailure: (info) => { hook.push(info.code); return me.token; } });
  const closes = [];
  m.on('connection:close', (c) => closes.push(c.code));
  await m.connect(other.token, me.id, server.wsUrl);
  await until(() => m.getConnectionStatus().protocol === 'v2' && m.isConnected, 5000, 'connected with the new token');
  assert.deepEqual(closes, [4101]);
  assert.deepEqual(hook, [4101]);
  m.disconnect();
});
