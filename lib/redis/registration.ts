// Each watcher registers itself: `<prefix>scanner:<id>`, its ScannerInfo as JSON, living three
// heartbeats. A registration read back counts only when it is of the right shape (signed, with
// a key), has an expiry, and its heartbeat is fresh by its own timestamp and period: a key
// without an expiry or from a dead watcher cannot halve a share or keep a subnet unscanned.
import type { Redis } from 'ioredis';

import { peerText } from '../common/peer-text.js';
import { readStrings, scanKeys, type StringRead } from './bounded-read.js';
import { CLOCK_SKEW_MS } from './events.js';
import type { IgnoredValues } from './ignored.js';
import type { RedisKeys } from './keys.js';
import { parseScanner, type ScannerInfo } from './shapes.js';
import { canonicalJson, signedJsonOf, type Signer } from './signing.js';

/** Registrations kept at most: a fleet is a handful of watchers. */
const MAX_SCANNERS = 256;
/**
 * Scanner keys examined at most, in reads of SCANNER_READ_BATCH (8 MiB in all at the size cap):
 * junk keys beyond MAX_SCANNERS cannot hide the real registrations behind a cap, and lease
 * holders are read by their own keys first.
 */
const MAX_SCANNER_KEYS = 1024;
const SCANNER_READ_BATCH = 128;
/** The largest registration read: ours are well under it. */
const MAX_SCANNER_BYTES = 8192;
/** A heartbeat period above this is taken as this (a registration cannot claim to live for days). */
const MAX_HEARTBEAT_MS = 10_000;

export type OwnInfo = Omit<ScannerInfo, 'heartbeatAt' | 'scanning' | 'heartbeatMs'>;

export class Registrations {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #signer: Signer;
  readonly #ignored: IgnoredValues;
  readonly #info: OwnInfo;
  readonly #heartbeatMs: number;

  constructor(
    redis: Redis,
    keys: RedisKeys,
    signer: Signer,
    ignored: IgnoredValues,
    own: { info: OwnInfo; heartbeatMs: number },
  ) {
    this.#redis = redis;
    this.#keys = keys;
    this.#signer = signer;
    this.#ignored = ignored;
    this.#info = own.info;
    this.#heartbeatMs = own.heartbeatMs;
  }

  /** Writes this watcher's registration (a heartbeat); a failure waits for the next one. */
  async write(scanning: string[]): Promise<void> {
    const info: ScannerInfo = {
      ...this.#info,
      scanning,
      heartbeatAt: new Date().toISOString(),
      heartbeatMs: this.#heartbeatMs,
    };
    await this.#redis
      .set(this.#keys.scanner(info.id), JSON.stringify(this.#signer.seal(info)), 'PX', this.#heartbeatMs * 3)
      .catch(() => {});
  }

  /** Deletes this watcher's registration. */
  async remove(): Promise<void> {
    await this.#redis.del(this.#keys.scanner(this.#info.id));
  }

  /**
   * The watchers registered now, this one and the named lease holders read first:
   * registrations of the right shape (signed, with a key), with an expiry, whose heartbeat is
   * fresh by their own timestamp and period.
   */
  async scanners(holders: readonly string[] = []): Promise<ScannerInfo[]> {
    const named = [this.#info.id, ...holders].map((id) => this.#keys.scanner(id));
    const listed = await scanKeys(this.#redis, this.#keys.scanners, MAX_SCANNER_KEYS);
    const keys = [...new Set([...named, ...listed])].slice(0, MAX_SCANNER_KEYS);
    const found: ScannerInfo[] = [];
    for (let i = 0; i < keys.length && found.length < MAX_SCANNERS; i += SCANNER_READ_BATCH) {
      const batch = keys.slice(i, i + SCANNER_READ_BATCH);
      const reads = await readStrings(this.#redis, batch, MAX_SCANNER_BYTES);
      for (const [j, read] of reads.entries()) {
        const info = this.#registration(batch[j] as string, read);
        if (info && found.length < MAX_SCANNERS && !found.some((f) => f.id === info.id)) found.push(info);
      }
    }
    return found;
  }

  /** One scanner key read bounded: the registration when it counts, else undefined. */
  #registration(rawKey: string, read: StringRead): ScannerInfo | undefined {
    const ignore = (reason: string): undefined => {
      this.#ignored.ignore('scanner', `${peerText(rawKey, 100)}: ${reason}`, rawKey);
      return undefined;
    };
    const now = Date.now();
    // Undefined: expired since the SCAN, or a named holder not registered.
    const json = signedJsonOf(read, MAX_SCANNER_BYTES, this.#signer, canonicalJson);
    if (json === undefined) return undefined;
    if ('ignored' in json) return ignore(json.ignored);
    const parsed = json.value;
    const info = parseScanner(parsed);
    if (typeof info === 'string') return ignore(info);
    if (rawKey !== this.#keys.scanner(info.id)) return ignore(`names another watcher (${peerText(info.id, 64)})`);
    const beat = Date.parse(info.heartbeatAt);
    const period = Math.min(info.heartbeatMs ?? MAX_HEARTBEAT_MS, MAX_HEARTBEAT_MS);
    if (!(beat <= now + CLOCK_SKEW_MS))
      return ignore(`heartbeat ${Number.isNaN(beat) ? 'is not a time' : 'in the future'}`);
    if (now - beat > 3 * period + CLOCK_SKEW_MS)
      return ignore(`stale (no heartbeat for ${Math.round((now - beat) / 1000)} s)`);
    return info;
  }
}
