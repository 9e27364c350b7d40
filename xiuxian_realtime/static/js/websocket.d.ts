// Hand-written types of websocket.js (docs/protocol.md describes the wire format).

/** Where a client is in its streams. `null` = unknown (no welcome seen yet). */
export interface StreamPosition {
  epoch: string | null;
  seq: number | null;
  bseq: number | null;
}

/** `idle`: never connected or disconnected on purpose; `offline`: stopped (terminal close code or gave up). */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'offline';

export interface ConnectionStatus {
  isConnected: boolean;
  status: ConnectionState;
  /** URL of the current/last socket, token replaced by `***`. */
  url: string | null;
  reconnectAttempts: number;
  /** Clock time (ms) of the next reconnect attempt, while `reconnecting`. */
  nextRetryAt: number | null;
  retryInMs: number | null;
  retryDelay: number | null;
  /** `v2` once the current connection received a `welcome`. */
  protocol: 'v2' | 'legacy';
  connectionId: string | null;
  /** The welcome's `recovered`: `true` when the missed events are being replayed. */
  recovered: boolean | null;
  position: StreamPosition;
  lastClose: { code: number; reason: string } | null;
  /** Round trip of the last ping/pong, ms. */
  rttMs: number | null;
}

export interface Logger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** Minimal browser-compatible WebSocket the manager needs. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface ResyncInfo {
  reason: 'epoch_mismatch' | 'history_expired' | 'ahead' | string;
  /** The position the server announced in `resync`. */
  position: StreamPosition;
}

/**
 * Refetch state (e.g. `GET /api/player/snapshot`) and return the position it
 * corresponds to; returning nothing continues from the server's position.
 */
export type ResyncHook = (info: ResyncInfo) => Promise<Partial<StreamPosition> | void> | Partial<StreamPosition> | void;

/**
 * Called after close code 4100/4101. Return a new token to reconnect with it,
 * or nothing to stay offline.
 */
export type AuthFailureHook = (info: { code: number; reason: string; userId: string | number | null }) =>
  Promise<string | null | undefined | void> | string | null | undefined | void;

export interface WebSocketManagerOptions {
  /** 2 (default): `v=2` with welcome, positions and resume. 1: the original (legacy) protocol. */
  protocolVersion?: 1 | 2;
  /** Default endpoint for `connect()` when it is given none (absolute, or relative to the page). */
  url?: string;
  /** Port of the default endpoint `ws(s)://<location.hostname>:<port><path>`. Default 3000. */
  port?: number;
  /** Path of the default endpoint. Default `/ws`. */
  path?: string;
  /** Ping period, ms, until the welcome says otherwise. Default 1000. */
  heartbeatInterval?: number;
  /** Silence after which a v2 connection counts as dead, ms, until the welcome says otherwise. Default 10000. */
  heartbeatTimeout?: number;
  /** A socket not open after this long is abandoned, ms. Default 10000. */
  connectTimeout?: number;
  /** Reconnect delay floor, ms. Default 250. */
  minReconnectDelay?: number;
  /** Ceiling of the first attempt's jitter, doubled per attempt, ms. Default 1000. */
  baseReconnectDelay?: number;
  /** Reconnect delay cap, ms. Default 30000. */
  maxReconnectDelay?: number;
  /** A connection open this long resets the attempt counter, ms. Default 10000. */
  stableConnectionTime?: number;
  /** Give up after this many failed attempts in a row. Default Infinity (the original: 5). */
  maxReconnectAttempts?: number;
  onResync?: ResyncHook;
  onAuthFailure?: AuthFailureHook;
  /** Injectables (default: the globals). `window`/`document`: `null` disables online/visibility handling. */
  WebSocket?: new (url: string) => WebSocketLike;
  timers?: Timers;
  now?: () => number;
  random?: () => number;
  window?: { location?: { protocol: string; hostname: string; href: string }; addEventListener(t: string, f: () => void): void; removeEventListener(t: string, f: () => void): void } | null;
  document?: { visibilityState: string; addEventListener(t: string, f: () => void): void; removeEventListener(t: string, f: () => void): void } | null;
  logger?: Logger;
}

export interface EventMeta {
  type: string;
  userId: number;
  /** Server time, Unix seconds. */
  timestamp: number;
  seq?: number;
  bseq?: number;
}

export interface SpiritGrowData {
  userId: number; oldSpirit: number; newSpirit: number; gainAmount: number;
  spiritRate: number; elapsedSeconds: number; timestamp: number;
}

export interface DungeonEventData {
  userId: number;
  eventType: 'start' | 'combat_round' | 'victory' | 'defeat' | 'treasure';
  dungeon: string; message: string; roundNum: number; playerHp: number; enemyHp: number;
  damageDealt: number; damageTaken: number; loot: unknown; timestamp: number;
}

export interface ExplorationEventData {
  userId: number;
  eventType: 'start' | 'progress' | 'discovery' | 'complete' | 'failure';
  exploreName: string; message: string; progress: number; durationSecs: number; elapsedSecs: number;
  discovery: unknown; reward: unknown; errorMsg: string; timestamp: number;
}

export interface LeaderboardEntry {
  rank: number; userId: number; username: string; spirit: number; power: number; level: number; avatarUrl: string;
}

export interface LeaderboardUpdateData {
  type: 'full_refresh' | 'update' | 'rank_up' | 'rank_down';
  category: 'spirit' | 'power' | 'level';
  updateTime: number;
  top10: LeaderboardEntry[] | null;
  userRank: { rank: number; value: number; percent: number } | null;
  timestamp: number;
}

export interface CloseDetail {
  code: number; reason: string; wasOpen: boolean; intentional: boolean; timestamp: number;
}

/** Local events, emitted through the same `on()`. */
export interface LocalEvents {
  'connection:open': { userId: string | number | null; timestamp: number };
  'connection:close': CloseDetail;
  'connection:error': { error: unknown; timestamp: number };
  /** After every state change and every position change. */
  'connection:status': ConnectionStatus;
  /** Every parsed inbound message, protocol messages included (for debugging). */
  'connection:message': { type: string; [k: string]: unknown };
  'connection:resync': ResyncInfo;
  'connection:duplicate': { type: string; seq?: number; bseq?: number; position: StreamPosition };
}

export interface GameEvents {
  'spirit:grow': SpiritGrowData;
  'dungeon:event': DungeonEventData;
  'exploration:event': ExplorationEventData;
  'leaderboard:update': LeaderboardUpdateData;
}

export const TERMINAL_CLOSE_MIN: 4100;
export const TERMINAL_CLOSE_MAX: 4199;
export const AUTH_CLOSE_CODES: readonly number[];
export const DEFAULTS: Readonly<Required<Pick<WebSocketManagerOptions,
  'protocolVersion' | 'port' | 'path' | 'heartbeatInterval' | 'heartbeatTimeout' | 'connectTimeout' |
  'minReconnectDelay' | 'baseReconnectDelay' | 'maxReconnectDelay' | 'stableConnectionTime' | 'maxReconnectAttempts'>>>;

export function isTerminalCloseCode(code: number): boolean;
export function reconnectDelay(
  attempt: number,
  opts: { minReconnectDelay: number; baseReconnectDelay: number; maxReconnectDelay: number },
  random: () => number,
): number;

export class WebSocketManager {
  constructor(options?: WebSocketManagerOptions);
  onResync: ResyncHook | undefined;
  onAuthFailure: AuthFailureHook | undefined;
  isConnected: boolean;
  url: string | null;
  reconnectAttempts: number;
  maxReconnectAttempts: number;
  readonly position: StreamPosition;

  connect(token: string, userId: number | string, serverUrl?: string | null): Promise<void>;
  disconnect(): void;
  on<K extends keyof GameEvents>(type: K, callback: (data: GameEvents[K], meta: EventMeta) => void): () => void;
  on<K extends keyof LocalEvents>(type: K, callback: (detail: LocalEvents[K]) => void): () => void;
  /** Every delivered event (game events and any type published through the API), after duplicate suppression. */
  on(type: '*', callback: (data: any, meta: EventMeta) => void): () => void;
  on(type: string, callback: (data: any, meta?: EventMeta) => void): () => void;
  off(type: string, callback: Function): void;
  listenerCount(type?: string): number;
  send(message: object): boolean;
  getConnectionStatus(): ConnectionStatus;
  setPosition(position: Partial<StreamPosition>): void;
  resetPosition(): void;
  setToken(token: string): void;
  reconnectNow(why?: string): boolean;
}

export const wsManager: WebSocketManager;
export default wsManager;

export function subscribeSpiritGrowth(cb: (data: SpiritGrowData, meta: EventMeta) => void, manager?: WebSocketManager): () => void;
export function subscribeDungeonEvent(cb: (data: DungeonEventData, meta: EventMeta) => void, manager?: WebSocketManager): () => void;
export function subscribeLeaderboardUpdate(cb: (data: LeaderboardUpdateData, meta: EventMeta) => void, manager?: WebSocketManager): () => void;
export function subscribeExplorationEvent(cb: (data: ExplorationEventData, meta: EventMeta) => void, manager?: WebSocketManager): () => void;
export function subscribeConnectionEvent(
  cb: (event: { status: 'open' | 'close' | 'error'; data?: unknown; error?: unknown }) => void,
  manager?: WebSocketManager,
): () => void;
