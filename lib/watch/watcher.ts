// watchBackends(): the resolver, kept running. Every `intervalMs` the priority chain is
// resolved again; between resolves every followed backend is health-checked every
// `healthIntervalMs`. Observations pass through each backend's hysteresis (tracker.ts); what
// changes comes out as numbered events, kept in a ring for consumers that resume.
//
// One loop does all the work, one step at a time, so a backend never has more than one
// connection of ours at once. A server a coordinator holds is never connected to (its
// two-slot accept queue stays free for that client); a busy server a witness vouches for is
// judged by its witness and connected to at most once per resolve interval.
import { EventEmitter } from 'node:events';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';

import { compareAddresses, parseAddress } from '../common/addresses.js';
import { InvalidOptionError } from '../common/errors.js';
import { formatHostPort } from '../common/host-port.js';
import { applyCompatibility } from '../resolver/compatibility.js';
import { configCandidates, type LoadedConfig } from '../resolver/config-file.js';
import { establishedRemotes, heldKey } from '../resolver/held.js';
import { checkResolveOptions, resolveBackends, type ResolveOptions } from '../resolver/index.js';
import { processCandidates, type ProcessFindings } from '../resolver/process.js';
import { SOURCE_NAMES, type Backend, type Resolution, type SourceName } from '../resolver/types.js';
import { addressOf, judge, verifyCandidates, Witnesses, type VerifyContext } from '../resolver/verify.js';
import { ScanJob, type ScanResult } from '../scan/job.js';
import {
  checkIntegerOption,
  DEFAULT_PROBE_TIMEOUT_MS,
  DEFAULT_REDIS_TTL_SECONDS,
  DEFAULT_TIMEOUT_MS,
  rpcVersionOption,
} from '../common/options.js';
import type { Endpoint } from '../scan/targets/table.js';
import { systemLookup } from '../common/addresses.js';
import { localSubnetTargets, splitList, targetScope, touchesLinkLocal } from '../scan/targets/grammar.js';
import { EventRing } from './event-ring.js';
import { Fleet, type RemoteEvent, type ScannerInfo } from '../redis/fleet.js';
import { observe, track, type HysteresisPolicy, type Observation, type Tracked, type Transition } from './tracker.js';
import type {
  CheckKind,
  CheckNotice,
  CycleNotice,
  WatchedBackend,
  WatchEvent,
  WatchEventType,
  WatchSnapshot,
} from './types.js';

/** This package's version, as watchers report it to each other and the daemon logs it. */
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export const WATCH_DEFAULTS = {
  intervalMs: 30_000,
  healthIntervalMs: 5_000,
  failAfter: 3,
  recoverAfter: 2,
  forgetAfterMs: 600_000,
  eventRingSize: 1000,
  freeMemoryFraction: 0.1,
} as const;

export interface WatchOptions extends ResolveOptions {
  /** Re-resolve through the chain this often, ms. Default 30 s. */
  intervalMs?: number;
  /** Health-check every followed backend this often between resolves, ms. Default 5 s. */
  healthIntervalMs?: number;
  /** Failed checks in a row that make a backend `down`. Default 3. */
  failAfter?: number;
  /** Good checks in a row that bring it back `up`. Default 2. */
  recoverAfter?: number;
  /** A backend down this long leaves the view (`removed`), ms. Default 10 min. */
  forgetAfterMs?: number;
  /** Events kept for consumers that resume from an id. Default 1000. */
  eventRingSize?: number;
  /** A device's free memory moving by this fraction of its total is a `changed`. Default 0.1. */
  freeMemoryFraction?: number;
  /**
   * The shared secret of the watchers on one Redis (at least 16 bytes): what they write is
   * signed with it, and what is not signed with it is ignored.
   */
  fleetKey?: Buffer;
  /** Aborting it closes the watcher. */
  signal?: AbortSignal;
}

/** Reports from other watchers verified per resolve interval, in all and from one watcher. */
export const REPORT_BUDGET = { total: 32, perOrigin: 8 } as const;

export interface WatchLog {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  [field: string]: unknown;
}

/** A backend another watcher reported, and which of this watcher's sources covers it. */
interface Reported {
  host: string;
  port: number;
  origin: string;
  saw: string;
  /** Undefined when it came before this watcher knew its scope. */
  source?: SourceName;
}

/** Where this watcher's sources look: names its config and coordinators give, its subnets. */
interface Scope {
  named: Map<string, SourceName>;
  scan?: (address: { family: 4 | 6; value: bigint }, port: number) => boolean;
  redis: boolean;
}

/** A followed backend lists at most this many other watchers reporting it. */
const MAX_REPORTERS = 16;
/** A changed config file is read again this long after, and used only when both reads agree. */
const CONFIG_SETTLE_MS = 250;

interface Followed extends Tracked {
  key: string;
  endpoint: Endpoint;
  /** The kernel's key for it, as /proc/net/tcp reads (held servers). */
  heldKey: string;
  /** performance.now() of the last connect of ours; busy servers get one per resolve interval. */
  lastConnect: number;
  /** performance.now() it went down, for forgetAfterMs (monotonic: a clock jump moves nothing). */
  downAt?: number;
}

type WatcherEvents = {
  event: [WatchEvent];
  log: [WatchLog];
  check: [CheckNotice];
  cycle: [CycleNotice];
  /** The usable backends (up and verified) changed; in --rpc order. */
  usable: [WatchedBackend[]];
};

/** The resolver's checks, then the watcher's own: a bad option fails here, not every cycle. */
function checkWatchOptions(options: WatchOptions): void {
  checkResolveOptions(options);
  for (const name of [
    'intervalMs',
    'healthIntervalMs',
    'failAfter',
    'recoverAfter',
    'forgetAfterMs',
    'eventRingSize',
  ] as const) {
    checkIntegerOption(name, options[name]);
  }
  if (options.fleetKey !== undefined && !(Buffer.isBuffer(options.fleetKey) && options.fleetKey.length >= 16)) {
    throw new InvalidOptionError('fleetKey: must be a Buffer of at least 16 bytes');
  }
  const fraction = options.freeMemoryFraction;
  if (fraction !== undefined && !(typeof fraction === 'number' && fraction > 0 && fraction <= 1)) {
    throw new InvalidOptionError(`freeMemoryFraction: must be a number in (0, 1], got ${String(fraction)}`);
  }
}

/** What a config file says, as one text to compare two reads by. */
const configText = (config: LoadedConfig | null | undefined): string =>
  config ? JSON.stringify([config.file, config.candidates, config.dropped, config.warnings, config.rpcVersion]) : '';

/** Address order, on the addresses resolved when each backend was added (no parse per compare). */
const compareFollowed = (a: Followed, b: Followed) =>
  compareAddresses(a.endpoint, b.endpoint) || a.endpoint.port - b.endpoint.port;

export class Watcher extends EventEmitter<WatcherEvents> {
  /** This watcher's id: host, pid and a random tag (a restarted watcher is a new one). */
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  /** Settles when the first resolve is done (whatever it found). */
  readonly ready: Promise<void>;

  readonly #options: WatchOptions;
  readonly #policy: HysteresisPolicy;
  readonly #ring: EventRing;
  readonly #followed = new Map<string, Followed>();
  readonly #startedAt = new Date();
  #nextId = 1;
  #cycles = 0;
  #healthRounds = 0;
  #lastResolveAt?: Date;
  #lastError?: string;
  #isReady = false;
  #markReady!: () => void;
  #usable = '';

  #closing = false;
  #loop?: Promise<void>;
  #cycle = new AbortController();
  #wake?: () => void;
  #nextResolve = 0;
  #nextHealth = Infinity;
  #resolveRequested = false;
  /** performance.now() when the current step started; undefined while the loop sleeps. */
  #busySince?: number;

  #lastGoodConfig?: LoadedConfig | null;
  #configProblem?: string;
  #configWatch?: { file: string; watcher: FSWatcher };
  #fleet?: Fleet;
  /** Backends other watchers report alive that this one does not follow yet: checked next. */
  readonly #reported = new Map<string, Reported>();
  /** Reports taken this resolve interval, in all and by origin (REPORT_BUDGET). */
  #reportsTaken = 0;
  readonly #reportsFrom = new Map<string, number>();
  /** Backends reported this interval: each is checked at most once per interval, whoever repeats it. */
  readonly #reportsSeen = new Set<string>();
  /** What this watcher's own sources cover; a report outside it is never followed. */
  #scope?: Scope;
  /** The client version of $SCAN_BACKENDS_RPC_VERSION or the option (the config's comes later). */
  readonly #rpcVersion: string | undefined;
  #scanning?: string[];
  #leaseNote = '';
  #warned = new Set<string>();
  readonly #iterators = new Set<{ push: (e: WatchEvent | null) => void }>();

  constructor(options: WatchOptions = {}) {
    super();
    checkWatchOptions(options);
    this.#options = options;
    this.#policy = {
      failAfter: options.failAfter ?? WATCH_DEFAULTS.failAfter,
      recoverAfter: options.recoverAfter ?? WATCH_DEFAULTS.recoverAfter,
      freeMemoryFraction: options.freeMemoryFraction ?? WATCH_DEFAULTS.freeMemoryFraction,
    };
    this.#ring = new EventRing(options.eventRingSize ?? WATCH_DEFAULTS.eventRingSize);
    this.#rpcVersion = rpcVersionOption(options);
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** Starts the loop (watchBackends does); the first resolve begins at once. */
  start(): this {
    this.#loop ??= this.#run();
    return this;
  }

  get #intervalMs(): number {
    return this.#options.intervalMs ?? WATCH_DEFAULTS.intervalMs;
  }

  get #healthIntervalMs(): number {
    return this.#options.healthIntervalMs ?? WATCH_DEFAULTS.healthIntervalMs;
  }

  /** The live view: every followed backend, sorted by address (copies: yours to change). */
  snapshot(): WatchSnapshot {
    return { ...this.#header(), backends: this.#sorted().map((f) => structuredClone(f.view)) };
  }

  /**
   * The same, without copying the backends: the watcher's own objects, to read and drop at
   * once (the serve command renders 256 of them per request). Never change them.
   */
  view(): Readonly<WatchSnapshot> {
    return { ...this.#header(), backends: this.#sorted().map((f) => f.view) };
  }

  #sorted(): Followed[] {
    return [...this.#followed.values()].sort(compareFollowed);
  }

  #header(): Omit<WatchSnapshot, 'backends'> {
    const watcher: WatchSnapshot['watcher'] = {
      id: this.id,
      startedAt: this.#startedAt.toISOString(),
      cycles: this.#cycles,
      healthRounds: this.#healthRounds,
      ready: this.#isReady,
    };
    if (this.#lastResolveAt) watcher.lastResolveAt = this.#lastResolveAt.toISOString();
    if (this.#lastError) watcher.lastError = this.#lastError;
    if (this.#scanning) watcher.scanning = [...this.#scanning];
    if (this.#fleet) watcher.redis = { connected: this.#fleet.connected, ignored: { ...this.#fleet.ignored } };
    return { schema: 1, watcher, rpc: this.#usable, lastEventId: this.#ring.lastId };
  }

  /** Events after `id` (oldest first), or null when some are gone from the ring. */
  eventsSince(id: number): WatchEvent[] | null {
    return this.#ring.since(id);
  }

  /** The watchers sharing this watcher's Redis (empty without one, or while it is down). */
  async scanners(): Promise<ScannerInfo[]> {
    if (!this.#fleet?.connected) return [];
    return this.#fleet.scanners().catch(() => []);
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

  /** Stops: aborts the step in flight, ends every iterator. Resolves when the loop is done. */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#cycle.abort(new Error('watcher closed'));
      this.#wake?.();
      this.#configWatch?.watcher.close();
      for (const it of this.#iterators) it.push(null);
    }
    await this.#loop;
  }

  /** The events from now on, until close(). */
  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    const queue: (WatchEvent | null)[] = [];
    let waiting: ((r: IteratorResult<WatchEvent>) => void) | undefined;
    const it = {
      push: (e: WatchEvent | null) => {
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          w(e ? { value: e, done: false } : { value: undefined, done: true });
        } else queue.push(e);
      },
    };
    if (this.#closing) it.push(null);
    else this.#iterators.add(it);
    return {
      next: () => {
        if (queue.length > 0) {
          const e = queue.shift() as WatchEvent | null;
          return Promise.resolve(e ? { value: e, done: false } : { value: undefined, done: true });
        }
        return new Promise((resolve) => (waiting = resolve));
      },
      return: () => {
        this.#iterators.delete(it);
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #log(level: WatchLog['level'], msg: string, fields: Record<string, unknown> = {}): void {
    this.emit('log', { level, msg, ...fields });
  }

  async #run(): Promise<void> {
    await this.#startFleet();
    while (!this.#closing) {
      const now = performance.now();
      this.#busySince = now;
      const resolving = this.#resolveRequested || now >= this.#nextResolve;
      try {
        // Health rounds come before reports: no intake, however busy, delays them.
        if (resolving) await this.#resolveCycle();
        else if (now >= this.#nextHealth) await this.#healthRound();
        else if (this.#reported.size > 0) await this.#checkReported();
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
      const until = Math.min(this.#nextResolve, this.#nextHealth);
      const now2 = performance.now();
      const wait = this.#resolveRequested || this.#reported.size > 0 ? 0 : Math.max(0, until - now2);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    await this.#fleet?.close();
    this.#markReady();
  }

  /** With a Redis URL: join the watchers sharing it (registration, scan leases, events). */
  async #startFleet(): Promise<void> {
    const url = this.#options.redisUrl ?? (process.env.SCAN_BACKENDS_REDIS || undefined);
    if (!url) return;
    const subnets = this.#scanSubnets();
    const intervalMs = this.#intervalMs;
    this.#fleet = await Fleet.start({
      url,
      prefix: this.#options.redisPrefix,
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
      key: this.#options.fleetKey,
      log: (level, msg, fields) => this.#log(level, msg, fields),
      onRemote: (remote) => this.#remote(remote),
      onReconnect: () => this.reload(),
    });
  }

  /** The subnets the scan source covers, one lease each; undefined when it does not scan. */
  #scanSubnets(): string[] | undefined {
    const sources = this.#options.sources ?? ['process', 'config', 'scan', 'redis'];
    if (!sources.includes('scan')) return undefined;
    try {
      return this.#options.subnet === undefined
        ? localSubnetTargets().cidrs
        : splitList(this.#options.subnet, 'subnet');
    } catch {
      return undefined; // the resolve reports a bad subnet list
    }
  }

  /**
   * Another watcher's event: a backend it saw alive becomes a candidate to check here, if it
   * is within this watcher's own scope and the interval's report budget has room.
   */
  #remote({ origin, event }: RemoteEvent): void {
    const key = formatHostPort(event.backend);
    const followed = this.#followed.get(key);
    const alive = event.type !== 'down' && event.type !== 'removed' && event.backend.state === 'up';
    if (followed) {
      const by = new Set(followed.view.reportedBy ?? []);
      if (!alive) by.delete(origin);
      else if (by.size < MAX_REPORTERS) by.add(origin);
      if (by.size > 0) followed.view.reportedBy = [...by];
      else delete followed.view.reportedBy;
      return;
    }
    if (!alive || this.#closing || this.#reportsSeen.has(key)) return;
    // Before the first resolve the scope is not known yet: judged when the report is checked.
    const source = this.#scope ? this.#scopeOf(event.backend.host, event.backend.port) : undefined;
    if (typeof source === 'object') {
      this.#fleet?.ignore('event', `outside this watcher's scope: ${key} from ${origin} (${source.why})`);
      return;
    }
    const fromOrigin = this.#reportsFrom.get(origin) ?? 0;
    if (this.#reportsTaken >= REPORT_BUDGET.total || fromOrigin >= REPORT_BUDGET.perOrigin) {
      this.#fleet?.ignore(
        'event',
        `over the report budget (${REPORT_BUDGET.total} per interval, ${REPORT_BUDGET.perOrigin} per watcher): ${key} from ${origin}`,
      );
      return;
    }
    this.#reportsTaken += 1;
    this.#reportsFrom.set(origin, fromOrigin + 1);
    this.#reportsSeen.add(key);
    this.#reported.set(key, {
      host: event.backend.host,
      port: event.backend.port,
      origin,
      saw: event.cause.saw,
      source,
    });
    this.#wake?.();
  }

  /** Which of this watcher's sources covers host:port, or why none does. */
  #scopeOf(host: string, port: number): SourceName | { why: string } {
    const address = parseAddress(host);
    const point = address && { family: address.family, first: address.value, last: address.value };
    if (point && this.#options.allowLinkLocal !== true && touchesLinkLocal(point)) {
      return { why: 'a link-local or cloud-metadata address' };
    }
    const scope = this.#scope;
    if (!scope) return { why: 'no resolve has finished yet' };
    const named = scope.named.get(formatHostPort({ host, port }));
    if (named) return named;
    if (address && scope.scan?.(address, port)) return 'scan';
    if (scope.redis) return 'redis';
    return {
      why: 'no config line or coordinator names it, no subnet it scans holds it, and redis is not one of its sources',
    };
  }

  /** After a resolve: what its sources cover now (reports are judged against it until the next). */
  async #updateScope(): Promise<void> {
    const sources = this.#options.sources ?? SOURCE_NAMES;
    const named = new Map<string, SourceName>();
    if (sources.includes('process')) {
      const found = await processCandidates(this.#options.trustAllUsers === true).catch(() => undefined);
      for (const c of found?.candidates ?? []) named.set(formatHostPort(c), 'process');
    }
    if (sources.includes('config')) {
      for (const c of this.#lastGoodConfig?.candidates ?? []) named.set(formatHostPort(c), 'config');
    }
    const subnets = this.#scanSubnets();
    const scan = subnets
      ? await targetScope(subnets, this.#options.ports, this.#options.lookup ?? systemLookup).catch(() => undefined)
      : undefined;
    this.#scope = { named, redis: sources.includes('redis'), scan };
  }

  /** A fresh controller per step, so close() aborts exactly the work in flight. */
  #stepSignal(): AbortSignal {
    this.#cycle = new AbortController();
    return this.#cycle.signal;
  }

  #emitEvent(type: WatchEventType, followed: Followed, cause: { check: CheckKind; saw: string }, t?: Transition) {
    const event: WatchEvent = {
      schema: 1,
      id: this.#nextId++,
      time: new Date().toISOString(),
      type,
      backend: followed.view,
      cause,
    };
    followed.view.lastEventId = event.id;
    if (t?.type === 'changed') event.changes = t.changes;
    const frozen = structuredClone(event);
    this.#ring.push(frozen);
    this.#fleet?.publish(frozen);
    this.emit('event', frozen);
    for (const it of this.#iterators) it.push(frozen);
  }

  #apply(followed: Followed, observation: Observation, elapsedMs?: number): void {
    const notice: CheckNotice = {
      backend: followed.key,
      check: observation.check,
      ok: observation.alive !== undefined,
    };
    if (elapsedMs !== undefined) notice.elapsedMs = elapsedMs;
    this.emit('check', notice);
    const transition = observe(followed, observation, this.#policy, new Date());
    if (!transition) return;
    if (transition.type === 'down') followed.downAt = performance.now();
    if (transition.type === 'up') followed.downAt = undefined;
    this.#emitEvent(transition.type, followed, { check: observation.check, saw: observation.saw }, transition);
  }

  #remove(followed: Followed, check: CheckKind, saw: string): void {
    this.#followed.delete(followed.key);
    this.#emitEvent('removed', followed, { check, saw });
  }

  /** The client version usability is judged against: the option or $SCAN_BACKENDS_RPC_VERSION, then the config's. */
  get #clientVersion(): string | undefined {
    return this.#rpcVersion ?? this.#lastGoodConfig?.rpcVersion;
  }

  /**
   * After each step: the usable set (up, verified, and of the protocol one client can use, by
   * resolve's rule), marked on every backend; tell when it changed.
   */
  #publishUsable(): void {
    const up = this.#sorted()
      .map((f) => f.view)
      .filter((b) => b.state === 'up' && b.verified);
    const { keep: usable, drop } = applyCompatibility(up, this.#clientVersion);
    const leftOut = new Map(drop.map((d) => [d.backend, d.reason]));
    const kept = new Set(usable);
    for (const { view } of this.#followed.values()) {
      view.usable = kept.has(view);
      const why = leftOut.get(view);
      if (why === undefined) delete view.leftOut;
      else view.leftOut = why;
    }
    const rpc = usable.map(formatHostPort).join(',');
    if (rpc === this.#usable) return;
    this.#usable = rpc;
    this.emit('usable', structuredClone(usable));
  }

  async #resolveCycle(): Promise<void> {
    this.#resolveRequested = false;
    const started = performance.now();
    this.#nextResolve = started + this.#intervalMs;
    this.#cycles += 1;
    this.#reportsTaken = 0;
    this.#reportsFrom.clear();
    this.#reportsSeen.clear();
    try {
      const options: ResolveOptions = { ...this.#options, signal: this.#stepSignal() };
      const leased = await this.#leaseScans();
      if (leased) {
        if (leased.length > 0) options.subnet = leased;
        else options.sources = (options.sources ?? SOURCE_NAMES).filter((s) => s !== 'scan');
      }
      if (options.sources?.length === 0) return; // every subnet is another watcher's, and nothing else to ask
      const resolution = await resolveBackends(options, {
        loadConfig: () => this.#loadConfig(),
        pruneRegistry: this.#fleet === undefined,
        keepEveryProtocol: true,
        registry: this.#fleet?.registry.bind(this.#fleet),
      });
      this.#lastResolveAt = new Date();
      // What this resolve's scan covered: a backend elsewhere is not missed by it.
      const scanned =
        leased === undefined
          ? this.#scope?.scan
          : leased.length === 0
            ? undefined
            : await targetScope(leased, this.#options.ports, this.#options.lookup ?? systemLookup).catch(
                () => undefined,
              );
      await this.#takeResolution(resolution, scanned);
      this.#countIgnoredEntries(resolution);
      this.#sayWarnings(resolution);
      const scan = resolution.sources.find((r) => r.name === 'scan' && r.status !== 'skipped');
      const cycle: CycleNotice = { kind: 'resolve', elapsedMs: performance.now() - started };
      if (scan?.scanned !== undefined) cycle.scanned = scan.scanned;
      this.emit('cycle', cycle);
      this.#log('debug', 'resolve done', {
        elapsedMs: Math.round(performance.now() - started),
        backends: resolution.backends.length,
        ...(scan ? { scanned: [options.subnet ?? this.#scanSubnets() ?? []].flat() } : {}),
      });
    } finally {
      // Also when every subnet is another watcher's: its reports are what this one follows.
      await this.#updateScope().catch(() => {});
      this.#forgetLongDown();
      this.#publishUsable();
      this.#nextHealth = performance.now() + this.#healthIntervalMs;
    }
  }

  /**
   * With other watchers on the Redis: the subnets this one scans this cycle (its leases), or
   * undefined to scan them all (no Redis, no scan source, or Redis down: on its own).
   */
  async #leaseScans(): Promise<string[] | undefined> {
    const subnets = this.#scanSubnets();
    if (!this.#fleet || !subnets || subnets.length === 0) return undefined;
    let note: string;
    let leased: string[] | undefined;
    try {
      const { mine, others } = await this.#fleet.lease(subnets);
      leased = mine;
      note = JSON.stringify([mine, others]);
      if (note !== this.#leaseNote) this.#log('info', 'scan leases', { scanning: mine, leasedByOthers: others });
    } catch (error) {
      note = 'all';
      if (note !== this.#leaseNote) {
        this.#log('warn', 'scan leases unavailable; scanning every subnet', { error: (error as Error).message });
      }
    }
    this.#leaseNote = note;
    this.#scanning = leased ?? subnets;
    return leased;
  }

  /** A resolve's warnings, each said once while it lasts (not once per cycle). */
  #sayWarnings(resolution: Resolution): void {
    const now = new Set([...resolution.warnings, ...resolution.sources.flatMap((s) => s.warnings ?? [])]);
    for (const warning of now) {
      // The fleet says Redis's state itself, once per loss.
      if (this.#fleet && warning.startsWith('Redis unavailable')) continue;
      if (!this.#warned.has(warning)) this.#log('warn', 'resolve warning', { warning });
    }
    this.#warned = now;
  }

  /**
   * Backends other watchers reported, within this watcher's scope: verified here as any
   * candidate is (the same guards), then followed under the source that covers them.
   */
  async #checkReported(): Promise<void> {
    const reported: (Reported & { source: SourceName })[] = [];
    for (const r of this.#reported.values()) {
      if (this.#followed.has(formatHostPort(r))) continue;
      const source = r.source ?? this.#scopeOf(r.host, r.port);
      if (typeof source === 'object') {
        this.#fleet?.ignore(
          'event',
          `outside this watcher's scope: ${formatHostPort(r)} from ${r.origin} (${source.why})`,
        );
      } else reported.push({ ...r, source });
    }
    this.#reported.clear();
    if (reported.length === 0) return;
    const started = performance.now();
    const ctx: VerifyContext = {
      timeoutMs: this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      probeTimeoutMs: this.#options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
      engine: this.#options.engine,
      signal: this.#stepSignal(),
      verify: true,
      lookup: this.#options.lookup ?? systemLookup,
      allowPublic: this.#options.allowPublic === true,
      allowLinkLocal: this.#options.allowLinkLocal === true,
      acceptSilent: this.#options.acceptSilent === true,
      witnesses: this.#witnesses(),
    };
    const { kept, dropped } = await verifyCandidates(
      reported.map((r) => ({ host: r.host, port: r.port, source: r.source })),
      ctx,
    );
    for (const backend of kept) {
      const from = reported.find((r) => formatHostPort(r) === formatHostPort(backend));
      const followed = await this.#follow(backend);
      if (!followed || !from) continue;
      followed.view.reportedBy = [from.origin];
      this.#emitEvent('added', followed, {
        check: 'peer',
        saw: `watcher ${from.origin} reported it (${from.saw}); here: ${backend.reason ?? 'verified'}`,
      });
    }
    if (dropped.length > 0) {
      this.#log('info', 'backends other watchers reported do not verify here', {
        backends: dropped.slice(0, 8).map((d) => ({
          backend: formatHostPort(d),
          watcher: reported.find((r) => formatHostPort(r) === formatHostPort(d))?.origin,
          reason: d.reason,
        })),
        count: dropped.length,
      });
    }
    this.emit('cycle', { kind: 'reported', elapsedMs: performance.now() - started });
    this.#publishUsable();
  }

  /** Witnesses for one step: coordinators listed once, on demand; no registry (it vouches in resolves). */
  #witnesses(): Witnesses {
    let coordinators: Promise<ProcessFindings> | undefined;
    return new Witnesses({
      coordinators: () => (coordinators ??= processCandidates(this.#options.trustAllUsers === true)),
      registry: async () => [],
      registryTtlSeconds: this.#options.redisTtlSeconds ?? DEFAULT_REDIS_TTL_SECONDS,
      lookup: this.#options.lookup ?? systemLookup,
    });
  }

  /** Registry entries the resolve dropped unread or misshapen are Redis values ignored, counted once each. */
  #countIgnoredEntries(resolution: Resolution): void {
    const registry = resolution.sources.find((r) => r.name === 'redis');
    for (const d of registry?.dropped ?? [])
      if (d.port === 0) this.#fleet?.ignore('registry', d.reason, `${d.host}\n${d.reason}`);
  }

  /**
   * A resolve's word on every backend: proven ones observed alive (new ones added), dropped
   * ones observed failing, and one no source names any more removed. `scanned` says which
   * addresses this resolve's scan covered (a subnet another watcher leased was not).
   */
  async #takeResolution(
    resolution: Resolution,
    scanned: ((address: { family: 4 | 6; value: bigint }, port: number) => boolean) | undefined,
  ): Promise<void> {
    const seen = new Set<string>();
    const now = new Date().toISOString();
    for (const backend of resolution.backends) {
      const key = formatHostPort(backend);
      seen.add(key);
      const { sources, ...alive } = backend;
      const saw = backend.reason ?? 'named and verified';
      const known = this.#followed.get(key);
      if (known) {
        known.view.sources = [...sources];
        known.view.namedAt = { ...known.view.namedAt, ...Object.fromEntries(sources.map((s) => [s, now])) };
        if (backend.evidence === 'hello') known.lastConnect = performance.now();
        this.#apply(known, { check: 'resolve', saw, alive });
        continue;
      }
      const followed = await this.#follow(backend);
      if (!followed) continue;
      this.#emitEvent('added', followed, { check: 'resolve', saw });
    }
    const dropped = new Map<string, string>();
    for (const report of resolution.sources) {
      for (const d of report.dropped) dropped.set(formatHostPort(d), `${report.name}: ${d.reason}`);
    }
    const consulted = new Set<SourceName>(
      resolution.sources.filter((s) => s.status === 'ok' || s.status === 'empty').map((s) => s.name),
    );
    for (const followed of [...this.#followed.values()]) {
      if (seen.has(followed.key)) continue;
      const reason = dropped.get(followed.key);
      if (reason !== undefined) {
        this.#apply(followed, { check: 'resolve', saw: reason });
        continue;
      }
      const sources = followed.view.sources;
      const scannedHere = consulted.has('scan') && scanned?.(followed.endpoint, followed.endpoint.port) === true;
      if (sources.includes('scan') && scannedHere) {
        this.#apply(followed, { check: 'resolve', saw: 'the scan did not find the port open' });
      } else if (sources.length > 0 && sources.every((s) => (s === 'scan' ? scannedHere : consulted.has(s)))) {
        // Every source that named it was asked again and none names it now: a config line
        // removed, a coordinator restarted without it, a registry entry expired.
        this.#remove(followed, 'resolve', `no source names it any more (${sources.join(', ')})`);
      }
    }
  }

  /** Starts following a backend the resolver just proved; undefined if its address is gone. */
  async #follow(backend: Backend): Promise<Followed | undefined> {
    const address = await addressOf(backend.host, this.#options.lookup ?? systemLookup);
    if (typeof address === 'string') return undefined;
    const now = new Date().toISOString();
    const { host, port, sources, verified, ...details } = backend;
    const view: WatchedBackend = {
      host,
      port,
      state: 'up',
      sources: [...sources],
      namedAt: Object.fromEntries(sources.map((s) => [s, now])),
      verified,
      addedAt: now,
      since: now,
      lastSeen: now,
      lastCheck: { at: now, check: 'resolve', ok: true, saw: backend.reason ?? 'verified' },
      failures: 0,
      successes: 1,
      flaps: 0,
    };
    if (details.health !== undefined) view.health = details.health;
    if (details.evidence !== undefined) view.evidence = details.evidence;
    if (details.rttMs !== undefined) view.rttMs = details.rttMs;
    if (details.rpc !== undefined) view.rpc = details.rpc;
    const followed: Followed = {
      ...track(view),
      key: formatHostPort(backend),
      endpoint: { host, family: address.family, port, value: address.value },
      heldKey: heldKey(address.family, address.value, port),
      lastConnect: performance.now(),
    };
    this.#followed.set(followed.key, followed);
    return followed;
  }

  #forgetLongDown(): void {
    const forgetAfter = this.#options.forgetAfterMs ?? WATCH_DEFAULTS.forgetAfterMs;
    for (const followed of [...this.#followed.values()]) {
      if (followed.downAt !== undefined && performance.now() - followed.downAt >= forgetAfter) {
        this.#remove(followed, 'forget', `down for ${Math.round(forgetAfter / 1000)} s`);
      }
    }
  }

  /** A witness's word that the backend is alive and in use: a good check without a connection. */
  #busyByWitness(followed: Followed, saw: string, evidence?: 'held'): void {
    const { host, port } = followed.view;
    const alive: Omit<Backend, 'sources'> = { host, port, verified: true, health: 'busy', reason: saw };
    if (evidence) alive.evidence = evidence;
    this.#apply(followed, { check: 'witness', saw, alive });
  }

  /** Health checks between resolves: witnesses first, a connection only when needed. */
  async #healthRound(): Promise<void> {
    const started = performance.now();
    this.#nextHealth = started + this.#healthIntervalMs;
    this.#healthRounds += 1;
    const signal = this.#stepSignal();
    try {
      if (this.#followed.size === 0) return;
      const witnesses = this.#witnesses();
      // Listing processes costs a read of every /proc entry; one read of /proc/net/tcp says
      // whether anything here holds a connection to a backend at all.
      const established = await establishedRemotes();
      const anyHeld = [...this.#followed.values()].some((f) => established.has(f.heldKey));
      const held = anyHeld ? await witnesses.held().catch(() => new Map<string, string>()) : new Map<string, string>();
      const toProbe: Followed[] = [];
      for (const followed of this.#followed.values()) {
        const holder = held.get(followed.heldKey);
        if (holder !== undefined) {
          this.#busyByWitness(followed, `busy: ${holder}; not connected to`, 'held');
          continue;
        }
        const vouched = followed.view.evidence === 'coordinator' || followed.view.evidence === 'registry';
        if (vouched && started - followed.lastConnect < this.#intervalMs) {
          const vouch = await witnesses.vouch(followed.heldKey);
          if (vouch) {
            this.#busyByWitness(followed, `busy: ${vouch.why}`);
            continue;
          }
        }
        toProbe.push(followed);
      }
      if (toProbe.length === 0) return;
      const job = new ScanJob(
        { endpoints: toProbe.map((f) => f.endpoint) },
        {
          // No client version (not even the environment's): a server of another protocol is
          // alive all the same; the usable set leaves it out (#publishUsable).
          rpcVersion: null,
          timeoutMs: this.#options.timeoutMs,
          probeTimeoutMs: this.#options.probeTimeoutMs,
          engine: this.#options.engine,
          probe: ['ggml-rpc'],
          signal,
        },
      );
      const results = new Map<string, ScanResult>();
      for await (const r of job) results.set(formatHostPort(r), r);
      for (const followed of toProbe) {
        followed.lastConnect = performance.now();
        const result = results.get(formatHostPort(followed.endpoint));
        if (!result) continue;
        const needsWitness = result.state === 'filtered' || (result.state === 'open' && result.guess === true);
        const vouch = needsWitness ? await witnesses.vouch(followed.heldKey) : undefined;
        const verdict = judge(
          result,
          {
            timeoutMs: this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
            probeTimeoutMs: this.#options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
            acceptSilent: this.#options.acceptSilent === true,
          },
          vouch,
        );
        if ('reason' in verdict) this.#apply(followed, { check: 'health', saw: verdict.reason }, result.rttMs);
        else {
          const { host, port } = followed.view;
          this.#apply(
            followed,
            {
              check: 'health',
              saw: verdict.backend.reason ?? 'answered HELLO',
              alive: { ...verdict.backend, host, port },
            },
            result.rttMs,
          );
        }
      }
      this.emit('cycle', { kind: 'health', elapsedMs: performance.now() - started });
    } finally {
      this.#forgetLongDown();
      this.#publishUsable();
    }
  }

  /**
   * The config source, read by the watcher: a bad edit keeps the last good file (each bad
   * line said once, as file:line: token), a file that cannot be read keeps it too.
   */
  async #loadConfig(): Promise<LoadedConfig | null> {
    let loaded: LoadedConfig | null;
    try {
      loaded = await configCandidates(this.#options.configPath, false);
      // An edit is used only once it is stable: a file read while it is being written can be
      // half there, and would remove the backends of its missing lines. Read it again a moment
      // later; while the two reads differ, the last good version stands and a resolve is due soon.
      const last = this.#lastGoodConfig;
      if (last !== undefined && configText(loaded) !== configText(last)) {
        await new Promise((resolve) => setTimeout(resolve, CONFIG_SETTLE_MS));
        const again = await configCandidates(this.#options.configPath, false);
        if (configText(again) !== configText(loaded)) {
          this.#log('info', 'config file is changing; keeping the last good version until it settles', {
            file: loaded?.file ?? last?.file,
          });
          this.#nextResolve = Math.min(this.#nextResolve, performance.now() + 4 * CONFIG_SETTLE_MS);
          return last;
        }
      }
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== this.#configProblem) this.#log('error', 'config file unreadable', { error: problem });
      this.#configProblem = problem;
      if (this.#lastGoodConfig !== undefined) return this.#lastGoodConfig;
      throw error;
    }
    this.#watchConfig(loaded?.file ?? this.#options.configPath);
    if (loaded && loaded.warnings.length > 0) {
      const problem = loaded.warnings.join('\n');
      const keep = this.#lastGoodConfig !== undefined;
      if (problem !== this.#configProblem) {
        for (const line of loaded.warnings) this.#log('error', 'config: bad line', { line });
        if (keep) this.#log('warn', 'config: keeping the last good version until the file is fixed');
      }
      this.#configProblem = problem;
      if (keep) return this.#lastGoodConfig ?? null;
      return loaded;
    }
    if (this.#configProblem !== undefined) this.#log('info', 'config file good again', { file: loaded?.file });
    this.#configProblem = undefined;
    this.#lastGoodConfig = loaded;
    return loaded;
  }

  /** An edit of the config file asks for a resolve (editors replace the file: watch its directory). */
  #watchConfig(file: string | undefined): void {
    if (file === undefined || this.#configWatch?.file === file || this.#closing) return;
    this.#configWatch?.watcher.close();
    this.#configWatch = undefined;
    let debounce: NodeJS.Timeout | undefined;
    try {
      const watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name !== basename(file)) return;
        clearTimeout(debounce);
        debounce = setTimeout(() => {
          this.#log('info', 'config file changed', { file });
          this.reload();
        }, 200);
      });
      watcher.on('error', (error) => this.#log('warn', 'cannot watch the config file', { file, error: error.message }));
      this.#configWatch = { file, watcher };
    } catch (error) {
      this.#log('warn', 'cannot watch the config file; it is read again every resolve', {
        file,
        error: (error as Error).message,
      });
    }
  }
}

/** Starts a watcher: `for await (const event of watcher)`, `watcher.snapshot()`, `watcher.close()`. */
export function watchBackends(options: WatchOptions = {}): Watcher {
  return new Watcher(options).start();
}
