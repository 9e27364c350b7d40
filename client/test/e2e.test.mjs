// End to end: the real Python server and the demo page in Chromium.
//   start `.venv/bin/xiuxian-realtime serve` on a free port with a temporary
//   data dir, wait for GET /health, open /, register, watch the spirit grow,
//   run a dungeon to its end, stop and restart the server (a dungeon is
//   started over REST right after it is back, before the page reconnects), and
//   check the page reconnects and shows every event it missed. Screenshot:
//   test-artifacts/demo.png; server output: test-artifacts/e2e-server.log.
// Skipped (with the reason) when the server command or Chromium is absent.
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findChromium, launchChromium, runDemoScenario, startDungeonViaApi } from './demo-scenario.mjs';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
// XIUXIAN_REALTIME_BIN overrides the server command (same arguments), e.g. for an installed build.
const SERVER_BIN = process.env.XIUXIAN_REALTIME_BIN ?? join(REPO, '.venv/bin/xiuxian-realtime');
const ARTIFACTS = join(REPO, 'test-artifacts');

function skipReason() {
  if (!existsSync(SERVER_BIN)) return `no server command at ${SERVER_BIN} (run scripts/setup.sh)`;
  if (!findChromium()) return 'no Chromium (install the Debian package `chromium` or set CHROMIUM_PATH)';
  return false;
}

/** @returns {Promise<number>} a TCP port that was free a moment ago */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The server process: start, wait until healthy, stop.
 * @param {{port: number, dataDir: string, logFile: string}} o
 */
function serverProcess({ port, dataDir, logFile }) {
  /** @type {import('node:child_process').ChildProcess | null} */
  let child = null;
  const env = {
    ...process.env,
    // Fixed across the restart, so the page's token stays valid.
    JWT_SECRET: process.env.JWT_SECRET ?? 'e2e-test-secret-not-for-production',
  };
  return {
    async start() {
      const log = openSync(logFile, 'a');
      child = spawn(SERVER_BIN, ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], {
        env, stdio: ['ignore', log, log],
      });
      closeSync(log);
      const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
      const deadline = Date.now() + 30_000;
      for (;;) {
        const early = await Promise.race([exited, sleep(100).then(() => undefined)]);
        if (early !== undefined) throw new Error(`server exited with ${early}; see ${logFile}`);
        try {
          const res = await fetch(`http://127.0.0.1:${port}/health`);
          if (res.status === 200) return;
        } catch { /* not listening yet */ }
        if (Date.now() > deadline) throw new Error(`server not healthy within 30 s; see ${logFile}`);
      }
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!killed) {
        child.kill('SIGKILL');
        await exited;
      }
      child = null;
    },
  };
}

test('e2e: demo page against the Python server, including a server restart', {
  skip: skipReason(),
  timeout: 240_000,
}, async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), 'xiuxian-e2e-'));
  const port = await freePort();
  const server = serverProcess({ port, dataDir, logFile: join(ARTIFACTS, 'e2e-server.log') });
  await server.start();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const baseUrl = `http://127.0.0.1:${port}`;
    await runDemoScenario({
      page,
      baseUrl,
      screenshotPath: join(ARTIFACTS, 'demo.png'),
      log: (m) => t.diagnostic(m),
      restart: async (session) => {
        await server.stop();
        await sleep(1000); // the page is now backing off between failed attempts
        await server.start();
        await startDungeonViaApi(baseUrl, session.token); // events the page has not seen yet
      },
    });
  } finally {
    await browser.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
