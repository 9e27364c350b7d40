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
 * What the server side did while the page was away (returned by `restart`).
 * @typedef {object} AwayReport
 * @property {Array<{seq: number, text: string}>} notes  `demo:note` events published through the API, in order
 * @property {boolean} dungeon  whether a dungeon run was started (and finished) meanwhile
 */

/**
 * @param {object} ctx
 * @param {import('playwright-core').Page} ctx.page
 * @param {string} ctx.baseUrl  e.g. http://127.0.0.1:3123
 * @param {(session: {id: number, token: string}) => Promise<AwayReport>} ctx.restart
 *   stops and restarts the server (or drops its connections) and makes events
 *   happen for the user meanwhile. The browser is offline during the call: the
 *   page cannot reconnect before it returns, so everything it reports was missed
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
  assert.equal(await page.textContent(byId('debug-protocol')), 'v2');
  log(`registered ${username}, connected (v2, epoch ${await page.textContent(byId('debug-epoch'))})`);

  // 2. spirit grows
  const before = await spiritValue(page);
  await page.waitForFunction(
    ([sel, v]) => Number(document.querySelector(sel).textContent.replace(/[^\d.]/g, '')) > v,
    [byId('spirit-value'), before], { timeout: 15_000 },
  );
  log(`spirit grew from ${before} to ${await spiritValue(page)}`);

  // 3. a dungeon to its end, and an exploration meanwhile
  await page.click(byId('dungeon-start'));
  await page.waitForSelector(`${byId('explore-location')} option`, { state: 'attached', timeout: 10_000 });
  await page.click(byId('explore-start'));
  await page.waitForFunction(
    (sel) => /victory|defeat/.test(document.querySelector(sel)?.textContent ?? ''), byId('dungeon-state'), { timeout: 60_000 },
  );
  const first = await dungeonEntries(page);
  assertCompleteRun(first);
  log(`dungeon 1: ${first.length} events, ${await page.textContent(byId('dungeon-state'))}`);
  await page.waitForSelector(`${byId('explore-last')}[data-event="complete"], ${byId('explore-last')}[data-event="failure"]`, { timeout: 30_000 });
  log(`exploration: ${await page.getAttribute(byId('explore-last'), 'data-event')} (${await page.textContent(byId('explore-last'))})`);

  // 4. the server goes away and comes back while the browser is offline (so
  //    the page cannot reconnect before the events below have happened)
  const session = await page.evaluate(() => JSON.parse(sessionStorage.getItem('xiuxian.session')));
  const epochBefore = await page.textContent(byId('debug-epoch'));
  const spiritBefore = await spiritValue(page);
  const sawReconnecting = page.waitForFunction(
    (sel) => /^reconnecting in \d+ s$/.test(document.querySelector(sel)?.textContent ?? ''),
    byId('conn-badge'), { timeout: 60_000, polling: 50 },
  );
  sawReconnecting.catch(() => {}); // awaited below; not an unhandled rejection if `restart` throws first
  await page.context().setOffline(true); // the open socket stays; new ones fail
  const away = await restart(session);
  await sawReconnecting;
  const seqAway = Number(await page.textContent(byId('debug-seq')));
  assert.ok(away.notes.every((n) => n.seq > seqAway), `the page has not seen the notes (at seq ${seqAway})`);
  const snapAway = await (await fetch(`${baseUrl}/api/player/snapshot`, { headers: { Authorization: `Bearer ${session.token}` } })).json();
  log(`away: page at seq ${seqAway}, server at seq ${snapAway.position.seq}; notes at ${away.notes.map((n) => n.seq)}`);
  await page.context().setOffline(false); // the 'online' event: the page reconnects at once
  await page.waitForSelector(`${byId('conn-badge')}[data-state="open"]`, { timeout: 30_000 });
  await page.waitForFunction(
    ([sel, seq]) => Number(document.querySelector(sel).textContent) >= seq,
    [byId('debug-seq'), snapAway.position.seq], { timeout: 10_000 },
  );
  assert.equal(await page.textContent(byId('debug-recovered')), 'true', 'the welcome says recovered');
  assert.equal(await page.textContent(byId('debug-epoch')), epochBefore, 'same epoch after the restart');
  assert.equal(await page.$(byId('notice')), null, 'no resync: the missed events were replayed, not lost');
  log(`reconnected: recovered, page at seq ${await page.textContent(byId('debug-seq'))}`);

  // 5. everything that happened while away shows, once, in order
  const notes = await page.$$eval(`${byId('message-entry')}[data-type="demo:note"]`,
    (lis) => lis.map((li) => ({ seq: Number(li.dataset.seq), text: li.textContent })).reverse());
  assert.deepEqual(notes.map((n) => n.seq), away.notes.map((n) => n.seq), 'every published note, once, in order');
  away.notes.forEach((n, i) => assert.ok(notes[i].text.includes(n.text), `note ${n.seq} shows its text`));
  if (away.dungeon) {
    const all = await dungeonEntries(page);
    const secondStart = all.findIndex((e, i) => i > 0 && e.event === 'start');
    assert.ok(secondStart > 0, 'a second run in the log');
    const run = all.slice(secondStart);
    assertCompleteRun(run);
    // nothing else happened for this user while away: the replayed seqs are consecutive
    const replayed = [...run.map((e) => e.seq), ...away.notes.map((n) => n.seq)].sort((a, b) => a - b);
    assert.deepEqual(replayed, replayed.map((_, i) => replayed[0] + i), `replayed seqs without gap: ${replayed}`);
    log(`dungeon 2 (run while away): ${run.length} events, seqs ${run[0].seq}..${run.at(-1).seq}`);
  }

  // spirit goes on from where it was (settled at shutdown), not from 0
  await page.waitForFunction(
    ([sel, v]) => Number(document.querySelector(sel).textContent.replace(/[^\d.]/g, '')) > v,
    [byId('spirit-value'), spiritBefore], { timeout: 15_000 },
  );
  log(`spirit after the restart: ${await spiritValue(page)} (before: ${spiritBefore})`);

  // the screenshot: every panel populated
  await page.waitForSelector(`${byId('leaderboard-table')} tbody tr td:nth-child(2)`, { timeout: 10_000 });
  mkdirSync(dirname(screenshotPath), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });

  // 6. a reload keeps the session (sessionStorage) and reconnects without logging in
  await page.reload();
  await page.waitForSelector(`${byId('conn-badge')}[data-state="open"]`, { timeout: 15_000 });
  assert.equal(await page.textContent(byId('username')), username);
  log('reload: still logged in and connected');
  assert.deepEqual(errors, [], 'no uncaught page errors');
}

/**
 * Starts a dungeon over REST (`{}`: the default dungeon), as another tab would.
 * @param {string} baseUrl
 * @param {string} token
 */
export async function startDungeonViaApi(baseUrl, token) {
  const res = await fetch(`${baseUrl}/api/dungeon/start`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: '{}',
  });
  assert.ok(res.ok, `POST /api/dungeon/start: ${res.status} ${await res.text()}`);
}

/**
 * Publishes a `demo:note` to the user through `POST /api/publish`.
 * @returns {Promise<{seq: number, text: string}>}
 */
export async function publishNote(baseUrl, apiKey, userId, text) {
  const res = await fetch(`${baseUrl}/api/publish`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': apiKey },
    body: JSON.stringify({ userId, type: 'demo:note', data: { text } }),
  });
  const body = await res.text();
  assert.ok(res.ok, `POST /api/publish: ${res.status} ${body}`);
  return { seq: JSON.parse(body).seq, text };
}

/** Polls the snapshot until no dungeon runs for the user. */
export async function waitDungeonDone(baseUrl, token, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const snap = await (await fetch(`${baseUrl}/api/player/snapshot`, { headers: { Authorization: `Bearer ${token}` } })).json();
    if (!snap.dungeon) return;
    if (Date.now() > end) throw new Error('the dungeon did not end in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The events made while the page is away, the same against both servers: a
 * note, a whole dungeon run (started over REST with `{}`), another note.
 * @returns {Promise<AwayReport>}
 */
export async function eventsWhileAway(baseUrl, apiKey, session) {
  const notes = [await publishNote(baseUrl, apiKey, session.id, '师尊传音：速回山门')];
  await startDungeonViaApi(baseUrl, session.token);
  await waitDungeonDone(baseUrl, session.token);
  notes.push(await publishNote(baseUrl, apiKey, session.id, '秘境已平，赏灵石三枚'));
  return { notes, dungeon: true };
}
