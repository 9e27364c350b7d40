// The real Python server for the JavaScript tests (e2e.test.mjs,
// server-integration.test.mjs): this repository's code, started as
// `<python> -m xiuxian_realtime serve` with the repository root as cwd, so
// `python -m` imports the package from this checkout whatever an editable
// install elsewhere points at.
//
// The interpreter: `<repo>/.venv/bin/python` (scripts/setup.sh creates it before
// the tests run), else $XIUXIAN_PYTHON (for a checkout without its own
// virtualenv, e.g. a git worktree: another checkout's `.venv/bin/python` works,
// since the package is still imported from this checkout).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const ARTIFACTS = join(REPO, 'test-artifacts');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The interpreter to run the server with.
 * @returns {{python: string | null, skip: string | false}} `skip` is the reason
 *   to skip when no interpreter exists at all; a broken one is not skipped (the
 *   test then fails and says why)
 */
export function findPython() {
  const own = join(REPO, '.venv/bin/python');
  if (existsSync(own)) return { python: own, skip: false };
  const env = process.env.XIUXIAN_PYTHON;
  if (env && existsSync(env)) return { python: env, skip: false };
  return { python: null, skip: `no ${own} (run scripts/setup.sh) and no XIUXIAN_PYTHON` };
}

/** Throws unless `python`, run from the repository root, imports this checkout's package (and its dependencies). */
export function checkPython(python) {
  const r = spawnSync(python, ['-c', 'import xiuxian_realtime.app as a; print(a.__file__)'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`${python} cannot import xiuxian_realtime from ${REPO}:\n${r.stderr || r.error}`);
  }
  const file = r.stdout.trim();
  if (!file.startsWith(join(REPO, 'xiuxian_realtime'))) {
    throw new Error(`${python} imports xiuxian_realtime from ${file}, not from this checkout (${REPO})`);
  }
}

/** @returns {Promise<number>} a TCP port that was free a moment ago */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * The server process on a free port with a temporary data dir. `start()` and
 * `stop()` (SIGTERM, as a deploy would) may be repeated: the port, the data dir
 * and the secrets stay, so tokens and the resume history survive a restart.
 * @param {{python: string, logFile: string, env?: Record<string, string>}} o
 */
export async function pythonServer({ python, logFile, env: extraEnv = {} }) {
  checkPython(python);
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'xiuxian-js-'));
  const apiKey = 'test-api-key-not-for-production';
  const env = {
    ...process.env,
    // SQLite in the temporary data dir, in-process broker, default origins, whatever the shell has
    DATABASE_URL: '', REDIS_URL: '', ALLOWED_ORIGINS: '',
    JWT_SECRET: 'test-jwt-secret-not-for-production',
    API_KEY: apiKey,
    DUNGEON_EVENT_INTERVAL_MS: '100',
    EXPLORATION_TIME_SCALE: '0.2',
    ...extraEnv,
  };
  const url = `http://127.0.0.1:${port}`;
  /** @type {import('node:child_process').ChildProcess | null} */
  let child = null;

  /** POST with a JSON body; resolves to the parsed answer, throws on a non-2xx status. */
  async function post(path, body, headers = {}) {
    const res = await fetch(url + path, {
      method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  return {
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    dataDir,
    apiKey,
    get pid() { return child?.pid ?? null; },
    async start() {
      if (child) throw new Error('already running');
      const log = openSync(logFile, 'a');
      child = spawn(python, ['-m', 'xiuxian_realtime', 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], {
        cwd: REPO, env, stdio: ['ignore', log, log],
      });
      closeSync(log);
      const proc = child;
      const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code ?? 'a signal')));
      const deadline = Date.now() + 30_000;
      for (;;) {
        const early = await Promise.race([exited, sleep(50).then(() => undefined)]);
        if (early !== undefined) {
          child = null;
          throw new Error(`server exited with ${early}; see ${logFile}`);
        }
        try {
          const res = await fetch(`${url}/health`);
          if (res.status === 200) return;
        } catch { /* not listening yet */ }
        if (Date.now() > deadline) throw new Error(`server not healthy within 30 s; see ${logFile}`);
      }
    },
    /** SIGTERM (graceful: connections closed with 1001, history saved); SIGKILL after 15 s. */
    async stop() {
      const proc = child;
      if (!proc) return;
      child = null;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      let timer;
      const done = await Promise.race([
        exited.then(() => true), new Promise((r) => { timer = setTimeout(() => r(false), 15_000); }),
      ]);
      clearTimeout(timer);
      if (!done) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`server ignored SIGTERM for 15 s; see ${logFile}`);
      }
    },
    async cleanup() {
      await this.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
    /** Registers a new player; returns `{id, username, token}`. */
    register(username, password = 'secret-pw-1') {
      return post('/api/auth/register', { username, password });
    },
    /** The publish API; returns the event's `seq`. */
    async publish(userId, type, data) {
      return (await post('/api/publish', { userId, type, data }, { 'X-API-Key': apiKey })).seq;
    },
    /** POST /api/dungeon/start with `{}` as the player. */
    startDungeon(token) {
      return post('/api/dungeon/start', {}, { Authorization: `Bearer ${token}` });
    },
    async snapshot(token) {
      const res = await fetch(`${url}/api/player/snapshot`, { headers: { Authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`GET /api/player/snapshot: ${res.status} ${await res.text()}`);
      return res.json();
    },
  };
}
