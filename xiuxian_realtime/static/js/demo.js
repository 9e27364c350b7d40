// xiuxian_realtime/static/js/demo.js
//
// The demo page: log in or register, then watch the live streams of
// xiuxian-realtime (spirit, dungeon, exploration, leaderboards, and any other
// type published to the player) over one v2 WebSocket, with a connection badge
// and a debug panel of the stream position.
// Vue 3 without a build step: templates are strings compiled in the browser.

import { createApp, ref, computed, onMounted, onUnmounted } from 'vue';
import { createPinia } from 'pinia';
import { wsManager } from './websocket.js';
import {
  useWebSocket, useSpiritGrowth, useDungeonCombat, useLeaderboard, useExploration, useRealtimeStore,
} from './useWebSocket.js';

const SESSION_KEY = 'xiuxian.session';
const CATEGORIES = /** @type {const} */ (['spirit', 'power', 'level']);

// ------------------------------------------------------------------ helpers

/**
 * Calls the REST API on this page's own origin.
 * @param {string} path
 * @param {{method?: string, body?: object, token?: string}} [opts]
 * @returns {Promise<any>} the parsed JSON body
 * @throws {Error} with the server's `{"error"}` message on a 4xx/5xx
 */
async function api(path, { method = 'GET', body, token } = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) throw new Error(json?.error ?? `${method} ${path}: HTTP ${res.status}`);
  return json;
}

/** @returns {{id: number, username: string, token: string} | null} */
function loadSession() {
  try { return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null'); } catch { return null; }
}

/** @param {{id: number, username: string, token: string} | null} s */
function saveSession(s) {
  if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION_KEY);
}

/** The WebSocket endpoint on this page's own host and port. */
function pageWsUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

/** @param {unknown} v @returns {string} */
function fmt(v) {
  return typeof v === 'number' ? v.toLocaleString(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 }) : '—';
}

/** @param {unknown} v @returns {string} loot, reward or discovery as text */
function describe(v) {
  if (v === null || v === undefined || v === '') return '';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(describe).filter(Boolean).join(', ');
  if (typeof v === 'object') {
    const o = /** @type {Record<string, unknown>} */ (v);
    // loot and reward items: {name, quantity}; an exploration reward: {items: [...]}
    if (typeof o.name === 'string') return typeof o.quantity === 'number' && o.quantity !== 1 ? `${o.name} ×${o.quantity}` : o.name;
    if (Array.isArray(o.items) && Object.keys(o).length === 1) return describe(o.items);
    return Object.entries(o).map(([k, x]) => `${k} ${describe(x)}`).join(', ');
  }
  return String(v);
}

/** A clock ref that ticks while mounted (for countdowns). */
function useNow(ms = 250) {
  const now = ref(Date.now());
  let timer = null;
  onMounted(() => { timer = setInterval(() => { now.value = Date.now(); }, ms); });
  onUnmounted(() => clearInterval(timer));
  return now;
}

// ------------------------------------------------------------------- login

const LoginView = {
  emits: ['session'],
  props: { notice: { type: String, default: '' } },
  setup(_props, { emit }) {
    const username = ref('');
    const password = ref('');
    const error = ref('');
    const busy = ref(false);

    /** @param {'login'|'register'} action */
    async function submit(action) {
      error.value = '';
      if (!username.value || !password.value) {
        error.value = 'Enter a name and a password.';
        return;
      }
      busy.value = true;
      try {
        const s = await api(`/api/auth/${action}`, {
          method: 'POST', body: { username: username.value, password: password.value },
        });
        emit('session', { id: s.id, username: s.username, token: s.token });
      } catch (e) {
        error.value = /** @type {Error} */ (e).message;
      } finally {
        busy.value = false;
      }
    }
    return { username, password, error, busy, submit };
  },
  template: `
    <section class="login card">
      <h1>修仙 <small>xiuxian-realtime</small></h1>
      <p class="muted">Enter the sect. Your spirit grows while you are online.</p>
      <p v-if="notice" class="notice" data-testid="login-notice">{{ notice }}</p>
      <form @submit.prevent="submit('login')">
        <label>Name <input v-model.trim="username" data-testid="login-username" autocomplete="username"></label>
        <label>Password <input v-model="password" type="password" data-testid="login-password" autocomplete="current-password"></label>
        <div class="row">
          <button type="submit" :disabled="busy" data-testid="login-submit">Log in</button>
          <button type="button" class="secondary" :disabled="busy" @click="submit('register')" data-testid="register-submit">Register</button>
        </div>
        <p v-if="error" class="error" data-testid="login-error">{{ error }}</p>
      </form>
    </section>`,
};

// ------------------------------------------------------------------ panels

const ConnBadge = {
  setup() {
    const store = useRealtimeStore();
    const now = useNow();
    const label = computed(() => {
      const c = store.connection;
      switch (c?.status) {
        case 'open': return 'connected';
        case 'connecting': return 'connecting…';
        case 'reconnecting': {
          const s = Math.max(0, Math.ceil(((c.nextRetryAt ?? now.value) - now.value) / 1000));
          return `reconnecting in ${s} s`;
        }
        case 'offline': return 'offline';
        default: return 'disconnected';
      }
    });
    const state = computed(() => store.connection?.status ?? 'idle');
    return { label, state };
  },
  template: `<span class="badge" :class="'badge-' + state" :data-state="state" data-testid="conn-badge">{{ label }}</span>`,
};

const SpiritPanel = {
  props: { player: { type: Object, default: null } },
  setup() {
    const { currentSpirit, totalGainedSpirit, spiritGrowthEvents } = useSpiritGrowth();
    const last = computed(() => spiritGrowthEvents.value.at(-1) ?? null);
    return { currentSpirit, totalGainedSpirit, last, fmt };
  },
  template: `
    <section class="card spirit">
      <h2>灵力 Spirit <small v-if="player" data-testid="player-realm">{{ player.realm }}</small></h2>
      <div class="big" data-testid="spirit-value">{{ fmt(currentSpirit) }}</div>
      <p class="muted" v-if="player" data-testid="player-stats">
        level {{ player.level }} · power {{ player.power }}<span v-if="player.ranks?.spirit"> · spirit rank #{{ player.ranks.spirit.rank }}</span>
      </p>
      <p class="muted" v-if="last">
        +{{ fmt(last.gainAmount) }} over {{ fmt(last.elapsedSeconds) }} s · rate {{ fmt(last.spiritRate) }}/s
      </p>
      <p class="muted">gained this session: <span data-testid="spirit-gained">{{ fmt(totalGainedSpirit) }}</span></p>
    </section>`,
};

const HpBar = {
  props: { label: String, value: Number, max: Number, kind: String },
  computed: {
    pct() { return this.max ? Math.max(0, Math.min(100, (100 * (this.value ?? 0)) / this.max)) : 0; },
  },
  template: `
    <div class="hp">
      <span class="hp-label">{{ label }}</span>
      <div class="bar"><div class="fill" :class="kind" :style="{ width: pct + '%' }"></div></div>
      <span class="hp-num">{{ value ?? '—' }}</span>
    </div>`,
};

const DungeonPanel = {
  components: { HpBar },
  props: { token: String },
  setup(props) {
    const { combatLog, currentDungeon, combatState, combatHp } = useDungeonCombat();
    const error = ref('');
    const busy = ref(false);
    async function start() {
      error.value = '';
      busy.value = true;
      try {
        await api('/api/dungeon/start', { method: 'POST', body: {}, token: props.token });
      } catch (e) {
        error.value = /** @type {Error} */ (e).message;
      } finally {
        busy.value = false;
      }
    }
    const entries = computed(() => [...combatLog.value].reverse());
    return { entries, currentDungeon, combatState, combatHp, error, busy, start, describe };
  },
  template: `
    <section class="card dungeon">
      <h2>秘境 Dungeon <small v-if="currentDungeon">{{ currentDungeon }}</small></h2>
      <div class="row">
        <button @click="start" :disabled="busy || combatState === 'fighting'" data-testid="dungeon-start">Enter dungeon</button>
        <span class="state" :class="'state-' + combatState" data-testid="dungeon-state">{{ combatState }}</span>
      </div>
      <p v-if="error" class="error" data-testid="dungeon-error">{{ error }}</p>
      <HpBar label="You" :value="combatHp.player" :max="combatHp.playerMax" kind="player" data-testid="player-hp"></HpBar>
      <HpBar label="Foe" :value="combatHp.enemy" :max="combatHp.enemyMax" kind="enemy" data-testid="enemy-hp"></HpBar>
      <ol class="log" data-testid="dungeon-log">
        <li v-for="e in entries" :key="(e.seq ?? '') + ':' + e.receivedAt.getTime() + ':' + e.roundNum + e.eventType"
            :class="'ev-' + e.eventType" data-testid="dungeon-entry" :data-seq="e.seq" :data-event="e.eventType" :data-round="e.roundNum">
          <span class="tag">{{ e.eventType === 'combat_round' ? 'round ' + e.roundNum : e.eventType }}</span>
          {{ e.message }}
          <span v-if="e.damageDealt || e.damageTaken" class="muted">(dealt {{ e.damageDealt }}, taken {{ e.damageTaken }})</span>
          <span v-if="describe(e.loot)" class="loot">loot: {{ describe(e.loot) }}</span>
        </li>
      </ol>
    </section>`,
};

const ExplorationPanel = {
  props: { token: String },
  setup(props) {
    const { explorationLog, currentExploration, explorationProgress, discoveries } = useExploration();
    const locations = ref(/** @type {any[]} */ ([]));
    const selected = ref('');
    const error = ref('');
    onMounted(async () => {
      try {
        const res = await api('/api/exploration/locations', { token: props.token });
        locations.value = Array.isArray(res) ? res : (res?.locations ?? []);
        if (locations.value.length) selected.value = locations.value[0].id;
      } catch (e) {
        error.value = /** @type {Error} */ (e).message;
      }
    });
    async function start() {
      error.value = '';
      try {
        await api('/api/exploration/start', { method: 'POST', body: { location: selected.value }, token: props.token });
      } catch (e) {
        error.value = /** @type {Error} */ (e).message;
      }
    }
    const last = computed(() => explorationLog.value.at(-1) ?? null);
    return { locations, selected, error, start, currentExploration, explorationProgress, discoveries, last, describe };
  },
  template: `
    <section class="card exploration">
      <h2>探索 Exploration</h2>
      <div class="row">
        <select v-model="selected" data-testid="explore-location">
          <option v-for="l in locations" :key="l.id" :value="l.id">{{ l.name }} ({{ l.durationSecs }} s)</option>
        </select>
        <button @click="start" :disabled="!selected || !!currentExploration" data-testid="explore-start">Explore</button>
      </div>
      <p v-if="error" class="error" data-testid="explore-error">{{ error }}</p>
      <div class="bar big-bar" data-testid="explore-progress" :data-progress="explorationProgress">
        <div class="fill jade" :style="{ width: explorationProgress + '%' }"></div>
        <span>{{ currentExploration ? currentExploration + ' · ' + explorationProgress + '%' : 'idle' }}</span>
      </div>
      <p v-if="last" class="muted" data-testid="explore-last" :data-event="last.eventType">{{ last.message }}<span v-if="last.errorMsg" class="error"> {{ last.errorMsg }}</span></p>
      <ul class="log" data-testid="explore-log">
        <li v-for="d in [...discoveries].reverse()" :key="d.seq + ':' + d.receivedAt.getTime()">
          ✦ {{ describe(d.discovery) || d.message }} <span v-if="describe(d.reward)" class="loot">{{ describe(d.reward) }}</span>
        </li>
      </ul>
    </section>`,
};

const LeaderboardPanel = {
  props: { token: String, userId: Number },
  setup(props) {
    const { leaderboards, setLeaderboard } = useLeaderboard();
    const tab = ref(/** @type {'spirit'|'power'|'level'} */ ('spirit'));
    const error = ref('');
    async function load(/** @type {'spirit'|'power'|'level'} */ category) {
      try {
        setLeaderboard(category, await api(`/api/player/leaderboard?category=${category}`, { token: props.token }));
      } catch (e) {
        error.value = /** @type {Error} */ (e).message;
      }
    }
    onMounted(() => CATEGORIES.forEach(load));
    const board = computed(() => leaderboards.value[tab.value]);
    return { tab, board, error, CATEGORIES, load, fmt };
  },
  template: `
    <section class="card leaderboard">
      <h2>排行榜 Leaderboards</h2>
      <div class="tabs">
        <button v-for="c in CATEGORIES" :key="c" :class="{ active: tab === c }" @click="tab = c; load(c)" :data-testid="'lb-tab-' + c">{{ c }}</button>
      </div>
      <p v-if="error" class="error">{{ error }}</p>
      <table data-testid="leaderboard-table">
        <thead><tr><th>#</th><th>name</th><th>spirit</th><th>power</th><th>level</th></tr></thead>
        <tbody>
          <tr v-for="r in board.top10" :key="r.userId" :class="{ me: r.userId === userId }">
            <td>{{ r.rank }}</td><td>{{ r.username }}</td><td>{{ fmt(r.spirit) }}</td><td>{{ r.power }}</td><td>{{ r.level }}</td>
          </tr>
          <tr v-if="!board.top10.length"><td colspan="5" class="muted">no entries yet</td></tr>
        </tbody>
      </table>
      <p class="muted" data-testid="lb-user-rank" v-if="board.userRank">
        your rank: {{ board.userRank.rank }} · {{ fmt(board.userRank.value) }} · top {{ fmt(board.userRank.percent) }}%
      </p>
    </section>`,
};

/** The four game event types; everything else (e.g. published by other services) goes to MessagesPanel. */
const GAME_TYPES = new Set(['spirit:grow', 'dungeon:event', 'exploration:event', 'leaderboard:update']);
const MESSAGE_LIMIT = 30;

/** Events of any other type, e.g. sent through `POST /api/publish` by another service. */
const MessagesPanel = {
  setup() {
    const messages = ref(/** @type {Array<{type: string, seq: number | null, bseq: number | null, data: any, at: Date}>} */ ([]));
    let off = () => {};
    onMounted(() => {
      off = wsManager.on('*', (data, meta) => {
        if (GAME_TYPES.has(meta.type)) return;
        messages.value = [...messages.value, { type: meta.type, seq: meta.seq ?? null, bseq: meta.bseq ?? null, data, at: new Date() }]
          .slice(-MESSAGE_LIMIT);
      });
    });
    onUnmounted(() => off());
    const shown = computed(() => [...messages.value].reverse());
    /** @param {any} data */
    const text = (data) => (typeof data?.text === 'string' ? data.text
      : typeof data?.message === 'string' ? data.message : JSON.stringify(data));
    return { shown, text };
  },
  template: `
    <section class="card messages">
      <h2>传音 Messages</h2>
      <ol class="log" data-testid="message-log">
        <li v-for="m in shown" :key="m.type + (m.seq ?? 'b' + m.bseq)" data-testid="message-entry" :data-type="m.type" :data-seq="m.seq">
          <span class="tag">{{ m.type }}</span> {{ text(m.data) }}
          <span class="muted">#{{ m.seq ?? 'b' + m.bseq }} · {{ m.at.toLocaleTimeString() }}</span>
        </li>
        <li v-if="!shown.length" class="muted">nothing yet (other services publish here)</li>
      </ol>
    </section>`,
};

const DebugPanel = {
  setup() {
    const { position, connection, rawMessages } = useWebSocket();
    const hidePongs = ref(true);
    const shown = computed(() => rawMessages.value
      .filter((r) => !(hidePongs.value && r.message.type === 'pong'))
      .slice(-15).reverse());
    return { position, connection, shown, hidePongs };
  },
  template: `
    <section class="card debug">
      <h2>Debug</h2>
      <dl class="pos">
        <dt>epoch</dt><dd data-testid="debug-epoch">{{ position.epoch ?? '—' }}</dd>
        <dt>seq</dt><dd data-testid="debug-seq">{{ position.seq ?? '—' }}</dd>
        <dt>bseq</dt><dd data-testid="debug-bseq">{{ position.bseq ?? '—' }}</dd>
        <dt>protocol</dt><dd data-testid="debug-protocol">{{ connection?.protocol ?? '—' }}</dd>
        <dt>connection</dt><dd data-testid="debug-conn-id">{{ connection?.connectionId ?? '—' }}</dd>
        <dt>recovered</dt><dd data-testid="debug-recovered">{{ connection?.recovered ?? '—' }}</dd>
        <dt>attempts</dt><dd>{{ connection?.reconnectAttempts ?? 0 }}</dd>
        <dt>rtt</dt><dd>{{ connection?.rttMs ?? '—' }} ms</dd>
        <dt>last close</dt><dd data-testid="debug-last-close">{{ connection?.lastClose ? connection.lastClose.code + ' ' + connection.lastClose.reason : '—' }}</dd>
      </dl>
      <label class="muted"><input type="checkbox" v-model="hidePongs"> hide pongs</label>
      <ol class="raw" data-testid="debug-raw">
        <li v-for="r in shown" :key="r.at + r.message.type + (r.message.seq ?? r.message.bseq ?? '')">{{ JSON.stringify(r.message) }}</li>
      </ol>
    </section>`,
};

// -------------------------------------------------------------------- game

const GameView = {
  components: { ConnBadge, SpiritPanel, DungeonPanel, ExplorationPanel, LeaderboardPanel, MessagesPanel, DebugPanel },
  props: { session: { type: Object, required: true } },
  emits: ['logout'],
  setup(props, { emit }) {
    const { initWebSocket, disconnect } = useWebSocket();
    const store = useRealtimeStore();
    const notice = ref('');
    const player = ref(/** @type {any} */ (null));

    /** Applies `GET /api/player/snapshot` and returns its stream position. */
    async function refetchSnapshot() {
      const snap = await api('/api/player/snapshot', { token: props.session.token });
      player.value = snap;
      if (typeof snap?.spirit === 'number') store.setSpirit(snap.spirit);
      return snap?.position;
    }

    /** Refreshes the player card (level, power, ranks) after something changed it. */
    async function refreshPlayer() {
      try {
        player.value = await api('/api/player/snapshot', { token: props.session.token });
      } catch { /* keep the previous card */ }
    }
    const offs = [
      wsManager.on('dungeon:event', (d) => { if (d.eventType === 'victory' || d.eventType === 'defeat') refreshPlayer(); }),
      wsManager.on('exploration:event', (d) => { if (d.eventType === 'complete' || d.eventType === 'failure') refreshPlayer(); }),
    ];

    onMounted(async () => {
      wsManager.onResync = async () => {
        notice.value = 'Resynchronised from a snapshot (some events could not be replayed).';
        return refetchSnapshot();
      };
      wsManager.onAuthFailure = () => {
        emit('logout', 'Your session has expired; please log in again.');
        return null;
      };
      try {
        const position = await refetchSnapshot();
        if (position) wsManager.setPosition(position); // the server replays anything newer
      } catch (e) {
        notice.value = `Snapshot unavailable: ${/** @type {Error} */ (e).message}`;
      }
      initWebSocket(props.session.token, props.session.id, pageWsUrl()).catch(() => {
        // the badge shows the retries
      });
    });

    onUnmounted(() => {
      offs.forEach((off) => off());
      disconnect();
      wsManager.resetPosition();
      wsManager.onResync = undefined;
      wsManager.onAuthFailure = undefined;
    });

    return { notice, player, logout: () => emit('logout', '') };
  },
  template: `
    <header class="top">
      <h1>修仙 <small>xiuxian-realtime</small></h1>
      <span class="who" data-testid="username">{{ session.username }}</span>
      <ConnBadge />
      <button class="secondary" @click="logout" data-testid="logout">Log out</button>
    </header>
    <p v-if="notice" class="notice" data-testid="notice">{{ notice }}</p>
    <main class="grid">
      <SpiritPanel :player="player" />
      <DungeonPanel :token="session.token" />
      <ExplorationPanel :token="session.token" />
      <LeaderboardPanel :token="session.token" :user-id="session.id" />
      <MessagesPanel />
      <DebugPanel />
    </main>`,
};

// --------------------------------------------------------------------- app

const App = {
  components: { LoginView, GameView },
  setup() {
    const session = ref(loadSession());
    const notice = ref('');
    /** @param {{id: number, username: string, token: string}} s */
    function onSession(s) {
      saveSession(s);
      notice.value = '';
      session.value = s;
    }
    /** @param {string} why */
    function onLogout(why) {
      saveSession(null);
      notice.value = why || '';
      session.value = null;
    }
    return { session, notice, onSession, onLogout };
  },
  template: `
    <GameView v-if="session" :key="session.token" :session="session" @logout="onLogout" />
    <LoginView v-else :notice="notice" @session="onSession" />`,
};

createApp(App).use(createPinia()).mount('#app');
