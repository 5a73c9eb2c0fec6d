// Several watchers on one Redis. Each registers itself (`<prefix>scanner:<id>`, a heartbeat
// TTL); the subnets the scan source covers are leased (`SET NX PX`) so N watchers split them,
// each taking its fair share in an order of its own (rendezvous hashing), instead of all
// scanning the same /24; events go out on `<prefix>watch-events` and come in from the
// others. Health checks are not leased: each watcher judges what it can reach.
//
// Whoever can write to the Redis is not trusted: every value read from it is size-capped
// before it is read whole (on the server, by script), checked against its shape, and ignored
// with a counted, rate-limited log line when wrong. Registrations and leases count only while
// their heartbeat is fresh by their own timestamps, so a key without an expiry or from a dead
// watcher cannot halve a share or keep a subnet unscanned. With a fleet key, every message,
// registration and lease is signed (HMAC-SHA256 over canonical JSON) and unsigned ones are
// ignored.
//
// The connection is the watcher's own and long-lived: commands fail at once while it is down
// (no queue), it reconnects with backoff, and the loss and the return are each said once.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

import type { Redis } from 'ioredis';

import { peerText } from '../common/peer-text.js';
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
  /** Its heartbeat period: it is stale three of these after heartbeatAt. */
  heartbeatMs?: number;
}

/** What another watcher's event says, reduced to what is used: a hint, never a verdict. */
export interface RemoteEvent {
  origin: string;
  event: {
    type: WatchEvent['type'];
    backend: { host: string; port: number; state: WatchEvent['backend']['state'] };
    cause: { saw: string };
  };
}

/** The kinds of Redis value that can be ignored, each counted. */
export type IgnoredKind = 'event' | 'scanner' | 'lease' | 'registry';

export interface FleetOptions {
  url: string;
  prefix?: string;
  info: Omit<ScannerInfo, 'heartbeatAt' | 'scanning' | 'heartbeatMs'>;
  /** How long a lease lives unless renewed: past one resolve interval, so the holder keeps it. */
  leaseMs: number;
  /** Registration refresh; the scanner key lives three of these. */
  heartbeatMs: number;
  /** The shared secret that signs what watchers write; without it nothing is signed. */
  key?: Buffer;
  log: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  onRemote: (remote: RemoteEvent) => void;
  /** Redis came back after a loss: resynchronise (re-register is done here; resolve now). */
  onReconnect: () => void;
}

/** Renews a lease only while it is still ours; releases it the same way. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
/**
 * Reads string keys without reading a large one whole: per key {length, pttl, value}, the
 * value only when at most ARGV[1] bytes (a length of -1: no such key; -2: not a string).
 */
const READ_BOUNDED = `local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('type', key).ok
  if t == 'none' then out[i] = {-1, -2, false}
  elseif t ~= 'string' then out[i] = {-2, redis.call('pttl', key), false}
  else
    local n = redis.call('strlen', key)
    local v = false
    if n <= tonumber(ARGV[1]) then v = redis.call('get', key) end
    out[i] = {n, redis.call('pttl', key), v}
  end
end
return out`;
/** Deletes a lease that does not count: still the value read (ARGV[1]), or of a shape no holder writes. */
const DROP_STALE = `local t = redis.call('type', KEYS[1]).ok
if t == 'none' then return 1 end
if t ~= 'string' or redis.call('strlen', KEYS[1]) > tonumber(ARGV[2]) or redis.call('pttl', KEYS[1]) < 0 or redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0`;

/** Registrations kept at most: a fleet is a handful of watchers. */
const MAX_SCANNERS = 256;
/**
 * Scanner keys examined at most, in reads of SCANNER_READ_BATCH (8 MiB in all at the size cap):
 * junk keys beyond MAX_SCANNERS cannot hide the real registrations behind a cap, and lease
 * holders are read by their own keys first.
 */
const MAX_SCANNER_KEYS = 1024;
const SCANNER_READ_BATCH = 128;
/** The largest registration, lease and message read: ours are well under these. */
const MAX_SCANNER_BYTES = 8192;
const MAX_LEASE_BYTES = 512;
export const MAX_MESSAGE_BYTES = 65_536;
/** A heartbeat period above this is taken as this (a registration cannot claim to live for days). */
const MAX_HEARTBEAT_MS = 10_000;
/** Clocks of the fleet may differ by this much; a timestamp further ahead is forged or broken. */
const CLOCK_SKEW_MS = 5000;
/** A signed message older than this is a replay. */
const MESSAGE_MAX_AGE_MS = 60_000;
/** Stored values remembered as counted: past it the memory starts over (a count, not a leak). */
const MAX_IGNORED_KEYS = 4096;
/** One log line per kind of ignored value at most this often (the count goes on). */
const IGNORED_LOG_EVERY_MS = 10_000;

const EVENT_TYPES = new Set(['added', 'removed', 'up', 'down', 'changed']);

function rank(id: string, subnet: string): string {
  return createHash('sha256').update(`${id}\n${subnet}`).digest('hex');
}

/** JSON with object keys sorted at every level: one text per value, to sign and check. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
const isTextList = (v: unknown, max: number): v is string[] =>
  Array.isArray(v) && v.length <= 4096 && v.every((s) => isText(s, max));

/** A registration of the right shape, or why not. */
function parseScanner(value: unknown): ScannerInfo | string {
  if (!isRecord(value)) return 'not an object';
  const { id, host, pid, version, subnets, scanning, startedAt, heartbeatAt, heartbeatMs } = value;
  if (!isText(id, 256) || id === '') return 'no id';
  if (!isText(host, 256) || !isText(version, 64) || !isText(startedAt, 64) || !isText(heartbeatAt, 64))
    return 'a field is missing or not text';
  if (!Number.isSafeInteger(pid)) return 'pid is not a number';
  if (!isTextList(subnets, 256) || !isTextList(scanning, 256)) return 'subnets or scanning is not a list of text';
  if (heartbeatMs !== undefined && !(Number.isSafeInteger(heartbeatMs) && (heartbeatMs as number) > 0))
    return 'heartbeatMs is not a duration';
  const info: ScannerInfo = { id, host, pid: pid as number, version, subnets, scanning, startedAt, heartbeatAt };
  if (heartbeatMs !== undefined) info.heartbeatMs = heartbeatMs as number;
  return info;
}

/** An event of the right shape, reduced to what is used, or why not. */
function parseRemote(value: unknown): RemoteEvent | string {
  if (!isRecord(value)) return 'not an object';
  const { origin, event } = value;
  if (!isText(origin, 256) || origin === '') return 'no origin';
  if (!isRecord(event)) return 'no event';
  const { type, backend, cause } = event;
  if (typeof type !== 'string' || !EVENT_TYPES.has(type)) return 'not an event type';
  if (!isRecord(backend) || !isText(backend.host, 253) || backend.host === '' || !isPort(backend.port))
    return 'no backend host and port';
  if (backend.state !== 'up' && backend.state !== 'down') return 'no backend state';
  if (!isRecord(cause) || !isText(cause.saw, 4096)) return 'no cause';
  return {
    origin: peerText(origin, 200),
    event: {
      type: type as WatchEvent['type'],
      backend: { host: backend.host, port: backend.port, state: backend.state },
      cause: { saw: peerText(cause.saw, 300) },
    },
  };
}

export class Fleet {
  readonly #options: FleetOptions;
  readonly #prefix: string;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #heartbeat: NodeJS.Timeout;
  #scanning: string[] = [];
  /** Subnets held past the fair share because nobody took them for a whole cycle. */
  readonly #spare = new Set<string>();
  /** Subnets left free at the end of the last cycle. */
  #leftFree = new Set<string>();
  #lost = false;
  #everReady = false;
  #closed = false;
  readonly #ignored: Record<IgnoredKind, number> = { event: 0, scanner: 0, lease: 0, registry: 0 };
  readonly #ignoredSaidAt: Partial<Record<IgnoredKind, number>> = {};
  /** The stored values (kind and key) already counted: read again each cycle, counted once. */
  readonly #ignoredKeys = new Set<string>();

  private constructor(options: FleetOptions, redis: Redis, subscriber: Redis) {
    this.#options = options;
    this.#prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.#redis = redis;
    this.#subscriber = subscriber;
    redis.on('ready', () => this.#ready());
    redis.on('error', (error: Error) => this.#trouble(error));
    redis.on('close', () => this.#trouble(new Error('connection closed')));
    subscriber.on('error', () => {}); // said through the main connection
    // Every (re)connect subscribes, the first one after a late Redis included.
    subscriber.on('ready', () => void subscriber.subscribe(this.#channel).catch(() => {}));
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      try {
        this.#message(message);
      } catch (error) {
        // Nothing a writer sends may throw out of ioredis's data handler.
        this.ignore('event', `could not be handled: ${(error as Error).message}`);
      }
    });
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
      autoResubscribe: false, // the 'ready' handler subscribes, on every connect
      // 0.5 s, 1 s, 2 s … at most 30 s between attempts, for as long as the watcher runs.
      retryStrategy: (times: number) => Math.min(500 * 2 ** Math.min(times - 1, 6), 30_000),
    };
    const fleet = new Fleet(options, new Redis(options.url, settings), new Redis(options.url, settings));
    await Promise.all([
      fleet.#redis.connect().catch((error: Error) => fleet.#trouble(error)),
      fleet.#subscriber.connect().catch(() => {}),
    ]);
    return fleet;
  }

  get #channel(): string {
    return `${this.#prefix}watch-events`;
  }

  get connected(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Values read from Redis and ignored, by kind, since the start (a stored one once). */
  get ignored(): Readonly<Record<IgnoredKind, number>> {
    return this.#ignored;
  }

  /**
   * Counts a value that is ignored; says so at most once per kind per 10 s, with the count. A
   * stored value (`key`: a scanner key, a lease, a registry entry) is read again at every cycle
   * and page view: it is counted once, until the set of counted keys is full and starts over.
   */
  ignore(kind: IgnoredKind, reason: string, key?: string): void {
    if (key !== undefined) {
      const id = `${kind}\n${key}`;
      if (this.#ignoredKeys.has(id)) return;
      if (this.#ignoredKeys.size >= MAX_IGNORED_KEYS) this.#ignoredKeys.clear();
      this.#ignoredKeys.add(id);
    }
    this.#ignored[kind] += 1;
    const now = performance.now();
    const said = this.#ignoredSaidAt[kind];
    if (said !== undefined && now - said < IGNORED_LOG_EVERY_MS) return;
    this.#ignoredSaidAt[kind] = now;
    this.#options.log('warn', 'ignored a Redis value', {
      kind,
      reason: peerText(reason, 300),
      ignored: this.#ignored[kind],
    });
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

  #sign(text: string): string {
    return createHmac('sha256', this.#options.key as Buffer)
      .update(text)
      .digest('hex');
  }

  /** With a key: whether `sig` signs `text` (compared in constant time). */
  #signedBy(text: string, sig: unknown): boolean {
    if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return false;
    return timingSafeEqual(Buffer.from(this.#sign(text), 'hex'), Buffer.from(sig, 'hex'));
  }

  #message(raw: Buffer): void {
    if (raw.length > MAX_MESSAGE_BYTES) return this.ignore('event', `larger than ${MAX_MESSAGE_BYTES} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(raw.toString('utf8'));
    } catch {
      return this.ignore('event', 'not JSON');
    }
    if (isRecord(value) && value.origin === this.#options.info.id) return;
    if (this.#options.key) {
      if (!isRecord(value) || value.sig === undefined) return this.ignore('event', 'unsigned');
      const { sig, ...signed } = value;
      if (!this.#signedBy(canonicalJson(signed), sig)) return this.ignore('event', 'bad signature');
      const at = signed.at;
      const age = typeof at === 'number' ? Date.now() - at : NaN;
      if (!(age <= MESSAGE_MAX_AGE_MS && age >= -CLOCK_SKEW_MS)) return this.ignore('event', 'stale');
    }
    const remote = parseRemote(value);
    if (typeof remote === 'string') return this.ignore('event', `not a watch event: ${remote}`);
    this.#options.onRemote(remote);
  }

  async #register(): Promise<void> {
    if (!this.connected || this.#closed) return;
    const info: ScannerInfo & { sig?: string } = {
      ...this.#options.info,
      scanning: this.#scanning,
      heartbeatAt: new Date().toISOString(),
      heartbeatMs: this.#options.heartbeatMs,
    };
    if (this.#options.key) info.sig = this.#sign(canonicalJson(info));
    await this.#redis
      .set(`${this.#prefix}scanner:${info.id}`, JSON.stringify(info), 'PX', this.#options.heartbeatMs * 3)
      .catch(() => {});
  }

  /** String keys read through READ_BOUNDED: length, pttl, and the value when small enough. */
  async #readBounded(keys: string[], maxBytes: number): Promise<[number, number, string | null][]> {
    if (keys.length === 0) return [];
    return (await this.#redis.eval(READ_BOUNDED, keys.length, ...keys, String(maxBytes))) as [
      number,
      number,
      string | null,
    ][];
  }

  /**
   * The watchers registered now, this one and the named lease holders read first:
   * registrations of the right shape (signed, with a key), with an expiry, whose heartbeat is
   * fresh by their own timestamp and period.
   */
  async scanners(holders: readonly string[] = []): Promise<ScannerInfo[]> {
    const keyOf = (id: string) => `${this.#prefix}scanner:${id}`;
    const named = [this.#options.info.id, ...holders].map(keyOf);
    const listed = await scanKeys(this.#redis, keyOf('*'), MAX_SCANNER_KEYS);
    const keys = [...new Set([...named, ...listed])].slice(0, MAX_SCANNER_KEYS);
    const found: ScannerInfo[] = [];
    for (let i = 0; i < keys.length && found.length < MAX_SCANNERS; i += SCANNER_READ_BATCH) {
      const batch = keys.slice(i, i + SCANNER_READ_BATCH);
      const reads = await this.#readBounded(batch, MAX_SCANNER_BYTES);
      for (const [j, read] of reads.entries()) {
        const info = this.#registration(batch[j] as string, read);
        if (info && found.length < MAX_SCANNERS && !found.some((f) => f.id === info.id)) found.push(info);
      }
    }
    return found;
  }

  /** One scanner key read through READ_BOUNDED: the registration when it counts, else undefined. */
  #registration(rawKey: string, [length, pttl, value]: [number, number, string | null]) {
    const ignore = (reason: string): undefined => {
      this.ignore('scanner', `${peerText(rawKey, 100)}: ${reason}`, rawKey);
      return undefined;
    };
    const now = Date.now();
    if (length === -1) return undefined; // expired since the SCAN, or a named holder not registered
    if (length === -2) return ignore('not a string');
    if (value === null) return ignore(`larger than ${MAX_SCANNER_BYTES} bytes`);
    if (pttl < 0) return ignore('no expiry');
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return ignore('not JSON');
    }
    if (this.#options.key) {
      const { sig, ...signed } = isRecord(parsed) ? parsed : { sig: undefined };
      if (sig === undefined || !this.#signedBy(canonicalJson(signed), sig))
        return ignore(sig === undefined ? 'unsigned' : 'bad signature');
    }
    const info = parseScanner(parsed);
    if (typeof info === 'string') return ignore(info);
    if (rawKey !== `${this.#prefix}scanner:${info.id}`)
      return ignore(`names another watcher (${peerText(info.id, 64)})`);
    const beat = Date.parse(info.heartbeatAt);
    const period = Math.min(info.heartbeatMs ?? MAX_HEARTBEAT_MS, MAX_HEARTBEAT_MS);
    if (!(beat <= now + CLOCK_SKEW_MS))
      return ignore(`heartbeat ${Number.isNaN(beat) ? 'is not a time' : 'in the future'}`);
    if (now - beat > 3 * period + CLOCK_SKEW_MS)
      return ignore(`stale (no heartbeat for ${Math.round((now - beat) / 1000)} s)`);
    return info;
  }

  /** A lease's value read back: the holder's id, and the signature after it when signed. */
  static #parseLease(value: string): [holder: string, sig: string | undefined] {
    const [holder = '', sig] = value.split(' ');
    return [holder, sig];
  }

  /** The value this watcher writes to hold a lease: its id, signed with a key. */
  #leaseValue(subnet: string): string {
    const id = this.#options.info.id;
    return this.#options.key ? `${id} ${this.#sign(`lease\n${subnet}\n${id}`)}` : id;
  }

  /** The holder a lease names when it counts: the right shape, an expiry, a fresh holder. */
  #leaseHolder(subnet: string, read: [number, number, string | null], fresh: Set<string>): string | undefined {
    const [length, pttl, value] = read;
    if (length === -1) return undefined;
    const why =
      length === -2
        ? 'not a string'
        : value === null
          ? `larger than ${MAX_LEASE_BYTES} bytes`
          : pttl < 0
            ? 'no expiry'
            : undefined;
    if (why) {
      this.ignore('lease', `${peerText(subnet, 64)}: ${why}`, subnet);
      return undefined;
    }
    const [holder, sig] = Fleet.#parseLease(value as string);
    if (this.#options.key && !this.#signedBy(`lease\n${subnet}\n${holder}`, sig)) {
      this.ignore('lease', `${peerText(subnet, 64)}: ${sig === undefined ? 'unsigned' : 'bad signature'}`, subnet);
      return undefined;
    }
    if (!fresh.has(holder)) {
      this.ignore(
        'lease',
        `${peerText(subnet, 64)}: held by ${peerText(holder, 64)}, which has no fresh registration`,
        `${subnet}\n${holder}`,
      );
      return undefined;
    }
    return holder;
  }

  /**
   * Which of `subnets` this watcher scans this cycle: those it holds, renewed, and free ones
   * up to its fair share (the subnets over the watchers registered), in its own order; past
   * its share (a watcher joined) it lets go of the ones it ranks last. A subnet still free a
   * cycle later is taken as a spare whatever the share, so every subnet is scanned by someone
   * within two intervals even when registrations do no work. A lease that does not
   * count (no expiry, no fresh holder, unsigned with a key) is taken over. Throws when Redis
   * is down: the caller then scans them all, on its own.
   */
  async lease(subnets: readonly string[]): Promise<{ mine: string[]; others: Record<string, string> }> {
    const id = this.#options.info.id;
    const ttl = String(this.#options.leaseMs);
    await this.#register();
    const ordered = [...subnets].sort((a, b) => rank(id, a).localeCompare(rank(id, b)));
    const keyOf = (subnet: string) => `${this.#prefix}lease:${subnet}`;
    // Leases before registrations: a watcher registers before it leases, so the holder of any
    // lease read here is already registered when the registrations are read next.
    const reads = await this.#readBounded(ordered.map(keyOf), MAX_LEASE_BYTES);
    const holders = reads.flatMap(([, , value]) => (value ? [Fleet.#parseLease(value)[0]] : []));
    const fresh = new Set((await this.scanners(holders)).map((s) => s.id));
    fresh.add(id);
    const share = Math.ceil(subnets.length / fresh.size);
    let mine: string[] = [];
    const others: Record<string, string> = {};
    const free: string[] = [];
    for (const [i, subnet] of ordered.entries()) {
      const read = reads[i] as [number, number, string | null];
      const holder = this.#leaseHolder(subnet, read, fresh);
      const ours = this.#leaseValue(subnet);
      if (holder === id && read[2] === ours) {
        if ((await this.#redis.eval(RENEW, 1, keyOf(subnet), ours, ttl)) === 1) mine.push(subnet);
      } else if (holder !== undefined && holder !== id) others[subnet] = holder;
      else {
        // Free, or a lease that does not count: cleared (only if unchanged since read) to be taken.
        if (read[0] !== -1)
          await this.#redis.eval(DROP_STALE, 1, keyOf(subnet), read[2] ?? '', String(MAX_LEASE_BYTES));
        free.push(subnet);
      }
    }
    // Spares fill any room in the share first (a watcher went away); past the share (a watcher
    // joined), the others are let go of, those ranked last first; spares are kept.
    let regular = mine.filter((s) => !this.#spare.has(s)).length;
    for (const s of mine) if (regular < share && this.#spare.delete(s)) regular += 1;
    const release = mine.filter((s) => !this.#spare.has(s)).slice(share);
    for (const subnet of release) await this.#redis.eval(RELEASE, 1, keyOf(subnet), this.#leaseValue(subnet));
    mine = mine.filter((s) => !release.includes(s));
    let held = regular - release.length;
    const leftFree: string[] = [];
    for (const subnet of free) {
      // Up to the share; past it only a subnet that was free at the last cycle too: nobody
      // took it (the other registrations do no work, or are a writer's), so it is scanned here.
      const spare = held >= share;
      if (spare && !this.#leftFree.has(subnet)) {
        leftFree.push(subnet);
        continue;
      }
      const taken = await this.#redis.set(keyOf(subnet), this.#leaseValue(subnet), 'PX', this.#options.leaseMs, 'NX');
      if (taken !== 'OK')
        others[subnet] = '?'; // taken by another in the meantime
      else {
        mine.push(subnet);
        if (spare) this.#spare.add(subnet);
        else held += 1;
      }
    }
    this.#leftFree = new Set(leftFree);
    for (const s of this.#spare) if (!mine.includes(s)) this.#spare.delete(s);
    this.#scanning = subnets.filter((s) => mine.includes(s));
    await this.#register();
    return { mine: this.#scanning, others };
  }

  /** Tells the other watchers; a Redis that is down loses the message (they check for themselves). */
  publish(event: WatchEvent): void {
    if (!this.connected) return;
    const message: Record<string, unknown> = { origin: this.#options.info.id, at: Date.now(), event };
    if (this.#options.key) message.sig = this.#sign(canonicalJson(message));
    this.#redis.publish(this.#channel, JSON.stringify(message)).catch(() => {});
  }

  /** Lets go of the leases and the registration, then disconnects; bounded in time. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    const id = this.#options.info.id;
    if (this.connected) {
      const work = Promise.all([
        ...this.#scanning.map((s) => this.#redis.eval(RELEASE, 1, `${this.#prefix}lease:${s}`, this.#leaseValue(s))),
        this.#redis.del(`${this.#prefix}scanner:${id}`),
      ]).catch(() => {});
      await Promise.race([work, new Promise((r) => setTimeout(r, REDIS_TIMEOUT_MS))]);
    }
    this.#redis.disconnect();
    this.#subscriber.disconnect();
  }
}
