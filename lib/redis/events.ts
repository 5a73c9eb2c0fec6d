// The one event vocabulary on the Redis: every message on `<prefix>watch-events` is an
// envelope, {origin, at, event | registry, sig?}. `event` is a watcher's WatchEvent (schema 1),
// which the other watchers take as a hint; `registry` is a change of the registry ({type:
// "added" | "updated" | "removed", host, port, sources?, reason?}), for whoever follows the
// registry; watchers pass over it (they verify what they follow themselves). The envelope
// says who sent it (a watcher leaves its own messages alone) and when, and carries the
// signature with a fleet key, so one set of guards reads both. The registry's old channel,
// `<prefix>events`, still gets its changes in the old shape for one release (registry.ts).
import type { Redis } from 'ioredis';

import type { SourceName } from '../resolver/types.js';
import type { WatchEvent } from '../watch/types.js';
import type { RedisKeys } from './keys.js';
import { isRecord, parseRemote, type RemoteEvent } from './shapes.js';
import { canonicalJson, type Signer } from './signing.js';

/** The largest message read: ours are well under it. */
export const MAX_MESSAGE_BYTES = 65_536;
/** Clocks of the fleet may differ by this much; a timestamp further ahead is forged or broken. */
export const CLOCK_SKEW_MS = 5000;
/** A signed message older than this is a replay. */
const MESSAGE_MAX_AGE_MS = 60_000;

/** A change of the registry: an entry written for the first time, written again, or deleted. */
export interface RegistryChange {
  type: 'added' | 'updated' | 'removed';
  host: string;
  port: number;
  /** Its sources after the write (added, updated). */
  sources?: SourceName[];
  /** Why it was deleted (removed). */
  reason?: string;
}

/** What an envelope carries: a watcher's event, or a registry change. */
export type EventPayload = { event: WatchEvent } | { registry: RegistryChange };

/** One message on the events channel; `at` in ms since the epoch, `sig` with a fleet key. */
export type EventEnvelope = { origin: string; at: number; sig?: string } & EventPayload;

/** The sending side of the events channel, for one origin. */
export class EventChannel {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #signer: Signer;
  readonly #origin: string;

  constructor(redis: Redis, keys: RedisKeys, signer: Signer, origin: string) {
    this.#redis = redis;
    this.#keys = keys;
    this.#signer = signer;
    this.#origin = origin;
  }

  /** Publishes one envelope (signed with a key); rejects when Redis does. */
  async publish(payload: EventPayload): Promise<void> {
    const message: EventEnvelope = this.#signer.seal({ origin: this.#origin, at: Date.now(), ...payload });
    await this.#redis.publish(this.#keys.events, JSON.stringify(message));
  }
}

/**
 * One message heard on the events channel, from anyone: another watcher's event reduced to
 * what is used, or undefined, with `ignore` told why when it is not of the right shape, size,
 * signature or age. Our own messages and registry changes are passed over without a word.
 */
export function receiveMessage(
  raw: Buffer,
  own: { origin: string; signer: Signer },
  ignore: (reason: string) => void,
): RemoteEvent | undefined {
  if (raw.length > MAX_MESSAGE_BYTES) return void ignore(`larger than ${MAX_MESSAGE_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return void ignore('not JSON');
  }
  if (isRecord(value) && value.origin === own.origin) return undefined;
  // Not a hint to anyone: nothing is done with it, so nothing needs checking.
  if (isRecord(value) && value.event === undefined && isRecord(value.registry)) return undefined;
  if (own.signer.keyed) {
    if (!isRecord(value) || value.sig === undefined) return void ignore('unsigned');
    const { sig, ...signed } = value;
    if (!own.signer.signs(canonicalJson(signed), sig)) return void ignore('bad signature');
    const at = signed.at;
    const age = typeof at === 'number' ? Date.now() - at : NaN;
    if (!(age <= MESSAGE_MAX_AGE_MS && age >= -CLOCK_SKEW_MS)) return void ignore('stale');
  }
  const remote = parseRemote(value);
  if (typeof remote === 'string') return void ignore(`not a watch event: ${remote}`);
  return remote;
}
