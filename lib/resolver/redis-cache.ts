// Source "redis": a registry of backends that any scanner on the network has verified. Only
// verified backends are ever written, each with provenance and an expiry; entries that no
// longer answer are removed; every change is published so other coordinators can watch.
// Whoever can write to the registry is not trusted: every entry is validated field by field,
// a bad one is dropped with its reason and the good ones stand, and every call has a deadline.
//
// Keys (prefix default "scan-backends:"):
//   <prefix>backend:<host>:<port>  hash: host, port, sources (JSON), firstSeen, lastSeen,
//                                  lastProven (ms since epoch: when it last answered HELLO),
//                                  service, health, protocol, rpc (JSON); expires after the
//                                  TTL unless seen again
//   <prefix>events                 pub/sub channel: {"type":"added"|"updated"|"removed",
//                                  "host","port","sources"?,"reason"?,"at"}
import type { Redis } from 'ioredis';

import { formatHostPort, parseHostPort } from '../common/host-port.js';
import { peerText } from '../common/peer-text.js';
import { SOURCE_NAMES, type Backend, type Candidate, type Dropped, type SourceName } from './types.js';

export const DEFAULT_REDIS_PREFIX = 'scan-backends:';
export const DEFAULT_REDIS_TTL_SECONDS = 300;
/** The deadline of the connection and of every command: a silent Redis is "unavailable", not a hang. */
export const REDIS_TIMEOUT_MS = 2000;
/** The most entries one resolve reads: a registry is a cluster's list, not a database. */
const MAX_ENTRIES = 4096;
/** The fields an entry is read by, and the most bytes of each read (ours are far shorter). */
const ENTRY_FIELDS = ['host', 'port', 'lastProven', 'protocol'] as const;
const MAX_FIELD_BYTES = 1024;
/**
 * Reads named fields of hashes without reading a large one whole: per key, its type, then per
 * field the value, or its length when over ARGV[1] bytes (a number, not a string).
 */
const READ_FIELDS = `local out = {}
local cap = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local t = redis.call('type', key).ok
  local row = {t}
  if t == 'hash' then
    for j = 2, #ARGV do
      local n = redis.call('hstrlen', key, ARGV[j])
      if n > cap then row[j] = n else row[j] = redis.call('hget', key, ARGV[j]) end
    end
  end
  out[i] = row
end
return out`;

export interface RedisRegistryOptions {
  url: string;
  prefix?: string;
  ttlSeconds?: number;
  timeoutMs?: number;
}

/** A registry entry that passed validation. */
export interface RegistryEntry extends Candidate {
  /** When it last answered HELLO as a ggml-rpc server, ms since the epoch. */
  lastProven?: number;
  protocol?: string;
}

/** The URL with any password hidden, for messages. */
export function redactUrl(url: string): string {
  return url.replace(
    /\/\/([^@/]*)@/,
    (_, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`,
  );
}

/** What went wrong with Redis, in words a person can act on. */
export function describeRedisError(error: unknown, url: string, timeoutMs: number): string {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const message = e?.message ?? String(error);
  if (e?.code === 'ECONNREFUSED')
    return `refused at ${e.address ?? ''}:${e.port ?? ''}`.replace(/^refused at :$/, 'refused');
  if (/NOAUTH/.test(message)) return 'it wants a password (NOAUTH): give it in the URL, redis://:PASSWORD@host:port';
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message))
    return 'the password was refused (WRONGPASS)';
  if (/timed? ?out|ETIMEDOUT/i.test(message)) return `no answer within ${timeoutMs} ms`;
  if (/Connection is closed/.test(message)) return `closed the connection (${redactUrl(url)})`;
  return peerText(message, 200);
}

function rejectAfter(ms: number, what: string): { promise: Promise<never>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
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

/** The keys matching `pattern`, by SCAN (never KEYS, which blocks the server); past `max` it stops. */
export async function scanKeys(redis: Redis, pattern: string, max: number): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0' && keys.length < max);
  return keys;
}

export class RedisRegistry {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlSeconds: number;
  readonly url: string;

  private constructor(redis: Redis, options: RedisRegistryOptions) {
    this.#redis = redis;
    this.#prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.#ttlSeconds = options.ttlSeconds ?? DEFAULT_REDIS_TTL_SECONDS;
    this.url = redactUrl(options.url);
  }

  /**
   * Connects and checks that Redis answers (PING), failing fast: no retries, no offline queue,
   * one deadline for it all. Errors say what went wrong (refused, a password, no answer).
   */
  static async connect(options: RedisRegistryOptions): Promise<RedisRegistry> {
    const timeoutMs = options.timeoutMs ?? REDIS_TIMEOUT_MS;
    // Loaded on first use: ioredis costs ~80 ms of start-up that scans and probes never need.
    const { Redis } = await import('ioredis');
    const redis = new Redis(options.url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      // Commands wait for the connection (and its AUTH) instead of failing on a socket not yet
      // writable; every one is still bounded by commandTimeout, and no reconnect is tried.
      enableOfflineQueue: true,
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    // The socket's own error (ECONNREFUSED…) says more than the "Connection is closed." that
    // connect() rejects with once retries are off.
    let socketError: unknown;
    redis.on('error', (error) => (socketError ??= error));
    const deadline = rejectAfter(timeoutMs, 'connect');
    try {
      await Promise.race([redis.connect().then(() => redis.ping()), deadline.promise]);
    } catch (error) {
      redis.disconnect();
      const cause =
        /Connection is closed|isn't writeable/.test((error as Error).message) && socketError ? socketError : error;
      throw new Error(describeRedisError(cause, options.url, timeoutMs), { cause });
    } finally {
      deadline.cancel();
    }
    return new RedisRegistry(redis, options);
  }

  get ttlSeconds(): number {
    return this.#ttlSeconds;
  }

  get channel(): string {
    return `${this.#prefix}events`;
  }

  keyOf(host: string, port: number): string {
    return `${this.#prefix}backend:${formatHostPort({ host, port })}`;
  }

  /** Every valid entry, and every bad one with its reason. */
  async entries(): Promise<{ entries: RegistryEntry[]; dropped: Dropped[] }> {
    const keys = await scanKeys(this.#redis, `${this.#prefix}backend:*`, MAX_ENTRIES);
    const dropped: Dropped[] = [];
    const entries: RegistryEntry[] = [];
    if (keys.length === 0) return { entries, dropped };
    const read = keys.slice(0, MAX_ENTRIES);
    const rows = (await this.#redis.eval(
      READ_FIELDS,
      read.length,
      ...read,
      String(MAX_FIELD_BYTES),
      ...ENTRY_FIELDS,
    )) as (string | number | null)[][];
    rows.forEach(([type, ...values], i) => {
      const key = peerText(read[i] as string, 100);
      if (type === 'none') return; // expired since the SCAN
      if (type !== 'hash') {
        dropped.push({ host: key, port: 0, reason: `registry key ${key}: not a hash` });
        return;
      }
      const fields: Record<string, string> = {};
      for (const [j, name] of ENTRY_FIELDS.entries()) {
        const value = values[j];
        if (typeof value === 'number') {
          dropped.push({
            host: key,
            port: 0,
            reason: `registry key ${key}: ${name} is ${value} bytes (over ${MAX_FIELD_BYTES})`,
          });
          return;
        }
        if (typeof value === 'string') fields[name] = value;
      }
      const entry = parseEntry(fields);
      if (typeof entry !== 'string') entries.push(entry);
      else dropped.push({ host: key, port: 0, reason: `registry key ${key}: ${entry}` });
    });
    if (keys.length > MAX_ENTRIES) {
      dropped.push({ host: this.#prefix, port: 0, reason: `more than ${MAX_ENTRIES} entries; the rest were not read` });
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
      const [[, previous] = []] = ((await this.#redis
        .eval(READ_FIELDS, 1, key, String(MAX_FIELD_BYTES), 'sources')
        .catch(() => [])) ?? []) as [string, unknown][];
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
      // A key of another type under our name is replaced, not fatal.
      const type = await this.#redis.type(key);
      const multi = this.#redis.multi();
      if (type !== 'none' && type !== 'hash') multi.del(key);
      const [[, added]] = (await multi
        .hsetnx(key, 'firstSeen', String(now))
        .hset(key, fields)
        .expire(key, this.#ttlSeconds)
        .exec()
        .then((r) => (type !== 'none' && type !== 'hash' ? r?.slice(1) : r))) as [[Error | null, number]];
      await this.#publish({ type: added === 1 ? 'added' : 'updated', host: b.host, port: b.port, sources, at: now });
    }
  }

  /** Removes entries that were checked and did not answer. */
  async remove(dropped: readonly Dropped[]): Promise<void> {
    for (const d of dropped) {
      if (d.port === 0) continue;
      if ((await this.#redis.del(this.keyOf(d.host, d.port))) > 0) {
        await this.#publish({ type: 'removed', host: d.host, port: d.port, reason: d.reason, at: Date.now() });
      }
    }
  }

  async #publish(event: object): Promise<void> {
    await this.#redis.publish(this.channel, JSON.stringify(event));
  }

  async close(): Promise<void> {
    const deadline = rejectAfter(REDIS_TIMEOUT_MS, 'quit');
    await Promise.race([this.#redis.quit(), deadline.promise]).catch(() => this.#redis.disconnect());
    deadline.cancel();
  }
}
