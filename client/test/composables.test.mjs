// The composables of useWebSocket.js with the real vue and pinia from
// node_modules: bounded histories, shared store, unsubscribe on scope dispose.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';

register('./static-import-map.mjs', import.meta.url);

const { effectScope, nextTick } = await import('vue');
const { createPinia, setActivePinia } = await import('pinia');
const { WebSocketManager } = await import('../../xiuxian_realtime/static/js/websocket.js');
const {
  useWebSocket, useSpiritGrowth, useDungeonCombat, useLeaderboard, useExploration, useRealtimeStore,
} = await import('../../xiuxian_realtime/static/js/useWebSocket.js');
const { FakeWebSocket, makeManager, welcome, event } = await import('./helpers.mjs');

let manager;
let clock;

beforeEach(() => {
  FakeWebSocket.reset();
  setActivePinia(createPinia());
  ({ manager, clock } = makeManager(WebSocketManager));
});

/** Connects the fake manager and returns its socket. */
async function open(v2 = true) {
  const p = manager.connect('tok', 42);
  const ws = FakeWebSocket.last;
  ws.serverOpen();
  await p;
  if (v2) ws.serverSend(welcome({ seq: 0 }));
  return ws;
}

/**
 * Runs `fn` in a fresh effect scope (like a component's setup).
 * @template T
 * @param {() => T} fn
 * @returns {[T, () => void]} the result and a dispose (like unmounting)
 */
function inScope(fn) {
  const scope = effectScope();
  const result = scope.run(fn);
  return [result, () => scope.stop()];
}

test('useSpiritGrowth keeps the last 100 events and tracks current and total spirit', async () => {
  const ws = await open();
  const [spirit, dispose] = inScope(() => useSpiritGrowth({ manager }));
  for (let i = 1; i <= 150; i++) {
    ws.serverSend(event('spirit:grow', { oldSpirit: i - 1, newSpirit: i, gainAmount: 1, spiritRate: 1, elapsedSeconds: 1 }, { seq: i }));
  }
  assert.equal(spirit.spiritGrowthEvents.value.length, 100);
  assert.equal(spirit.spiritGrowthEvents.value[0].newSpirit, 51, 'oldest dropped first');
  assert.equal(spirit.currentSpirit.value, 150);
  assert.equal(spirit.totalGainedSpirit.value, 150);
  assert.ok(spirit.spiritGrowthEvents.value[99].receivedAt instanceof Date);
  spirit.clearHistory();
  assert.equal(spirit.spiritGrowthEvents.value.length, 0);
  assert.equal(spirit.totalGainedSpirit.value, 0);
  dispose();
  manager.disconnect();
});

test('useDungeonCombat keeps 50 entries, follows the fight and its HP', async () => {
  const ws = await open();
  const [combat, dispose] = inScope(() => useDungeonCombat({ manager }));
  let seq = 0;
  const send = (data) => ws.serverSend(event('dungeon:event', { dungeon: '幽冥洞', message: '', ...data }, { seq: ++seq }));
  send({ eventType: 'start', playerHp: 100, enemyHp: 80 });
  assert.equal(combat.combatState.value, 'fighting');
  assert.equal(combat.currentDungeon.value, '幽冥洞');
  for (let r = 1; r <= 60; r++) send({ eventType: 'combat_round', roundNum: r, playerHp: 100 - r, enemyHp: 80 - r });
  assert.equal(combat.combatLog.value.length, 50);
  assert.equal(combat.combatLog.value[49].roundNum, 60);
  assert.deepEqual(combat.combatHp.value, { player: 40, enemy: 20, playerMax: 100, enemyMax: 80 });
  send({ eventType: 'victory', loot: ['灵石'] });
  assert.equal(combat.combatState.value, 'victory');
  combat.clearLog();
  assert.equal(combat.combatState.value, 'idle');
  dispose();
  manager.disconnect();
});

test('useExploration keeps 50 entries, progress, discoveries; complete resets', async () => {
  const ws = await open();
  const [ex, dispose] = inScope(() => useExploration({ manager }));
  let seq = 0;
  const send = (data) => ws.serverSend(event('exploration:event', { exploreName: '青云山', message: '', ...data }, { seq: ++seq }));
  send({ eventType: 'start', durationSecs: 60 });
  assert.equal(ex.currentExploration.value, '青云山');
  for (let i = 1; i <= 55; i++) send({ eventType: 'progress', progress: i });
  send({ eventType: 'discovery', discovery: '灵草' });
  assert.equal(ex.explorationLog.value.length, 50);
  assert.equal(ex.explorationProgress.value, 55);
  assert.equal(ex.discoveries.value.length, 1);
  send({ eventType: 'complete', reward: { spirit: 10 } });
  assert.equal(ex.currentExploration.value, null);
  assert.equal(ex.explorationProgress.value, 0);
  dispose();
  manager.disconnect();
});

test('useLeaderboard applies full_refresh and rank updates per category', async () => {
  const ws = await open();
  const [lb, dispose] = inScope(() => useLeaderboard({ manager }));
  const top10 = [{ rank: 1, userId: 7, username: 'a', spirit: 9, power: 1, level: 1, avatarUrl: '' }];
  ws.serverSend(event('leaderboard:update', { type: 'full_refresh', category: 'power', top10, userRank: { rank: 3, value: 5, percent: 10 } }, { bseq: 1, userId: 0 }));
  assert.deepEqual(lb.getLeaderboard('power').top10, top10);
  ws.serverSend(event('leaderboard:update', { type: 'rank_up', category: 'power', top10: null, userRank: { rank: 2, value: 6, percent: 5 } }, { seq: 1 }));
  assert.equal(lb.leaderboards.value.power.userRank.rank, 2);
  assert.deepEqual(lb.leaderboards.value.power.top10, top10, 'a rank change keeps the top 10');
  ws.serverSend(event('leaderboard:update', { type: 'update', category: 'nonsense' }, { seq: 2 }));
  lb.setLeaderboard('level', { top10, userRank: null });
  assert.equal(lb.getLeaderboard('level').top10.length, 1);
  dispose();
  manager.disconnect();
});

test('components share one store and one subscription per type; unmounting releases it', async () => {
  const ws = await open();
  const [a, disposeA] = inScope(() => ({ s: useSpiritGrowth({ manager }), w: useWebSocket({ manager }) }));
  const [b, disposeB] = inScope(() => ({
    s: useSpiritGrowth({ manager }),
    d: useDungeonCombat({ manager }),
    l: useLeaderboard({ manager }),
    e: useExploration({ manager }),
  }));
  assert.equal(manager.listenerCount('spirit:grow'), 1, 'one subscription, however many users');
  ws.serverSend(event('spirit:grow', { newSpirit: 5, gainAmount: 5 }, { seq: 1 }));
  assert.equal(a.s.currentSpirit.value, 5);
  assert.equal(b.s.currentSpirit.value, 5);
  assert.equal(a.s.totalGainedSpirit.value, 5, 'counted once');

  disposeA();
  assert.equal(manager.listenerCount('spirit:grow'), 1, 'b still uses it');
  assert.equal(manager.listenerCount('connection:status'), 0);
  disposeB();
  assert.equal(manager.listenerCount(), 0, 'nothing left on the manager');
  assert.equal(useRealtimeStore().activeFeedCount(), 0);
  ws.serverSend(event('spirit:grow', { newSpirit: 6, gainAmount: 1 }, { seq: 2 }));
  assert.equal(useRealtimeStore().currentSpirit, 5, 'no longer fed');
  manager.disconnect();
});

test('useWebSocket: status, position and raw messages follow the manager; its subscriptions end with the scope', async () => {
  const [w, dispose] = inScope(() => useWebSocket({ manager }));
  assert.equal(w.connectionStatus.value, 'disconnected');
  const watched = [];
  w.watchConnectionStatus((s) => watched.push(s));
  const seen = [];
  w.subscribeSpiritGrowthData((d) => seen.push(d.newSpirit));

  const p = w.initWebSocket('tok', 42);
  assert.equal(w.connectionStatus.value, 'connecting');
  const ws = FakeWebSocket.last;
  ws.serverOpen();
  await p;
  assert.equal(w.isConnected.value, true);
  assert.equal(w.connectionStatus.value, 'connected');
  ws.serverSend(welcome({ epoch: 'E', seq: 4, bseq: 1 }));
  ws.serverSend(event('spirit:grow', { newSpirit: 2 }, { seq: 5 }));
  assert.deepEqual(w.position.value, { epoch: 'E', seq: 5, bseq: 1 });
  assert.equal(w.spiritData.value.newSpirit, 2);
  assert.deepEqual(seen, [2]);
  assert.equal(w.rawMessages.value.at(-1).message.type, 'spirit:grow');

  ws.serverClose(1006);
  assert.equal(w.connectionStatus.value, 'reconnecting');
  assert.equal(w.isConnected.value, false);
  assert.deepEqual(watched, ['open', 'close']);
  assert.equal(w.getStatus().connectionStatus, 'reconnecting');

  dispose();
  assert.equal(manager.listenerCount(), 0);
  w.disconnect();
  assert.equal(clock.pending, 0);
  await nextTick();
});

test('subscribe: false leaves feeding to the caller, as in the original', async () => {
  const ws = await open();
  const [s, dispose] = inScope(() => useSpiritGrowth({ manager, subscribe: false }));
  assert.equal(manager.listenerCount('spirit:grow'), 0);
  ws.serverSend(event('spirit:grow', { newSpirit: 9, gainAmount: 9 }, { seq: 1 }));
  assert.equal(s.currentSpirit.value, 0);
  s.handleSpiritGrowth({ newSpirit: 3, gainAmount: 3 });
  assert.equal(s.currentSpirit.value, 3);
  dispose();
  manager.disconnect();
});
