// xiuxian_realtime/static/js/useWebSocket.js
//
// Vue 3 composables over websocket.js, with the names and return values of the
// original `src/composables/useWebSocket.js`, backed by one Pinia store so all
// components share one copy of the state.
//
// Differences from the original, on purpose:
//   - useSpiritGrowth/useDungeonCombat/useLeaderboard/useExploration subscribe
//     the store to their event type themselves (pass `{ subscribe: false }` to
//     feed `handle*` by hand as before). The store holds one subscription per
//     event type however many components use it (reference counted).
//   - Every subscription a composable makes is released when its component is
//     unmounted (or its effect scope disposed): no listener leaks.
//   - connectionStatus is 'disconnected' | 'connecting' | 'connected' |
//     'reconnecting' | 'offline' (the original's 'error' is 'reconnecting' or
//     'offline' now that reconnects are tracked).
//
// Imports 'vue' and 'pinia' as bare specifiers: the page's import map resolves
// them in the browser, node_modules in tests.

import { ref, computed, getCurrentScope, onScopeDispose } from 'vue';
import { defineStore, storeToRefs } from 'pinia';
import { wsManager } from './websocket.js';

/** History bounds, as in the original. */
export const SPIRIT_HISTORY_LIMIT = 100;
export const COMBAT_LOG_LIMIT = 50;
export const EXPLORATION_LOG_LIMIT = 50;
/** Raw messages kept for the debug panel. */
export const RAW_MESSAGE_LIMIT = 30;

/** @typedef {import('./websocket.js').WebSocketManager} WebSocketManager */
/** @typedef {'spirit'|'dungeon'|'leaderboard'|'exploration'|'connection'} Feed */

/**
 * Appends to an array, dropping the oldest entries beyond `limit`.
 * @template T
 * @param {T[]} list
 * @param {T} item
 * @param {number} limit
 */
function pushBounded(list, item, limit) {
  list.push(item);
  if (list.length > limit) list.splice(0, list.length - limit);
}

/** manager state -> the composable's connectionStatus vocabulary */
const STATUS_NAMES = /** @type {const} */ ({
  idle: 'disconnected',
  connecting: 'connecting',
  open: 'connected',
  reconnecting: 'reconnecting',
  offline: 'offline',
});

/**
 * A history entry: the event's data, its stream position and when it arrived.
 * @param {object} data
 * @param {{seq?: number, bseq?: number}} [meta]
 */
function entry(data, meta) {
  return { ...data, seq: meta?.seq ?? null, bseq: meta?.bseq ?? null, receivedAt: new Date() };
}

/** Empty leaderboards, one per category. */
function emptyLeaderboards() {
  return {
    spirit: { top10: [], userRank: null, updateTime: null },
    power: { top10: [], userRank: null, updateTime: null },
    level: { top10: [], userRank: null, updateTime: null },
  };
}

export const useRealtimeStore = defineStore('xiuxian-realtime', () => {
  // ---- connection
  const isConnected = ref(false);
  /** @type {import('vue').Ref<'disconnected'|'connecting'|'connected'|'reconnecting'|'offline'>} */
  const connectionStatus = ref('disconnected');
  /** @type {import('vue').Ref<import('./websocket').ConnectionStatus | null>} the manager's last status */
  const connection = ref(null);
  const position = ref({ epoch: null, seq: null, bseq: null });
  /** @type {import('vue').Ref<object[]>} newest last */
  const rawMessages = ref([]);

  // ---- latest event per type (the original useWebSocket's *Data refs)
  const spiritData = ref(null);
  const dungeonData = ref(null);
  const leaderboardData = ref(null);
  const explorationData = ref(null);

  // ---- spirit
  const spiritGrowthEvents = ref([]);
  const currentSpirit = ref(0);
  const totalGainedSpirit = ref(0);

  // ---- dungeon
  const combatLog = ref([]);
  const currentDungeon = ref(null);
  /** @type {import('vue').Ref<'idle'|'fighting'|'victory'|'defeat'>} */
  const combatState = ref('idle');
  /** HP as last reported, and the highest seen since the start (for bars). */
  const combatHp = ref({ player: null, enemy: null, playerMax: null, enemyMax: null });

  // ---- leaderboards
  const leaderboards = ref(emptyLeaderboards());

  // ---- exploration
  const explorationLog = ref([]);
  const currentExploration = ref(null);
  const explorationProgress = ref(0);

  /**
   * @param {import('./websocket').SpiritGrowData} data
   * @param {import('./websocket').EventMeta} [meta]
   */
  function handleSpiritGrowth(data, meta) {
    spiritData.value = data;
    pushBounded(spiritGrowthEvents.value, entry(data, meta), SPIRIT_HISTORY_LIMIT);
    if (typeof data.newSpirit === 'number') currentSpirit.value = data.newSpirit;
    if (typeof data.gainAmount === 'number') totalGainedSpirit.value += data.gainAmount;
  }

  function clearSpiritHistory() {
    spiritGrowthEvents.value = [];
    totalGainedSpirit.value = 0;
  }

  /** @param {number} value  e.g. from a REST snapshot */
  function setSpirit(value) {
    currentSpirit.value = value;
  }

  /**
   * @param {import('./websocket').DungeonEventData} data
   * @param {import('./websocket').EventMeta} [meta]
   */
  function handleDungeonEvent(data, meta) {
    dungeonData.value = data;
    pushBounded(combatLog.value, entry(data, meta), COMBAT_LOG_LIMIT);
    const hp = combatHp.value;
    switch (data.eventType) {
      case 'start':
        currentDungeon.value = data.dungeon;
        combatState.value = 'fighting';
        hp.player = hp.enemy = hp.playerMax = hp.enemyMax = null;
        break;
      case 'combat_round':
        combatState.value = 'fighting';
        break;
      case 'victory':
        combatState.value = 'victory';
        break;
      case 'defeat':
        combatState.value = 'defeat';
        break;
      default:
        break;
    }
    if (typeof data.playerHp === 'number') {
      hp.player = data.playerHp;
      hp.playerMax = Math.max(hp.playerMax ?? 0, data.playerHp);
    }
    if (typeof data.enemyHp === 'number') {
      hp.enemy = data.enemyHp;
      hp.enemyMax = Math.max(hp.enemyMax ?? 0, data.enemyHp);
    }
  }

  function clearCombatLog() {
    combatLog.value = [];
    currentDungeon.value = null;
    combatState.value = 'idle';
    combatHp.value = { player: null, enemy: null, playerMax: null, enemyMax: null };
  }

  /** @param {import('./websocket').LeaderboardUpdateData} data */
  function handleLeaderboardUpdate(data) {
    leaderboardData.value = data;
    const board = leaderboards.value[data.category];
    if (!board) return; // a category this client does not know
    if (Array.isArray(data.top10) && (data.type === 'full_refresh' || data.top10.length > 0)) {
      board.top10 = data.top10;
    }
    if (data.userRank !== undefined) board.userRank = data.userRank;
    board.updateTime = data.updateTime ?? data.timestamp ?? null;
  }

  /**
   * Sets a board from `GET /api/player/leaderboard?category=`.
   * @param {'spirit'|'power'|'level'} category
   * @param {{top10?: object[], userRank?: object | null}} board
   */
  function setLeaderboard(category, board) {
    if (!leaderboards.value[category]) return;
    leaderboards.value[category] = {
      top10: board.top10 ?? [], userRank: board.userRank ?? null, updateTime: Date.now() / 1000,
    };
  }

  /**
   * @param {import('./websocket').ExplorationEventData} data
   * @param {import('./websocket').EventMeta} [meta]
   */
  function handleExplorationEvent(data, meta) {
    explorationData.value = data;
    pushBounded(explorationLog.value, entry(data, meta), EXPLORATION_LOG_LIMIT);
    switch (data.eventType) {
      case 'start':
        currentExploration.value = data.exploreName;
        explorationProgress.value = 0;
        break;
      case 'progress':
        explorationProgress.value = data.progress;
        break;
      case 'complete':
      case 'failure':
        currentExploration.value = null;
        explorationProgress.value = 0;
        break;
      default:
        break;
    }
  }

  function clearExplorationLog() {
    explorationLog.value = [];
    currentExploration.value = null;
    explorationProgress.value = 0;
  }

  /** @param {import('./websocket').ConnectionStatus} status */
  function applyStatus(status) {
    connection.value = status;
    isConnected.value = status.isConnected;
    connectionStatus.value = STATUS_NAMES[status.status] ?? 'disconnected';
    position.value = { ...status.position };
  }

  /** @param {object} message */
  function recordRaw(message) {
    pushBounded(rawMessages.value, { at: Date.now(), message }, RAW_MESSAGE_LIMIT);
  }

  // ---- feeds: one manager subscription per (manager, feed), reference counted.
  // Private to the store (not state): Map<manager, Map<feed, {count, off}>>.
  /** @type {Map<WebSocketManager, Map<Feed, {count: number, off: () => void}>>} */
  const feeds = new Map();

  /**
   * @param {WebSocketManager} manager
   * @param {Feed} feed
   * @returns {() => void} unsubscribe functions of that feed, combined
   */
  function subscribeFeed(manager, feed) {
    switch (feed) {
      case 'spirit': return manager.on('spirit:grow', handleSpiritGrowth);
      case 'dungeon': return manager.on('dungeon:event', handleDungeonEvent);
      case 'leaderboard': return manager.on('leaderboard:update', handleLeaderboardUpdate);
      case 'exploration': return manager.on('exploration:event', handleExplorationEvent);
      case 'connection': {
        applyStatus(manager.getConnectionStatus());
        const offs = [manager.on('connection:status', applyStatus), manager.on('connection:message', recordRaw)];
        return () => offs.forEach((off) => off());
      }
      default: throw new Error(`unknown feed ${feed}`);
    }
  }

  /**
   * Keeps the store subscribed to a feed of a manager until the returned
   * function has been called as often as retainFeed.
   * @param {WebSocketManager} manager
   * @param {Feed} feed
   * @returns {() => void} release (idempotent)
   */
  function retainFeed(manager, feed) {
    let byFeed = feeds.get(manager);
    if (!byFeed) feeds.set(manager, (byFeed = new Map()));
    let entry = byFeed.get(feed);
    if (!entry) byFeed.set(feed, (entry = { count: 0, off: subscribeFeed(manager, feed) }));
    entry.count += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const e = /** @type {{count: number, off: () => void}} */ (entry);
      e.count -= 1;
      if (e.count > 0) return;
      e.off();
      byFeed?.delete(feed);
      if (byFeed?.size === 0) feeds.delete(manager);
    };
  }

  /**
   * @param {WebSocketManager} [manager]
   * @returns {number} how many feeds are subscribed (for tests and debugging)
   */
  function activeFeedCount(manager) {
    if (manager) return feeds.get(manager)?.size ?? 0;
    let n = 0;
    for (const m of feeds.values()) n += m.size;
    return n;
  }

  return {
    isConnected, connectionStatus, connection, position, rawMessages,
    spiritData, dungeonData, leaderboardData, explorationData,
    spiritGrowthEvents, currentSpirit, totalGainedSpirit,
    combatLog, currentDungeon, combatState, combatHp,
    leaderboards,
    explorationLog, currentExploration, explorationProgress,
    handleSpiritGrowth, clearSpiritHistory, setSpirit,
    handleDungeonEvent, clearCombatLog,
    handleLeaderboardUpdate, setLeaderboard,
    handleExplorationEvent, clearExplorationLog,
    applyStatus, recordRaw, retainFeed, activeFeedCount,
  };
});

/**
 * @typedef {object} ComposableOptions
 * @property {WebSocketManager} [manager]  default: the shared `wsManager`
 * @property {import('pinia').Pinia} [pinia]  default: the active Pinia
 * @property {boolean} [subscribe]  default true: keep the store fed while in scope
 */

/**
 * Runs `release` when the current component unmounts / effect scope is disposed.
 * @param {() => void} release
 */
function releaseOnDispose(release) {
  if (getCurrentScope()) onScopeDispose(release);
}

/**
 * @param {ComposableOptions} options
 * @param {Feed[]} feedNames
 */
function setup(options, feedNames) {
  const manager = options.manager ?? wsManager;
  const store = useRealtimeStore(options.pinia);
  if (options.subscribe !== false) {
    for (const feed of feedNames) releaseOnDispose(store.retainFeed(manager, feed));
  }
  return { manager, store };
}

/**
 * Connection state and subscriptions (the original's useWebSocket).
 * @param {ComposableOptions} [options]
 */
export function useWebSocket(options = {}) {
  const { manager, store } = setup(options, ['connection']);
  const refs = storeToRefs(store);
  /** @type {Array<() => void>} */
  const owned = [];
  releaseOnDispose(() => owned.splice(0).forEach((off) => off()));

  /**
   * @param {string} type
   * @param {(data: any) => void} setLatest
   * @param {Function | undefined} callback
   * @returns {() => void} unsubscribe
   */
  function track(type, setLatest, callback) {
    const off = manager.on(type, (/** @type {any} */ data, /** @type {any} */ meta) => {
      setLatest(data);
      if (callback) callback(data, meta);
    });
    owned.push(off);
    return () => {
      off();
      const i = owned.indexOf(off);
      if (i !== -1) owned.splice(i, 1);
    };
  }

  /**
   * @param {string} token
   * @param {number | string} userId
   * @param {string | null} [serverUrl]
   */
  async function initWebSocket(token, userId, serverUrl = null) {
    await manager.connect(token, userId, serverUrl);
  }

  /**
   * The original's connection watcher; returns an unsubscribe (the original leaked its three listeners).
   * @param {(state: 'open'|'close'|'error', error?: unknown) => void} [callback]
   */
  function watchConnectionStatus(callback) {
    const offs = [
      track('connection:open', () => {}, () => callback?.('open')),
      track('connection:close', () => {}, () => callback?.('close')),
      track('connection:error', () => {}, (/** @type {any} */ d) => callback?.('error', d?.error ?? d)),
    ];
    return () => offs.forEach((off) => off());
  }

  function getStatus() {
    return {
      isConnected: manager.isConnected,
      connectionStatus: store.connectionStatus,
      spiritData: store.spiritData,
      dungeonData: store.dungeonData,
      leaderboardData: store.leaderboardData,
      explorationData: store.explorationData,
      position: manager.position,
    };
  }

  return {
    isConnected: refs.isConnected,
    connectionStatus: refs.connectionStatus,
    spiritData: refs.spiritData,
    dungeonData: refs.dungeonData,
    leaderboardData: refs.leaderboardData,
    explorationData: refs.explorationData,
    initWebSocket,
    subscribeSpiritGrowthData: (/** @type {Function} */ cb) => track('spirit:grow', (d) => { store.spiritData = d; }, cb),
    subscribeDungeonEventData: (/** @type {Function} */ cb) => track('dungeon:event', (d) => { store.dungeonData = d; }, cb),
    subscribeLeaderboardUpdateData: (/** @type {Function} */ cb) => track('leaderboard:update', (d) => { store.leaderboardData = d; }, cb),
    subscribeExplorationEventData: (/** @type {Function} */ cb) => track('exploration:event', (d) => { store.explorationData = d; }, cb),
    watchConnectionStatus,
    disconnect: () => manager.disconnect(),
    getStatus,
    // additions
    connection: refs.connection,
    position: refs.position,
    rawMessages: refs.rawMessages,
    manager,
  };
}

/**
 * Spirit growth: history of the last 100 `spirit:grow` events and the current value.
 * @param {ComposableOptions} [options]
 */
export function useSpiritGrowth(options = {}) {
  const { store } = setup(options, ['spirit']);
  const { spiritGrowthEvents, currentSpirit, totalGainedSpirit } = storeToRefs(store);
  return {
    spiritGrowthEvents, currentSpirit, totalGainedSpirit,
    handleSpiritGrowth: store.handleSpiritGrowth,
    clearHistory: store.clearSpiritHistory,
  };
}

/**
 * Dungeon combat: the last 50 `dungeon:event` entries and the fight's state.
 * @param {ComposableOptions} [options]
 */
export function useDungeonCombat(options = {}) {
  const { store } = setup(options, ['dungeon']);
  const { combatLog, currentDungeon, combatState, combatHp } = storeToRefs(store);
  return {
    combatLog, currentDungeon, combatState,
    handleDungeonEvent: store.handleDungeonEvent,
    clearLog: store.clearCombatLog,
    combatHp,
  };
}

/**
 * Leaderboards of the three categories, from `leaderboard:update` (and REST via setLeaderboard).
 * @param {ComposableOptions} [options]
 */
export function useLeaderboard(options = {}) {
  const { store } = setup(options, ['leaderboard']);
  const { leaderboards } = storeToRefs(store);
  return {
    leaderboards,
    handleLeaderboardUpdate: store.handleLeaderboardUpdate,
    /** @param {'spirit'|'power'|'level'} category */
    getLeaderboard: (category) => store.leaderboards[category] ?? null,
    setLeaderboard: store.setLeaderboard,
  };
}

/**
 * Exploration: the last 50 `exploration:event` entries, the current one and its progress.
 * @param {ComposableOptions} [options]
 */
export function useExploration(options = {}) {
  const { store } = setup(options, ['exploration']);
  const { explorationLog, currentExploration, explorationProgress } = storeToRefs(store);
  const discoveries = computed(() => explorationLog.value.filter((e) => e.eventType === 'discovery'));
  return {
    explorationLog, currentExploration, explorationProgress,
    handleExplorationEvent: store.handleExplorationEvent,
    clearLog: store.clearExplorationLog,
    discoveries,
  };
}
