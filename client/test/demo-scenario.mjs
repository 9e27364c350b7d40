// The demo page walked through in a real browser (playwright-core driving the
// system's Chromium). Shared by demo-page.test.mjs (node fake server) and
// e2e.test.mjs (the real Python server): the same steps against both.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import assert from 'node:assert/strict';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];

/** @returns {string | null} the Chromium binary to use, or null when there is none */
export function findChromium() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium'].filter(Boolean);
  return candidates.find((p) => existsSync(p)) ?? null;
}

/** @returns {Promise<import('playwright-core').Browser>} */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: findChromium(), args: CHROMIUM_ARGS });
}

const byId = (id) => `[data-testid="${id}"]`;

/** @param {import('playwright-core').Page} page @returns {Promise<number>} */
async function spiritValue(page) {
  return Number((await page.textContent(byId('spirit-value'))).replace(/[^\d.]/g, ''));
}

/**
 * The dungeon log as rendered (oldest first).
 * @param {import('playwright-core').Page} page
 * @returns {Promise<Array<{seq: number | null, event: string, round: number}>>}
 */
async function dungeonEntries(page) {
  const rows = await page.$$eval(`${byId('dungeon-log')} li`, (lis) => lis.map((li) => ({
    seq: li.dataset.seq ? Number(li.dataset.seq) : null,
    event: li.dataset.event,
    round: Number(li.dataset.round ?? 0),
  })));
  return rows.reverse();
}

/**
 * Checks one dungeon run in the log: a start, every round from 1 without gap
 * or repeat, and an end (victory/defeat); seqs strictly increasing.
 * @param {Array<{seq: number | null, event: string, round: number}>} run
 */
export function assertCompleteRun(run) {
  assert.equal(run[0]?.event, 'start', 'the run begins with start');
  const rounds = run.filter((e) => e.event === 'combat_round').map((e) => e.round);
  assert.deepEqual(rounds, rounds.map((_, i) => i + 1), `rounds without gap or duplicate: ${rounds}`);
  assert.ok(run.some((e) => e.event === 'victory' || e.event === 'defeat'), 'the run ends');
  const seqs = run.map((e) => e.seq).filter((s) => s !== null);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq increasing: ${seqs}`);
}

/**
 * @param {object} ctx
 * @param {import('playwright-core').Page} ctx.page
 * @param {string} ctx.baseUrl  e.g. http://127.0.0.1:3123
 * @param {(session: {id: number, token: string}) => Promise<void>} ctx.restart
 *   stops and restarts the server (or drops its connections); may make events happen meanwhile
 * @param {string} ctx.screenshotPath
 * @param {(msg: string) => void} [ctx.log]
 */
export async function runDemoScenario({ page, baseUrl, restart, screenshotPath, log = () => {} }) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // 1. register
  await page.goto(`${baseUrl}/`);
  const username = `dao${Date.now().toString(36)}`;
  await page.fill(byId('login-username'), username);
  await page.fill(byId('login-password'), 'secret-pw-1');
  await page.click(byId('register-submit'));
  await page.waitForSelector(`${byId('conn-badge')}[data-state="open"]`, { timeout: 15_000 });
  await page.waitForFunction((sel) => /^\d+$/.test(document.querySelector(sel)?.textContent ?? ''), byId('debug-seq'), { timeout: 10_000 });
  log(`registered ${username}, connected (v2)`);

  // 2. spirit grows
  const before = await spiritValue(page);
  await page.waitForFunction(
    ([sel, v]) => Number(document.querySelector(sel).textContent.replace(/[^\d.]/g, '')) > v,
    [byId('spirit-value'), before], { timeout: 15_000 },
  );
  log(`spirit grew from ${before} to ${await spiritValue(page)}`);

  // 3. a dungeon to its end
  await page.click(byId('dungeon-start'));
  await page.waitForFunction(
    (sel) => /victory|defeat/.test(document.querySelector(sel)?.textContent ?? ''), byId('dungeon-state'), { timeout: 60_000 },
  );
  const first = await dungeonEntries(page);
  assertCompleteRun(first);
  log(`dungeon 1: ${first.length} events, ${await page.textContent(byId('dungeon-state'))}`);

  // 4. the server goes away and comes back; the page must catch up on everything
  const session = await page.evaluate(() => JSON.parse(sessionStorage.getItem('xiuxian.session')));
  const seqBefore = Number(await page.textContent(byId('debug-seq')));
  const sawReconnecting = page.waitForFunction(
    (sel) => /^reconnecting in \d+ s$/.test(document.querySelector(sel)?.textContent ?? ''),
    byId('conn-badge'), { timeout: 60_000, polling: 50 },
  );
  await restart(session);
  await sawReconnecting;
  await page.waitForSelector(`${byId('conn-badge')}[data-state="open"]`, { timeout: 30_000 });
  log(`reconnected; recovered=${await page.textContent(byId('debug-recovered'))}`);
  assert.equal(await page.$(byId('notice')), null, 'no resync: the missed events were replayed, not lost');

  // 5. the run that happened while we were away shows completely, once
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(`${sel} li`)].filter((li) => li.dataset.event === 'start').length >= 2
      && /victory|defeat/.test(document.querySelector('[data-testid="dungeon-state"]').textContent),
    byId('dungeon-log'), { timeout: 60_000 },
  );
  const all = await dungeonEntries(page);
  const secondStart = all.findIndex((e, i) => i > 0 && e.event === 'start');
  assertCompleteRun(all.slice(secondStart));
  assert.ok(Number(await page.textContent(byId('debug-seq'))) > seqBefore);
  const snap = await (await fetch(`${baseUrl}/api/player/snapshot`, { headers: { Authorization: `Bearer ${session.token}` } })).json();
  await page.waitForFunction(
    ([sel, seq]) => Number(document.querySelector(sel).textContent) >= seq,
    [byId('debug-seq'), snap.position.seq], { timeout: 10_000 },
  );
  log(`dungeon 2 complete after the restart (${all.length - secondStart} events); page at seq ${await page.textContent(byId('debug-seq'))}`);

  // 6. a reload keeps the session (sessionStorage) and reconnects without logging in
  await page.reload();
  await page.waitForSelector(`${byId('conn-badge')}[data-state="open"]`, { timeout: 15_000 });
  assert.equal(await page.textContent(byId('username')), username);
  log('reload: still logged in and connected');

  mkdirSync(dirname(screenshotPath), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });
  assert.deepEqual(errors, [], 'no uncaught page errors');
}

/**
 * Starts a dungeon over REST, as another tab would, while the page is away.
 * @param {string} baseUrl
 * @param {string} token
 */
export async function startDungeonViaApi(baseUrl, token) {
  const res = await fetch(`${baseUrl}/api/dungeon/start`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: '{}',
  });
  assert.ok(res.ok, `POST /api/dungeon/start: ${res.status} ${await res.text()}`);
}
