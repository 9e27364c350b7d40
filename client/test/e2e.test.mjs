// End to end: the real Python server of this checkout and the demo page in
// Chromium. Starts `<python> -m xiuxian_realtime serve` (python-server.mjs) on a
// free port with a temporary data dir, opens /, registers, watches the spirit
// grow, runs a dungeon to its end (and an exploration), then, with the browser
// offline, stops the server with SIGTERM and starts it again (same data dir,
// JWT_SECRET and API_KEY: the token and the resume history survive), publishes
// notes through POST /api/publish and runs a whole dungeon over REST, and only
// then lets the page reconnect: it must resume (recovered, same epoch, no
// resync) and show every event it missed, once. Screenshot:
// test-artifacts/demo.png; server output: test-artifacts/e2e-server.log.
// Skipped (with the reason) only when there is no Python or no Chromium.
import { test } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findChromium, launchChromium, runDemoScenario, eventsWhileAway } from './demo-scenario.mjs';
import { ARTIFACTS, findPython, pythonServer } from './python-server.mjs';

const { python, skip: noPython } = findPython();
const skip = noPython || (findChromium() ? false : 'no Chromium (install the Debian package `chromium` or set CHROMIUM_PATH)');

test('e2e: demo page against the Python server, including a SIGTERM restart', { skip, timeout: 180_000 }, async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const server = await pythonServer({ python: /** @type {string} */ (python), logFile: join(ARTIFACTS, 'e2e-server.log') });
  await server.start();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await runDemoScenario({
      page,
      baseUrl: server.url,
      screenshotPath: join(ARTIFACTS, 'demo.png'),
      log: (m) => t.diagnostic(m),
      restart: async (session) => {
        await server.stop(); // SIGTERM: the page's socket is closed with 1001, the history saved
        await server.start();
        return eventsWhileAway(server.url, server.apiKey, session);
      },
    });
  } finally {
    await browser.close();
    await server.cleanup();
  }
});
