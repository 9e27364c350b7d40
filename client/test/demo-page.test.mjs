// The demo page in Chromium against the node fake server (test/fake-server.mjs):
// the same walk-through as the e2e test, runnable before the Python server
// exists. Skipped when no Chromium is installed.
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findChromium, launchChromium, runDemoScenario, eventsWhileAway } from './demo-scenario.mjs';
import { startFakeServer } from './fake-server.mjs';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const chromium = findChromium();

test('demo page against the fake server: login, spirit, dungeon, resume after a restart', {
  skip: chromium ? false : 'no Chromium (install the Debian package `chromium` or set CHROMIUM_PATH)',
  timeout: 120_000,
}, async (t) => {
  const server = await startFakeServer();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await runDemoScenario({
      page,
      baseUrl: server.url,
      screenshotPath: `${ARTIFACTS}demo-fake-server.png`,
      log: (m) => t.diagnostic(m),
      restart: async (session) => {
        server.pause(); // all sockets closed with 1001; upgrades refused
        const away = await eventsWhileAway(server.url, 'fake-api-key', session);
        server.resume();
        return away;
      },
    });
  } finally {
    await browser.close();
    await server.close();
  }
});
