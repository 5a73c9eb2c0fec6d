// Source "redis": a registry of backends that any scanner on the network has verified. Only
// verified backends are ever written, each with provenance and an expiry; entries that no
// longer answer are removed; every change is published so other coordinators can watch.
//
// Keys (prefix default "scan-backends:"):
//   <prefix>backend:<host>:<port>  hash: host, port, sources (JSON), firstSeen, lastSeen
//                                  (ms since epoch), service, health, protocol, rpc (JSON);
//                                  expires after the TTL unless seen again
//   <prefix>events                 pub/sub channel: {"type":"added"|"updated"|"removed",
//                                  "host","port","sources"?,"reason"?,"at"}
import type { Redis } from 'ioredis';

import { formatHostPort } from '../host-port.js';
import type { Backend, Candidate, Dropped } from './types.js';

export const DEFAULT_REDIS_PREFIX = 'scan-backends:';
export const DEFAULT_REDIS_TTL_SECONDS = 300;
const CONNECT_TIMEOUT_MS = 1000;

export interface RedisRegistryOptions {
  url: string;
  prefix?: string;
  ttlSeconds?: number;
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
    this.url = options.url;
  }

  /** Connects, failing fast (no retries, no offline queue): a dead Redis must not stall a resolve. */
  static async connect(options: RedisRegistryOptions): Promise<RedisRegistry> {
    // Loaded on first use: ioredis costs ~80 ms of start-up that scans and probes never need.
    const { Redis } = await import('ioredis');
    const redis = new Redis(options.url, {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    redis.on('error', () => {}); // surfaced by the failing command instead
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      throw error;
    }
    return new RedisRegistry(redis, options);
  }

  get channel(): string {
    return `${this.#prefix}events`;
  }

  keyOf(host: string, port: number): string {
    return `${this.#prefix}backend:${formatHostPort({ host, port })}`;
  }

  /** Every backend the registry holds, as candidates. */
  async candidates(): Promise<Candidate[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.#redis.scan(cursor, 'MATCH', `${this.#prefix}backend:*`, 'COUNT', 500);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const candidates: Candidate[] = [];
    for (const key of keys) {
      const [host, port] = await this.#redis.hmget(key, 'host', 'port');
      if (host && port && Number(port) > 0) candidates.push({ host, port: Number(port), source: 'redis' });
    }
    return candidates;
  }

  /** Records verified backends: provenance merged, first-seen kept, last-seen now, TTL renewed. */
  async record(backends: readonly Backend[]): Promise<void> {
    const now = Date.now();
    for (const b of backends) {
      if (!b.verified || b.port === 0) continue; // never a guess, never a placeholder
      const key = this.keyOf(b.host, b.port);
      const previous = await this.#redis.hget(key, 'sources');
      const sources = [...new Set([...(previous ? (JSON.parse(previous) as string[]) : []), ...b.sources])];
      const fields: Record<string, string> = {
        host: b.host,
        port: String(b.port),
        sources: JSON.stringify(sources),
        lastSeen: String(now),
      };
      if (b.service) fields.service = b.service;
      if (b.health) fields.health = b.health;
      if (b.rpc) {
        fields.protocol = b.rpc.protocol;
        fields.rpc = JSON.stringify(b.rpc);
      }
      const [[, added]] = (await this.#redis
        .multi()
        .hsetnx(key, 'firstSeen', String(now))
        .hset(key, fields)
        .expire(key, this.#ttlSeconds)
        .exec()) as [[Error | null, number]];
      await this.#publish({ type: added === 1 ? 'added' : 'updated', host: b.host, port: b.port, sources, at: now });
    }
  }

  /** Removes entries that were checked and did not answer. */
  async remove(dropped: readonly Dropped[]): Promise<void> {
    for (const d of dropped) {
      if ((await this.#redis.del(this.keyOf(d.host, d.port))) > 0) {
        await this.#publish({ type: 'removed', host: d.host, port: d.port, reason: d.reason, at: Date.now() });
      }
    }
  }

  async #publish(event: object): Promise<void> {
    await this.#redis.publish(this.channel, JSON.stringify(event));
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
