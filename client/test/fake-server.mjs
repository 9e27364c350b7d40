// A small stand-in for the Python server (same response shapes), enough to exercise the client over
// real sockets: the static files at / and /static/, the REST endpoints the
// demo uses, and /ws speaking legacy and v2 (welcome, pong, seq/bseq, resume
// from an unbounded history, resync on an unknown epoch). Tokens are opaque
// strings, not JWTs. Not a model of the real server's timing or limits.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const STATIC_DIR = fileURLToPath(new URL('../../xiuxian_realtime/static/', import.meta.url));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png' };

/**
 * @param {{port?: number, spiritEveryMs?: number, roundEveryMs?: number, rounds?: number, heartbeatTimeout?: number}} [opts]
 */
export async function startFakeServer(opts = {}) {
  const spiritEveryMs = opts.spiritEveryMs ?? 500;
  const roundEveryMs = opts.roundEveryMs ?? 100;
  const rounds = opts.rounds ?? 8;

  let epoch = 'fake.1';
  /** @type {Map<number, {id: number, username: string, password: string, token: string, spirit: number, seq: number, history: object[]}>} */
  const users = new Map();
  let nextId = 1;
  /** @type {Set<import('ws').WebSocket & {userId?: number, v2?: boolean, silenced?: boolean}>} */
  const sockets = new Set();
  let refusing = false;
  const timers = new Set();

  const later = (fn, ms) => {
    const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
  };

  const byToken = (req) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    for (const u of users.values()) if (u.token === token) return u;
    return null;
  };

  /** Appends an event to the user's stream and sends it to their sockets. */
  function publish(userId, type, data) {
    const u = users.get(userId);
    if (!u) return;
    u.seq += 1;
    const msg = { type, userId, timestamp: Math.floor(Date.now() / 1000), data: { userId, ...data, timestamp: Math.floor(Date.now() / 1000) }, seq: u.seq };
    u.history.push(msg);
    for (const ws of sockets) {
      if (ws.userId !== userId || ws.silenced) continue;
      const { seq, ...legacy } = msg;
      ws.send(JSON.stringify(ws.v2 ? msg : legacy));
    }
  }

  const spiritTimer = setInterval(() => {
    // Only open sockets: one closing after pause() must not take a seq while "away".
    const online = new Set([...sockets].filter((ws) => ws.readyState === 1).map((ws) => ws.userId));
    for (const id of online) {
      const u = users.get(id);
      if (!u) continue;
      const old = u.spirit;
      u.spirit = Math.round((u.spirit + 1.5) * 10) / 10;
      publish(id, 'spirit:grow', { oldSpirit: old, newSpirit: u.spirit, gainAmount: 1.5, spiritRate: 3, elapsedSeconds: 0.5 });
    }
  }, spiritEveryMs);

  /** users with a dungeon running */
  const inDungeon = new Set();

  function runDungeon(u) {
    const dungeon = '幽冥洞';
    inDungeon.add(u.id);
    let hp = 100;
    let foe = 10 * rounds;
    publish(u.id, 'dungeon:event', { eventType: 'start', dungeon, message: `进入${dungeon}`, roundNum: 0, playerHp: hp, enemyHp: foe, damageDealt: 0, damageTaken: 0, loot: null });
    for (let r = 1; r <= rounds; r++) {
      later(() => {
        hp -= 3;
        foe -= 10;
        publish(u.id, 'dungeon:event', { eventType: 'combat_round', dungeon, message: `第${r}回合`, roundNum: r, playerHp: hp, enemyHp: foe, damageDealt: 10, damageTaken: 3, loot: null });
        if (r === rounds) {
          publish(u.id, 'dungeon:event', { eventType: 'victory', dungeon, message: '胜利', roundNum: r, playerHp: hp, enemyHp: 0, damageDealt: 0, damageTaken: 0, loot: [{ name: '灵石', quantity: 3 }] });
          inDungeon.delete(u.id);
        }
      }, r * roundEveryMs);
    }
  }

  function runExploration(u, loc) {
    publish(u.id, 'exploration:event', { eventType: 'start', exploreName: loc.name, message: `前往${loc.name}`, progress: 0, durationSecs: loc.durationSecs, elapsedSecs: 0 });
    for (let i = 1; i <= 4; i++) {
      later(() => {
        publish(u.id, 'exploration:event', { eventType: 'progress', exploreName: loc.name, message: '', progress: i * 25, durationSecs: loc.durationSecs, elapsedSecs: i });
        if (i === 2) publish(u.id, 'exploration:event', { eventType: 'discovery', exploreName: loc.name, message: '发现灵草', discovery: '灵草' });
        if (i === 4) publish(u.id, 'exploration:event', { eventType: 'complete', exploreName: loc.name, message: '探索完成', progress: 100, reward: { items: [{ name: '灵草', quantity: 2 }] } });
      }, i * 150);
    }
  }

  const json = (res, status, body) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const readBody = async (req) => {
    let s = '';
    for await (const c of req) s += c;
    try { return JSON.parse(s || '{}'); } catch { return {}; }
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    if (req.method === 'GET' && (p === '/' || p.startsWith('/static/'))) {
      const rel = p === '/' ? 'index.html' : p.slice('/static/'.length);
      if (rel.includes('..')) return json(res, 400, { error: 'bad path' });
      try {
        const body = await readFile(STATIC_DIR + rel);
        res.writeHead(200, { 'Content-Type': TYPES[extname(rel)] ?? 'application/octet-stream' });
        return res.end(body);
      } catch {
        return json(res, 404, { error: 'not found' });
      }
    }
    if (p === '/health') return json(res, 200, { status: 'ok' });
    if (req.method === 'POST' && (p === '/api/auth/register' || p === '/api/auth/login')) {
      const { username, password } = await readBody(req);
      const existing = [...users.values()].find((u) => u.username === username);
      if (p.endsWith('register')) {
        if (!username || !password) return json(res, 400, { error: 'username and password required' });
        if (existing) return json(res, 400, { error: 'username taken' });
        const id = nextId++;
        const u = { id, username, password, token: `tok-${id}-${Math.random().toString(36).slice(2)}`, spirit: 0, seq: 0, history: [] };
        users.set(id, u);
        return json(res, 201, { id, username, token: u.token });
      }
      if (!existing || existing.password !== password) return json(res, 400, { error: 'wrong username or password' });
      return json(res, 200, { id: existing.id, username, token: existing.token });
    }
    if (p === '/api/publish' && req.method === 'POST') { // the API key is not checked here
      const { userId, type, data } = await readBody(req);
      if (!users.has(userId)) return json(res, 200, { seq: 0 });
      publish(userId, type, data ?? {});
      return json(res, 200, { seq: users.get(userId).seq });
    }
    if (p.startsWith('/api/')) {
      const u = byToken(req);
      if (!u && p !== '/api/exploration/locations') return json(res, 401, { error: 'unauthorized' });
      if (p === '/api/player/snapshot') {
        return json(res, 200, {
          id: u.id, username: u.username, level: 1, realm: '练气期一层', spirit: u.spirit, spiritRate: 3, power: 10,
          avatarUrl: '', online: true, dungeon: inDungeon.has(u.id) ? { dungeon: 'ghost_cave', name: '幽冥洞', status: 'combat' } : null,
          exploration: null, ranks: { spirit: { rank: 1, value: u.spirit, percent: 100 } }, serverTime: Date.now(),
          position: { epoch, seq: u.seq, bseq: 0 },
        });
      }
      if (p === '/api/player/leaderboard') {
        const top10 = [...users.values()].sort((a, b) => b.spirit - a.spirit).slice(0, 10)
          .map((x, i) => ({ rank: i + 1, userId: x.id, username: x.username, spirit: x.spirit, power: 10, level: 1, avatarUrl: '' }));
        return json(res, 200, { category: url.searchParams.get('category') ?? 'spirit', top10, userRank: { rank: 1, value: u.spirit, percent: 100 }, total: users.size, updateTime: Math.floor(Date.now() / 1000) });
      }
      if (p === '/api/exploration/locations') {
        return json(res, 200, { locations: [
          { id: 'qingyun', name: '青云山', durationSecs: 4, description: '', failureChance: 0 },
          { id: 'wanshou', name: '万兽林', durationSecs: 8, description: '', failureChance: 0 },
        ] });
      }
      if (p === '/api/dungeon/start' && req.method === 'POST') {
        if (inDungeon.has(u.id)) return json(res, 409, { error: 'a dungeon is already running' });
        runDungeon(u);
        return json(res, 200, { message: 'dungeon started', dungeon: { id: 'ghost_cave', name: '幽冥洞' } });
      }
      if (p === '/api/exploration/start' && req.method === 'POST') {
        const { location } = await readBody(req);
        runExploration(u, { id: location, name: location === 'wanshou' ? '万兽林' : '青云山', durationSecs: 4 });
        return json(res, 200, { message: 'exploration started', exploration: { location: location ?? 'qingyun' } });
      }
    }
    return json(res, 404, { error: 'not found' });
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const q = new URL(req.url, 'http://x').searchParams;
    if (refusing || !req.url.startsWith('/ws')) { socket.destroy(); return; }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const u = users.get(Number(q.get('userId')));
      if (!u || u.token !== q.get('token')) { ws.close(4100, 'token invalid'); return; }
      ws.userId = u.id;
      ws.v2 = q.get('v') === '2';
      if (ws.v2) {
        const since = q.has('since') ? Number(q.get('since')) : null;
        const canResume = since !== null && q.get('epoch') === epoch && since <= u.seq;
        const now = Math.floor(Date.now() / 1000);
        ws.send(JSON.stringify({ type: 'welcome', userId: u.id, timestamp: now, data: {
          connectionId: `fake-${Math.random().toString(36).slice(2, 8)}`, serverTime: Date.now(),
          heartbeatInterval: 1000, heartbeatTimeout: opts.heartbeatTimeout ?? 10000, epoch, seq: u.seq, bseq: 0, recovered: canResume,
        } }));
        if (canResume) for (const m of u.history) { if (m.seq > since) ws.send(JSON.stringify(m)); }
        else if (since !== null) {
          ws.send(JSON.stringify({ type: 'resync', userId: u.id, timestamp: now, data: { reason: 'epoch_mismatch', epoch, seq: u.seq, bseq: 0 } }));
        }
      }
      sockets.add(ws);
      ws.on('message', (raw) => {
        let m;
        try { m = JSON.parse(String(raw)); } catch { return; }
        if (m?.type === 'ping' && ws.v2 && !ws.silenced) {
          ws.send(JSON.stringify({ type: 'pong', userId: u.id, timestamp: Math.floor(Date.now() / 1000), data: { serverTime: Date.now(), clientTime: m.timestamp ?? null } }));
        }
      });
      ws.on('close', () => sockets.delete(ws));
    });
  });

  await new Promise((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    users,
    publish,
    runDungeon: (userId) => runDungeon(users.get(userId)),
    /** Connected sockets (server side). */
    get socketCount() { return sockets.size; },
    /** Drops every connection (1001, like a restart) and refuses new ones until `resume()`. */
    pause() {
      refusing = true;
      for (const ws of sockets) ws.close(1001, 'restarting');
    },
    resume() { refusing = false; },
    /** Loses all history (a new epoch), as a restart with the in-memory store does. */
    newEpoch() { epoch = `fake.${Number(epoch.split('.')[1]) + 1}`; for (const u of users.values()) { u.history = []; } },
    /** Current connections go quiet without closing, like a dead network: no events, no pongs. */
    silence() { for (const ws of sockets) ws.silenced = true; },
    async close() {
      clearInterval(spiritTimer);
      for (const t of timers) clearTimeout(t);
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
