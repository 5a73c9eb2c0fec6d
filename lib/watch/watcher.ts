// watchBackends(): the resolver, kept running. Every `intervalMs` the priority chain is
// resolved again; between resolves every followed backend is health-checked every
// `healthIntervalMs`. Observations pass through each backend's hysteresis (tracker.ts); what
// changes comes out as numbered events, kept in a ring for consumers that resume.
//
// One loop does all the work, one step at a time, so a backend never has more than one
// connection of ours at once. A server a coordinator holds is never connected to (its
// two-slot accept queue stays free for that client); a busy server a witness vouches for is
// judged by its witness and connected to at most once per resolve interval.
//
// This file is the loop, the lifecycle and the public API; the rooms beside it do the rest:
// followed.ts (the followed set: hysteresis in, events out), event-feed.ts (numbering, ring,
// iterators), resolve-round.ts and intake.ts (a resolve, and its resolution taken in),
// health-round.ts, reports.ts (other watchers' reports), scope.ts, usable.ts,
// config-watch.ts. The resolver is reached through its one door, resolver/for-watcher.ts.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

import { InvalidOptionError } from '../common/errors.js';
import { normalizeWatchOptions, redactUrl, type WatchOptions, type WatchSettings } from '../common/options.js';
import { WatchVerifier } from '../resolver/for-watcher.js';
import { claimRenewMs, type CoordinatorClaims } from '../redis/claims.js';
import { ClaimedByOthers } from './claimed.js';
import { ConfigWatch } from './config-watch.js';
import { CoordinatorStatusKeeper } from './coordinator-status.js';
import { dnsSdResolveGapMs, DnsSdWatch, resolvesNow } from './dns-sd-watch.js';
import { EventFeed } from './event-feed.js';
import { Fleet, type ScannerInfo } from '../redis/fleet.js';
import { FollowedSet } from './followed.js';
import { HandedServers } from './handed.js';
import { healthRound } from './health-round.js';
import { HistoryKeeper } from './history.js';
import { PeerReports } from './reports.js';
import { ResolveRound } from './resolve-round.js';
import { scanSubnets, WatchScope } from './scope.js';
import { UsableSet } from './usable.js';
import type {
  CheckNotice,
  CoordinatorDetails,
  CoordinatorEvent,
  CoordinatorEventType,
  CycleNotice,
  FeedEvent,
  WatchedBackend,
  WatchEvent,
  WatchHistory,
  WatchLog,
  WatchLogFn,
  WatchSnapshot,
} from './types.js';

// Moved, and exported from here as before.
export { WATCH_DEFAULTS, type WatchOptions, type WatchSettings } from '../common/options.js';
export { REPORT_BUDGET } from './reports.js';
export type { WatchLog } from './types.js';

/** This package's version, as watchers report it to each other and the daemon logs it. */
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

type WatcherEvents = {
  event: [WatchEvent];
  log: [WatchLog];
  check: [CheckNotice];
  cycle: [CycleNotice];
  /** The usable backends (up and verified) changed; in --rpc order. */
  usable: [WatchedBackend[]];
  /** A supervised coordinator's event (`run`). */
  coordinator: [CoordinatorEvent];
};

/** While a child coordinator has yet to connect to its servers: how often to look again. */
const HAND_OVER_POLL_MS = 50;

export class Watcher extends EventEmitter<WatcherEvents> {
  /** This watcher's id: host, pid and a random tag (a restarted watcher is a new one). */
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  /** Settles when the first resolve is done (whatever it found). */
  readonly ready: Promise<void>;
  /**
   * The options with every default filled in (normalizeWatchOptions), as this watcher runs:
   * the Redis URL with its password hidden, and no fleet key.
   */
  readonly settings: Readonly<Omit<WatchSettings, 'fleetKey'>>;
  readonly #settings: WatchSettings;

  readonly #feed: EventFeed;
  readonly #followed: FollowedSet;
  readonly #scope: WatchScope;
  readonly #reports: PeerReports;
  readonly #resolveRound: ResolveRound;
  readonly #config: ConfigWatch;
  readonly #usable = new UsableSet();
  readonly #claimed: ClaimedByOthers;
  readonly #startedAt = new Date();
  readonly #handed = new HandedServers();
  readonly #coordinator = new CoordinatorStatusKeeper();
  readonly #history = new HistoryKeeper();
  #healthWaiters: (() => void)[] = [];
  #cycles = 0;
  #healthRounds = 0;
  #lastError?: string;
  #isReady = false;
  #markReady!: () => void;

  #closing = false;
  #loop?: Promise<void>;
  #cycle = new AbortController();
  #wake?: () => void;
  #nextResolve = 0;
  #nextHealth = Infinity;
  #resolveRequested = false;
  /** performance.now() when the current step started; undefined while the loop sleeps. */
  #busySince?: number;

  #fleet?: Fleet;
  #fleetStarting?: Promise<void>;
  #dnsSd?: DnsSdWatch;
  #lastResolveStart = -Infinity;
  #lastResolveMs = 0;
  /** Whether #nextResolve was brought forward by a DNS-SD change, and how many such resolves ran in a row. */
  #early = false;
  #earlyInARow = 0;

  constructor(options: WatchOptions = {}) {
    super();
    // The resolver's checks, then the watcher's own: a bad option fails here, not every cycle.
    const settings = normalizeWatchOptions(options);
    this.#settings = settings;
    // What anyone may read and log: the URL's password hidden, the fleet's key left out.
    const { fleetKey, ...shown } = settings;
    this.settings = Object.freeze({ ...shown, redisUrl: shown.redisUrl && redactUrl(shown.redisUrl) });
    const log: WatchLogFn = (level, msg, fields) => this.#log(level, msg, fields);
    // A coordinator's events are this watcher's own: never sent to the fleet.
    this.#feed = new EventFeed(settings.eventRingSize, (event) => {
      if ('coordinator' in event) {
        this.#coordinator.apply(event);
        this.emit('coordinator', event);
        return;
      }
      this.#fleet?.publish(event);
      this.emit('event', event);
    });
    this.#followed = new FollowedSet(settings, {
      check: (notice) => this.emit('check', notice),
      event: (type, followed, cause, t) => this.#feed.publish(type, followed.view, cause, t),
    });
    this.#scope = new WatchScope(settings);
    this.#claimed = new ClaimedByOthers(this.id, settings.lookup);
    this.#reports = new PeerReports({
      followed: this.#followed,
      scope: this.#scope,
      fleet: () => this.#fleet,
      closing: () => this.#closing,
      wake: () => this.#wake?.(),
      log,
    });
    this.#config = new ConfigWatch(settings.configPath, {
      log,
      reload: () => this.reload(),
      resolveWithin: (ms) => (this.#nextResolve = Math.min(this.#nextResolve, performance.now() + ms)),
      closing: () => this.#closing,
    });
    this.#resolveRound = new ResolveRound({
      settings,
      followed: this.#followed,
      scope: this.#scope,
      fleet: () => this.#fleet,
      loadConfig: () => this.#config.load(),
      heldElsewhere: () => this.#claimed.held(),
      dnsSd: () => this.#dnsSd?.found,
      log,
      cycle: (notice) => this.emit('cycle', notice),
    });
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
    settings.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** Starts the loop (watchBackends does); the first resolve begins at once. */
  start(): this {
    this.#loop ??= this.#run();
    return this;
  }

  /** The live view: every followed backend, sorted by address (copies: yours to change). */
  snapshot(): WatchSnapshot {
    return { ...this.#header(), backends: this.#followed.sorted().map((f) => structuredClone(f.view)) };
  }

  /**
   * The same, without copying the backends: the watcher's own objects, to read and drop at
   * once (the serve command renders 256 of them per request). Never change them.
   */
  view(): Readonly<WatchSnapshot> {
    return { ...this.#header(), backends: this.#followed.sorted().map((f) => f.view) };
  }

  #header(): Omit<WatchSnapshot, 'backends'> {
    const watcher: WatchSnapshot['watcher'] = {
      id: this.id,
      startedAt: this.#startedAt.toISOString(),
      cycles: this.#cycles,
      healthRounds: this.#healthRounds,
      ready: this.#isReady,
    };
    const { lastResolveAt, scanning } = this.#resolveRound;
    if (lastResolveAt) watcher.lastResolveAt = lastResolveAt.toISOString();
    if (this.#lastError) watcher.lastError = this.#lastError;
    if (scanning) watcher.scanning = [...scanning];
    if (this.#fleet) watcher.redis = { connected: this.#fleet.connected, ignored: { ...this.#fleet.ignored } };
    const coordinator = this.#coordinator.view;
    const dropped = this.#resolveRound.dropped;
    return {
      schema: 1,
      watcher,
      rpc: this.#usable.rpc,
      lastEventId: this.#feed.lastId,
      ...(coordinator ? { coordinator } : {}),
      ...(dropped.length > 0 ? { dropped: dropped.map((d) => ({ ...d })) } : {}),
    };
  }

  /** The last hour: each followed backend's state spans, and the usable set's free memory. */
  history(): WatchHistory {
    return this.#history.view(this.#followed.sorted().map((f) => f.view));
  }

  /**
   * Events after `id` (oldest first; a supervised coordinator's among them), or null when
   * some are gone from the ring.
   */
  eventsSince(id: number): FeedEvent[] | null {
    return this.#feed.since(id);
  }

  /** The watchers sharing this watcher's Redis (empty without one, or while it is down). */
  async scanners(): Promise<ScannerInfo[]> {
    if (!this.#fleet?.connected) return [];
    return this.#fleet.scanners().catch(() => []);
  }

  /**
   * Claims for a coordinator this watcher supervises (`run`), over its Redis connection: other
   * watchers sharing the Redis leave the claimed servers alone. Renewed every health interval
   * (clamped to 1-10 s). Needs a Redis URL and a started watcher.
   */
  async coordinatorClaims(): Promise<CoordinatorClaims> {
    if (!this.#fleetStarting) throw new Error('coordinatorClaims: start the watcher first');
    await this.#fleetStarting;
    if (!this.#fleet) throw new InvalidOptionError('coordinatorClaims: the watcher has no Redis (redisUrl)');
    return this.#fleet.coordinatorClaims(claimRenewMs(this.#settings.healthIntervalMs), this.#settings.lookup);
  }

  /** How long the current step has run, ms (0 while the loop sleeps): the watchdog asks. */
  busyForMs(): number {
    return this.#busySince === undefined ? 0 : performance.now() - this.#busySince;
  }

  /** Re-read the config file and resolve now (SIGHUP). */
  reload(): void {
    this.#resolveRequested = true;
    this.#wake?.();
  }

  /**
   * Hands `servers` (followed backends, host:port) to the child coordinator `pid`: from now on
   * they are judged by its connections, never connected to; nothing at all is connected to
   * until it holds each of them, or `awaitMs` passed. handBack() ends it.
   */
  handOver(pid: number, servers: readonly string[], awaitMs: number): void {
    const keys = servers.flatMap((key) => this.#followed.get(key)?.heldKey ?? []);
    this.#handed.set(pid, keys, awaitMs);
  }

  /** The child is gone: its servers are checked as any others. */
  handBack(): void {
    this.#handed.clear();
  }

  /** Resolves after the next health round (one is started now): what the watcher sees since. */
  checkNow(): Promise<void> {
    const done = new Promise<void>((resolve) => this.#healthWaiters.push(resolve));
    this.#nextHealth = 0;
    this.#wake?.();
    return done;
  }

  /** Publishes a supervised coordinator's event (ring, 'coordinator' listeners); returns it. */
  coordinatorEvent(type: CoordinatorEventType, details: CoordinatorDetails): CoordinatorEvent {
    return this.#feed.coordinator(type, details);
  }

  /** A supervisor's word between its coordinator's events: waiting for servers (and why), or stopped. */
  coordinatorState(state: 'waiting' | 'stopped', reason?: string): void {
    this.#coordinator.set(state, reason);
  }

  /** Stops: aborts the step in flight, ends every iterator. Resolves when the loop is done. */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#cycle.abort(new Error('watcher closed'));
      this.#wake?.();
      this.#config.close();
      this.#feed.end();
    }
    await this.#loop;
  }

  /** The events from now on, until close(). */
  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this.#feed.iterator();
  }

  #log(level: WatchLog['level'], msg: string, fields: Record<string, unknown> = {}): void {
    this.emit('log', { level, msg, ...fields });
  }

  async #run(): Promise<void> {
    await (this.#fleetStarting = this.#startFleet());
    if (this.#settings.sources.includes('dns-sd') && !this.#closing) {
      this.#dnsSd = await DnsSdWatch.open(
        this.#settings,
        () => this.#dnsSdChanged(),
        (level, msg, fields) => this.#log(level, msg, fields),
      );
    }
    while (!this.#closing) {
      if (await this.#awaitingHandOver()) continue;
      const now = performance.now();
      this.#busySince = now;
      const resolving = resolvesNow({
        requested: this.#resolveRequested,
        resolve: now >= this.#nextResolve,
        early: this.#early,
        health: now >= this.#nextHealth,
      });
      try {
        // Health rounds come before reports: no intake, however busy, delays them.
        if (resolving) await this.#resolveCycle();
        else if (now >= this.#nextHealth) await this.#healthRound();
        else if (this.#reports.pending > 0) await this.#checkReported();
      } catch (error) {
        // A step's failure is logged with its cause and the loop goes on with the last view.
        if (this.#closing) break;
        this.#lastError = (error as Error).message;
        this.#log('error', resolving ? 'resolve failed' : 'health round failed', { error: this.#lastError });
      }
      if (resolving && !this.#isReady) {
        this.#isReady = true;
        this.#markReady();
      }
      this.#busySince = undefined;
      if (this.#closing) break;
      await this.#sleep();
    }
    await this.#fleet?.close();
    await this.#dnsSd?.close();
    this.#markReady();
  }

  /** What DNS-SD sees changed: an early resolve, spaced by dnsSdResolveGapMs. */
  #dnsSdChanged(): void {
    const gap = dnsSdResolveGapMs(this.#earlyInARow, this.#lastResolveMs);
    const at = Math.max(performance.now(), this.#lastResolveStart + gap);
    if (at >= this.#nextResolve) return;
    this.#nextResolve = at;
    this.#early = true;
    this.#wake?.();
  }

  /** While a child has yet to connect to the servers handed to it: wait a little, connect to nothing. */
  async #awaitingHandOver(): Promise<boolean> {
    if (!this.#handed.active) return false;
    await this.#handed.refresh();
    if (!this.#handed.awaiting) return false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, HAND_OVER_POLL_MS);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
    return true;
  }

  /** Until the next step is due, or something wakes the loop (a reload, a report, close). */
  async #sleep(): Promise<void> {
    const until = Math.min(this.#nextResolve, this.#nextHealth);
    const wait = this.#resolveRequested || this.#reports.pending > 0 ? 0 : Math.max(0, until - performance.now());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }

  /** With a Redis URL: join the watchers sharing it (registration, scan leases, events). */
  async #startFleet(): Promise<void> {
    const url = this.#settings.redisUrl;
    if (!url) return;
    const subnets = scanSubnets(this.settings);
    const intervalMs = this.#settings.intervalMs;
    this.#fleet = await Fleet.start({
      url,
      prefix: this.#settings.redisPrefix,
      info: {
        id: this.id,
        host: hostname(),
        pid: process.pid,
        version: PACKAGE_VERSION,
        subnets: subnets ?? [],
        startedAt: this.#startedAt.toISOString(),
      },
      leaseMs: 2 * intervalMs + 1000,
      heartbeatMs: Math.min(intervalMs, 10_000),
      key: this.#settings.fleetKey,
      log: (level, msg, fields) => this.#log(level, msg, fields),
      onRemote: (remote) => this.#reports.offer(remote),
      onReconnect: () => this.reload(),
    });
  }

  /** A fresh controller per step, so close() aborts exactly the work in flight. */
  #stepSignal(): AbortSignal {
    this.#cycle = new AbortController();
    return this.#cycle.signal;
  }

  /**
   * After each step: the usable set (up, verified, and of the protocol one client can use, by
   * resolve's rule), marked on every backend; tell when it changed. The client version is the
   * option or $SCAN_BACKENDS_RPC_VERSION, then the config file's.
   */
  #publishUsable(): void {
    const client = this.#settings.rpcVersion ?? this.#config.lastGood?.rpcVersion;
    this.#claimed.mark(this.#followed.values());
    const views = this.#followed.sorted().map((f) => f.view);
    const usable = this.#usable.update(views, client);
    this.#history.record(views);
    if (usable) this.emit('usable', structuredClone(usable));
  }

  async #resolveCycle(): Promise<void> {
    const early = this.#early && !this.#resolveRequested;
    this.#earlyInARow = early ? this.#earlyInARow + 1 : 0;
    this.#early = false;
    this.#resolveRequested = false;
    const started = performance.now();
    this.#lastResolveStart = started;
    this.#nextResolve = started + this.#settings.intervalMs;
    this.#cycles += 1;
    this.#reports.newInterval();
    try {
      await this.#claimed.refresh(this.#fleet, this.#followed.values(), true);
      await this.#resolveRound.run(this.#stepSignal(), started);
    } finally {
      // Also when every subnet is another watcher's: its reports are what this one follows.
      await this.#scope.update(this.#config.lastGood).catch(() => {});
      this.#followed.forgetLongDown();
      this.#publishUsable();
      this.#lastResolveMs = performance.now() - started;
      // An early resolve keeps the health rounds' clock: changes heard often must not postpone them.
      const nextHealth = performance.now() + this.#settings.healthIntervalMs;
      this.#nextHealth = early ? Math.min(this.#nextHealth, nextHealth) : nextHealth;
    }
  }

  /** Backends other watchers reported, within this watcher's scope, verified and followed. */
  async #checkReported(): Promise<void> {
    const started = performance.now();
    const verifier = new WatchVerifier(this.#settings, this.#stepSignal(), () => this.#claimed.held());
    await this.#reports.check(verifier, () => {
      this.emit('cycle', { kind: 'reported', elapsedMs: performance.now() - started });
      this.#publishUsable();
    });
  }

  /** Health checks between resolves: witnesses first, a connection only when needed. */
  async #healthRound(): Promise<void> {
    const started = performance.now();
    this.#nextHealth = started + this.#settings.healthIntervalMs;
    this.#healthRounds += 1;
    await this.#claimed.refresh(this.#fleet, this.#followed.values(), false);
    const verifier = new WatchVerifier(this.#settings, this.#stepSignal(), () => this.#claimed.held());
    const round = { started, intervalMs: this.#settings.intervalMs, alsoHeld: this.#handed.held() };
    const waiters = this.#healthWaiters.splice(0);
    try {
      await healthRound(this.#followed, verifier, round, (connected) => {
        if (connected) this.emit('cycle', { kind: 'health', elapsedMs: performance.now() - started });
        this.#followed.forgetLongDown();
        this.#publishUsable();
      });
    } finally {
      for (const done of waiters) done();
    }
  }
}

/** Starts a watcher: `for await (const event of watcher)`, `watcher.snapshot()`, `watcher.close()`. */
export function watchBackends(options: WatchOptions = {}): Watcher {
  return new Watcher(options).start();
}
