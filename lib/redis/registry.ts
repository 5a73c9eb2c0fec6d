// Source "redis": a registry of backends that any scanner on the network has verified. Only
// verified backends are ever written, each with provenance and an expiry; entries that no
// longer answer are removed; every change is published so other coordinators can watch.
// Whoever can write to the registry is not trusted: every entry is validated field by field,
// a bad one is dropped with its reason and the good ones stand, and every call has a deadline.
//
// An entry, `<prefix>backend:<host>:<port>` (keys.ts), is a hash: host, port, sources (JSON),
// firstSeen, lastSeen, lastProven (ms since epoch: when it last answered HELLO), service,
// health, protocol, rpc (JSON); it expires after the TTL unless seen again. Each change goes
// out on the events channel in the envelope (events.ts) and, deprecated, on `<prefix>events`
// as {"type":"added"|"updated"|"removed","host","port","sources"?,"reason"?,"at"}.
//
// A registry either owns a short connection of its own (connect(): one resolve, doctor) or
// works over a watcher's live one (over(): the fleet's), which it never closes.
import { hostname } from 'node:os';

import type { Redis } from 'ioredis';

import { parseHostPort } from '../common/host-port.js';
import { redactUrl } from '../common/options.js';
import { peerText } from '../common/peer-text.js';
import { SOURCE_NAMES, type Backend, type Candidate, type Dropped, type SourceName } from '../resolver/types.js';
import { readHashFields, scanKeys } from './bounded-read.js';
import { ClaimReader, type Claim } from './claims.js';
import { closeBounded, connectOnce, REDIS_TIMEOUT_MS } from './connection.js';
import { EventChannel, type RegistryChange } from './events.js';
import { IgnoredValues } from './ignored.js';
import { RedisKeys } from './keys.js';
import { Signer } from './signing.js';

/** The most entries one resolve reads: a registry is a cluster's list, not a database. */
const MAX_ENTRIES = 4096;
/** The fields an entry is read by, and the most bytes of each read (ours are far shorter). */
const ENTRY_FIELDS = ['host', 'port', 'lastProven', 'protocol'] as const;
const MAX_FIELD_BYTES = 1024;

export interface RedisRegistryOptions {
  url: string;
  prefix?: string;
  ttlSeconds: number;
  timeoutMs?: number;
}

/** A registry entry that passed validation. */
export interface RegistryEntry extends Candidate {
  /** When it last answered HELLO as a ggml-rpc server, ms since the epoch. */
  lastProven?: number;
  protocol?: string;
}

/** Validates one hash; the entry, or why it is not one. */
export function parseEntry(fields: Record<string, string>): RegistryEntry | string {
  const { host, port } = fields;
  if (!host || !port) return `missing ${!host ? 'host' : 'port'}`;
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return `port "${peerText(port, 16)}" is not 1..65535`;
  }
  const parsed = parseHostPort(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);
  if (typeof parsed === 'string' || host.length > 253) return `host "${peerText(host, 64)}" is not an address or name`;
  const entry: RegistryEntry = { host: parsed.host, port: Number(port), source: 'redis' };
  if (fields.lastProven !== undefined) {
    const at = Number(fields.lastProven);
    if (!Number.isSafeInteger(at) || at <= 0) return 'lastProven is not a time';
    entry.lastProven = at;
  }
  if (fields.protocol !== undefined && /^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(fields.protocol)) {
    entry.protocol = fields.protocol;
  }
  return entry;
}

/** A `sources` field: a JSON list of source names, or nothing usable. */
function parseSources(text: unknown): SourceName[] {
  if (typeof text !== 'string' || text === '') return [];
  try {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value)) return [];
    return value.filter((s): s is SourceName => SOURCE_NAMES.includes(s as SourceName));
  } catch {
    return [];
  }
}

/** One hash row read bounded (type, then ENTRY_FIELDS): the entry, or the reason it was dropped. */
function entryOf(
  key: string,
  [type, ...values]: [string, ...(string | number | null)[]],
): RegistryEntry | string | undefined {
  if (type === 'none') return undefined; // expired since the SCAN
  if (type !== 'hash') return `registry key ${key}: not a hash`;
  const fields: Record<string, string> = {};
  for (const [j, name] of ENTRY_FIELDS.entries()) {
    const value = values[j];
    if (typeof value === 'number') return `registry key ${key}: ${name} is ${value} bytes (over ${MAX_FIELD_BYTES})`;
    if (typeof value === 'string') fields[name] = value;
  }
  const entry = parseEntry(fields);
  return typeof entry === 'string' ? `registry key ${key}: ${entry}` : entry;
}

/** How a registry's changes reach the events channel (the envelope): a fleet signs them as its own. */
export type RegistryAnnouncer = (change: RegistryChange) => Promise<void>;

export class RedisRegistry {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #ttlSeconds: number;
  readonly #announce: RegistryAnnouncer;
  /** Whether the connection is this registry's own, to close with it. */
  readonly #owned: boolean;
  readonly url: string;

  private constructor(redis: Redis, options: RedisRegistryOptions, announce: RegistryAnnouncer, owned: boolean) {
    this.#redis = redis;
    this.#keys = new RedisKeys(options.prefix);
    this.#ttlSeconds = options.ttlSeconds;
    this.#announce = announce;
    this.#owned = owned;
    this.url = redactUrl(options.url);
  }

  /**
   * Connects a short connection of its own and checks that Redis answers (PING), failing fast
   * (connection.ts). Its changes are announced unsigned, from `resolve@<host>:<pid>`.
   */
  static async connect(options: RedisRegistryOptions): Promise<RedisRegistry> {
    const redis = await connectOnce(options.url, options.timeoutMs ?? REDIS_TIMEOUT_MS);
    const channel = new EventChannel(
      redis,
      new RedisKeys(options.prefix),
      new Signer(),
      `resolve@${hostname()}:${process.pid}`,
    );
    return new RedisRegistry(redis, options, (registry) => channel.publish({ registry }), true);
  }

  /** A registry over a connection someone else owns and closes (a watcher's live one). */
  static over(redis: Redis, options: RedisRegistryOptions, announce: RegistryAnnouncer): RedisRegistry {
    return new RedisRegistry(redis, options, announce, false);
  }

  get ttlSeconds(): number {
    return this.#ttlSeconds;
  }

  /** @deprecated The registry's old channel; the events channel (RedisKeys.events) carries its changes too. */
  get channel(): string {
    return this.#keys.registryEvents;
  }

  keyOf(host: string, port: number): string {
    return this.#keys.backend(host, port);
  }

  /** Every valid entry, and every bad one with its reason. */
  async entries(): Promise<{ entries: RegistryEntry[]; dropped: Dropped[] }> {
    const keys = await scanKeys(this.#redis, this.#keys.backends, MAX_ENTRIES);
    const dropped: Dropped[] = [];
    const entries: RegistryEntry[] = [];
    if (keys.length === 0) return { entries, dropped };
    const read = keys.slice(0, MAX_ENTRIES);
    const rows = await readHashFields(this.#redis, read, MAX_FIELD_BYTES, ENTRY_FIELDS);
    rows.forEach((row, i) => {
      const key = peerText(read[i] as string, 100);
      const entry = entryOf(key, row);
      if (typeof entry === 'string') dropped.push({ host: key, port: 0, reason: entry });
      else if (entry) entries.push(entry);
    });
    if (keys.length > MAX_ENTRIES) {
      dropped.push({
        host: this.#keys.prefix,
        port: 0,
        reason: `more than ${MAX_ENTRIES} entries; the rest were not read`,
      });
    }
    return { entries, dropped };
  }

  /**
   * Records backends: provenance merged, first-seen kept, last-seen now, TTL renewed. Only a
   * backend that answered HELLO now gets a new lastProven; one kept busy on a coordinator's
   * word keeps the old one, so the registry never vouches for itself past its TTL.
   */
  async record(backends: readonly (Backend & { proven?: boolean })[]): Promise<void> {
    const now = Date.now();
    for (const b of backends) {
      if (!b.verified || b.port === 0) continue; // never a guess, never a placeholder
      const key = this.keyOf(b.host, b.port);
      const [[, previous] = []] = await readHashFields(this.#redis, [key], MAX_FIELD_BYTES, ['sources']).catch(
        () => [],
      );
      const sources = [...new Set([...parseSources(previous), ...b.sources])];
      const fields: Record<string, string> = {
        host: b.host,
        port: String(b.port),
        sources: JSON.stringify(sources),
        lastSeen: String(now),
      };
      if (b.proven) fields.lastProven = String(now);
      if (b.service) fields.service = b.service;
      if (b.health) fields.health = b.health;
      if (b.rpc) {
        fields.protocol = b.rpc.protocol;
        fields.rpc = JSON.stringify(b.rpc);
      }
      const added = await this.#write(key, fields, now);
      await this.#publish({ type: added ? 'added' : 'updated', host: b.host, port: b.port, sources }, now);
    }
  }

  /** Writes one entry's fields and renews its TTL; whether it is new. */
  async #write(key: string, fields: Record<string, string>, now: number): Promise<boolean> {
    // A key of another type under our name is replaced, not fatal.
    const type = await this.#redis.type(key);
    const replace = type !== 'none' && type !== 'hash';
    const multi = this.#redis.multi();
    if (replace) multi.del(key);
    const [[, added]] = (await multi
      .hsetnx(key, 'firstSeen', String(now))
      .hset(key, fields)
      .expire(key, this.#ttlSeconds)
      .exec()
      .then((r) => (replace ? r?.slice(1) : r))) as [[Error | null, number]];
    return added === 1;
  }

  /** Removes entries that were checked and did not answer. */
  async remove(dropped: readonly Dropped[]): Promise<void> {
    for (const d of dropped) {
      if (d.port === 0) continue;
      if ((await this.#redis.del(this.keyOf(d.host, d.port))) > 0) {
        await this.#publish({ type: 'removed', host: d.host, port: d.port, reason: d.reason }, Date.now());
      }
    }
  }

  /** A change on the deprecated channel in its old shape, then on the events channel. */
  async #publish(change: RegistryChange, at: number): Promise<void> {
    await this.#redis.publish(this.#keys.registryEvents, JSON.stringify({ ...change, at }));
    await this.#announce(change);
  }

  /** Closes the connection when it is this registry's own; a borrowed one stays open. */
  /** Every coordinator claim on this Redis (claims.ts), read bounded; what is not one is left out. */
  claims(): Promise<Claim[]> {
    return new ClaimReader(this.#redis, this.#keys, new Signer(), new IgnoredValues(() => {})).read([], true);
  }

  async close(): Promise<void> {
    if (this.#owned) await closeBounded(this.#redis);
  }
}
