// Several watchers on one Redis. Each registers itself (`<prefix>scanner:<id>`, a heartbeat
// TTL); the subnets the scan source covers are leased (`SET NX PX`) so N watchers split them,
// each taking its fair share in an order of its own (rendezvous hashing), instead of all
// scanning the same /24; events go out on `<prefix>watch-events` and come in from the
// others. Health checks are not leased: each watcher judges what it can reach.
//
// The connection is the watcher's own and long-lived: commands fail at once while it is down
// (no queue), it reconnects with backoff, and the loss and the return are each said once.
import { createHash } from 'node:crypto';

import type { Redis } from 'ioredis';

import { peerText } from '../peer-text.js';
import { DEFAULT_REDIS_PREFIX, redactUrl, REDIS_TIMEOUT_MS, scanKeys } from '../resolver/redis-cache.js';
import type { WatchEvent } from './types.js';

export interface ScannerInfo {
  id: string;
  host: string;
  pid: number;
  version: string;
  /** What its scan source covers (its whole list, leased or not). */
  subnets: string[];
  /** The subnets it holds the lease of. */
  scanning: string[];
  startedAt: string;
  /** ISO time of its last heartbeat. */
  heartbeatAt: string;
}

/** Another watcher's event, as it came over pub/sub. */
export interface RemoteEvent {
  origin: string;
  event: WatchEvent;
}

export interface FleetOptions {
  url: string;
  prefix?: string;
  info: Omit<ScannerInfo, 'heartbeatAt' | 'scanning'>;
  /** How long a lease lives unless renewed: past one resolve interval, so the holder keeps it. */
  leaseMs: number;
  /** Registration refresh; the scanner key lives three of these. */
  heartbeatMs: number;
  log: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  onRemote: (remote: RemoteEvent) => void;
  /** Redis came back after a loss: resynchronise (re-register is done here; resolve now). */
  onReconnect: () => void;
}

/** Renews a lease only while it is still ours; releases it the same way. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
/** Scanner keys read at most: a registry is a handful of watchers. */
const MAX_SCANNERS = 1000;

function rank(id: string, subnet: string): string {
  return createHash('sha256').update(`${id}\n${subnet}`).digest('hex');
}

export class Fleet {
  readonly #options: FleetOptions;
  readonly #prefix: string;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #heartbeat: NodeJS.Timeout;
  #scanning: string[] = [];
  #lost = false;
  #everReady = false;
  #closed = false;

  private constructor(options: FleetOptions, redis: Redis, subscriber: Redis) {
    this.#options = options;
    this.#prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.#redis = redis;
    this.#subscriber = subscriber;
    redis.on('ready', () => this.#ready());
    redis.on('error', (error: Error) => this.#trouble(error));
    redis.on('close', () => this.#trouble(new Error('connection closed')));
    subscriber.on('error', () => {}); // said through the main connection
    subscriber.on('message', (_channel: string, message: string) => this.#message(message));
    this.#heartbeat = setInterval(() => void this.#register(), options.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Starts connecting; never throws for a Redis that is down (it keeps trying, and says so). */
  static async start(options: FleetOptions): Promise<Fleet> {
    const { Redis } = await import('ioredis');
    const settings = {
      lazyConnect: true,
      connectTimeout: REDIS_TIMEOUT_MS,
      commandTimeout: REDIS_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      // 0.5 s, 1 s, 2 s … at most 30 s between attempts, for as long as the watcher runs.
      retryStrategy: (times: number) => Math.min(500 * 2 ** Math.min(times - 1, 6), 30_000),
    };
    const fleet = new Fleet(options, new Redis(options.url, settings), new Redis(options.url, settings));
    await Promise.all([
      fleet.#redis.connect().catch((error: Error) => fleet.#trouble(error)),
      fleet.#subscriber.connect().catch(() => {}),
    ]);
    await fleet.#subscriber.subscribe(fleet.#channel).catch(() => {}); // ioredis resubscribes on reconnect
    return fleet;
  }

  get #channel(): string {
    return `${this.#prefix}watch-events`;
  }

  get connected(): boolean {
    return this.#redis.status === 'ready';
  }

  #ready(): void {
    if (this.#lost)
      this.#options.log('info', 'Redis reachable again; resynchronising', { redis: redactUrl(this.#options.url) });
    void this.#register();
    if (this.#lost) this.#options.onReconnect();
    this.#lost = false;
    this.#everReady = true;
  }

  #trouble(error: Error): void {
    if (this.#lost || this.#closed) return;
    if (!this.#everReady && error.message === 'connection closed') return; // the error said it
    this.#lost = true;
    this.#options.log('warn', 'Redis lost; going on with the other sources and reconnecting', {
      redis: redactUrl(this.#options.url),
      error: error.message,
    });
  }

  #message(message: string): void {
    let remote: RemoteEvent;
    try {
      remote = JSON.parse(message) as RemoteEvent;
    } catch {
      return;
    }
    // Another watcher's word is a candidate to check, never a verdict; only its shape is used.
    const e = remote?.event;
    if (typeof remote?.origin !== 'string' || remote.origin === this.#options.info.id) return;
    if (typeof e?.backend?.host !== 'string' || !Number.isInteger(e.backend.port)) return;
    this.#options.onRemote({ origin: peerText(remote.origin, 200), event: e });
  }

  async #register(): Promise<void> {
    if (!this.connected || this.#closed) return;
    const info: ScannerInfo = {
      ...this.#options.info,
      scanning: this.#scanning,
      heartbeatAt: new Date().toISOString(),
    };
    await this.#redis
      .set(`${this.#prefix}scanner:${info.id}`, JSON.stringify(info), 'PX', this.#options.heartbeatMs * 3)
      .catch(() => {});
  }

  /** The watchers registered now (their keys have not expired), this one included. */
  async scanners(): Promise<ScannerInfo[]> {
    const keys = await scanKeys(this.#redis, `${this.#prefix}scanner:*`, MAX_SCANNERS);
    if (keys.length === 0) return [];
    const values = await this.#redis.mget(keys.slice(0, MAX_SCANNERS));
    const found: ScannerInfo[] = [];
    for (const value of values) {
      try {
        const info = JSON.parse(value ?? '') as ScannerInfo;
        if (typeof info.id === 'string') found.push(info);
      } catch {
        // not one of ours
      }
    }
    return found;
  }

  /**
   * Which of `subnets` this watcher scans this cycle: those it holds, renewed, and free ones
   * up to its fair share (the subnets over the watchers registered), in its own order; past
   * its share (a watcher joined) it lets go of the ones it ranks last. Throws when Redis is
   * down: the caller then scans them all, on its own.
   */
  async lease(subnets: readonly string[]): Promise<{ mine: string[]; others: Record<string, string> }> {
    const id = this.#options.info.id;
    const ttl = String(this.#options.leaseMs);
    await this.#register();
    const watchers = Math.max(1, (await this.scanners()).length);
    const share = Math.ceil(subnets.length / watchers);
    const ordered = [...subnets].sort((a, b) => rank(id, a).localeCompare(rank(id, b)));
    const keyOf = (subnet: string) => `${this.#prefix}lease:${subnet}`;
    const holders = await this.#redis.mget(ordered.map(keyOf));
    let mine: string[] = [];
    const others: Record<string, string> = {};
    for (const [i, subnet] of ordered.entries()) {
      const holder = holders[i];
      if (holder === id && (await this.#redis.eval(RENEW, 1, keyOf(subnet), id, ttl)) === 1) mine.push(subnet);
      else if (holder && holder !== id) others[subnet] = holder;
    }
    for (const subnet of mine.slice(share)) await this.#redis.eval(RELEASE, 1, keyOf(subnet), id);
    mine = mine.slice(0, share);
    for (const subnet of ordered) {
      if (mine.length >= share) break;
      if (mine.includes(subnet) || subnet in others) continue;
      const taken = await this.#redis.set(keyOf(subnet), id, 'PX', this.#options.leaseMs, 'NX');
      if (taken === 'OK') mine.push(subnet);
      else others[subnet] = (await this.#redis.get(keyOf(subnet))) ?? '?';
    }
    this.#scanning = subnets.filter((s) => mine.includes(s));
    await this.#register();
    return { mine: this.#scanning, others };
  }

  /** Tells the other watchers; a Redis that is down loses the message (they check for themselves). */
  publish(event: WatchEvent): void {
    if (!this.connected) return;
    const message: RemoteEvent = { origin: this.#options.info.id, event };
    this.#redis.publish(this.#channel, JSON.stringify(message)).catch(() => {});
  }

  /** Lets go of the leases and the registration, then disconnects; bounded in time. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    const id = this.#options.info.id;
    if (this.connected) {
      const work = Promise.all([
        ...this.#scanning.map((s) => this.#redis.eval(RELEASE, 1, `${this.#prefix}lease:${s}`, id)),
        this.#redis.del(`${this.#prefix}scanner:${id}`),
      ]).catch(() => {});
      await Promise.race([work, new Promise((r) => setTimeout(r, REDIS_TIMEOUT_MS))]);
    }
    this.#redis.disconnect();
    this.#subscriber.disconnect();
  }
}
