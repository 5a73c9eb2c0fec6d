// What the watcher tells: the live view of every backend it follows, and the events that
// changed it. Both are written as JSON (NDJSON events on stdout, the serve API) with schema 1.
import type { RpcDetails } from '../probes/types.js';
import type { Backend, SourceName } from '../resolver/types.js';

/** Alive (`up`, serving or busy with a client) or `down` (failed `failAfter` checks in a row). */
export type WatchState = 'up' | 'down';

export type WatchEventType = 'added' | 'removed' | 'up' | 'down' | 'changed';

/** Which look at a backend produced an observation. */
export type CheckKind = 'resolve' | 'health' | 'witness' | 'peer' | 'forget';

export interface CheckRecord {
  /** ISO time of the check. */
  at: string;
  check: CheckKind;
  ok: boolean;
  /** What it saw, in a sentence. */
  saw: string;
}

export interface WatchedBackend {
  host: string;
  port: number;
  state: WatchState;
  /** Every source that named it in the last resolve that did (chain order). */
  sources: SourceName[];
  /** When each source last named it (ISO times). */
  namedAt?: Partial<Record<SourceName, string>>;
  verified: boolean;
  /** As in resolve: 'serving', or 'busy' (in use by a client; alive, not a failure). */
  health?: Backend['health'];
  evidence?: Backend['evidence'];
  rttMs?: number;
  rpc?: RpcDetails;
  /** The DNS-SD instance that announced it, when dns-sd named it (as its last resolve saw it). */
  dnsSd?: Backend['dnsSd'];
  /** ISO times: added to the view, the current state entered, last seen alive. */
  addedAt: string;
  since: string;
  lastSeen?: string;
  lastCheck?: CheckRecord;
  /** Checks in a row that failed / succeeded (the hysteresis counters). */
  failures: number;
  successes: number;
  /** Times it went down after being up. */
  flaps: number;
  /** The id of the last event about it. */
  lastEventId?: number;
  /** Other watchers (sharing the Redis) that report it alive (at most 16 listed). */
  reportedBy?: string[];
  /**
   * In the usable list (`rpc`): up, verified, and of the protocol one client can use (the
   * client version given, or else resolve's rule: the most servers, then the newest major).
   */
  usable?: boolean;
  /** Why a backend that is up is not in the usable list: its protocol, or another's claim. */
  leftOut?: string;
  /**
   * Another watcher's coordinator (sharing the Redis) claims it: held for this watcher, never
   * connected to, not usable here. The holder's words, made safe and bounded.
   */
  claimedBy?: { watcher: string; host: string };
}

export interface FieldChange {
  field: 'health' | 'protocol' | 'devices' | 'totalBytes' | 'freeBytes';
  from: string | number | null;
  to: string | number | null;
  /** For freeBytes: which device. */
  device?: number;
}

export interface WatchEvent {
  schema: 1;
  /** Monotonic within one watcher, from 1: one count with its coordinator's events. */
  id: number;
  /** ISO time. */
  time: string;
  type: WatchEventType;
  backend: WatchedBackend;
  /** The check that decided it, and what it saw. */
  cause: { check: CheckKind; saw: string };
  /** For `changed`: what moved. */
  changes?: FieldChange[];
}

/** What a supervised coordinator (`run`) did: started, ready, exited, restarted, gave up. */
export type CoordinatorEventType =
  | 'coordinator-starting'
  | 'coordinator-ready'
  | 'coordinator-exited'
  | 'coordinator-restarting'
  | 'coordinator-crash-loop';

export interface CoordinatorDetails {
  pid?: number;
  /** The servers it was (or will be) given, as its --rpc list. */
  servers?: string[];
  /** From its start to its health endpoint's first 200. */
  msToReady?: number;
  code?: number | null;
  signal?: string | null;
  /** Why it restarts, or why the supervisor gave up. */
  reason?: string;
  /** Failed starts in a row. */
  failures?: number;
}

export interface CoordinatorEvent {
  schema: 1;
  /** Monotonic within one watcher, from 1: one count with the backends' events. */
  id: number;
  time: string;
  type: CoordinatorEventType;
  coordinator: CoordinatorDetails;
}

/** Where a supervised coordinator is: waiting for servers, started, ready, between runs, given up, stopped. */
export type CoordinatorState = 'waiting' | 'starting' | 'ready' | 'restarting' | 'crash-loop' | 'stopped';

/** A supervised coordinator, as its events and its supervisor left it (the snapshot's `coordinator`). */
export interface CoordinatorStatus {
  state: CoordinatorState;
  /** ISO time it entered this state. */
  since: string;
  /** The running child's. */
  pid?: number;
  /** Its --rpc list: the running child's, or the next one's. */
  servers?: string[];
  /** Restarts since the supervisor started. */
  restarts: number;
  /** The last start's time to ready. */
  lastMsToReady?: number;
  /** The last reason given: why it waits, restarted, exited or gave up. */
  reason?: string;
}

/** What a watcher's ring holds and its event stream carries: the backends' events and its coordinator's. */
export type FeedEvent = WatchEvent | CoordinatorEvent;

export interface WatchSnapshot {
  schema: 1;
  watcher: {
    id: string;
    startedAt: string;
    /** Resolves done (successful or not) and health rounds done. */
    cycles: number;
    healthRounds: number;
    lastResolveAt?: string;
    lastError?: string;
    ready: boolean;
    /** With a shared Redis: the subnets this watcher holds the scan lease of, and Redis's state. */
    scanning?: string[];
    redis?: {
      connected: boolean;
      /** Values read from Redis and ignored (misshapen, too large, stale, unsigned, out of scope), by kind. */
      ignored?: Record<'event' | 'scanner' | 'lease' | 'registry' | 'claim', number>;
    };
  };
  backends: WatchedBackend[];
  /** The usable backends as llama-server's --rpc takes them ("" when none). */
  rpc: string;
  lastEventId: number;
  /** Only while a supervisor (`run`) uses this watcher. */
  coordinator?: CoordinatorStatus;
  /**
   * What the last resolve named but does not follow, and why: a public address, a placeholder,
   * a coordinator of another user, a port that is not ggml-rpc (at most 64 listed).
   */
  dropped?: DroppedServer[];
}

/** A server a source named that the watcher does not follow. */
export interface DroppedServer {
  /** As the source gave it (a misshapen entry's text, made safe and bounded). */
  host: string;
  /** 0 when the source gave none. */
  port: number;
  source: SourceName;
  reason: string;
}

/** A backend's state as its history strip shows it. */
export type HistoryState = 'up' | 'busy' | 'down';

export interface HistorySpan {
  state: HistoryState;
  /** ISO time it began; it lasts until the next span's, or now. */
  from: string;
}

/** The usable set's device memory at one time. */
export interface MemorySample {
  at: string;
  freeBytes: number;
  totalBytes: number;
  /** Usable servers. */
  servers: number;
}

/** The watcher's last hour (GET /api/history): each backend's state spans and the usable memory. */
export interface WatchHistory {
  schema: 1;
  now: string;
  windowMs: number;
  /** In the snapshot's order; the first span may begin before the window. */
  backends: { backend: string; spans: HistorySpan[] }[];
  /** Oldest first: each holds until the next; a run of equal ones is its first and its last. */
  memory: MemorySample[];
}

/** One look at one backend, for metrics: what kind, whether it was alive, how long it took. */
export interface CheckNotice {
  backend: string;
  check: CheckKind;
  ok: boolean;
  /** The connect-and-probe time of a connecting check. */
  elapsedMs?: number;
}

/** One step of the loop done, for metrics. */
export interface CycleNotice {
  kind: 'resolve' | 'health' | 'reported';
  elapsedMs: number;
  /** host:port pairs the scan source connected to in a resolve. */
  scanned?: number;
}

/** A line for the watcher's log (the daemon writes it with pino). */
export interface WatchLog {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  [field: string]: unknown;
}

/** How the watcher's rooms write to its log. */
export type WatchLogFn = (level: WatchLog['level'], msg: string, fields?: Record<string, unknown>) => void;
