// websocket.js over real sockets, against the node fake server
// (test/fake-server.mjs), with the `ws` package as the WebSocket constructor
// and real timers: resume after a dropped connection, resync after lost
// history, dead-connection detection, legacy mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { WebSocketManager } from '../../xiuxian_realtime/static/js/websocket.js';
import { startFakeServer } from './fake-server.mjs';
import { silentLogger } from './helpers.mjs';

let server;
before(async () => { server = await startFakeServer({ spiritEveryMs: 100, heartbeatTimeout: 600 }); });
after(() => server.close());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until true or fails after `ms`. */
async function until(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function register(name) {
  const res = await fetch(`${server.url}/api/auth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: name, password: 'pw' }),
  });
  return res.json();
}

function manager(extra = {}) {
  return new WebSocketManager({
    WebSocket, window: null, document: null, logger: silentLogger,
    minReconnectDelay: 20, baseReconnectDelay: 50, maxReconnectDelay: 200, ...extra,
  });
}

test('a dropped connection resumes: every missed event once, in order', async () => {
  const me = await register('resume');
  const m = manager();
  const seqs = [];
  m.on('spirit:grow', (d, meta) => seqs.push(meta.seq));
  m.on('dungeon:event', (d, meta) => seqs.push(meta.seq));
  await m.connect(me.token, me.id, `ws://127.0.0.1:${server.port}/ws`);
  await until(() => seqs.length >= 3, 5000, 'live events');

  server.pause(); // close 1001 and refuse reconnects
  await until(() => !m.isConnected, 2000, 'close');
  server.runDungeon(me.id); // events while the client is away
  await sleep(1200);
  server.resume();
  await until(() => m.getConnectionStatus().recovered === true, 5000, 'a recovered welcome');
  await until(() => seqs.at(-1) >= server.users.get(me.id).seq - 1, 5000, 'catch-up');
  m.disconnect();
  const expected = Array.from({ length: seqs.at(-1) - seqs[0] + 1 }, (_, i) => seqs[0] + i);
  assert.deepEqual(seqs, expected, 'no gap, no duplicate');
});

test('lost history (new epoch): resync hook gets the snapshot position', async () => {
  const me = await register('resync');
  const hook = [];
  const m = manager({
    onResync: async (info) => {
      hook.push(info.reason);
      const res = await fetch(`${server.url}/api/player/snapshot`, { headers: { Authorization: `Bearer ${me.token}` } });
      return (await res.json()).position;
    },
  });
  await m.connect(me.token, me.id, `ws://127.0.0.1:${server.port}/ws`);
  await until(() => (m.position.seq ?? 0) >= 2, 5000, 'events');
  const oldEpoch = m.position.epoch;
  server.pause();
  server.newEpoch();
  server.resume();
  await until(() => hook.length === 1 && m.position.epoch !== oldEpoch, 5000, 'resync');
  assert.deepEqual(hook, ['epoch_mismatch']);
  m.disconnect();
});

test('a silent (half-open) connection is detected by missing pongs and replaced', async () => {
  const me = await register('silent');
  const m = manager();
  const closes = [];
  m.on('connection:close', (c) => closes.push(c.code));
  await m.connect(me.token, me.id, `ws://127.0.0.1:${server.port}/ws`);
  await until(() => m.getConnectionStatus().protocol === 'v2', 2000, 'welcome');
  const first = m.getConnectionStatus().connectionId;
  server.silence();
  await until(() => closes.includes(4000), 3000, 'dead connection detected (heartbeatTimeout 600 ms)');
  await until(() => m.isConnected && m.getConnectionStatus().connectionId !== first, 3000, 'a new connection');
  m.disconnect();
});

test('legacy protocol against the same server: plain events, no welcome', async () => {
  const me = await register('legacy');
  const m = manager({ protocolVersion: 1 });
  const got = [];
  m.on('spirit:grow', (d, meta) => got.push(meta.seq));
  await m.connect(me.token, me.id, `ws://127.0.0.1:${server.port}/ws`);
  await until(() => got.length >= 2, 3000, 'events');
  assert.deepEqual(got.slice(0, 2), [undefined, undefined]);
  assert.equal(m.getConnectionStatus().protocol, 'legacy');
  m.disconnect();
});

test('a refused token (4100, after the upgrade) is not retried', async () => {
  const me = await register('refused');
  const m = manager();
  const closes = [];
  m.on('connection:close', (c) => closes.push(c.code));
  // connect() resolves on open, as the original's did; the refusal follows as a close code.
  await m.connect('wrong', me.id, `ws://127.0.0.1:${server.port}/ws`);
  await until(() => m.getConnectionStatus().status === 'offline', 2000, 'offline');
  await sleep(300);
  assert.equal(m.getConnectionStatus().status, 'offline');
  assert.deepEqual(closes, [4100], 'one attempt only');
});
