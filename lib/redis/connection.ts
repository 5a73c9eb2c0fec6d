// How this project talks to Redis, in one place: the deadline of every call, the two kinds of
// connection (a short one that fails fast, a long-lived one that reconnects with backoff), and
// what went wrong said in words a person can act on.
import type { Redis, RedisOptions } from 'ioredis';

import { redactUrl } from '../common/options.js';
import { peerText } from '../common/peer-text.js';

/** The deadline of the connection and of every command: a silent Redis is "unavailable", not a hang. */
export const REDIS_TIMEOUT_MS = 2000;
/** A long-lived connection retries 0.5 s, 1 s, 2 s … at most this long apart, for as long as it runs. */
const MAX_BACKOFF_MS = 30_000;

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

/** A promise that rejects after `ms` ("<what>: timed out"), and how to call it off. */
export function rejectAfter(ms: number, what: string): { promise: Promise<never>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/**
 * A short connection (one resolve, doctor): connects and checks that Redis answers (PING),
 * failing fast: no retries, no reconnect, one deadline for it all. Errors say what went wrong
 * (refused, a password, no answer).
 */
export async function connectOnce(url: string, timeoutMs = REDIS_TIMEOUT_MS): Promise<Redis> {
  // Loaded on first use: ioredis costs ~80 ms of start-up that scans and probes never need.
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, {
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
    throw new Error(describeRedisError(cause, url, timeoutMs), { cause });
  } finally {
    deadline.cancel();
  }
  return redis;
}

/**
 * A long-lived connection (a watcher's), not yet connected: commands fail at once while it is
 * down (no queue, no retry of a command), and it reconnects with backoff for as long as it runs.
 */
export async function liveConnection(
  url: string,
  settings: Pick<RedisOptions, 'autoResubscribe'> = {},
): Promise<Redis> {
  const { Redis } = await import('ioredis');
  return new Redis(url, {
    lazyConnect: true,
    connectTimeout: REDIS_TIMEOUT_MS,
    commandTimeout: REDIS_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: (times: number) => Math.min(500 * 2 ** Math.min(times - 1, 6), MAX_BACKOFF_MS),
    ...settings,
  });
}

/** QUIT, or a hard disconnect when Redis does not answer it within the deadline. */
export async function closeBounded(redis: Redis): Promise<void> {
  const deadline = rejectAfter(REDIS_TIMEOUT_MS, 'quit');
  await Promise.race([redis.quit(), deadline.promise]).catch(() => redis.disconnect());
  deadline.cancel();
}
